"""A tiny model learns the six fixture utterances, then `edgescribe transcribe` speaks their words.

This is the smallest proof that features, network, CTC loss, optimiser, export and the streaming
recogniser fit together: if any of them disagrees with another (normalisation statistics not
saved, a frame-rate mismatch, a wrong blank id), the words do not come back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from model.checkpoint import load_model
from model.config import NetworkConfig
from model.training.config import AugmentConfig, TrainConfig
from model.training.loop import train
from model.training.manifest import read_manifest

# Near zero: at most 2% of the characters wrong (one or two characters of the 86) on the
# training utterances themselves. In practice the run reaches 0% by step ~100 of its 200.
MAX_CER = 0.02
REPO = Path(__file__).resolve().parents[1]


def test_tiny_model_overfits_the_fixtures_and_transcribes_them(fixtures_dir, tmp_path):
    manifest = str(fixtures_dir / "tiny.jsonl")
    cfg = TrainConfig(
        train=(manifest,), valid=(manifest,), out=str(tmp_path / "run"),
        network=NetworkConfig(conv_channels=8, hidden=96, depth=2, dropout=0.0),
        augment=AugmentConfig().disabled(),  # memorising, not generalising
        max_steps=200, max_batch_seconds=12.0, max_utterance_seconds=4.0, lr=3e-3, warmup_steps=10,
        threads=1, workers=0, valid_every=1000, checkpoint_every=1000, progress=False,
    )
    result = train(cfg)
    report = result.export
    assert report is not None and report.fp32_rates is not None and report.rates is not None
    assert report.fp32_rates.cer <= MAX_CER
    assert report.rates.cer <= MAX_CER  # the kmeans4 file, as shipped
    assert load_model(report.path).metadata["trained_steps"] == 200

    utterances = list(read_manifest(manifest))
    out = subprocess.run(
        [sys.executable, "-m", "edgescribe.cli", "transcribe", "--model", str(report.path), "--format", "json",
         *[str(u.audio) for u in utterances]],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    texts = [json.loads(line)["text"] for line in out.stdout.splitlines() if line.strip()]  # one line per file
    assert texts == [u.text for u in utterances]
