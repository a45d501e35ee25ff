"""`edgescribe bench`: parameter counting, the looped input, and a tiny run end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.offline import count_parameters, looped_chunks, synthetic_audio
from edgescribe.cli import main
from model.config import NetworkConfig
from model.network import Network


def _block_params(network: Network) -> int:
    return sum(p.numel() for p in network.blocks[0].parameters())


def test_shared_block_counts_once_as_unique_and_depth_times_as_applied():
    net = Network(NetworkConfig(hidden=32, depth=3, shared=True))
    counts = count_parameters(net)
    assert counts.unique == sum(p.numel() for p in net.parameters())
    assert counts.applied == counts.unique + 2 * _block_params(net)


def test_unshared_blocks_count_the_same_both_ways():
    net = Network(NetworkConfig(hidden=32, depth=3, shared=False, cell="lstm"))
    counts = count_parameters(net)
    assert counts.applied == counts.unique == sum(p.numel() for p in net.parameters())


def test_looped_chunks_repeat_the_audio_to_the_asked_length():
    audio = np.arange(7, dtype=np.float32)
    chunks = list(looped_chunks(audio, seconds=25 / 16000, chunk_seconds=10 / 16000))
    assert [c.size for c in chunks] == [10, 10, 5]
    assert np.concatenate(chunks).tolist() == [i % 7 for i in range(25)]


def test_synthetic_audio_is_deterministic_and_in_range():
    a, b = synthetic_audio(2.0), synthetic_audio(2.0)
    assert a.dtype == np.float32 and a.size == 32000
    assert np.array_equal(a, b) and np.abs(a).max() <= 1.0 and np.abs(a).max() > 0.01


def test_bench_runs_on_a_tiny_input_and_prints_figures(fixtures_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "--audio", str(fixtures_dir / "utt00.flac"), "--durations", "2",
                 "--thread-counts", "1", "--repeats", "1", "--json", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    print(table)  # the figures, for whoever runs with -s
    assert "real-time factor" in table and "as applied" in table and "kmeans4" in table
    report = json.loads(out.read_text())
    (offline,) = report["offline"]
    assert offline["audio_seconds"] == 2.0 and offline["threads"] == 1 and offline["rtf"] > 0
    assert report["memory"]["peak_rss_bytes"] >= report["memory"]["rss_after_load_bytes"] > 0
    sizes = {c["codec"]: c["file_bytes"] for c in report["codecs"]}
    assert sizes["fp32"] > sizes["int8"] > sizes["kmeans4"]
    assert report["parameters"]["applied"] > report["parameters"]["unique"]  # the default model shares its block


def test_streaming_and_load_live_in_bench_service(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--section", "streaming"])  # model/ never starts the service
    assert "invalid choice" in capsys.readouterr().err


def test_bad_durations_are_refused(capsys):
    assert main(["bench", "--durations", "ten"]) == 2
    assert "--durations" in capsys.readouterr().err


def test_bench_measures_a_peer_on_the_same_audio(fixtures_dir, tmp_path):
    pytest.importorskip("pocketsphinx", reason="peer not installed: pip install 'edgescribe[peers]'")
    out = tmp_path / "bench.json"
    code = main(["bench", "--audio", str(fixtures_dir / "utt00.flac"), "--durations", "1", "--thread-counts", "1",
                 "--repeats", "1", "--peers", "pocketsphinx", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert [(r["system"], r["audio_seconds"]) for r in report["offline"]] == [("edgescribe", 1.0),
                                                                             ("pocketsphinx", 1.0)]
    (peer,) = report["peer_models"]
    assert peer["system"] == "pocketsphinx" and peer["size_bytes"] > 1_000_000


def test_unknown_peer_is_refused(capsys):
    assert main(["bench", "--peers", "sphinx3"]) == 2
    assert "sphinx3" in capsys.readouterr().err
