"""WebSocket /v1/stream, Vosk's protocol, against a real uvicorn: partials, finals, limits, errors, concurrency."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from test_service_support import (
    RESET,
    app_for,
    direct_vosk_replies,
    live_server,
    pcm_chunks,
    speech_pcm16,
    wait_until,
)
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from service.settings import Settings

CHUNK = 4000  # 0.25 s at 16 kHz: Vosk's example clients send 0.2-0.5 s per message


@pytest.fixture(scope="module")
def server():
    with live_server(Settings(max_streams=8, workers=2)) as running:
        yield running


def stream_audio(address: str, chunks: list[bytes | str], config: dict | None = None, headers=None) -> list[dict]:
    """Vosk client behaviour: send a chunk (or a text message such as RESET), read one reply; then eof and the
    final reply; then the close."""
    replies = []
    with connect(f"ws://{address}/v1/stream", additional_headers=headers, open_timeout=60) as ws:
        if config is not None:
            ws.send(json.dumps({"config": config}))
        for chunk in chunks:
            ws.send(chunk)
            replies.append(json.loads(ws.recv(timeout=60)))
        ws.send('{"eof" : 1}')  # spaced exactly as Vosk's clients send it
        replies.append(json.loads(ws.recv(timeout=60)))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=60)
        assert closed.value.rcvd.code == 1000
    return replies


def error_close(ws) -> tuple[dict, int]:
    """Read the error message a failing stream is sent, then its close code."""
    error = json.loads(ws.recv(timeout=60))["error"]
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=60)
    return error, closed.value.rcvd.code


def test_stream_answers_each_chunk_like_the_recognizer(server):
    address, _ = server
    chunks = pcm_chunks(speech_pcm16(), CHUNK)
    replies = stream_audio(address, chunks, {"sample_rate": 16000, "words": True})
    assert len(replies) == len(chunks) + 1  # one reply per audio message, then the final one
    assert all(set(r) in ({"partial"}, {"text", "result"}) for r in replies[:-1])
    assert set(replies[-1]) == ({"text", "result"} if replies[-1]["text"] else {"text"})  # Vosk's empty final
    assert any("partial" in r for r in replies)
    assert replies == direct_vosk_replies(Settings(), chunks)
    duration = speech_pcm16().size / 16000
    words = [w for r in replies if "result" in r for w in r["result"]]
    assert words, "no words at all: the comparison above would be vacuous"
    assert all(set(w) == {"word", "start", "end", "conf"} and 0 <= w["start"] < w["end"] <= duration + 0.1
               for w in words)
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)  # times run from the stream's start, across segments


def test_stream_sends_results_at_endpoints_mid_stream(server, monkeypatch):
    # The placeholder model hears speech even in silence, so it never pauses; a short segment cap
    # closes segments mid-stream instead, exercising the same reply path a pause takes.
    monkeypatch.setattr("model.recognize.MAX_SEGMENT_SECONDS", 1.0)
    address, _ = server
    chunks = pcm_chunks(speech_pcm16(), CHUNK)
    replies = stream_audio(address, chunks)
    finals = [r for r in replies[:-1] if "text" in r]
    assert len(finals) >= 3 and all(r["text"] and r["result"] for r in finals)
    assert replies == direct_vosk_replies(Settings(), chunks)
    ends = [w["end"] for r in replies if "result" in r for w in r["result"]]
    assert ends == sorted(ends)


def test_stream_resamples_other_rates(server):
    address, _ = server
    samples = speech_pcm16(rate=8000)
    chunks = pcm_chunks(samples, 2000)
    replies = stream_audio(address, chunks, {"sample_rate": 8000})
    assert replies == direct_vosk_replies(Settings(), chunks, sample_rate=8000)
    words = [w for r in replies if "result" in r for w in r["result"]]
    assert words and max(w["end"] for w in words) <= samples.size / 8000 + 0.1  # still seconds of input


def test_stream_options_words_phrase_list_and_no_config(server):
    address, _ = server
    chunks = pcm_chunks(speech_pcm16((4,)), CHUNK)
    replies = stream_audio(address, chunks, {"sample_rate": 16000, "words": False, "phrase_list": ["yes", "no"],
                                             "hotwords": ["hello"]})
    assert all("result" not in r for r in replies)
    assert replies == direct_vosk_replies(Settings(), chunks, hotwords=["hello"], words=False,
                                          phrase_list=["yes", "no"])
    finals = [r["text"] for r in replies if "text" in r]
    assert finals and all(t in ("", "yes", "no") for t in finals)  # grammar mode: only listed phrases
    assert stream_audio(address, chunks) == direct_vosk_replies(Settings(), chunks)  # config is optional
    assert stream_audio(address, []) == [{"text": ""}]  # eof straight away: Vosk leaves "result" out


def test_many_concurrent_streams_each_get_their_own_result(server):
    address, app = server
    jobs = [pcm_chunks(speech_pcm16((i % 6, (i + 1) % 6)), CHUNK + 500 * i) for i in range(6)]
    results: dict[int, list[dict] | BaseException] = {}

    def run(i: int) -> None:
        try:
            results[i] = stream_audio(address, jobs[i], {"sample_rate": 16000})
        except BaseException as e:  # reported below, with the stream's number
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, chunks in enumerate(jobs):
        assert results[i] == direct_vosk_replies(Settings(), chunks), f"stream {i}"
    # A client is done a moment before the server's handler lets its slot go.
    wait_until(lambda: app.state.engine.streams.used == 0, "every stream's slot to be freed")


def test_streams_beyond_the_limit_are_refused_then_admitted():
    with live_server(Settings(max_streams=2, retry_after=3)) as (address, app):
        url = f"ws://{address}/v1/stream"
        with connect(url) as a, connect(url) as b:
            for ws in (a, b):  # make sure both hold their slots: each has had an answer
                ws.send(b"\0\0" * 1600)
                assert "partial" in json.loads(ws.recv(timeout=60))
            with connect(url) as c:
                error, code = error_close(c)
            assert code == 4503 and error["type"] == "busy" and error["retry_after"] == 3
        wait_until(lambda: app.state.engine.streams.used == 0, "the slots to be released")
        assert stream_audio(address, pcm_chunks(speech_pcm16((4,)), CHUNK))[-1]["text"] is not None


def test_client_vanishing_mid_stream_frees_its_slot():
    with live_server(Settings(max_streams=1)) as (address, app):
        with connect(f"ws://{address}/v1/stream") as ws:
            ws.send(pcm_chunks(speech_pcm16((0,)), CHUNK)[0])
            ws.recv(timeout=60)
            assert app.state.engine.streams.used == 1
            ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame: the network just went away
        wait_until(lambda: app.state.engine.streams.used == 0, "the abandoned stream to be released")
        metrics = app.state.metrics.render().decode()
        assert "edgescribe_active_streams 0.0" in metrics
        assert len(stream_audio(address, [b"\0\0" * 800])) == 2  # the slot is usable again


def test_idle_stream_is_closed_with_a_reason():
    with live_server(Settings(idle_timeout=0.5)) as (address, _):
        with connect(f"ws://{address}/v1/stream") as ws:
            ws.send(json.dumps({"config": {"sample_rate": 16000}}))
            error, code = error_close(ws)
    assert code == 4408 and error["type"] == "idle_timeout" and "EDGESCRIBE_IDLE_TIMEOUT" in error["message"]


def test_stream_needs_the_api_key_when_set():
    with live_server(Settings(api_key="k")) as (address, _):
        with connect(f"ws://{address}/v1/stream") as ws:
            error, code = error_close(ws)
        assert code == 4401 and error["type"] == "unauthorized"
        replies = stream_audio(address, [b"\0\0" * 800], headers={"Authorization": "Bearer k"})
        assert len(replies) == 2


@pytest.fixture(scope="module")
def local():
    with TestClient(app_for(Settings(max_message_bytes=4096))) as client:
        yield client


@pytest.mark.parametrize("messages, code, kind", [
    ([{"config": {"sample_rate": 100}}], 4400, "bad_field"),
    ([{"config": {"sample_rate": "fast"}}], 4400, "bad_field"),
    ([{"config": {"words": "yes"}}], 4400, "bad_field"),  # vosk-server would read "false" as true too
    ([{"config": {"words": None}}], 4400, "bad_field"),
    ([{"config": {"max_alternatives": -1}}], 4400, "bad_field"),
    ([{"config": {"max_alternatives": "3"}}], 4400, "bad_field"),
    ([{"config": {"max_alternatives": 2.5}}], 4400, "bad_field"),
    ([{"config": {"phrase_list": "hello"}}], 4400, "bad_field"),
    ([{"config": {"phrase_list": ["[unk]"]}}], 4400, "bad_field"),
    ([{"config": {"phrase_list": ["say привет"]}}], 4400, "bad_field"),
    ([{"config": {"hotwords": [3]}}], 4400, "bad_field"),
    ([{"config": []}], 4400, "bad_field"),
    (["not json"], 4400, "bad_field"),
    ([{"restart": 1}], 4400, "bad_field"),
    ([b"\0\0\0"], 4415, "undecodable_audio"),  # 16-bit PCM cannot have an odd byte count
    ([b"\0\0", {"config": {"sample_rate": 8000}}], 4400, "bad_field"),  # config after audio
    ([b"\0" * 5000], 4413, "upload_too_large"),
])
def test_protocol_errors_close_with_the_table_code(local, messages, code, kind):
    with local.websocket_connect("/v1/stream") as ws:
        for m in messages:
            if isinstance(m, bytes):
                ws.send_bytes(m)
                if m is not messages[-1]:
                    assert "partial" in ws.receive_json()
            else:
                ws.send_text(m if isinstance(m, str) else json.dumps(m))
        assert ws.receive_json()["error"]["type"] == kind
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == code


# --- Vosk parity: vosk-server's own client scripts (websocket/test_words.py, test_alternatives.py) ------


def test_words_takes_any_number_or_boolean_like_vosk_server(server):
    address, _ = server
    chunks = pcm_chunks(speech_pcm16((0,)), CHUNK)
    for words in (0, 0.0, False):
        assert stream_audio(address, chunks, {"words": words}) == direct_vosk_replies(Settings(), chunks, words=False)
    for words in (1, 2, True):
        assert stream_audio(address, chunks, {"words": words}) == direct_vosk_replies(Settings(), chunks)


def test_vosk_server_test_words_sequence(server):
    # test_words.py: a phrase list, the file's rate and "words" : 0, 0.2 s per message, then eof.
    address, _ = server
    phrases = ["zero one two three four five", "six seven eight nine oh"]
    chunks = pcm_chunks(speech_pcm16((4,)), 3200)
    with connect(f"ws://{address}/v1/stream", open_timeout=60) as ws:
        ws.send('''{"config" :
                    { "phrase_list" : ["zero one two three four five", "six seven eight nine oh"],
                      "sample_rate" : 16000,
                      "words" : 0}}''')  # the script's own message (its trailing blank aside)
        replies = []
        for chunk in chunks:
            ws.send(chunk)
            replies.append(json.loads(ws.recv(timeout=60)))
        ws.send('{"eof" : 1}')
        replies.append(json.loads(ws.recv(timeout=60)))
    assert replies == direct_vosk_replies(Settings(), chunks, words=False, phrase_list=phrases)
    assert all(set(r) in ({"partial"}, {"text"}) for r in replies)  # no word times anywhere
    assert all(r["text"] in ("", *phrases) for r in replies if "text" in r)


def test_alternatives_in_vosk_shape_from_the_beam(monkeypatch):
    # test_alternatives.py asks for 20; the server gives at most EDGESCRIBE_MAX_ALTERNATIVES (here 3).
    monkeypatch.setattr("model.recognize.MAX_SEGMENT_SECONDS", 1.0)  # finals mid-stream, not only at eof
    chunks = pcm_chunks(speech_pcm16((0, 1)), 3200)
    with live_server(Settings(max_alternatives=3)) as (address, _):
        replies = stream_audio(address, chunks, {"max_alternatives": 20, "sample_rate": 16000})
        plain = stream_audio(address, chunks, {"sample_rate": 16000})
    assert replies == direct_vosk_replies(Settings(), chunks, alternatives=3)
    finals = [r for r in replies if "alternatives" in r]
    assert len(finals) >= 2 and all(set(r) in ({"partial"}, {"alternatives"}) for r in replies)
    assert [r["partial"] for r in replies if "partial" in r] == [r["partial"] for r in plain if "partial" in r]
    for final, text in zip(finals, [r["text"] for r in plain if "text" in r], strict=True):
        alternatives = final["alternatives"]
        assert 1 <= len(alternatives) <= 3
        assert alternatives[0]["text"] == text  # the first is the plain result
        assert len({a["text"] for a in alternatives}) == len(alternatives)
        confidences = [a["confidence"] for a in alternatives]
        assert confidences == sorted(confidences, reverse=True)
        for a in alternatives:
            assert set(a) == ({"text", "confidence", "result"} if a["text"] else {"text", "confidence"})
            assert all(set(w) == {"word", "start", "end"} for w in a.get("result", []))
            assert " ".join(w["word"] for w in a.get("result", [])) == a["text"]
    assert any(len(r["alternatives"]) > 1 for r in finals), "the beam never offered a second text"


def test_reset_answers_the_final_and_the_stream_goes_on(server):
    address, _ = server
    # No pause after the first utterance, so that only the reset can close it.
    first = pcm_chunks(speech_pcm16((0,), pause_seconds=0.0), CHUNK)
    second = pcm_chunks(speech_pcm16((1,)), CHUNK)
    chunks = [*first, RESET, *second, RESET, RESET]
    replies = stream_audio(address, chunks, {"sample_rate": 16000})
    assert replies == direct_vosk_replies(Settings(), chunks)
    at_reset = replies[len(first)]
    assert set(at_reset) == {"text", "result"} and at_reset["text"]  # the first utterance's final result
    assert replies[-2] == replies[-1] == {"text": ""}  # nothing new since: an empty final, the stream still open
    sent_before = sum(len(c) for c in first) / 2 / 16000
    later = [w for r in replies[len(first) + 1 :] if "result" in r for w in r["result"]]
    assert later and all(w["start"] >= sent_before for w in later)  # times still from the stream's start
    # and the second utterance is decoded afresh: as if it were a stream of its own, moved by what came before
    alone = [w for r in direct_vosk_replies(Settings(), second) if "result" in r for w in r["result"]]
    assert [w["word"] for w in later] == [w["word"] for w in alone]
    assert [w["start"] for w in later] == pytest.approx([w["start"] + sent_before for w in alone], abs=0.0011)


def test_reset_before_any_audio_is_an_empty_final():
    with live_server(Settings()) as (address, _):
        assert stream_audio(address, [RESET]) == [{"text": ""}, {"text": ""}]
        assert stream_audio(address, [RESET], {"max_alternatives": 2}) == [
            {"alternatives": [{"text": "", "confidence": 1.0}]}] * 2


def test_without_a_config_the_rate_is_the_setting():
    samples = speech_pcm16((0,), rate=8000)
    chunks = pcm_chunks(samples, 1600)
    with live_server(Settings(stream_sample_rate=8000)) as (address, _):
        replies = stream_audio(address, chunks)  # vosk-server's default rate, no config message
    assert replies == direct_vosk_replies(Settings(), chunks, sample_rate=8000)
    words = [w for r in replies if "result" in r for w in r["result"]]
    assert words and max(w["end"] for w in words) <= samples.size / 8000 + 0.1
