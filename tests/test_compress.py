from __future__ import annotations

import pytest
import torch

from model import compress
from model.checkpoint import ModelBundle, load_model, save_model
from model.config import NetworkConfig


def test_int8_round_trip_error_is_within_half_a_step_per_row():
    w = torch.randn(64, 100) * torch.linspace(0.01, 3, 64)[:, None]  # rows of very different scales
    back = compress.decode(compress.encode(w, "int8"))
    step = w.abs().amax(dim=1, keepdim=True) / 127
    assert bool(((w - back).abs() <= step / 2 + 1e-7).all())


def test_kmeans4_uses_16_shared_values_and_stays_close():
    w = torch.randn(256, 64)
    entry = compress.encode(w, "kmeans4")
    back = compress.decode(entry)
    assert entry["codebook"].numel() == 16
    assert back.unique().numel() <= 16
    assert entry["data"].dtype == torch.uint8 and entry["data"].numel() == w.numel() // 2
    # Lloyd-Max with 16 levels on a Gaussian gives ~0.0975 relative RMS error; allow a little slack.
    rel = (w - back).norm() / w.norm()
    assert float(rel) < 0.11


def test_pack4_round_trip_odd_length():
    idx = torch.randint(0, 16, (1001,))
    assert torch.equal(compress.unpack4(compress.pack4(idx), 1001), idx)


def test_small_and_1d_tensors_stay_fp32():
    assert compress.codec_for("b", torch.zeros(4096), "kmeans4") == "fp32"
    assert compress.codec_for("w", torch.zeros(10, 10), "kmeans4") == "fp32"
    assert compress.codec_for("w", torch.zeros(64, 64), "int8") == "int8"
    with pytest.raises(ValueError):
        compress.codec_for("w", torch.zeros(64, 64), "zip")


@pytest.mark.parametrize(("codec", "max_diff", "max_size_ratio"), [("int8", 0.05, 0.30), ("kmeans4", 0.5, 0.16)])
def test_compressed_model_outputs_stay_close_and_files_shrink(tmp_path, codec, max_diff, max_size_ratio):
    bundle = ModelBundle.new(NetworkConfig(hidden=128, conv_channels=16))
    fp32_size = save_model(bundle, tmp_path / "fp32.esm", "fp32")
    size = save_model(bundle, tmp_path / f"{codec}.esm", codec)
    loaded = load_model(tmp_path / f"{codec}.esm")
    assert set(loaded.codecs.values()) == {"fp32", codec}
    x = torch.randn(1, 300, 80)
    with torch.inference_mode():
        ref, _ = bundle.network.eval()(x, torch.tensor([300]))
        out, _ = loaded.network(x, torch.tensor([300]))
    assert float((ref - out).abs().max()) < max_diff
    assert size < max_size_ratio * fp32_size
