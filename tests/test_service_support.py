"""Helpers shared by the service tests: a real uvicorn on loopback, test audio, and reference transcripts.

The embedded model is an untrained placeholder, so no test asserts on words: the service's answer is
compared with what the ``Recognizer`` computes directly from the same audio, fed the same way.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import subprocess
import threading
import time
import urllib.request
import wave
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from benchmarks.service import stop_process
from model.audio import iter_audio, load_audio, pcm16_to_float
from model.checkpoint import ModelBundle, load_model
from model.recognize import Recognizer, Segment
from service.app import build_recognizer, create_app
from service.recognizer import PcmResampler
from service.routes.stream import StreamConfig, result_message
from service.server import make_server
from service.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
STARTUP_SECONDS = 60  # generous: the CI machine is shared; this is a deadline, not a measurement


@functools.lru_cache(maxsize=1)
def bundle() -> ModelBundle:
    return load_model(None)


def recognizer(settings: Settings) -> Recognizer:
    return build_recognizer(bundle(), settings)


def app_for(settings: Settings):
    return create_app(settings, bundle())


def speech_pcm16(utterances: Sequence[int] = (0, 1, 2), pause_seconds: float = 1.0, rate: int = 16000) -> np.ndarray:
    """Fixture utterances separated by silent pauses, as int16 samples at ``rate``."""
    pause = np.zeros(int(pause_seconds * 16000), np.float32)
    parts: list[np.ndarray] = []
    for i in utterances:
        parts += [load_audio(FIXTURES / f"utt{i:02d}.flac"), pause]
    audio = np.concatenate(parts)
    if rate != 16000:
        idx = np.arange(0, audio.size, 16000 / rate)
        audio = np.interp(idx, np.arange(audio.size), audio).astype(np.float32)
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2")


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def direct_file(path: Path, settings: Settings, hotwords: Sequence[str] = (),
                phrase_list: Sequence[str] = ()) -> list[Segment]:
    """The Recognizer's transcript of a file, fed in the chunks the service uses."""
    rec = recognizer(settings)
    grammar = rec.grammar(phrase_list) if phrase_list else None
    return rec.transcribe_chunks(iter_audio(path, rec.sample_rate, settings.chunk_seconds), hotwords, grammar)


def pcm_chunks(samples: np.ndarray, chunk_samples: int) -> list[bytes]:
    data = samples.astype("<i2").tobytes()
    step = chunk_samples * 2
    return [data[i : i + step] for i in range(0, len(data), step)]


RESET = '{"reset" : 1}'  # spaced as vosk-server's clients send it


def direct_vosk_replies(settings: Settings, chunks: Sequence[bytes | str], sample_rate: int = 16000,
                        hotwords: Sequence[str] = (), words: bool = True,
                        phrase_list: Sequence[str] = (), alternatives: int = 0) -> list[dict]:
    """What a Vosk-protocol server must answer for these chunks: one reply each, then the final one.

    A chunk may be ``RESET``: the final result so far, then a fresh utterance on the same clock."""
    rec = recognizer(settings)
    grammar = rec.grammar(phrase_list) if phrase_list else None
    config = StreamConfig(sample_rate, words, alternatives, tuple(phrase_list), tuple(hotwords))

    def start(seconds: float):
        resampler = PcmResampler(sample_rate, rec.sample_rate) if sample_rate != rec.sample_rate else None
        return rec.stream(hotwords, grammar=grammar, alternatives=alternatives, start_seconds=seconds), resampler

    def finish(stream, resampler) -> list[Segment]:
        tail = stream.accept(resampler.flush()) if resampler else []
        return tail + stream.finish()

    stream, resampler = start(0.0)
    replies = []
    for chunk in chunks:
        if chunk == RESET:
            replies.append(result_message(finish(stream, resampler), config))
            stream, resampler = start(stream.seconds)
            continue
        samples = resampler.accept(chunk) if resampler else pcm16_to_float(chunk)
        segments = stream.accept(samples)
        replies.append(result_message(segments, config) if segments else {"partial": stream.partial()})
    replies.append(result_message(finish(stream, resampler), config))
    return replies


@contextlib.contextmanager
def live_server(settings: Settings) -> Iterator[tuple[str, object]]:
    """Run the app on a real uvicorn (in a thread, configured as `edgescribe serve` does) on a free loopback port.

    Yields ("127.0.0.1:PORT", app)."""
    app = app_for(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = make_server(app, settings, log_level="warning")  # the same server `edgescribe serve` runs
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_SECONDS)
        sock.close()


def wait_until(predicate, what: str, seconds: float = STARTUP_SECONDS) -> None:
    """Poll ``predicate`` until true; a deadline for liveness only, never a timing assertion."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_process(command: Sequence[str], env: dict[str, str], cwd: Path | None = None,
                  log: Path | None = None) -> Iterator[subprocess.Popen]:
    """Run a server command in its own process; wait for /healthz; stop it (SIGTERM) on the way out.

    ``cwd``: its working directory (default: the repository); ``log``: a file for its output (default: a pipe).
    """
    full_env = {**os.environ, **env}
    if cwd is not None:  # the package must still import from the repository
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent.parent),
                                                               full_env.get("PYTHONPATH")]))
    out = log.open("w") if log is not None else subprocess.PIPE
    proc = subprocess.Popen(list(command), env=full_env, stdout=out, stderr=subprocess.STDOUT,
                            text=True, cwd=cwd or Path(__file__).parent.parent)
    url = f"http://127.0.0.1:{env['EDGESCRIBE_PORT']}/healthz"

    def healthy() -> bool:
        if proc.poll() is not None:
            output = log.read_text() if log is not None else proc.stdout.read()
            raise AssertionError(f"server exited with {proc.returncode}: {output}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        wait_until(healthy, "the server to answer /healthz")
        yield proc
    finally:
        stop_process(proc, STARTUP_SECONDS)
        if log is not None:
            out.close()
        else:
            proc.stdout.close()
