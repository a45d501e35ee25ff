"""One self-describing model file, and the checksummed container that training checkpoints share.

The container (magic, version, length, SHA-256, then a ``torch.save`` payload) is ``container.py``'s,
which reads it without torch too; here the payload loads with ``torch.load(weights_only=True)``: no
pickled code runs, ever. The checksum is checked first, so a truncated or corrupted file is refused
with a message, never half-loaded.

A model payload holds: format version, feature/network/decoding configs, the vocabulary, every
tensor with its codec (see ``compress.py``; normalisation statistics included), metadata (how it
was trained) and, from ``edgescribe export``, the streaming step as an ONNX graph (``"onnx"``, see
``onnx_export.py``) that serves without torch.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import compress
from .config import DecodingConfig, FeatureConfig, NetworkConfig, to_dict
from .container import (  # noqa: F401  (re-exported: where callers have always found them)
    CONTAINER_VERSION,
    DEFAULT_MODEL,
    MAGIC,
    CheckpointError,
    atomic_write_bytes,
    pack,
    read_body,
)
from .network import Network
from .tokens import Vocabulary

MODEL_FORMAT_VERSION = 1


def write_container(path: str | os.PathLike, payload: dict[str, Any]) -> int:
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = pack(buf.getvalue())
    atomic_write_bytes(path, data)
    return len(data)


def read_container(path: str | os.PathLike) -> dict[str, Any]:
    body = read_body(path)
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


def model_payload(bundle: ModelBundle, codec: str = "fp32", onnx: str | None = None,
                  tensors: dict[str, dict] | None = None) -> dict[str, Any]:
    """``onnx``: also store the streaming step as an ONNX graph with this quantisation ("none", "int8"),
    traced from the weights as decoded, so both engines compute the same numbers. ``tensors``: weights
    already encoded (kept as they are instead of encoding ``bundle``'s in ``codec``)."""
    if tensors is None:
        tensors = compress.compress_state_dict(bundle.network.state_dict(), codec)
    payload = {
        "format": "edgescribe-model",
        "format_version": MODEL_FORMAT_VERSION,
        "feature_config": to_dict(bundle.features),
        "network_config": to_dict(bundle.network.cfg),
        "decoding_config": to_dict(bundle.decoding),
        "vocabulary": list(bundle.vocab.symbols),
        "tensors": tensors,
        "metadata": dict(bundle.metadata),
    }
    if onnx is not None:
        from .onnx_export import onnx_entry

        decoded = Network(bundle.network.cfg)
        decoded.load_state_dict(compress.decompress_state_dict(tensors))
        payload["onnx"] = onnx_entry(decoded, onnx)
    return payload


def save_model(bundle: ModelBundle, path: str | os.PathLike, codec: str = "fp32", onnx: str | None = None) -> int:
    """Write the model with every large tensor in ``codec`` (and an ONNX graph of its step when ``onnx``
    names a quantisation); returns the file size in bytes."""
    return write_container(path, model_payload(bundle, codec, onnx))


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
