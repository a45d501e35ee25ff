"""The official ``openai`` Python client against a real uvicorn on loopback."""

from __future__ import annotations

import threading

import openai
import pytest
from test_service_support import STARTUP_SECONDS, direct_file, live_server, speech_pcm16, wait_until, write_wav

from model.audio import AudioDecodeError
from model.formats import full_text, to_srt, to_vtt
from service.settings import Settings

KEY = "test-key"


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return write_wav(tmp_path_factory.mktemp("audio") / "speech.wav", speech_pcm16())


@pytest.fixture(scope="module")
def served():
    with live_server(Settings(api_key=KEY)) as running:
        yield running


@pytest.fixture(scope="module")
def server(served):
    return served[0]


def client(address: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://{address}/v1", api_key=key, max_retries=0, timeout=60)


def test_openai_client_transcribes_in_every_format(server, speech):
    segments = direct_file(speech, Settings())
    c = client(server)
    with speech.open("rb") as f:
        assert c.audio.transcriptions.create(model="whisper-1", file=f).text == full_text(segments)
    with speech.open("rb") as f:
        text = c.audio.transcriptions.create(model="whisper-1", file=f, response_format="text", language="en")
    assert text.strip() == full_text(segments)
    with speech.open("rb") as f:
        assert c.audio.transcriptions.create(model="whisper-1", file=f, response_format="srt") == to_srt(segments)
    with speech.open("rb") as f:
        assert c.audio.transcriptions.create(model="whisper-1", file=f, response_format="vtt") == to_vtt(segments)


def test_openai_client_gets_verbose_json_with_word_timings(server, speech):
    segments = direct_file(speech, Settings())
    with speech.open("rb") as f:
        result = client(server).audio.transcriptions.create(
            model="whisper-1", file=f, response_format="verbose_json", timestamp_granularities=["word", "segment"])
    assert result.text == full_text(segments)
    assert result.duration == pytest.approx(speech_pcm16().size / 16000, abs=0.01)
    assert [(s.id, s.start, s.end, s.text) for s in result.segments] == [
        (s.id, s.start, s.end, s.text) for s in segments]
    assert [(w.word, w.start, w.end) for w in result.words] == [
        (w.word, w.start, w.end) for s in segments for w in s.words]


def test_openai_client_lists_models_and_sees_errors(server, speech, tmp_path):
    models = client(server).models.list().data
    assert len(models) == 1 and models[0].owned_by == "edgescribe"
    with pytest.raises(openai.AuthenticationError):
        client(server, key="wrong").models.list()
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"ID3 but no frames" * 10)
    with junk.open("rb") as f, pytest.raises(openai.APIStatusError) as e:
        client(server).audio.transcriptions.create(model="whisper-1", file=f)
    assert e.value.status_code == 415 and "decodable" in e.value.message
    with speech.open("rb") as f, pytest.raises(openai.BadRequestError) as e:
        client(server).audio.transcriptions.create(model="whisper-1", file=f, language="de")
    assert "language" in e.value.message


# --- stream=true: OpenAI's server-sent events ------------------------------------------------------------


def transcribe_stream(address: str, path, **kwargs) -> list:
    with path.open("rb") as f:
        return list(client(address).audio.transcriptions.create(model="whisper-1", file=f, stream=True, **kwargs))


def test_streamed_deltas_join_to_the_plain_answer(server, speech):
    with speech.open("rb") as f:
        plain = client(server).audio.transcriptions.create(model="whisper-1", file=f).text
    assert plain == full_text(direct_file(speech, Settings())) and plain
    for response_format in ("json", "text"):
        events = transcribe_stream(server, speech, response_format=response_format)
        assert [type(e).__name__ for e in events] == (
            ["TranscriptionTextDeltaEvent"] * (len(events) - 1) + ["TranscriptionTextDoneEvent"])
        assert len(events) - 1 == len(direct_file(speech, Settings()))  # one delta per segment
        assert "".join(e.delta for e in events[:-1]) == events[-1].text == plain


def gate_segments(monkeypatch, engine, after_first):
    """Run ``after_first(cancelled)`` in the worker right after the first segment is handed over; it sees the
    request's cancel event. Returns the list of segments handed over."""
    handed: list = []
    transcribe_file = engine._transcribe_file

    def spy(source, hotwords, grammar, cancel, on_segment):
        def gated(segment):
            on_segment(segment)
            handed.append(segment)
            if len(handed) == 1:
                after_first(cancel)

        return transcribe_file(source, hotwords, grammar, cancel, gated)

    monkeypatch.setattr(engine, "_transcribe_file", spy)
    return handed


def test_deltas_come_while_the_file_is_still_being_decoded(served, speech, monkeypatch):
    address, app = served
    engine = app.state.engine
    read_first, waited = threading.Event(), []
    handed = gate_segments(monkeypatch, engine, lambda _: waited.append(read_first.wait(STARTUP_SECONDS)))
    with speech.open("rb") as f:
        stream = client(address).audio.transcriptions.create(model="whisper-1", file=f, stream=True)
        first = next(iter(stream))  # the decoder is held after its first segment until this arrives
        assert engine.requests.used == 1  # the stream holds its request slot
        read_first.set()
        rest = list(stream)
    assert waited == [True], "the first delta came only once the whole file was decoded"
    assert first.delta == handed[0].text and rest[-1].text == full_text(handed)
    wait_until(lambda: engine.requests.used == 0, "the slot to be released")


def test_a_client_leaving_mid_stream_stops_the_work_and_frees_its_slot(served, speech, monkeypatch):
    address, app = served
    engine = app.state.engine
    stopped = []
    handed = gate_segments(monkeypatch, engine, lambda cancel: stopped.append(cancel.wait(STARTUP_SECONDS)))
    with speech.open("rb") as f:
        stream = client(address).audio.transcriptions.create(model="whisper-1", file=f, stream=True)
        assert next(iter(stream)).delta == handed[0].text
        stream.close()  # hang up after the first delta
    wait_until(lambda: engine.requests.used == 0, "the abandoned request's slot to be released")
    assert stopped == [True], "the server did not notice the client leaving"
    assert len(handed) == 1 < len(direct_file(speech, Settings()))  # the rest of the file was never decoded
    assert 'edgescribe_errors_total{kind="client_disconnected"}' in app.state.metrics.render().decode()


def test_failures_before_the_first_event_are_ordinary_errors(server, speech, tmp_path):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"ID3 but no frames" * 10)
    with pytest.raises(openai.APIStatusError) as e:
        transcribe_stream(server, junk)
    assert e.value.status_code == 415 and e.value.code == "undecodable_audio"
    for response_format in ("srt", "vtt", "verbose_json"):
        with pytest.raises(openai.BadRequestError) as e:
            transcribe_stream(server, speech, response_format=response_format)
        assert e.value.param == "stream" and "text only" in e.value.message and response_format in e.value.message


def test_a_failure_after_the_first_event_ends_the_stream_with_an_error_event(served, speech, monkeypatch):
    address, app = served

    def cut_short(_):
        raise AudioDecodeError("the file is cut short after its first words")

    handed = gate_segments(monkeypatch, app.state.engine, cut_short)
    with speech.open("rb") as f:
        stream = client(address).audio.transcriptions.create(model="whisper-1", file=f, stream=True)
        events = iter(stream)
        assert next(events).delta == handed[0].text
        with pytest.raises(openai.APIError, match="cut short") as e:
            next(events)
    assert e.value.body["type"] == "undecodable_audio"
    wait_until(lambda: app.state.engine.requests.used == 0, "the slot to be released")
