"""The official ``openai`` Python client against a real uvicorn on loopback."""

from __future__ import annotations

import openai
import pytest
from test_service_support import direct_file, live_server, speech_pcm16, write_wav

from model.formats import full_text, to_srt, to_vtt
from service.settings import Settings

KEY = "test-key"


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return write_wav(tmp_path_factory.mktemp("audio") / "speech.wav", speech_pcm16())


@pytest.fixture(scope="module")
def server():
    with live_server(Settings(api_key=KEY)) as (address, _):
        yield address


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
