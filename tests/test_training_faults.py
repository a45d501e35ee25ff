"""Training faults, for real: `edgescribe train` as a process, SIGKILLed at random points and resumed, with
its newest checkpoint truncated on disk before one of the resumes.

The property: the run completes, its model loads (checksums pass) and transcribes, its weights equal
those of a run never interrupted, and metrics.jsonl holds each logged step exactly once. The
in-process variant (tests/test_training.py) stops at a chosen step; this one lets the kernel kill the
process wherever it happens to be: mid-step, mid-checkpoint-write, mid-log-line or mid-export.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from model.audio import load_audio
from model.checkpoint import load_model
from model.recognize import Recognizer

ROOT = Path(__file__).parent.parent
STEPS = 20
LOG_EVERY = 2
KILLS = 3
SEED = 6  # of the kill points; any seed must pass
RUN_SECONDS = 300  # liveness bound for one process on a loaded 2-core machine, not a measurement


def train_command(fixtures_dir: Path, out: Path) -> list[str]:
    manifest = str(fixtures_dir / "tiny.jsonl")
    return [sys.executable, "-m", "edgescribe.cli", "train", "--train", manifest, "--out", str(out),
            "--hidden", "32", "--depth", "2", "--conv-channels", "4", "--max-steps", str(STEPS),
            "--max-batch-seconds", "4", "--max-utterance-seconds", "4", "--warmup-steps", "4", "--threads", "1",
            "--workers", "0", "--log-every", str(LOG_EVERY), "--checkpoint-every", "3", "--keep-checkpoints", "2",
            "--stats-utterances", "6", "--no-progress", "--resume"]


def start(command: list[str], log: Path) -> subprocess.Popen:
    with log.open("ab") as sink:
        return subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen, log: Path) -> None:
    assert proc.wait(timeout=RUN_SECONDS) == 0, log.read_text()[-3000:]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_model(path).network.state_dict()


def test_sigkilled_run_resumes_past_a_truncated_checkpoint_to_the_same_model(fixtures_dir, tmp_path):
    log = tmp_path / "train.log"
    straight = tmp_path / "straight"
    finish(start(train_command(fixtures_dir, straight), log), log)

    run = tmp_path / "killed"
    rng = random.Random(SEED)
    killed = 0
    for _ in range(KILLS):
        proc = start(train_command(fixtures_dir, run), log)
        # A random point once training is under way (metrics.jsonl appears with the first logged step).
        deadline = time.monotonic() + RUN_SECONDS
        while not (run / "metrics.jsonl").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait(timeout=RUN_SECONDS)
    assert killed, "every run finished before its kill: the test proved nothing"

    checkpoints = sorted((run / "checkpoints").glob("step-*.ckpt"))
    assert checkpoints, "no checkpoint survived the kills"
    truncated = checkpoints[-1]  # even if the run had got to its end, the resume must notice and redo it
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])  # a torn copy
    log.write_text("")
    finish(start(train_command(fixtures_dir, run), log), log)
    assert "ignoring damaged checkpoint" in log.read_text() and truncated.name in log.read_text()

    # A valid model: it loads through its checksums and transcribes; and it is the uninterrupted run's model.
    for name in ("model-fp32.esm", "model.esm"):
        a, b = weights(straight / name), weights(run / name)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key} differs from the uninterrupted run"
    assert isinstance(Recognizer(load_model(run / "model.esm")).transcribe(load_audio(fixtures_dir / "utt00.flac")),
                      list)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    loss_steps = [r["step"] for r in rows if "loss" in r]
    assert loss_steps == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY)), "metrics.jsonl lost or repeated steps"
