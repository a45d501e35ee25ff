"""`edgescribe bench`: how fast, how big and how much memory, as a table or JSON.

Sections (``--section``, repeatable):
- ``offline``: real-time factor of whole-file transcription (features, network, decoding; audio
  decoding excluded) on 1 and on all threads, for 10 s, 60 s and 10 min of audio, fed in the
  10 s chunks that ``edgescribe transcribe`` uses; then the process's peak resident memory.
- ``model``: parameters (unique, and as applied: the shared recurrent block counts once as unique
  and once per depth step as applied), file size and load time for every codec.
- ``--peers pocketsphinx,whisper-tiny.en`` adds the peers (``benchmarks/peers.py``) to both sections,
  on the same audio, as a ratio to EdgeScribe: offline speed, size on disk and load time. Their
  memory is not separable in one process, so the peak RSS is taken before they load.
- Streaming latency and load need the service on a real ``uvicorn``, which ``model/`` never
  imports: they are ``edgescribe bench-service`` (``benchmarks/service.py``).

The audio is ``--audio`` files (decoded, joined and looped to each length) or, without them, a
seeded synthetic signal. Greedy decoding costs the same on any audio, but beam search and
endpointing depend on what is said: publish figures measured on real speech.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import torch

from model.audio import SAMPLE_RATE, AudioDecodeError, load_audio
from model.checkpoint import DEFAULT_MODEL, CheckpointError, ModelBundle, load_model, save_model
from model.cli_common import add_model_arguments, recognizer_from_args
from model.compress import CODECS
from model.network import Network
from model.recognize import Recognizer

from .peers import PEER_FACTORIES, PeerUnavailable

CHUNK_SECONDS = 10.0  # what `edgescribe transcribe` feeds per step (iter_audio's default chunk)
SYNTHETIC_SECONDS = 30.0  # the synthetic loop; longer inputs repeat it


@dataclass(frozen=True)
class OfflineResult:
    audio_seconds: float
    threads: int
    seconds: float  # median wall time over the repeats
    repeats: int
    system: str = "edgescribe"

    @property
    def rtf(self) -> float:
        return self.seconds / self.audio_seconds


@dataclass(frozen=True)
class MemoryResult:
    rss_after_load_bytes: int | None  # None where /proc is missing
    peak_rss_bytes: int  # the whole process's high-water mark so far


@dataclass(frozen=True)
class ParameterCount:
    unique: int  # stored weights: a shared block counts once
    applied: int  # weights as the computation uses them: a shared block counts once per use


@dataclass(frozen=True)
class CodecResult:
    codec: str
    file_bytes: int
    load_seconds: float  # median of load_model() over the repeats


@dataclass(frozen=True)
class PeerModel:
    system: str
    size_bytes: int  # every file its default configuration reads
    load_seconds: float  # constructing it: reading and preparing the model


@dataclass
class BenchReport:
    machine: dict[str, Any]
    model: str
    offline: list[OfflineResult] = field(default_factory=list)
    memory: MemoryResult | None = None
    parameters: ParameterCount | None = None
    codecs: list[CodecResult] = field(default_factory=list)
    peer_models: list[PeerModel] = field(default_factory=list)


# --- measurements -------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpus": available_cpus(), "python": platform.python_version(),
            "torch": torch.__version__, "system": platform.platform()}


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def synthetic_audio(seconds: float = SYNTHETIC_SECONDS, seed: int = 0) -> np.ndarray:
    """Noise shaped like speech's envelope: ~4 syllables a second, a 0.8 s pause every 3 s."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    noise = np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same")  # tilt toward low frequencies
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4.0 * t))
    voiced = (t % 3.0) < 2.2
    return (0.3 * noise * syllables * voiced).astype(np.float32)


def looped_chunks(audio: np.ndarray, seconds: float, chunk_seconds: float = CHUNK_SECONDS) -> Iterator[np.ndarray]:
    """``seconds`` of ``audio`` repeated, in chunks: the long input never sits in memory whole."""
    if audio.size == 0:
        raise ValueError("no audio to benchmark with")
    total, step = int(seconds * SAMPLE_RATE), int(chunk_seconds * SAMPLE_RATE)
    for start in range(0, total, step):
        yield np.take(audio, np.arange(start, min(start + step, total)), mode="wrap")


def bench_offline(recognizer: Recognizer, audio: np.ndarray, durations: Sequence[float],
                  thread_counts: Sequence[int], repeats: int = 3) -> list[OfflineResult]:
    results = []
    before = torch.get_num_threads()
    fixed = getattr(recognizer.acoustic, "threads", None)  # ONNX Runtime's are set per session, at load
    try:
        for threads in thread_counts if fixed is None else (fixed,):
            torch.set_num_threads(threads)
            for seconds in durations:
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    recognizer.transcribe_chunks(looped_chunks(audio, seconds))
                    times.append(time.perf_counter() - t0)
                results.append(OfflineResult(seconds, threads, median(times), repeats))
    finally:
        torch.set_num_threads(before)
    return results


def bench_peer_offline(name: str, audio: np.ndarray, durations: Sequence[float], thread_counts: Sequence[int],
                       repeats: int = 3) -> list[OfflineResult]:
    """A peer on the same looped audio, given whole: neither peer's API takes 10 s chunks."""
    results = []
    for threads in thread_counts:
        system = PEER_FACTORIES[name](threads)
        for seconds in durations:
            whole = np.concatenate(list(looped_chunks(audio, seconds)))
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                system.transcribe(whole)
                times.append(time.perf_counter() - t0)
            results.append(OfflineResult(seconds, threads, median(times), repeats, name))
    return results


def bench_peer_model(name: str) -> PeerModel:
    t0 = time.perf_counter()
    system = PEER_FACTORIES[name](1)
    return PeerModel(name, system.size_bytes(), time.perf_counter() - t0)


def current_rss_bytes() -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak if sys.platform == "darwin" else peak * 1024  # Linux reports kB, macOS bytes
    # Linux folds each thread's page counts into the high-water mark in batches, so it can lag the
    # exact count in /proc by a few pages: a peak is never below what is resident now.
    return max(peak, current_rss_bytes() or 0)


def count_parameters(network: Network) -> ParameterCount:
    """Unique parameters, and parameters as applied, counted by running the network once.

    A forward hook counts how often each module with weights of its own runs; a block reused in
    depth runs once per depth step. Counting calls, not reading the config, keeps this true for
    any network layout.
    """
    calls: dict[torch.nn.Module, int] = {}

    def count_call(module: torch.nn.Module, *_: Any) -> None:
        calls[module] = calls.get(module, 0) + 1

    owners = [m for m in network.modules() if next(m.parameters(recurse=False), None) is not None]
    hooks = [m.register_forward_hook(count_call) for m in owners]
    try:
        with torch.inference_mode():
            features = torch.zeros(1, 16, network.cfg.num_mel_bins)  # (B, T, F): a few output frames
            network(features, torch.tensor([16]))
    finally:
        for h in hooks:
            h.remove()
    unique = sum(p.numel() for p in network.parameters())
    applied = sum(calls.get(m, 0) * sum(p.numel() for p in m.parameters(recurse=False)) for m in owners)
    return ParameterCount(unique, applied)


def bench_codecs(bundle: ModelBundle, codecs: Sequence[str] = CODECS, repeats: int = 5) -> list[CodecResult]:
    results = []
    with tempfile.TemporaryDirectory(prefix="edgescribe-bench-") as tmp:
        for codec in codecs:
            path = Path(tmp) / f"model-{codec}.esm"
            size = save_model(bundle, path, codec)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                load_model(path)
                times.append(time.perf_counter() - t0)
            results.append(CodecResult(codec, size, median(times)))
    return results


# --- sections -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    sections: tuple[str, ...]
    durations: tuple[float, ...]
    thread_counts: tuple[int, ...]
    repeats: int
    audio_files: tuple[Path, ...]
    json_path: str | None
    peers: tuple[str, ...] = ()


@dataclass
class BenchContext:
    config: BenchConfig
    bundle: ModelBundle
    recognizer: Recognizer
    report: BenchReport
    rss_after_load: int | None


def offline_section(ctx: BenchContext) -> None:
    cfg = ctx.config
    if cfg.audio_files:
        audio = np.concatenate([load_audio(p, SAMPLE_RATE) for p in cfg.audio_files])
    else:
        audio = synthetic_audio()
    ctx.report.offline = bench_offline(ctx.recognizer, audio, cfg.durations, cfg.thread_counts, cfg.repeats)
    ctx.report.memory = MemoryResult(ctx.rss_after_load, peak_rss_bytes())  # before any peer loads
    for name in cfg.peers:
        ctx.report.offline += bench_peer_offline(name, audio, cfg.durations, cfg.thread_counts, cfg.repeats)


def model_section(ctx: BenchContext) -> None:
    ctx.report.parameters = count_parameters(ctx.bundle.network)
    ctx.report.codecs = bench_codecs(ctx.bundle, CODECS, max(1, ctx.config.repeats))
    ctx.report.peer_models = [bench_peer_model(name) for name in ctx.config.peers]


# Every section: a function that measures and fills in ctx.report.
SECTIONS: dict[str, Callable[[BenchContext], None]] = {
    "offline": offline_section,
    "model": model_section,
}
DEFAULT_SECTIONS = ("offline", "model")


# --- output -------------------------------------------------------------------------------------


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f} MiB"


def render_table(report: BenchReport) -> str:
    m = report.machine
    lines = [f"model: {report.model}", f"machine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']}", ""]
    if report.offline:
        ours = {(r.audio_seconds, r.threads): r.rtf for r in report.offline if r.system == "edgescribe"}
        lines += ["| system | offline audio | threads | wall time | real-time factor | x EdgeScribe |",
                  "|---|---|---|---|---|---|"]
        for r in report.offline:
            ratio = r.rtf / ours[(r.audio_seconds, r.threads)] if ours.get((r.audio_seconds, r.threads)) else None
            lines.append(f"| {r.system} | {r.audio_seconds:g} s | {r.threads} | {r.seconds:.3f} s | {r.rtf:.4f} | "
                         f"{'-' if ratio is None else f'{ratio:.1f}'} |")
        lines.append("")
    if report.memory:
        lines += [f"resident memory: {_mb(report.memory.rss_after_load_bytes)} after loading the model, "
                  f"{_mb(report.memory.peak_rss_bytes)} peak (whole process)", ""]
    if report.parameters:
        p = report.parameters
        lines += [f"parameters: {p.unique:,} unique, {p.applied:,} as applied", ""]
    if report.codecs:
        lines += ["| codec | file size | load time |", "|---|---|---|"]
        lines += [f"| {c.codec} | {c.file_bytes / 1e6:.3f} MB | {1000 * c.load_seconds:.1f} ms |"
                  for c in report.codecs]
        lines.append("")
    if report.peer_models:
        lines += ["| peer | size on disk | load time |", "|---|---|---|"]
        lines += [f"| {p.system} | {p.size_bytes / 1e6:.1f} MB | {1000 * p.load_seconds:.0f} ms |"
                  for p in report.peer_models]
    return "\n".join(lines).rstrip()


def to_json(report: BenchReport) -> str:
    data = dataclasses.asdict(report)
    data["offline"] = [{**dataclasses.asdict(r), "rtf": r.rtf} for r in report.offline]
    return json.dumps(data, indent=2)


# --- command line -------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--section", action="append", choices=list(SECTIONS), default=None,
                        help=f"what to measure, repeatable (default: {' and '.join(DEFAULT_SECTIONS)})")
    parser.add_argument("--audio", action="append", type=Path, default=[], metavar="FILE",
                        help="speech to benchmark with, joined and looped to each length "
                             "(default: a synthetic signal)")
    parser.add_argument("--durations", default="10,60,600", help="offline audio lengths in seconds")
    parser.add_argument("--thread-counts", default="1,all", help="offline torch thread counts; 'all' = every CPU")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is reported")
    parser.add_argument("--peers", default="", metavar="NAMES",
                        help=f"also measure these peers, comma-separated: {', '.join(PEER_FACTORIES)}")
    parser.add_argument("--json", dest="json_path", default=None, metavar="PATH",
                        help="write the figures as JSON here ('-' for stdout instead of the table)")
    add_model_arguments(parser)


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    try:
        durations = tuple(float(d) for d in args.durations.split(","))
        threads = tuple(dict.fromkeys(available_cpus() if t.strip() == "all" else int(t)
                                      for t in args.thread_counts.split(",")))
    except ValueError as e:
        raise ValueError(f"--durations/--thread-counts: comma-separated numbers ('all' for threads): {e}") from e
    if any(d <= 0 for d in durations) or any(t < 1 for t in threads):
        raise ValueError("durations must be positive and thread counts at least 1")
    if args.repeats < 1:
        raise ValueError("--repeats must be at least 1")
    peers = tuple(p.strip() for p in args.peers.split(",") if p.strip())
    unknown = sorted(set(peers) - set(PEER_FACTORIES))
    if unknown:
        raise ValueError(f"--peers: unknown {unknown}; choose from {', '.join(PEER_FACTORIES)}")
    return BenchConfig(tuple(args.section or DEFAULT_SECTIONS), durations, threads, args.repeats,
                       tuple(args.audio), args.json_path, peers)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
        _, recognizer = recognizer_from_args(args)
        bundle = load_model(args.model)  # the torch model: parameters and codecs are measured on it
    except (ValueError, CheckpointError) as e:
        print(f"edgescribe bench: {e}", file=sys.stderr)
        return 2
    report = BenchReport(machine_info(), str(args.model or DEFAULT_MODEL))
    ctx = BenchContext(cfg, bundle, recognizer, report, current_rss_bytes())
    status = 0
    for name in cfg.sections:
        try:
            SECTIONS[name](ctx)
        except (AudioDecodeError, PeerUnavailable) as e:
            print(f"edgescribe bench: {name}: {e}", file=sys.stderr)
            status = 2
    if cfg.json_path == "-":
        print(to_json(report))
        return status
    print(render_table(report))
    if cfg.json_path:
        Path(cfg.json_path).write_text(to_json(report) + "\n")
    return status
