"""The HTTP API in process (Starlette's TestClient): formats, transcripts, every error path, limits, auth."""

from __future__ import annotations

import asyncio
import json
import re
import threading

import pytest
from fastapi.testclient import TestClient
from test_service_support import app_for, direct_file, speech_pcm16, write_wav

from model.audio import DecodeCancelled
from model.formats import full_text, to_srt, to_vtt
from service.errors import ClientGone
from service.settings import Settings

URL = "/v1/audio/transcriptions"


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Three utterances with pauses between them (about 7 s)."""
    return write_wav(tmp_path_factory.mktemp("audio") / "speech.wav", speech_pcm16())


@pytest.fixture()
def client_for():
    clients = []

    def make(**overrides) -> TestClient:
        client = TestClient(app_for(Settings(**overrides)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture()
def client(client_for):
    return client_for()


def post(client, path, **data):
    with open(path, "rb") as f:
        return client.post(URL, files={"file": (path.name, f, "application/octet-stream")}, data=data)


def assert_error(response, status: int, kind: str, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == kind and error["code"] == kind  # a string, as OpenAI's codes are
    assert len(error["message"]) > 10  # says what to change
    if param is not None:
        assert error["param"] == param
    return error


def test_every_response_format_matches_the_recognizer(client, speech):
    segments = direct_file(speech, Settings())
    assert segments, "the reference transcript is empty: the comparison would prove nothing"
    assert post(client, speech).json() == {"text": full_text(segments)}
    assert post(client, speech, response_format="json").json() == {"text": full_text(segments)}
    r = post(client, speech, response_format="text")
    assert r.headers["content-type"].startswith("text/plain") and r.text == full_text(segments)
    assert post(client, speech, response_format="srt").text == to_srt(segments)
    r = post(client, speech, response_format="vtt")
    assert r.headers["content-type"].startswith("text/vtt") and r.text == to_vtt(segments)


def test_verbose_json_has_segments_and_words_when_asked(client, speech):
    segments = direct_file(speech, Settings())
    body = post(client, speech, response_format="verbose_json").json()
    assert body["task"] == "transcribe" and body["language"] == "english"
    assert body["duration"] == pytest.approx(speech_pcm16().size / 16000, abs=0.01)
    assert body["text"] == full_text(segments)
    assert body["segments"] == [{"id": s.id, "start": s.start, "end": s.end, "text": s.text} for s in segments]
    assert "words" not in body
    r = client.post(URL, files={"file": speech.open("rb")},
                    data={"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]})
    words = r.json()["words"]
    assert words == [{"word": w.word, "start": w.start, "end": w.end} for s in segments for w in s.words]
    assert all(0 <= w["start"] < w["end"] <= body["duration"] + 0.1 for w in words)


def test_long_audio_comes_back_in_segments(client, tmp_path, monkeypatch):
    # The placeholder model hears speech even in silence, so it never pauses; a short segment cap
    # makes the stream close segments as a pause would, to check they come back whole and in order.
    monkeypatch.setattr("model.recognize.MAX_SEGMENT_SECONDS", 2.0)
    path = write_wav(tmp_path / "long.wav", speech_pcm16(range(6), pause_seconds=1.5))
    body = post(client, path, response_format="verbose_json").json()
    assert len(body["segments"]) >= 4
    assert body["text"] == full_text(direct_file(path, Settings()))
    starts = [s["start"] for s in body["segments"]]
    assert starts == sorted(starts)
    assert [s["id"] for s in body["segments"]] == list(range(len(starts)))
    assert all(s["start"] < s["end"] <= body["duration"] + 0.1 for s in body["segments"])


def test_prompt_words_become_hotwords(client_for, speech):
    client = client_for(beam_size=4)
    engine = client.app.state.engine
    assert engine.hotwords("Turn on the LIGHT, light!".split()) == ["turn", "on", "the", "light"]
    expected = direct_file(speech, Settings(beam_size=4), hotwords=["hello", "world"])
    assert post(client, speech, prompt="Hello, world").json() == {"text": full_text(expected)}


def test_model_field_and_english_are_accepted(client, speech):
    assert post(client, speech, model="whisper-1", language="en").status_code == 200
    assert post(client, speech, model="anything", language="").status_code == 200


@pytest.mark.parametrize("data, param", [
    ({"language": "fr"}, "language"),
    ({"response_format": "docx"}, "response_format"),
    ({"temperature": "warm"}, "temperature"),
    ({"timestamp_granularities[]": "phoneme"}, "timestamp_granularities[]"),
])
def test_bad_fields_are_400(client, speech, data, param):
    assert_error(post(client, speech, **data), 400, "bad_field", param)


def test_missing_file_or_not_multipart_is_400(client):
    assert_error(client.post(URL, data={"model": "x"}), 400, "bad_field", "file")
    assert_error(client.post(URL, json={"file": "speech.wav"}), 400, "bad_field", "file")
    assert_error(client.post(URL, files={"prompt": ("a.txt", b"hi")}, data={"x": "1"}), 400, "bad_field", "file")


def test_undecodable_audio_is_415(client, tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF this is not audio at all" * 50)
    assert_error(post(client, junk), 415, "undecodable_audio")
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    assert_error(post(client, empty), 415, "undecodable_audio")


def test_too_large_upload_is_413_before_and_while_reading(client_for, speech):
    client = client_for(max_upload_bytes=10_000)
    assert_error(post(client, speech), 413, "upload_too_large", "file")  # Content-Length says so

    def body():  # no Content-Length: the limit must trip while the body streams in
        with open(speech, "rb") as f:
            yield from iter(lambda: f.read(4096), b"")

    boundary = "edgescribe-test"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode()

    def multipart():
        yield head
        yield from body()
        yield f"\r\n--{boundary}--\r\n".encode()

    r = client.post(URL, content=multipart(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert_error(r, 413, "upload_too_large")
    assert client.app.state.engine.requests.used == 0


def test_too_long_audio_is_413(client_for, speech):
    client = client_for(max_audio_seconds=2.0)
    error = assert_error(post(client, speech), 413, "audio_too_long")
    assert "2 s" in error["message"]


def test_busy_is_503_with_retry_after_and_frees_on_exit(client_for, speech):
    client = client_for(max_requests=1, retry_after=7)
    engine = client.app.state.engine
    with engine.requests.hold():  # someone else holds the only slot
        r = post(client, speech)
        assert_error(r, 503, "busy")
        assert r.headers["retry-after"] == "7"
    assert post(client, speech).status_code == 200


def test_api_key_guards_everything_but_healthz(client_for, speech):
    client = client_for(api_key="s3cret")
    assert client.get("/healthz").status_code == 200
    for method, path in [("get", "/v1/models"), ("get", "/metrics"), ("get", "/"), ("get", "/static/app.js"),
                         ("post", URL)]:
        r = getattr(client, method)(path)
        assert_error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
        r = getattr(client, method)(path, headers={"Authorization": "Bearer wrong"})
        assert_error(r, 401, "unauthorized")
    good = {"Authorization": "Bearer s3cret"}
    assert client.get("/v1/models", headers=good).status_code == 200
    with open(speech, "rb") as f:
        assert client.post(URL, files={"file": f}, headers=good).status_code == 200


def test_models_healthz_and_unknown_paths(client):
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and len(models["data"]) == 1
    card = models["data"][0]
    assert card["object"] == "model" and card["owned_by"] == "edgescribe" and isinstance(card["created"], int)
    assert client.get(f"/v1/models/{card['id']}").json() == card
    assert_error(client.get("/v1/models/whisper-1"), 404, "not_found", "model")
    assert client.get("/healthz").json() == {"status": "ok", "model": card["id"],
                                             "engine": client.app.state.engine.recognizer.engine}
    assert_error(client.get("/nowhere"), 404, "not_found")
    assert_error(client.get("/static/../settings.py"), 404, "not_found")
    assert_error(client.get("/static/index.py"), 404, "not_found")
    assert client.put(URL).status_code == 405


def test_metrics_count_requests_audio_and_errors(client, speech, tmp_path):
    post(client, speech)
    junk = tmp_path / "junk.ogg"
    junk.write_bytes(b"\0" * 100)
    post(client, junk)
    text = client.get("/metrics").text
    assert 'edgescribe_requests_total{endpoint="/v1/audio/transcriptions",status="200"} 1.0' in text
    assert 'edgescribe_requests_total{endpoint="/v1/audio/transcriptions",status="415"} 1.0' in text
    assert 'edgescribe_errors_total{kind="undecodable_audio"} 1.0' in text
    seconds = next(line for line in text.splitlines()
                   if line.startswith('edgescribe_audio_seconds_total{endpoint="/v1/audio/transcriptions"}'))
    assert float(seconds.split()[-1]) == pytest.approx(speech_pcm16().size / 16000, abs=0.01)
    assert 'edgescribe_real_time_factor_count{endpoint="/v1/audio/transcriptions"} 1.0' in text
    assert "edgescribe_active_streams 0.0" in text and "edgescribe_active_requests 0.0" in text


def test_web_page_has_no_external_assets(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for name in ("app.js", "pcm-worklet.js", "style.css"):
        text = client.get(f"/static/{name}").text
        assert "http://" not in text and "https://" not in text, name
    assert "http://" not in r.text and "https://" not in r.text
    assert '<link rel="icon" href="data:,">' in r.text  # so browsers do not ask for /favicon.ico (a 404)


def test_api_docs_load_nothing_from_elsewhere(client_for):
    client = client_for(api_key="s3cret")  # the docs stay open, assets included: a page load sends no key
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "http://" not in r.text and "https://" not in r.text and "//" not in r.text  # nor //cdn.example/...
    refs = re.findall(r'(?:src|href)="([^"]*)"', r.text)
    assert len(refs) == 3 and all(ref.startswith("/") or ref.startswith("data:") for ref in refs), refs
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "url: '/openapi.json'" in r.text and '"validatorUrl": null' in r.text
    for ref in refs:
        if ref.startswith("/"):
            asset = client.get(ref)
            assert asset.status_code == 200 and len(asset.content) > 100_000, ref
    assert client.get("/openapi.json").status_code == 200
    assert_error(client.get("/static/swagger/LICENSE"), 404, "not_found")  # only the table's files
    assert_error(client.get("/redoc"), 404, "not_found")  # off: it would load its bundle from a CDN


def test_openapi_documents_the_upload_form(client):
    schema = client.get("/openapi.json").json()
    body = schema["paths"][URL]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(body["required"]) == {"file"} and "response_format" in body["properties"]
    assert json.dumps(schema)  # serialisable


def test_abandoned_transcription_stops_and_frees_the_worker(client_for, speech):
    client = client_for(workers=1)
    engine = client.app.state.engine
    release = threading.Event()
    blocker = engine.upload_pool.submit(release.wait)  # the only worker is busy, so our work waits in the queue

    async def abandon() -> None:
        gone = asyncio.get_running_loop().create_future()
        gone.set_result(None)  # the client has already hung up
        with speech.open("rb") as f:
            work = asyncio.ensure_future(engine.transcribe(f, [], gone))
            await asyncio.sleep(0)
            release.set()
            with pytest.raises(ClientGone):
                await work

    asyncio.run(abandon())
    blocker.result()
    cancelled = threading.Event()
    cancelled.set()
    with speech.open("rb") as f, pytest.raises(DecodeCancelled):  # the worker gives up at the next chunk
        engine._transcribe_file(f, [], None, cancelled)
    assert engine.upload_pool.submit(lambda: "free").result(timeout=60) == "free"
    assert post(client, speech).status_code == 200


def test_phrase_list_field_restricts_the_transcript(client, tmp_path):
    wav = write_wav(tmp_path / "a.wav", speech_pcm16((0, 1)))
    phrases = ["hello world", "turn on the light"]
    r = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav.read_bytes(), "audio/wav")},
                    data={"phrase_list": phrases, "response_format": "verbose_json"})
    assert r.status_code == 200, r.text
    texts = [s["text"] for s in r.json()["segments"]]
    assert all(t in phrases for t in texts)
    assert texts == [s.text for s in direct_file(wav, Settings(), phrase_list=phrases)]
    bad = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav.read_bytes(), "audio/wav")},
                      data={"phrase_list": ["[unk]"]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "phrase_list"
