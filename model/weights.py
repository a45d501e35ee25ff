"""Stored weight entries back to float32 arrays, in NumPy: the decoding half of ``compress.py``'s codecs.

Here, without torch, so that the serving runtime reads a model file's normalisation statistics
(and any weight) without it; ``compress.decode`` wraps these for torch, so there is one decoder.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def unpack4(packed: np.ndarray, numel: int) -> np.ndarray:
    """Two 4-bit indices per byte, low nibble first -> (numel,) int64."""
    packed = np.asarray(packed, dtype=np.uint8)
    return np.stack([packed & 0x0F, packed >> 4], axis=1).reshape(-1)[:numel].astype(np.int64)


def decode_array(entry: dict[str, Any]) -> np.ndarray:
    """One ``compress.encode`` entry (arrays or CPU tensors) -> float32 array of its shape."""
    codec, shape = entry["codec"], tuple(int(d) for d in entry["shape"])
    data = np.asarray(entry["data"])
    if codec == "fp32":
        return data.astype(np.float32).reshape(shape)
    if codec == "int8":
        scale = np.asarray(entry["scale"], dtype=np.float32)
        return (data.astype(np.float32).reshape(scale.size, -1) * scale[:, None]).reshape(shape)
    if codec == "kmeans4":
        return np.asarray(entry["codebook"], dtype=np.float32)[unpack4(data, int(np.prod(shape)))].reshape(shape)
    raise ValueError(f"unknown codec {codec!r} in checkpoint")
