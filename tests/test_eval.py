"""`edgescribe eval`: per-manifest counts, WER/CER consistent with the errors file, normalised references."""

from __future__ import annotations

import json

from edgescribe.cli import main
from model.training.metrics import corpus_error_rates


def _manifest(fixtures_dir, tmp_path):
    rows = [json.loads(line) for line in (fixtures_dir / "tiny.jsonl").read_text().splitlines()]
    for r in rows:
        r["audio"] = str(fixtures_dir / r["audio"])
    rows[0]["text"] = "Hello, World!"  # scored after normalisation: "hello world"
    rows[2]["text"] = "Call 1 2 3."
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def test_eval_json_and_errors_file_agree(fixtures_dir, tmp_path, capsys):
    manifest, rows = _manifest(fixtures_dir, tmp_path)
    errors = tmp_path / "errors.txt"
    assert main(["eval", str(manifest), "--json", "--limit", "4", "--errors", str(errors), "--beam-size", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "embedded"
    (result,) = report["results"]
    assert result["utterances"] == 4 and result["unreadable"] == 0
    assert abs(result["hours"] - sum(r["duration"] for r in rows[:4]) / 3600) < 1e-4
    assert result["rtf"] > 0

    lines = errors.read_text().splitlines()
    refs = [line[5:] for line in lines if line.startswith("REF: ")]
    hyps = [line[5:] for line in lines if line.startswith("HYP: ")]
    assert sorted(refs) == sorted(["hello world", "turn on the light", "call one two three", "stop the music"])
    rates = corpus_error_rates(refs, hyps)
    assert abs(rates.wer - result["wer"]) < 1e-9 and abs(rates.cer - result["cer"]) < 1e-9


def test_eval_table_reports_each_manifest_and_unreadable_audio(fixtures_dir, tmp_path, capsys):
    manifest, _ = _manifest(fixtures_dir, tmp_path)
    broken = tmp_path / "broken.jsonl"
    (tmp_path / "noise.flac").write_bytes(b"not audio" * 50)
    broken.write_text(json.dumps({"audio": "noise.flac", "text": "x", "duration": 1.0}) + "\n"
                      + (manifest.read_text().splitlines()[0] + "\n"))
    assert main(["eval", str(manifest), str(broken), "--limit", "2"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0].split() == ["manifest", "utts", "hours", "WER", "CER", "RTF"]
    assert lines[1].split()[:2] == [str(manifest), "2"]
    assert lines[2].split()[:2] == [str(broken), "1"] and "(1 unreadable)" in lines[2]
    assert "noise.flac" in out.err


def test_eval_refuses_a_missing_manifest(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "none.jsonl")]) == 1
    assert "cannot read manifest" in capsys.readouterr().err
