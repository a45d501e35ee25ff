"""A model ready to serve, on the engine chosen at load time: ONNX Runtime where it can, torch otherwise.

``engine="auto"`` picks ONNX Runtime when the model file carries an ONNX graph of its step (``edgescribe
export`` embeds one) and ``onnxruntime`` is importable, and torch otherwise. On ONNX Runtime nothing
here imports torch: the file is read by ``container.py``, features are ``fbank.py``'s and decoding
``ctc.py``'s, all NumPy.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from .acoustic import ONNXRUNTIME, TORCH, Acoustic, OnnxAcoustic, TorchAcoustic
from .config import ENGINES, DecodingConfig, FeatureConfig, NetworkConfig
from .container import CheckpointError, onnx_graph, read_model_arrays
from .tokens import Vocabulary
from .weights import decode_array

log = logging.getLogger(__name__)

AUTO = ENGINES[0]


@dataclass
class ServingModel:
    """What recognition needs, whichever engine runs the network (``ModelBundle``'s fields, less torch)."""

    acoustic: Acoustic
    features: FeatureConfig
    vocab: Vocabulary
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def engine(self) -> str:
        return self.acoustic.engine


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # blocked, or set to None in sys.modules: as good as not installed
        return False


def load_serving_model(path: str | os.PathLike | None = None, engine: str = AUTO, threads: int = 1) -> ServingModel:
    """Load a model file (``None``: the embedded default) on ``engine``; raises CheckpointError with the reason."""
    if engine not in ENGINES:
        raise CheckpointError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    origin = "the embedded model" if path is None else str(path)
    payload = read_model_arrays(path)
    graph = onnx_graph(payload, origin)
    if engine == AUTO:
        engine = ONNXRUNTIME if graph is not None and _importable("onnxruntime") else TORCH
    if engine == TORCH:
        if not _importable("torch"):
            why = "it carries no ONNX graph (add one with `edgescribe export --codec keep`)" if graph is None else \
                "onnxruntime is not installed (pip install onnxruntime)"
            raise CheckpointError(f"{origin}: cannot serve: torch is not installed and {why}")
        from .checkpoint import load_model

        bundle = load_model(path)
        return ServingModel(TorchAcoustic(bundle.network), bundle.features, bundle.vocab, bundle.decoding,
                            bundle.metadata)
    if graph is None:
        raise CheckpointError(f"{origin}: has no ONNX graph for the onnxruntime engine; "
                              "add one with `edgescribe export MODEL --codec keep --out FILE`")
    try:
        net = NetworkConfig.from_dict(payload["network_config"])
        entry = payload["onnx"]
        acoustic = OnnxAcoustic(graph, entry["inputs"], entry["outputs"], decode_array(payload["tensors"]["feat_mean"]),
                                net.depth, net.hidden, net.cell == "lstm", threads)
        return ServingModel(acoustic, FeatureConfig.from_dict(payload["feature_config"]),
                            Vocabulary(payload["vocabulary"]),
                            DecodingConfig.from_dict(payload.get("decoding_config", {})),
                            dict(payload.get("metadata", {})))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{origin}: inconsistent model file: {e}") from e
