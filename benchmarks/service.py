"""`python -m benchmarks.service`: streaming latency and load, measured through a real `edgescribe serve`
(uvicorn) on loopback, as a table or JSON.

Sections (``--section``, repeatable; default all three):
- ``streaming``: one real-time stream at a time through ``/v1/stream`` for each chunk size (100, 200
  and 400 ms). A chunk "arrives" when its last sample would have been captured, so chunk i is sent
  at (i + 1) x chunk duration after the start; its latency is from that send to its reply (the
  Vosk protocol answers every audio message once, in order). The final latency is from ``{"eof": 1}``
  (the end of speech, for the client) to the final result. Median and p95 over every chunk of
  ``--repeats`` streams.
- ``load``: N concurrent real-time streams (starts spread over one chunk), N doubling from 1 and
  then bisected, until the partial-latency p95 of all streams together crosses ``--max-p95-ms``
  (500 ms: a stream that far behind no longer feels live). Reports the largest N that stayed under.
- ``uploads``: ``--upload-clients`` (16) clients posting ``--upload-audio-seconds`` (5 s) WAV files
  to ``/v1/audio/transcriptions`` back to back for ``--upload-duration`` seconds: requests per
  second and latency.

The server is a separate process (``python -m edgescribe.cli serve``), so the client's work does not
share its interpreter; on a small machine the client still shares the CPUs, which the figures
include. Its stream and request limits are raised to the load being offered, so that the
measurement finds the machine's limit rather than the configured one. The audio is ``--audio``
files or the seeded synthetic signal of ``benchmarks.offline``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import json
import logging
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.offline import available_cpus, machine_info, synthetic_audio
from model.audio import SAMPLE_RATE, load_audio

log = logging.getLogger(__name__)

STREAM_PATH = "/v1/stream"
UPLOAD_PATH = "/v1/audio/transcriptions"
SECTION_NAMES = ("streaming", "load", "uploads")
STARTUP_SECONDS = 120.0  # importing torch and loading the model on a slow board; a deadline, not a figure
REPLY_SECONDS = 120.0  # a reply later than this is a hang, not a latency


@dataclass(frozen=True)
class Latency:
    count: int
    median_ms: float
    p95_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        if not seconds:
            raise ValueError("no latencies were measured")
        ms = np.asarray(seconds) * 1000.0
        return cls(len(ms), float(np.median(ms)), float(np.percentile(ms, 95)), float(ms.max()))


@dataclass(frozen=True)
class StreamingResult:
    chunk_ms: int
    streams: int
    audio_seconds: float  # per stream
    partial: Latency
    final: Latency


@dataclass(frozen=True)
class LoadLevel:
    streams: int
    partial: Latency
    sustained: bool  # partial p95 under the limit


@dataclass(frozen=True)
class UploadResult:
    clients: int
    audio_seconds: float  # per request
    requests: int  # answered 200
    failed: int  # anything else
    seconds: float  # wall time of the run
    latency: Latency

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


@dataclass
class ServiceBenchReport:
    machine: dict[str, Any]
    model: str
    server: dict[str, Any]  # the serve flags the figures were measured with
    streaming: list[StreamingResult] = field(default_factory=list)
    load: list[LoadLevel] = field(default_factory=list)
    load_chunk_ms: int | None = None
    max_p95_ms: float | None = None
    uploads: UploadResult | None = None

    @property
    def realtime_streams(self) -> int | None:
        """The most concurrent streams whose partial p95 stayed under the limit (None: not measured)."""
        if not self.load:
            return None
        return max((lv.streams for lv in self.load if lv.sustained), default=0)


@dataclass(frozen=True)
class ServiceBenchConfig:
    sections: tuple[str, ...] = SECTION_NAMES
    chunk_ms: tuple[int, ...] = (100, 200, 400)
    stream_seconds: float = 10.0
    repeats: int = 2
    load_chunk_ms: int = 200
    load_seconds: float = 10.0
    max_p95_ms: float = 500.0
    max_load_streams: int = 64
    bisect_steps: int = 2
    upload_clients: int = 16
    upload_audio_seconds: float = 5.0
    upload_duration: float = 10.0
    model: str | None = None
    workers: int | None = None  # server inference threads (default: one per CPU)
    threads: int = 1
    beam_size: int | None = None
    audio_files: tuple[Path, ...] = ()
    json_path: str | None = None


# --- the server under test ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_flags(cfg: ServiceBenchConfig) -> dict[str, Any]:
    """`edgescribe serve` flags: the machine's limit, not a configured one, must be what stops the load."""
    flags: dict[str, Any] = {
        "workers": cfg.workers or available_cpus(),
        "threads": cfg.threads,
        "max_streams": max(cfg.max_load_streams, 1) + 1,
        "max_requests": max(cfg.upload_clients, 1),
    }
    if cfg.model:
        flags["model"] = cfg.model
    if cfg.beam_size is not None:
        flags["beam_size"] = cfg.beam_size
    return flags


@contextlib.contextmanager
def running_server(flags: dict[str, Any]) -> Iterator[str]:
    """Start `edgescribe serve` on a free loopback port; yield "127.0.0.1:PORT"; stop it (SIGTERM) after."""
    with server_process(flags) as (_, address):
        yield address


@contextlib.contextmanager
def server_process(flags: dict[str, Any]) -> Iterator[tuple[subprocess.Popen, str]]:
    """``running_server``, yielding the process too, once it answers /healthz (polled every 50 ms)."""
    port = _free_port()
    command = [sys.executable, "-m", "edgescribe.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    for name, value in flags.items():
        command += ["--" + name.replace("_", "-"), str(value)]
    # From the folder holding the packages, so a source checkout works as well as an installed copy.
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parent.parent)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}: {proc.stderr.read().strip()}")
            try:
                with urllib.request.urlopen(f"http://{address}/healthz", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer /healthz within {STARTUP_SECONDS:g} s")
            time.sleep(0.05)
        yield proc, address
    finally:
        stop_process(proc, STARTUP_SECONDS)
        proc.stderr.close()


def stop_process(proc: subprocess.Popen, timeout: float) -> None:
    """Graceful stop (SIGTERM: the server finishes open requests), then SIGKILL after ``timeout`` s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- clients ----------------------------------------------------------------------------------------


def _pcm16(audio: np.ndarray) -> bytes:
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2").tobytes()


def _looped(audio: np.ndarray, seconds: float) -> np.ndarray:
    if audio.size == 0:
        raise ValueError("no audio to benchmark with")
    return np.take(audio, np.arange(int(seconds * SAMPLE_RATE)), mode="wrap")


@dataclass(frozen=True)
class StreamTimes:
    partials: list[float]  # seconds from each chunk's arrival to its reply
    final: float  # seconds from eof to the final result


async def stream_once(address: str, pcm: bytes, chunk_ms: int, start_delay: float = 0.0) -> StreamTimes:
    """One Vosk client sending ``pcm`` in real time; the replies are read concurrently, matched in order."""
    from websockets.asyncio.client import connect  # uvicorn[standard] brings websockets

    loop = asyncio.get_running_loop()
    step = SAMPLE_RATE * chunk_ms // 1000 * 2  # bytes per chunk
    chunks = [pcm[i : i + step] for i in range(0, len(pcm), step)]
    await asyncio.sleep(start_delay)
    async with connect(f"ws://{address}{STREAM_PATH}", max_size=None, open_timeout=STARTUP_SECONDS,
                       ping_interval=None) as ws:
        await ws.send(json.dumps({"config": {"sample_rate": SAMPLE_RATE, "words": True}}))
        sent: list[float] = []
        partials: list[float] = []

        async def receive() -> None:
            for i in range(len(chunks)):
                await asyncio.wait_for(ws.recv(), REPLY_SECONDS)
                partials.append(loop.time() - sent[i])

        receiver = asyncio.create_task(receive())
        start = loop.time()
        try:
            for i, chunk in enumerate(chunks):
                # The chunk's last sample is "captured" at the end of its span: that is its arrival.
                await asyncio.sleep(max(0.0, start + (i + 1) * chunk_ms / 1000 - loop.time()))
                sent.append(loop.time())
                await ws.send(chunk)
            await receiver
        finally:
            receiver.cancel()
        eof = loop.time()
        await ws.send('{"eof": 1}')
        await asyncio.wait_for(ws.recv(), REPLY_SECONDS)
        return StreamTimes(partials, loop.time() - eof)


async def concurrent_streams(address: str, pcm: bytes, chunk_ms: int, count: int) -> list[StreamTimes]:
    """``count`` real-time streams at once, their starts spread evenly over one chunk."""
    spread = chunk_ms / 1000 / max(count, 1)
    return list(await asyncio.gather(*(stream_once(address, pcm, chunk_ms, i * spread) for i in range(count))))


def bench_streaming(address: str, audio: np.ndarray, cfg: ServiceBenchConfig) -> list[StreamingResult]:
    pcm = _pcm16(_looped(audio, cfg.stream_seconds))
    results = []
    for chunk_ms in cfg.chunk_ms:
        runs = [asyncio.run(stream_once(address, pcm, chunk_ms)) for _ in range(cfg.repeats)]
        results.append(StreamingResult(chunk_ms, len(runs), cfg.stream_seconds,
                                       Latency.of([t for r in runs for t in r.partials]),
                                       Latency.of([r.final for r in runs])))
        log.info("streaming %d ms chunks: %s", chunk_ms, results[-1])
    return results


def bench_load(address: str, audio: np.ndarray, cfg: ServiceBenchConfig) -> list[LoadLevel]:
    """Double the stream count until p95 crosses the limit, then bisect between the last good and first bad."""
    pcm = _pcm16(_looped(audio, cfg.load_seconds))
    levels: dict[int, LoadLevel] = {}

    def measure(n: int) -> LoadLevel:
        runs = asyncio.run(concurrent_streams(address, pcm, cfg.load_chunk_ms, n))
        latency = Latency.of([t for r in runs for t in r.partials])
        levels[n] = LoadLevel(n, latency, latency.p95_ms <= cfg.max_p95_ms)
        log.info("load %d streams: p95 %.0f ms", n, latency.p95_ms)
        return levels[n]

    good, bad, n = 0, None, 1
    while n <= cfg.max_load_streams:
        if measure(n).sustained:
            good, n = n, n * 2
        else:
            bad = n
            break
    for _ in range(cfg.bisect_steps):
        if bad is None or bad - good <= 1:
            break
        mid = (good + bad) // 2
        if measure(mid).sustained:
            good = mid
        else:
            bad = mid
    return [levels[k] for k in sorted(levels)]


def wav_bytes(audio: np.ndarray) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(_pcm16(audio))
    return out.getvalue()


async def _upload_run(address: str, data: bytes, clients: int, duration: float) -> tuple[list[float], int, float]:
    try:
        import httpx
    except ModuleNotFoundError as e:
        raise RuntimeError("the uploads section needs httpx: pip install 'edgescribe[dev]' (or httpx)") from e

    latencies: list[float] = []
    failed = 0
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=REPLY_SECONDS,
                                 limits=httpx.Limits(max_connections=clients)) as client:
        start = loop.time()
        deadline = start + duration

        async def client_loop() -> None:
            nonlocal failed
            while loop.time() < deadline:
                t0 = loop.time()
                r = await client.post(UPLOAD_PATH, files={"file": ("speech.wav", data, "audio/wav")})
                if r.status_code == 200:
                    latencies.append(loop.time() - t0)
                else:
                    failed += 1
                    log.warning("upload answered %d: %s", r.status_code, r.text[:200])

        await asyncio.gather(*(client_loop() for _ in range(clients)))
        return latencies, failed, loop.time() - start


def bench_uploads(address: str, audio: np.ndarray, cfg: ServiceBenchConfig) -> UploadResult:
    data = wav_bytes(_looped(audio, cfg.upload_audio_seconds))
    latencies, failed, seconds = asyncio.run(_upload_run(address, data, cfg.upload_clients, cfg.upload_duration))
    return UploadResult(cfg.upload_clients, cfg.upload_audio_seconds, len(latencies), failed, seconds,
                        Latency.of(latencies))


# --- the whole run ---------------------------------------------------------------------------------


def measure(cfg: ServiceBenchConfig) -> ServiceBenchReport:
    """Start one server and run the chosen sections against it. The entry point for `edgescribe bench`."""
    unknown = sorted(set(cfg.sections) - set(SECTION_NAMES))
    if unknown:
        raise ValueError(f"unknown sections {unknown}: choose from {', '.join(SECTION_NAMES)}")
    if cfg.audio_files:
        audio = np.concatenate([load_audio(p, SAMPLE_RATE) for p in cfg.audio_files])
    else:
        audio = synthetic_audio()
    flags = server_flags(cfg)
    report = ServiceBenchReport(machine_info(), cfg.model or "the embedded model", flags)
    with running_server(flags) as address:
        if "streaming" in cfg.sections:
            report.streaming = bench_streaming(address, audio, cfg)
        if "load" in cfg.sections:
            report.load = bench_load(address, audio, cfg)
            report.load_chunk_ms, report.max_p95_ms = cfg.load_chunk_ms, cfg.max_p95_ms
        if "uploads" in cfg.sections:
            report.uploads = bench_uploads(address, audio, cfg)
    return report


def render_table(report: ServiceBenchReport) -> str:
    m = report.machine
    server = ", ".join(f"{k}={v}" for k, v in report.server.items())
    lines = [f"model: {report.model}", f"machine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']}",
             f"server: edgescribe serve ({server}), client on the same machine", ""]
    if report.streaming:
        lines += ["| chunk | streams x audio | chunk -> partial, median | p95 | end of speech -> final, median | p95 |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r.chunk_ms} ms | {r.streams} x {r.audio_seconds:g} s | {r.partial.median_ms:.0f} ms | "
                  f"{r.partial.p95_ms:.0f} ms | {r.final.median_ms:.0f} ms | {r.final.p95_ms:.0f} ms |"
                  for r in report.streaming]
        lines.append("")
    if report.load:
        lines += [f"| concurrent streams ({report.load_chunk_ms} ms chunks) | partial median | p95 | "
                  f"under {report.max_p95_ms:g} ms |", "|---|---|---|---|"]
        lines += [f"| {lv.streams} | {lv.partial.median_ms:.0f} ms | {lv.partial.p95_ms:.0f} ms | "
                  f"{'yes' if lv.sustained else 'no'} |" for lv in report.load]
        capped = all(lv.sustained for lv in report.load)  # the search ended at --max-load-streams, not a limit
        lines += ["", f"real-time streams sustained by one process: {'at least ' if capped else ''}"
                      f"{report.realtime_streams}", ""]
    if report.uploads:
        u = report.uploads
        lines += [f"uploads: {u.requests_per_second:.2f} requests/s ({u.requests} x {u.audio_seconds:g} s audio in "
                  f"{u.seconds:.1f} s, {u.clients} clients, {u.failed} failed); latency median "
                  f"{u.latency.median_ms:.0f} ms, p95 {u.latency.p95_ms:.0f} ms"]
    return "\n".join(lines).rstrip()


def to_json(report: ServiceBenchReport) -> str:
    data = dataclasses.asdict(report)
    data["realtime_streams"] = report.realtime_streams
    if report.uploads:
        data["uploads"]["requests_per_second"] = report.uploads.requests_per_second
    return json.dumps(data, indent=2)


# --- command line ----------------------------------------------------------------------------------


def _numbers(text: str, kind: type) -> tuple:
    try:
        return tuple(kind(x) for x in text.split(",") if x.strip())
    except ValueError as e:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from e


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ServiceBenchConfig()
    parser.add_argument("--section", action="append", choices=SECTION_NAMES, default=None,
                        help="what to measure, repeatable (default: all)")
    parser.add_argument("--chunk-ms", default=",".join(map(str, d.chunk_ms)), help="streaming chunk sizes, ms")
    parser.add_argument("--stream-seconds", type=float, default=d.stream_seconds, help="audio per stream")
    parser.add_argument("--repeats", type=int, default=d.repeats, help="streams per chunk size")
    parser.add_argument("--load-chunk-ms", type=int, default=d.load_chunk_ms, help="chunk size of the load streams")
    parser.add_argument("--load-seconds", type=float, default=d.load_seconds, help="audio per load stream")
    parser.add_argument("--max-p95-ms", type=float, default=d.max_p95_ms,
                        help="partial-latency p95 beyond which streams no longer count as real time")
    parser.add_argument("--max-load-streams", type=int, default=d.max_load_streams, help="stop the search here")
    parser.add_argument("--bisect-steps", type=int, default=d.bisect_steps,
                        help="refinements between the last good and first bad stream count")
    parser.add_argument("--upload-clients", type=int, default=d.upload_clients, help="concurrent upload clients")
    parser.add_argument("--upload-audio-seconds", type=float, default=d.upload_audio_seconds,
                        help="audio per upload")
    parser.add_argument("--upload-duration", type=float, default=d.upload_duration,
                        help="seconds the clients keep uploading")
    parser.add_argument("--model", default=None, help="model file (default: the model embedded in the package)")
    parser.add_argument("--workers", type=int, default=None, help="server inference threads (default: one per CPU)")
    parser.add_argument("--threads", type=int, default=d.threads, help="torch threads per inference")
    parser.add_argument("--beam-size", type=int, default=None, help="CTC beam width (default: the model's)")
    parser.add_argument("--audio", action="append", type=Path, default=[], metavar="FILE",
                        help="speech to stream and upload, joined and looped (default: a synthetic signal)")
    parser.add_argument("--json", dest="json_path", default=None, metavar="PATH",
                        help="write the figures as JSON here ('-' for stdout instead of the table)")


def config_from_args(args: argparse.Namespace) -> ServiceBenchConfig:
    cfg = ServiceBenchConfig(
        tuple(args.section or SECTION_NAMES), _numbers(args.chunk_ms, int), args.stream_seconds, args.repeats,
        args.load_chunk_ms, args.load_seconds, args.max_p95_ms, args.max_load_streams, args.bisect_steps,
        args.upload_clients, args.upload_audio_seconds, args.upload_duration, args.model, args.workers,
        args.threads, args.beam_size, tuple(args.audio), args.json_path)
    positive = {"--chunk-ms": min(cfg.chunk_ms, default=0), "--stream-seconds": cfg.stream_seconds,
                "--repeats": cfg.repeats, "--load-chunk-ms": cfg.load_chunk_ms, "--load-seconds": cfg.load_seconds,
                "--max-p95-ms": cfg.max_p95_ms, "--max-load-streams": cfg.max_load_streams,
                "--upload-clients": cfg.upload_clients, "--upload-audio-seconds": cfg.upload_audio_seconds,
                "--upload-duration": cfg.upload_duration, "--threads": cfg.threads}
    for flag, value in positive.items():
        if value <= 0:
            raise ValueError(f"{flag} must be positive, got {value}")
    if cfg.workers is not None and cfg.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {cfg.workers}")
    return cfg


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
        report = measure(cfg)
    except (ValueError, RuntimeError) as e:
        print(f"service bench: {e}", file=sys.stderr)
        return 2
    if cfg.json_path == "-":
        print(to_json(report))
        return 0
    print(render_table(report))
    if cfg.json_path:
        Path(cfg.json_path).write_text(to_json(report) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.service", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--log-level", default="WARNING", help="logging level (DEBUG, INFO, WARNING, ...)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upload would bury the figures
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
