"""WebSocket abuse against a real uvicorn: oversized frames, text where audio belongs, malformed JSON, odd
byte counts, a client that stops reading, thousands of tiny frames, and hang-ups at every stage.

The properties: the server stays up; each abused stream is freed (no slot held, the active-streams
gauge back to 0); a protocol error is answered with the table's close code, never 1011 (internal);
and a well-behaved stream running at the same time gets exactly the replies the Recognizer computes.
Raw sockets are used where a polite client library would not misbehave the way we need.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from unittest import mock

import pytest
import test_service_support
from test_service_support import direct_vosk_replies, live_server, pcm_chunks, speech_pcm16, wait_until
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from service.settings import Settings

# No real-time floor here (min_stream_realtime=0): these tests are about framing and hang-ups, and one of
# them sends 3,000 tiny frames, each waiting for its reply, which on a loaded machine runs slower than
# real time and would be cut off by the floor (tested on its own in test_robust_hostile.py).
SETTINGS = Settings(max_streams=16, workers=2, idle_timeout=3.0, max_message_bytes=64 * 1024, min_stream_realtime=0)
CHUNK = 4000  # 0.25 s at 16 kHz
SOCKET_BUFFER = 4096  # both ends' kernel buffers, small so that a client that stops reading blocks us soon
STALL_DEADLINE = 60.0  # liveness: the stalled stream must be dropped well before this (idle_timeout is 3 s)


@pytest.fixture(scope="module")
def server():
    # Accepted sockets inherit the listening socket's send buffer size (Linux), so shrinking it makes
    # a non-reading client fill the server's side within seconds rather than after megabytes.
    class SmallBuffers(socket.socket):  # a subclass: uvloop checks isinstance(sock, socket.socket)
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            if self.type == socket.SOCK_STREAM:
                self.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)

    with mock.patch.object(test_service_support.socket, "socket", SmallBuffers):
        running = live_server(SETTINGS)
        address, app = running.__enter__()
    try:
        yield address, app
    finally:
        running.__exit__(None, None, None)


def url(address: str) -> str:
    return f"ws://{address}/v1/stream"


def assert_freed(app) -> None:
    engine = app.state.engine
    wait_until(lambda: engine.streams.used == 0, "every abused stream to be freed")
    metrics = app.state.metrics.render().decode()
    assert "edgescribe_active_streams 0.0" in metrics
    assert 'edgescribe_errors_total{kind="internal"}' not in metrics, "a client's mistake was answered as internal"


@contextlib.contextmanager
def witness(address: str) -> Iterator[None]:
    """A well-behaved Vosk client streaming speech in the background; its replies are checked on exit."""
    chunks = pcm_chunks(speech_pcm16((0, 1), pause_seconds=0.5), CHUNK)
    outcome: list[object] = []

    def run() -> None:
        try:
            replies = []
            with connect(url(address), open_timeout=60) as ws:
                for chunk in chunks:
                    ws.send(chunk)
                    replies.append(json.loads(ws.recv(timeout=60)))
                    time.sleep(0.02)  # stay open while the abuse happens
                ws.send('{"eof": 1}')
                replies.append(json.loads(ws.recv(timeout=60)))
            outcome.append(replies)
        except BaseException as e:  # re-raised in the test's thread below
            outcome.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    yield
    thread.join(timeout=120)
    assert outcome, "the witness stream never finished"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    assert outcome[0] == direct_vosk_replies(SETTINGS, chunks)


def raw_stream(address: str, rcvbuf: int | None = None) -> socket.socket:
    """A WebSocket opened by hand, so that it can send anything and read nothing."""
    host, port = address.split(":")
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(60)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /v1/stream HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        received = sock.recv(1)
        if not received:
            raise AssertionError(f"handshake refused: {head!r}")
        head += received
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """One masked client frame (RFC 6455 5.2); opcode 1 is text, 2 binary."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 2**16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def abort(sock: socket.socket) -> None:
    """Hang up with a reset and no close frame, as a crashed client or a dropped network does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def error_close(ws) -> tuple[str | None, int]:
    """The error type a failing stream is sent (None if it was closed without one) and its close code."""
    kind = None
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            kind = json.loads(ws.recv(timeout=60))["error"]["type"]
    return kind, closed.value.rcvd.code if closed.value.rcvd else None


def test_oversized_frames_close_only_that_stream(server):
    address, app = server
    with witness(address):
        for message in (b"\0\0" * SETTINGS.max_message_bytes, "x" * (SETTINGS.max_message_bytes + 1)):
            with connect(url(address), max_size=None) as ws:
                ws.send(b"\0\0" * 800)
                assert "partial" in json.loads(ws.recv(timeout=60))
                ws.send(message)
                _, code = error_close(ws)
            assert code in (1009, 4413)  # uvicorn refuses it before the app (1009), or the app does (4413)
    assert_freed(app)


@pytest.mark.parametrize("text", [
    "hello",
    "{",
    '{"eof": ',
    "[" * 50_000,  # deeper than Python's recursion limit, inside the message size limit
    "null",
    '"eof"',
    "[1, 2]",
    '{"config": {"sample_rate": NaN}}',
    '{"config": {"sample_rate": 1e999}}',
    '{"config": {"sample_rate": 16000, "phrase_list": [1, 2]}}',
    '{"config": {"sample_rate": 16000}',
], ids=lambda text: text[:24])
def test_text_where_audio_belongs_and_malformed_json_are_4400(server, text):
    address, app = server
    with witness(address):
        with connect(url(address)) as ws:
            ws.send(b"\0\0" * 800)
            assert "partial" in json.loads(ws.recv(timeout=60))
            ws.send(text)
            assert error_close(ws) == ("bad_field", 4400)
    assert_freed(app)


def test_invalid_utf8_text_frame_is_refused_by_the_protocol(server):
    address, app = server
    sock = raw_stream(address)
    sock.sendall(frame(b"\xff\xfe{}", opcode=0x1))
    answer = b"".join(iter(lambda: sock.recv(4096), b""))  # the server closes after its close frame
    sock.close()
    # The close frame carries 1007 (invalid payload data), RFC 6455 7.4.1.
    assert struct.pack("!H", 1007) in answer
    assert_freed(app)


@pytest.mark.parametrize("sizes", [[1], [3], [3201], [3200, 3201], [0, 1]])
def test_odd_byte_counts_are_4415(server, sizes):
    address, app = server
    with connect(url(address)) as ws:
        for size in sizes[:-1]:
            ws.send(b"\0" * size)
            assert "partial" in json.loads(ws.recv(timeout=60))
        ws.send(b"\0" * sizes[-1])
        assert error_close(ws) == ("undecodable_audio", 4415)
    assert_freed(app)


def test_client_that_stops_reading_is_dropped(server):
    address, app = server
    engine = app.state.engine
    sock = raw_stream(address, rcvbuf=SOCKET_BUFFER)
    wait_until(lambda: engine.streams.used == 1, "the stalled stream to be admitted")
    sock.setblocking(False)
    audio = frame(b"\0\0" * 16)
    deadline = time.monotonic() + STALL_DEADLINE
    # Keep sending and never read: replies pile up until the server's sends block; then it must give up.
    while engine.streams.used and time.monotonic() < deadline:
        with contextlib.suppress(BlockingIOError):
            sock.send(audio)
        time.sleep(0.0005)
    stalled_for = STALL_DEADLINE - (deadline - time.monotonic())
    assert engine.streams.used == 0, f"a client that stopped reading kept its slot for {stalled_for:.0f} s"
    with witness(address):  # the stalled socket is still open: others are served regardless
        pass
    abort(sock)
    assert_freed(app)


def test_thousands_of_tiny_frames(server):
    address, app = server
    samples = speech_pcm16((2,), pause_seconds=0.1)
    data = samples.tobytes()
    # 2-24 bytes a frame (1-12 samples), with empty frames mixed in: about 3,000 frames for 2 s of audio.
    chunks, i, n = [], 0, 0
    while i < len(data):
        size = 2 * (1 + n % 12) if n % 50 else 0
        chunks.append(data[i : i + size])
        i, n = i + size, n + 1
    replies = []
    with witness(address), connect(url(address)) as ws:
        for chunk in chunks:
            ws.send(chunk)
            replies.append(json.loads(ws.recv(timeout=60)))
        ws.send('{"eof": 1}')
        replies.append(json.loads(ws.recv(timeout=60)))
    assert len(chunks) > 2000
    assert replies == direct_vosk_replies(SETTINGS, chunks)
    assert_freed(app)


def _hang_up(address: str, stage: str) -> None:
    host, port = address.split(":")
    audio = frame(b"\0\0" * CHUNK)
    if stage == "tcp_only":
        abort(socket.create_connection((host, int(port)), timeout=60))
    elif stage == "mid_handshake":
        sock = socket.create_connection((host, int(port)), timeout=60)
        sock.sendall(b"GET /v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        abort(sock)
    elif stage == "after_handshake":
        abort(raw_stream(address))
    elif stage == "after_config":
        sock = raw_stream(address)
        sock.sendall(frame(b'{"config": {"sample_rate": 8000}}', opcode=0x1))
        abort(sock)
    elif stage == "mid_frame":
        sock = raw_stream(address)
        sock.sendall(audio[: len(audio) // 2])
        abort(sock)
    elif stage == "while_inferring":  # audio queued for the pool, replies unread
        sock = raw_stream(address)
        for _ in range(8):
            sock.sendall(audio)
        abort(sock)
    elif stage == "after_eof":  # the final result is being computed
        sock = raw_stream(address)
        sock.sendall(audio * 4 + frame(b'{"eof": 1}', opcode=0x1))
        abort(sock)
    elif stage == "clean_close_mid_audio":
        with connect(f"ws://{address}/v1/stream") as ws:
            ws.send(b"\0\0" * CHUNK)
            ws.send(b"\0\0" * CHUNK)
    elif stage == "half_closed":  # the client shuts its sending side but could still read
        sock = raw_stream(address)
        sock.sendall(audio)
        sock.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
        abort(sock)
    else:
        raise ValueError(stage)


STAGES = ["tcp_only", "mid_handshake", "after_handshake", "after_config", "mid_frame", "while_inferring",
          "after_eof", "clean_close_mid_audio", "half_closed"]


def test_hang_ups_at_every_stage_free_the_stream(server):
    address, app = server
    with witness(address):
        for stage in STAGES:
            for _ in range(3):
                _hang_up(address, stage)
    assert_freed(app)
    # Still serving, from a fresh connection.
    with connect(url(address)) as ws:
        ws.send(b"\0\0" * 800)
        assert "partial" in json.loads(ws.recv(timeout=60))
        ws.send('{"eof": 1}')
        assert "text" in json.loads(ws.recv(timeout=60))
