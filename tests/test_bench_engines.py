"""`edgescribe bench-engines` runs end to end on a tiny load and reports every figure for each engine."""

from __future__ import annotations

import argparse
import json

import pytest

from benchmarks.engines import add_arguments, run

pytest.importorskip("onnxruntime", reason="the onnxruntime engine is one of the two compared")


def test_bench_engines_reports_both_engines(tmp_path, capsys, fixtures_dir):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "engines.json"
    args = parser.parse_args(["--requests", "2", "--startups", "1", "--seconds", "2", "--json", str(out),
                              "--audio", str(fixtures_dir / "utt04.flac")])
    assert run(args) == 0
    table = capsys.readouterr().out
    assert "| onnxruntime |" in table and "| torch |" in table
    results = {r["engine"]: r for r in json.loads(out.read_text())}
    assert set(results) == {"onnxruntime", "torch"}
    for r in results.values():
        assert r["requests"] == 2 and r["startup_seconds"] > 0 and r["server_rtf"] > 0 and r["in_process_rtf"] > 0
        assert r["rss_after_requests_bytes"] > 0 and r["rss_idle_bytes"] > 0
    # torch alone is ~190 MB resident: the lean server cannot be the bigger one.
    assert results["onnxruntime"]["rss_idle_bytes"] < results["torch"]["rss_idle_bytes"]


def test_bench_engines_refuses_an_unknown_engine(capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args(["--engines", "tensorflow"])) == 2
    assert "onnxruntime,torch" in capsys.readouterr().err


def test_the_peer_line_says_how_many_times_lower_each_engine_is():
    from benchmarks.engines import EngineResult, render_peer

    ours = EngineResult("onnxruntime", 0.8, 1, 2, 3, server_rtf=0.01, in_process_rtf=0.004)
    text = render_peer("whisper-tiny.en", 0.2, [ours])
    assert "RTF 0.2000" in text and "through the server: 20.0x lower" in text and "in process: 50.0x lower" in text
