from __future__ import annotations

import json
import subprocess
import sys

import pytest

from model.checkpoint import ModelBundle, save_model
from model.config import NetworkConfig


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgescribe.cli", *args], capture_output=True, text=True, timeout=120)


def test_json_has_words_with_times_and_confidence(fixtures_dir):
    r = _run("transcribe", str(fixtures_dir / "utt00.flac"), "--format", "json", "--beam-size", "1")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["duration"] == pytest.approx(1.26, abs=0.01)
    words = [w for s in out["segments"] for w in s["words"]]
    assert " ".join(w["word"] for w in words) == out["text"]
    for w in words:
        assert 0 <= w["start"] < w["end"] <= out["duration"] + 0.1
        assert 0 < w["confidence"] <= 1


def test_srt_and_vtt(fixtures_dir):
    srt = _run("transcribe", str(fixtures_dir / "utt02.flac"), "--format", "srt")
    vtt = _run("transcribe", str(fixtures_dir / "utt02.flac"), "--format", "vtt")
    assert srt.returncode == 0 and vtt.returncode == 0
    assert vtt.stdout.startswith("WEBVTT")
    if srt.stdout.strip():  # the embedded model may hear nothing; when it hears, the cue is well formed
        assert srt.stdout.startswith("1\n00:00:")
        assert " --> " in srt.stdout


def test_undecodable_input_is_one_line_and_exit_1(tmp_path, fixtures_dir):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense")
    r = _run("transcribe", str(bad), str(fixtures_dir / "utt04.flac"))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "bad.wav" in r.stderr
    assert "utt04.flac:" in r.stdout  # the good file is still transcribed


def test_missing_or_corrupt_model_is_a_clear_error(tmp_path, fixtures_dir):
    bad = tmp_path / "m.esm"
    save_model(ModelBundle.new(NetworkConfig(hidden=16, conv_channels=2, depth=1)), bad)
    bad.write_bytes(bad.read_bytes()[:-10])
    r = _run("transcribe", str(fixtures_dir / "utt04.flac"), "--model", str(bad))
    assert r.returncode == 1 and "truncated" in r.stderr and "Traceback" not in r.stderr


def test_export_prints_size_and_difference(tmp_path):
    src = tmp_path / "m.esm"
    save_model(ModelBundle.new(NetworkConfig(hidden=64, conv_channels=8, depth=2)), src)
    # Without the ONNX graph (which holds the decoded weights) the codec alone decides the size.
    r = _run("export", str(src), "--codec", "kmeans4", "--onnx", "off", "--out", str(tmp_path / "k.esm"))
    assert r.returncode == 0, r.stderr
    assert "bytes" in r.stdout and "max log-prob difference" in r.stdout
    assert (tmp_path / "k.esm").stat().st_size < src.stat().st_size / 4


def test_export_takes_a_training_checkpoint_with_its_training_as_metadata(tmp_path):
    import torch

    from model.checkpoint import load_model, model_payload
    from model.training.checkpoints import CheckpointDir

    bundle = ModelBundle.new(NetworkConfig(hidden=32, conv_channels=4, depth=2))
    ckpt = CheckpointDir(tmp_path / "run").save(120, {
        "step": 120, "config": {"train": ["a.jsonl:2", "b.jsonl"], "seed": 7}, "model": model_payload(bundle),
        "optimizer": {}})
    r = _run("export", str(ckpt), "--codec", "fp32", "--lm-weight", "0.4", "--out", str(tmp_path / "m.esm"))
    assert r.returncode == 0, r.stderr
    out = load_model(tmp_path / "m.esm")
    assert out.metadata == {"trained_steps": 120, "train_manifests": ["a.jsonl:2", "b.jsonl"], "seed": 7}
    assert out.decoding.lm_weight == 0.4
    for name, value in bundle.network.state_dict().items():
        assert torch.equal(out.network.state_dict()[name], value), name
    broken = CheckpointDir(tmp_path / "bad").save(5, {"step": 5, "model": model_payload(bundle)})  # no config
    r = _run("export", str(broken), "--out", str(tmp_path / "x.esm"))
    assert r.returncode == 1 and "inconsistent training checkpoint" in r.stderr and "Traceback" not in r.stderr


def test_unbuilt_subcommands_exit_2():
    r = _run()
    assert r.returncode == 2


def test_grammar_restricts_output_to_the_phrase_list(tmp_path, fixtures_dir):
    phrases = ["hello world", "stop the music"]
    (tmp_path / "g.json").write_text(json.dumps(phrases))
    r = _run("transcribe", str(fixtures_dir / "utt00.flac"), str(fixtures_dir / "utt03.flac"),
             "--grammar", str(tmp_path / "g.json"))
    assert r.returncode == 0, r.stderr
    for line in r.stdout.strip().splitlines():
        text = line.split(": ", 1)[1] if ": " in line else ""
        assert text in ("", *phrases)


def test_bad_grammar_or_lm_is_one_line_and_exit_1(tmp_path, fixtures_dir):
    (tmp_path / "g.txt").write_text("say привет\n")  # Cyrillic survives normalisation: the model cannot spell it
    r = _run("transcribe", str(fixtures_dir / "utt00.flac"), "--grammar", str(tmp_path / "g.txt"))
    assert r.returncode == 1 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _run("transcribe", str(fixtures_dir / "utt00.flac"), "--lm", str(tmp_path / "missing.eslm"))
    assert r.returncode == 1 and "Traceback" not in r.stderr


def test_default_lm_decodes(fixtures_dir):
    r = _run("transcribe", str(fixtures_dir / "utt00.flac"), "--lm", "default", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert "segments" in json.loads(r.stdout)
