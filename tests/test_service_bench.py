"""`edgescribe bench-service` on tiny settings: it starts a real server and reports every figure."""

from __future__ import annotations

import json

from edgescribe.cli import main


def test_bench_service_measures_streaming_load_and_uploads(tmp_path, fixtures_dir):
    out = tmp_path / "bench.json"
    code = main(["bench-service", "--audio", str(fixtures_dir / "utt02.flac"), "--chunk-ms", "200",
                 "--stream-seconds", "2", "--repeats", "1", "--load-seconds", "2", "--max-load-streams", "2",
                 "--bisect-steps", "0", "--upload-clients", "2", "--upload-duration", "2", "--workers", "1",
                 "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    (streaming,) = report["streaming"]
    assert streaming["chunk_ms"] == 200 and streaming["partial"]["count"] >= 5
    assert 0 < streaming["partial"]["median_ms"] <= streaming["partial"]["p95_ms"] <= streaming["partial"]["max_ms"]
    assert streaming["final"]["count"] == 1
    assert [level["streams"] for level in report["load"]] == [1, 2]
    assert report["uploads"]["requests"] > 0 and report["uploads"]["failed"] == 0
