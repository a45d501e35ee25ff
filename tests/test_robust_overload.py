"""Overload: more clients than the limits allow. The extra ones are refused at once (503 + Retry-After for
uploads, close 4503 for streams) while the admitted ones go on to their correct results.

"At once" is shown by order, not by a stopwatch: the inference pool is held busy, so the admitted work
cannot progress, and every refusal must still arrive before it is let go. A server that queued the
extra clients instead of refusing them would leave them waiting too, and the test would time out.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from test_service_support import (
    direct_file,
    direct_vosk_replies,
    live_server,
    pcm_chunks,
    speech_pcm16,
    wait_until,
    write_wav,
)
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from model.formats import full_text
from service.settings import Settings

SETTINGS = Settings(max_requests=2, max_streams=2, workers=2, retry_after=5)
EXTRA = 6  # clients beyond each limit
URL = "/v1/audio/transcriptions"
CHUNK = 4000


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return write_wav(tmp_path_factory.mktemp("audio") / "speech.wav", speech_pcm16((0, 1)))


@pytest.fixture()
def held_pool():
    """A running server whose inference threads are all taken until ``release`` is set."""
    with live_server(SETTINGS) as (address, app):
        engine = app.state.engine
        release = threading.Event()
        blockers = [engine.stream_pool.submit(release.wait) for _ in range(SETTINGS.workers)]
        blockers += [engine.upload_pool.submit(release.wait) for _ in range(SETTINGS.upload_workers)]
        yield address, app, release
        release.set()
        for b in blockers:
            b.result(timeout=60)


def wait_for_slots(app, kind: str, count: int) -> None:
    slots = getattr(app.state.engine, kind)
    wait_until(lambda: slots.used == count, f"{count} {kind} to be admitted")


def test_extra_uploads_get_503_while_admitted_ones_finish(held_pool, speech):
    address, app, release = held_pool
    data = speech.read_bytes()
    expected = {"text": full_text(direct_file(speech, SETTINGS))}

    def upload() -> httpx.Response:
        with httpx.Client(base_url=f"http://{address}", timeout=120) as client:
            return client.post(URL, files={"file": ("speech.wav", data, "audio/wav")})

    with ThreadPoolExecutor(SETTINGS.max_requests + EXTRA) as clients:
        admitted = [clients.submit(upload) for _ in range(SETTINGS.max_requests)]
        wait_for_slots(app, "requests", SETTINGS.max_requests)  # both hold a slot, their work queued
        refused = [clients.submit(upload) for _ in range(EXTRA)]
        for future in refused:  # all answered while the admitted work cannot even start
            r = future.result(timeout=60)
            assert r.status_code == 503 and r.headers["retry-after"] == "5"
            assert r.json()["error"]["type"] == "busy"
            assert "EDGESCRIBE_MAX_REQUESTS" in r.json()["error"]["message"]
        assert not any(f.done() for f in admitted)
        release.set()
        for future in admitted:
            r = future.result(timeout=120)
            assert r.status_code == 200 and r.json() == expected
    assert app.state.engine.requests.used == 0
    assert upload().status_code == 200  # capacity is back


def test_extra_streams_get_4503_while_admitted_ones_finish(held_pool):
    address, app, release = held_pool
    chunks = pcm_chunks(speech_pcm16((2,)), CHUNK)

    def stream() -> list[dict]:
        replies = []
        with connect(f"ws://{address}/v1/stream", open_timeout=60) as ws:
            for chunk in chunks:
                ws.send(chunk)
                replies.append(json.loads(ws.recv(timeout=120)))
            ws.send('{"eof": 1}')
            replies.append(json.loads(ws.recv(timeout=120)))
        return replies

    def refused_stream() -> tuple[dict, int]:
        with connect(f"ws://{address}/v1/stream", open_timeout=60) as ws:  # refused before any audio is sent
            error = json.loads(ws.recv(timeout=60))["error"]
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=60)
        return error, closed.value.rcvd.code

    with ThreadPoolExecutor(SETTINGS.max_streams + EXTRA) as clients:
        admitted = [clients.submit(stream) for _ in range(SETTINGS.max_streams)]
        wait_for_slots(app, "streams", SETTINGS.max_streams)
        refused = [clients.submit(refused_stream) for _ in range(EXTRA)]
        for future in refused:
            error, code = future.result(timeout=60)
            assert code == 4503 and error["type"] == "busy" and error["retry_after"] == 5
        assert not any(f.done() for f in admitted)
        release.set()
        expected = direct_vosk_replies(SETTINGS, chunks)
        for future in admitted:
            assert future.result(timeout=120) == expected
    # The client has its final reply and close frame a moment before the server's handler lets its slot go.
    wait_until(lambda: app.state.engine.streams.used == 0, "the admitted streams' slots to be freed")
    assert "edgescribe_active_streams 0.0" in app.state.metrics.render().decode()
