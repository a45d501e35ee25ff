"""scripts/leg_weights.py: the synthetic corpora of a long-run leg are capped at a share of the epoch."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lw():
    spec = importlib.util.spec_from_file_location("leg_weights", ROOT / "scripts" / "leg_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _manifest(path: Path, *durations: float) -> Path:
    path.write_text("".join(json.dumps({"audio": f"{i}.flac", "text": "x", "duration": d}) + "\n"
                            for i, d in enumerate(durations)))
    return path


def test_synthetic_weights_are_scaled_to_the_share(tmp_path, lw, capsys):
    real = _manifest(tmp_path / "real.jsonl", 1800, 1800)      # 1 h, at weight 3: 3 weighted h
    big = _manifest(tmp_path / "synth.jsonl", 3600 * 8)        # 8 h at 1
    hibari = _manifest(tmp_path / "hibari.jsonl", 3600 * 4)    # 4 h at 0.5: 2 weighted h
    assert lw.main(["--synth-share", "0.25", "--real", f"{real}:3", "--synth", f"{big}:1",
                    "--synth", f"{hibari}:0.5"]) == 0
    out, err = capsys.readouterr()
    weights = {Path(p).name: float(w) for p, w in (line.rsplit(":", 1) for line in out.split())}
    # 25% synthetic: 1 weighted h of synthetic against 3 of real; 10 weighted h scaled by 0.1, ratios kept.
    assert weights == pytest.approx({"real.jsonl": 3, "synth.jsonl": 0.1, "hibari.jsonl": 0.05})
    assert "(25%;" in err


def test_a_small_synthetic_corpus_is_not_oversampled(tmp_path, lw):
    real = (Path("r.jsonl"), 3.0, 10.0)
    synth = (Path("s.jsonl"), 1.0, 0.5)
    weights, factor = lw.leg_weights([real], [synth], 0.25)
    assert factor == 1.0 and weights == [(Path("r.jsonl"), 3.0), (Path("s.jsonl"), 1.0)]


def test_a_manifest_without_durations_is_refused_by_line(tmp_path, lw):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"audio": "a.flac", "text": "x", "duration": 1}\n{"audio": "b.flac", "text": "x"}\n')
    with pytest.raises(SystemExit, match="bad.jsonl:2"):
        lw.manifest_hours(bad)
    with pytest.raises(SystemExit, match="synth-share"):
        lw.leg_weights([], [], 1.0)
