from __future__ import annotations

import pytest
import torch

from model.checkpoint import (
    DEFAULT_MODEL,
    CheckpointError,
    ModelBundle,
    load_model,
    read_container,
    save_model,
    write_container,
)
from model.config import DecodingConfig, FeatureConfig, NetworkConfig
from model.tokens import Vocabulary


@pytest.fixture
def bundle() -> ModelBundle:
    b = ModelBundle.new(NetworkConfig(hidden=32, conv_channels=4, depth=2))
    b.network.feat_mean.fill_(3.0)
    b.network.feat_std.fill_(2.0)
    b.metadata = {"steps": 12, "data_hours": 0.5}
    b.decoding = DecodingConfig(beam_size=4)
    return b


def test_round_trip_is_self_describing(tmp_path, bundle):
    path = tmp_path / "m.esm"
    save_model(bundle, path)
    loaded = load_model(path)
    assert loaded.network.cfg == bundle.network.cfg
    assert loaded.features == FeatureConfig()
    assert loaded.vocab.symbols == Vocabulary().symbols
    assert loaded.decoding.beam_size == 4
    assert loaded.metadata == {"steps": 12, "data_hours": 0.5}
    assert float(loaded.network.feat_mean[0]) == 3.0 and float(loaded.network.feat_std[0]) == 2.0
    for (name, a), b in zip(bundle.network.state_dict().items(), loaded.network.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_truncated_file_is_refused(tmp_path, bundle):
    path = tmp_path / "m.esm"
    save_model(bundle, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(path)


def test_flipped_byte_is_refused(tmp_path, bundle):
    path = tmp_path / "m.esm"
    save_model(bundle, path)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_model(path)


@pytest.mark.parametrize("content", [b"", b"hello", b"PK\x03\x04" + b"\0" * 200])
def test_foreign_files_are_refused(tmp_path, content):
    path = tmp_path / "x.esm"
    path.write_bytes(content)
    with pytest.raises(CheckpointError):
        load_model(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="cannot read"):
        load_model(tmp_path / "nope.esm")


def test_container_that_is_not_a_model_is_refused(tmp_path):
    write_container(tmp_path / "c.bin", {"format": "something-else"})
    assert read_container(tmp_path / "c.bin") == {"format": "something-else"}
    with pytest.raises(CheckpointError, match="not a model"):
        load_model(tmp_path / "c.bin")


def test_failed_write_keeps_the_previous_file(tmp_path, bundle, monkeypatch):
    path = tmp_path / "m.esm"
    save_model(bundle, path)
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full_disk)
    with pytest.raises(OSError):
        save_model(bundle, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.esm"]  # no temp file left behind


def test_embedded_default_model_loads_without_a_path():
    assert DEFAULT_MODEL.is_file()
    bundle = load_model()
    assert len(bundle.vocab) == bundle.network.cfg.vocab_size
