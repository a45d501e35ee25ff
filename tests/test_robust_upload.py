"""Fuzzing the upload path of a real `edgescribe serve` process with broken, hostile and tiny files.

The property: whatever bytes arrive as the ``file`` part, the answer is a 200 transcript or a 4xx with a
JSON error body that says what to change, never a 5xx or a hang; the server keeps serving, frees its
request slot, and its peak memory stays bounded. The server runs as its own process so that its peak
resident memory (``VmHWM``) can be read apart from the test's.
"""

from __future__ import annotations

import io
import json
import socket
import struct
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_service_support import FIXTURES, free_port, serve_process, speech_pcm16

URL = "/v1/audio/transcriptions"
MAX_UPLOAD_BYTES = 1_000_000
MAX_AUDIO_SECONDS = 20.0
IDLE_TIMEOUT = 2.0  # a client silent this long mid-upload is cut off (408)
# Per-request deadline: liveness, not speed. 20 s of audio takes well under a second on one core.
REQUEST_SECONDS = 60.0
# Peak memory the fuzzing may add to a warmed-up server. A decompression bomb (8 hours of audio in a
# few KB) decoded whole would be 8 h x 16 kHz x 4 B = 1.8 GB; chunked decoding stays near the baseline.
MAX_PEAK_GROWTH_BYTES = 300 * 2**20
ERROR_STATUSES = {400, 413, 415}


def wav(samples: bytes = b"", rate: int = 16000, channels: int = 1, bits: int = 16,
        declared: int | None = None) -> bytes:
    """A RIFF/WAVE file around ``samples``; ``declared`` overrides the data chunk's size field (it may lie)."""
    size = len(samples) if declared is None else declared
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    return (b"RIFF" + struct.pack("<I", (36 + size) & 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", size & 0xFFFFFFFF) + samples)


SPEECH_WAV = wav(speech_pcm16((0,), pause_seconds=0.2).tobytes())
FLAC = (FIXTURES / "utt01.flac").read_bytes()
EIGHT_HOURS = 8 * 3600


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("speech.wav", SPEECH_WAV)
    return out.getvalue()


# Each named case and the statuses it may get. A header may lie; the file is judged by what decodes.
CASES: dict[str, tuple[bytes, set[int]]] = {
    "zero_length": (b"", {415}),
    "header_only": (wav(b""), {415}),
    "one_sample": (wav(b"\x01\x00"), {200}),
    "odd_byte_count": (wav(b"\x01\x00\x02"), {200, 415}),
    # The data chunk says 8 hours; 0.1 s follows. FFmpeg reads what is there.
    "eight_hours_declared": (wav(b"\0" * 3200, declared=EIGHT_HOURS * 32000), {200}),
    # Eight real hours of silence at 1 Hz: 57 KB that would resample to 8 h at 16 kHz. Refused by its rate.
    "eight_hours_at_1hz": (wav(b"\0\0" * EIGHT_HOURS, rate=1), {415}),
    "eight_hours_at_100hz_8ch": (wav(b"\0" * 3_000 * 16, rate=100, channels=8), {415}),
    # 30 s of silence at 8 kHz (the lowest rate taken) declared in full: over the 20 s limit by its header.
    "thirty_seconds_at_8khz": (wav(b"\0\0" * 8000 * 30, rate=8000), {413}),
    "declared_size_4gb": (wav(b"\0" * 64, declared=0xFFFFFFFF), {200, 415}),
    "zero_rate": (wav(b"\0" * 64, rate=0), {415}),
    "zero_channels": (wav(b"\0" * 64, channels=0), {415}),
    "huge_rate": (wav(b"\0" * 64, rate=0x7FFFFFFF), {200, 415}),
    "truncated_header": (SPEECH_WAV[:30], {415}),
    "truncated_mid_data": (SPEECH_WAV[: len(SPEECH_WAV) // 2 + 1], {200, 415}),
    "truncated_flac": (FLAC[: len(FLAC) // 3], {200, 415}),
    "flac_header_only": (FLAC[:42], {415}),
    "wrong_magic": (b"RIFX" + SPEECH_WAV[4:], {200, 415}),
    "text": (b"hello world, this is not audio\n" * 20, {415}),
    "json": (json.dumps({"audio": "speech.wav"}).encode(), {415}),
    "html": (b"<!doctype html><html><body>" + b"x" * 500 + b"</body></html>", {415}),
    "png": (b"\x89PNG\r\n\x1a\n" + b"\0" * 200, {415}),
    "zip_of_a_wav": (_zip(), {415}),
    "elf": (Path(sys.executable).read_bytes()[:4096], {415}),
    "all_ff": (b"\xff" * 5000, {415}),
    "just_too_large": (b"\0" * (MAX_UPLOAD_BYTES + 1), {413}),
}


@pytest.fixture(scope="module")
def server():
    port = free_port()
    env = {"EDGESCRIBE_HOST": "127.0.0.1", "EDGESCRIBE_PORT": str(port), "EDGESCRIBE_WORKERS": "1",
           "EDGESCRIBE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
           "EDGESCRIBE_MAX_AUDIO_SECONDS": str(MAX_AUDIO_SECONDS), "EDGESCRIBE_IDLE_TIMEOUT": str(IDLE_TIMEOUT)}
    with serve_process([sys.executable, "-m", "edgescribe.cli", "serve"], env) as proc:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=REQUEST_SECONDS) as client:
            assert upload(client, SPEECH_WAV).status_code == 200  # warm up before the memory baseline
            yield proc, client, peak_rss(proc.pid)


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def upload(client: httpx.Client, data: bytes, name: str = "audio.wav") -> httpx.Response:
    return client.post(URL, files={"file": (name, data, "application/octet-stream")})


def check_answer(response: httpx.Response, allowed: set[int]) -> None:
    assert response.status_code in allowed, (response.status_code, response.text[:300])
    if response.status_code == 200:
        assert isinstance(response.json()["text"], str)
        return
    error = response.json()["error"]
    assert error["code"] == error["type"] and error["type"] and len(error["message"]) > 10


def check_still_serving(proc, client: httpx.Client) -> None:
    assert proc.poll() is None, "the server died"
    assert client.get("/healthz").json()["status"] == "ok"


@pytest.mark.parametrize("case", sorted(CASES))
def test_named_bad_files_get_a_json_answer(server, case):
    proc, client, _ = server
    data, allowed = CASES[case]
    check_answer(upload(client, data), allowed)
    check_still_serving(proc, client)


def test_declared_content_length_beyond_the_limit_is_refused_unread(server):
    proc, client, _ = server
    # The header claims 10 GB while the body is tiny: refused from the header alone, before any body is read.
    host, port = client.base_url.host, client.base_url.port
    with socket.create_connection((host, port), timeout=REQUEST_SECONDS) as sock:
        sock.sendall(f"POST {URL} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     f"Content-Length: {10 * 2**30}\r\nConnection: close\r\n\r\n".encode() + b"--b\r\n")
        answer = b"".join(iter(lambda: sock.recv(65536), b""))  # the server closes once it has answered
        head = answer.decode("latin-1")
    assert head.startswith("HTTP/1.1 413"), head[:200]
    assert '"upload_too_large"' in head
    check_still_serving(proc, client)


def test_client_that_stalls_mid_upload_gets_408_and_frees_its_slot(server):
    proc, client, _ = server
    host, port = client.base_url.host, client.base_url.port
    body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n" + SPEECH_WAV
    with socket.create_connection((host, port), timeout=REQUEST_SECONDS) as sock:
        sock.sendall(f"POST {URL} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     f"Content-Length: {len(body) + 8}\r\n\r\n".encode() + body[:500])  # then nothing more
        answer = ""
        while "}}" not in answer:  # the JSON error body ends the answer; the connection may stay open
            received = sock.recv(65536).decode("latin-1")
            if not received:
                break
            answer += received
    assert answer.startswith("HTTP/1.1 408"), answer[:200]
    assert '"idle_timeout"' in answer and "EDGESCRIBE_IDLE_TIMEOUT" in answer
    assert "edgescribe_active_requests 0.0" in client.get("/metrics").text
    check_still_serving(proc, client)


def _mutations() -> st.SearchStrategy[bytes]:
    """Valid files cut, flipped, spliced or with their header fields overwritten, and plain random bytes."""
    base = st.sampled_from([SPEECH_WAV, FLAC])

    @st.composite
    def flipped(draw) -> bytes:
        data = bytearray(draw(base))
        for _ in range(draw(st.integers(1, 16))):
            # Most damage in the first 64 bytes, where the headers are.
            i = draw(st.integers(0, min(63, len(data) - 1)) | st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        return bytes(data)

    @st.composite
    def truncated(draw) -> bytes:
        data = draw(base)
        return data[: draw(st.integers(0, len(data)))]

    @st.composite
    def wav_field(draw) -> bytes:
        data = bytearray(SPEECH_WAV)
        # RIFF size, channels, rate, byte rate, block align + bits, data size
        offset = draw(st.sampled_from([4, 22, 24, 28, 32, 40]))
        data[offset : offset + 4] = struct.pack("<I", draw(st.integers(0, 0xFFFFFFFF)))
        return bytes(data)

    @st.composite
    def spliced(draw) -> bytes:
        head = draw(base)
        return head[: draw(st.integers(0, 200))] + draw(st.binary(max_size=2000))

    return st.one_of(flipped(), truncated(), wav_field(), spliced(), st.binary(max_size=4096))


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=_mutations(), name=st.sampled_from(["a.wav", "a.flac", "a.mp3", "noext", "../../etc/passwd"]))
def test_mutated_files_get_200_or_a_json_4xx(server, data, name):
    proc, client, _ = server
    check_answer(upload(client, data, name), {200} | ERROR_STATUSES)
    assert proc.poll() is None, "the server died"


def test_after_the_fuzzing_the_server_is_whole(server):
    proc, client, baseline = server
    check_still_serving(proc, client)
    assert upload(client, SPEECH_WAV).status_code == 200
    metrics = client.get("/metrics").text
    assert "edgescribe_active_requests 0.0" in metrics
    assert 'edgescribe_errors_total{kind="internal"}' not in metrics
    growth = peak_rss(proc.pid) - baseline
    assert growth < MAX_PEAK_GROWTH_BYTES, f"peak memory grew by {growth / 2**20:.0f} MiB"
