"""`edgescribe bench-engines`: the ONNX Runtime and torch engines side by side, in one run.

For each engine (``--engines``, default both):
- start-up: seconds from launching `edgescribe serve --engine E` to its first answer on /healthz
  (polled every 50 ms), the median of ``--startups`` launches;
- resident memory of the server process (VmRSS from /proc) once /healthz answers (idle) and after
  ``--requests`` (200) transcriptions of the audio posted one after another to
  /v1/audio/transcriptions; their real-time factor through the server (request time / audio time);
- the real-time factor in process: a fresh interpreter that loads the model on that engine only
  and transcribes the audio looped to ``--seconds`` (median of 3), so neither engine's imports
  weigh on the other's figures.

The audio is ``--audio`` files joined (default: the six fixture clips of the tests). Figures are
for comparing the engines within one run on one machine; a busy machine makes them loose.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from model.audio import SAMPLE_RATE, load_audio

from .service import server_process, stop_process, wav_bytes

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_CLIPS = sorted((ROOT / "tests" / "fixtures").glob("utt0*.flac"))

# Run in a fresh interpreter per engine: load, warm up once, time the looped audio.
IN_PROCESS = r"""
import json, statistics, sys, time
import numpy as np
from model.audio import load_audio
from model.lm import load_lm_choice
from model.recognize import Recognizer
from model.runtime import load_serving_model
engine, seconds, wav = sys.argv[1], float(sys.argv[2]), sys.argv[3]
if engine == "torch":
    import torch
    torch.set_num_threads(1)
model = load_serving_model(None, engine, 1)
rec = Recognizer(model, None, load_lm_choice("default"))
audio = load_audio(wav)
looped = np.tile(audio, int(np.ceil(seconds * 16000 / audio.size)))[: int(seconds * 16000)]
rec.transcribe(audio)
times = []
for _ in range(3):
    t0 = time.perf_counter()
    rec.transcribe(looped)
    times.append(time.perf_counter() - t0)
print(json.dumps({"engine": model.engine, "rtf": statistics.median(times) / seconds}))
"""


# A peer in a fresh interpreter, on the same (joined) audio: its best case, one long file, as Whisper
# then fills whole 30 s windows. Warm-up on the first 5 s, then the median of 3 runs.
# With --per-file, each file on its own (Whisper then pads every short file to a 30 s window), once.
PEER_IN_PROCESS = r"""
import json, statistics, sys, time
from model.audio import load_audio
from benchmarks.peers import PEER_FACTORIES
name, wavs = sys.argv[1], sys.argv[2:]
system = PEER_FACTORIES[name](1)
audios = [load_audio(w) for w in wavs]
system.transcribe(audios[0][: 5 * 16000])
seconds = sum(a.size for a in audios) / 16000
times = []
for _ in range(3 if len(audios) == 1 else 1):
    t0 = time.perf_counter()
    for a in audios:
        system.transcribe(a)
    times.append(time.perf_counter() - t0)
print(json.dumps({"rtf": statistics.median(times) / seconds}))
"""


def bench_peer(name: str, wavs: list[Path]) -> float:
    """A peer's real-time factor in process on ``wavs`` (1 thread)."""
    r = subprocess.run([sys.executable, "-c", PEER_IN_PROCESS, name, *map(str, wavs)], cwd=ROOT,
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"peer {name} failed: {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["rtf"]


@dataclass
class EngineResult:
    engine: str
    startup_seconds: float  # launch to first /healthz answer, median of the launches
    rss_idle_bytes: int
    rss_after_requests_bytes: int
    requests: int
    server_rtf: float  # request wall time / audio seconds, over the requests
    in_process_rtf: float  # features + network + decoding (beam + LM), 1 thread


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def bench_engine(engine: str, wav: Path, audio_seconds: float, requests: int, startups: int,
                 seconds: float, uploads: list[Path] | None = None) -> EngineResult:
    """``uploads``: post these files one by one per request round instead of ``wav`` (--per-file)."""
    import httpx

    flags = {"engine": engine, "workers": 1, "upload_workers": 1, "threads": 1}
    launches = []
    for i in range(startups):
        t0 = time.perf_counter()
        with server_process(flags) as (proc, address):
            launches.append(time.perf_counter() - t0)
            if i < startups - 1:
                continue
            time.sleep(1.0)  # let start-up garbage settle before the idle figure
            idle = rss_bytes(proc.pid)
            bodies = [p.read_bytes() for p in (uploads or [wav])]
            spent = 0.0
            with httpx.Client(base_url=f"http://{address}", timeout=120) as client:
                for _ in range(requests):
                    for data in bodies:
                        t1 = time.perf_counter()
                        r = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", data, "audio/wav")})
                        r.raise_for_status()
                        spent += time.perf_counter() - t1
            after = rss_bytes(proc.pid)
            stop_process(proc, 30)
    r = subprocess.run([sys.executable, "-c", IN_PROCESS, engine, str(seconds), str(wav)], cwd=ROOT,
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"in-process run on {engine} failed: {r.stderr.strip()[-2000:]}")
    inproc = json.loads(r.stdout.strip().splitlines()[-1])
    return EngineResult(engine, statistics.median(launches), idle, after, requests,
                        spent / (requests * audio_seconds), inproc["rtf"])


def render_peer(name: str, rtf: float, results: list[EngineResult]) -> str:
    lines = ["", f"{name}, in process on the same audio (1 thread): RTF {rtf:.4f}"]
    for r in results:
        lines.append(f"  {r.engine} through the server: {rtf / r.server_rtf:.1f}x lower; in process: "
                     f"{rtf / r.in_process_rtf:.1f}x lower")
    return "\n".join(lines)


def render(results: list[EngineResult], audio_seconds: float, seconds: float) -> str:
    mib = 2**20
    lines = [f"audio: {audio_seconds:.2f} s per request; in process: looped to {seconds:g} s; 1 thread, "
             "beam 8 + LM (the embedded model's defaults)", "",
             "| engine | start to /healthz | RSS idle | RSS after N requests | RTF via the server | RTF in process |",
             "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.engine} | {r.startup_seconds:.2f} s | {r.rss_idle_bytes / mib:.0f} MiB | "
                     f"{r.rss_after_requests_bytes / mib:.0f} MiB (N={r.requests}) | {r.server_rtf:.4f} | "
                     f"{r.in_process_rtf:.4f} |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engines", default="onnxruntime,torch", help="engines to compare, comma-separated")
    parser.add_argument("--audio", action="append", type=Path, default=[], metavar="FILE",
                        help="speech to post and transcribe, joined (default: the test fixture clips)")
    parser.add_argument("--requests", type=int, default=200, help="transcriptions before the second RSS figure")
    parser.add_argument("--startups", type=int, default=3, help="server launches timed per engine")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio length for the in-process RTF")
    parser.add_argument("--peer", default=None, metavar="NAME",
                        help="also time this peer in process on the same audio (e.g. whisper-tiny.en; needs "
                        "pip install 'edgescribe[peers]') and print how much lower our figures are")
    parser.add_argument("--per-file", action="store_true",
                        help="post (and give the peer) each --audio file on its own rather than joined")
    parser.add_argument("--json", dest="json_path", default=None, metavar="PATH", help="also write JSON here")


def run(args: argparse.Namespace) -> int:
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines or set(engines) - {"onnxruntime", "torch"} or args.requests < 1 or args.startups < 1:
        print("edgescribe bench-engines: --engines from onnxruntime,torch; --requests and --startups >= 1",
              file=sys.stderr)
        return 2
    files = args.audio or FIXTURE_CLIPS
    audio = np.concatenate([load_audio(p, SAMPLE_RATE) for p in files])
    seconds = audio.size / SAMPLE_RATE
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "audio.wav"
        wav.write_bytes(wav_bytes(audio))
        try:
            uploads = None
            if args.per_file:
                uploads = []
                for i, p in enumerate(files):
                    uploads.append(Path(tmp) / f"file{i}.wav")
                    uploads[-1].write_bytes(wav_bytes(load_audio(p, SAMPLE_RATE)))
            results = [bench_engine(e, wav, seconds, args.requests, args.startups, args.seconds, uploads)
                       for e in engines]
            peer_rtf = bench_peer(args.peer, uploads or [wav]) if args.peer else None
        except RuntimeError as e:
            print(f"edgescribe bench-engines: {e}", file=sys.stderr)
            return 2
    if args.per_file:
        print(f"per file: {len(files)} files, {seconds:.2f} s in all, one request per file per round "
              f"({args.requests} rounds); the figures below count all of them")
    print(render(results, seconds, args.seconds))
    if peer_rtf is not None:
        print(render_peer(args.peer, peer_rtf, results))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0
