"""One self-describing model file, and the checksummed container that training checkpoints share.

Container layout (all integers little-endian):
    8 bytes  magic b"EDGESCRB"
    4 bytes  container version (uint32)
    8 bytes  payload length (uint64)
    32 bytes SHA-256 of the payload
    payload  ``torch.save`` of a dict of plain tensors, strings, numbers, lists and dicts

The payload loads with ``torch.load(weights_only=True)``: no pickled code runs, ever. The checksum is
checked first, so a truncated or corrupted file is refused with a message, never half-loaded.

A model payload holds: format version, feature/network/decoding configs, the vocabulary, every
tensor with its codec (see ``compress.py``; normalisation statistics included), and metadata
(how it was trained).
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import compress
from .config import DecodingConfig, FeatureConfig, NetworkConfig, to_dict
from .network import Network
from .tokens import Vocabulary

MAGIC = b"EDGESCRB"
CONTAINER_VERSION = 1
MODEL_FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIQ32s")
DEFAULT_MODEL = Path(__file__).parent / "assets" / "default.esm"


class CheckpointError(ValueError):
    """The file is not a readable EdgeScribe checkpoint; the message says why."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over ``path``.

    A crash or a full disk leaves the previous file intact: never a half-written one under the name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes files owner-only; a model is meant to be shared and shipped
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_container(path: str | os.PathLike, payload: dict[str, Any]) -> int:
    buf = io.BytesIO()
    torch.save(payload, buf)
    body = buf.getvalue()
    header = _HEADER.pack(MAGIC, CONTAINER_VERSION, len(body), hashlib.sha256(body).digest())
    atomic_write_bytes(path, header + body)
    return _HEADER.size + len(body)


def read_container(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from e
    if len(raw) < _HEADER.size:
        raise CheckpointError(f"{path}: too short to be an EdgeScribe checkpoint ({len(raw)} bytes)")
    magic, version, length, digest = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise CheckpointError(f"{path}: not an EdgeScribe checkpoint (bad magic bytes)")
    if version > CONTAINER_VERSION:
        raise CheckpointError(f"{path}: container version {version} is newer than this EdgeScribe supports")
    body = raw[_HEADER.size :]
    if len(body) != length:
        raise CheckpointError(f"{path}: truncated: {len(body)} of {length} payload bytes present")
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(f"{path}: checksum mismatch: the file is corrupted")
    try:
        return torch.load(io.BytesIO(body), weights_only=True, map_location="cpu")
    except Exception as e:  # the checksum passed, so this is a foreign or incompatible payload
        raise CheckpointError(f"{path}: payload does not load: {e}") from e


@dataclass
class ModelBundle:
    """Everything needed to turn audio into text: the network and how to feed and read it."""

    network: Network
    features: FeatureConfig
    vocab: Vocabulary
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    metadata: dict[str, Any] = field(default_factory=dict)
    codecs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def new(cls, network_cfg: NetworkConfig, features: FeatureConfig = FeatureConfig(),
            vocab: Vocabulary | None = None) -> ModelBundle:
        vocab = vocab or Vocabulary()
        if network_cfg.vocab_size != len(vocab):
            raise ValueError(f"network vocab_size {network_cfg.vocab_size} != vocabulary size {len(vocab)}")
        if network_cfg.num_mel_bins != features.num_mel_bins:
            raise ValueError("network and features disagree on num_mel_bins")
        return cls(Network(network_cfg), features, vocab)


def model_payload(bundle: ModelBundle, codec: str = "fp32") -> dict[str, Any]:
    tensors = compress.compress_state_dict(bundle.network.state_dict(), codec)
    return {
        "format": "edgescribe-model",
        "format_version": MODEL_FORMAT_VERSION,
        "feature_config": to_dict(bundle.features),
        "network_config": to_dict(bundle.network.cfg),
        "decoding_config": to_dict(bundle.decoding),
        "vocabulary": list(bundle.vocab.symbols),
        "tensors": tensors,
        "metadata": dict(bundle.metadata),
    }


def save_model(bundle: ModelBundle, path: str | os.PathLike, codec: str = "fp32") -> int:
    """Write the model with every large tensor in ``codec``; returns the file size in bytes."""
    return write_container(path, model_payload(bundle, codec))


def bundle_from_payload(payload: dict[str, Any], origin: str = "checkpoint") -> ModelBundle:
    if payload.get("format") != "edgescribe-model":
        raise CheckpointError(f"{origin}: not a model file (format={payload.get('format')!r})")
    if payload.get("format_version", 0) > MODEL_FORMAT_VERSION:
        raise CheckpointError(f"{origin}: model format {payload['format_version']} is newer than supported")
    try:
        net_cfg = NetworkConfig.from_dict(payload["network_config"])
        network = Network(net_cfg)
        network.load_state_dict(compress.decompress_state_dict(payload["tensors"]))
        bundle = ModelBundle(
            network=network.eval(),
            features=FeatureConfig.from_dict(payload["feature_config"]),
            vocab=Vocabulary(payload["vocabulary"]),
            decoding=DecodingConfig.from_dict(payload.get("decoding_config", {})),
            metadata=dict(payload.get("metadata", {})),
            codecs={k: v["codec"] for k, v in payload["tensors"].items()},
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{origin}: inconsistent model file: {e}") from e
    return bundle


def load_model(path: str | os.PathLike | None = None) -> ModelBundle:
    """Load a model file; ``None`` loads the default model embedded in the package."""
    path = DEFAULT_MODEL if path is None else Path(path)
    return bundle_from_payload(read_container(path), str(path))
