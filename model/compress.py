"""Weight sharing and quantisation codecs for trained tensors, independent of ``torch.ao``.

Each codec turns a float tensor into a dict of plain tensors (what the checkpoint stores) and back:
- ``fp32``: the tensor as is.
- ``int8``: per-output-channel symmetric quantisation, scale = max|w| / 127 per row.
- ``kmeans4``: Deep Compression's weight sharing: the tensor's values are clustered into 16 shared
  values (1-D k-means, linear initialisation, which the paper found best for large weights); the file
  holds the 16-entry codebook and a 4-bit index per weight, two to a byte.

Small and 1-D tensors (biases, norms, normalisation statistics) stay fp32 whatever the codec: they
are a few kB, and quantising them costs accuracy for nothing.
"""

from __future__ import annotations

import numpy as np
import torch

from . import weights
from .weights import decode_array

CODECS = ("fp32", "int8", "kmeans4")
MIN_COMPRESSED_NUMEL = 1024  # below this a tensor stays fp32
KMEANS_CLUSTERS = 16
KMEANS_ITERATIONS = 30


def codec_for(name: str, tensor: torch.Tensor, codec: str) -> str:
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    if tensor.dim() < 2 or tensor.numel() < MIN_COMPRESSED_NUMEL or not tensor.is_floating_point():
        return "fp32"
    return codec


def kmeans_1d(values: torch.Tensor, k: int = KMEANS_CLUSTERS, iters: int = KMEANS_ITERATIONS):
    """Cluster a flat tensor into k shared values: returns (codebook (k,), indices (N,) int64)."""
    v = values.detach().float().reshape(-1)
    lo, hi = v.min(), v.max()
    centroids = torch.linspace(float(lo), float(hi), k) if hi > lo else torch.full((k,), float(lo))
    for _ in range(iters):
        # Sorted centroids make assignment a bucket search: O(N log k), no (N, k) matrix.
        centroids, _ = centroids.sort()
        bounds = (centroids[1:] + centroids[:-1]) / 2
        idx = torch.bucketize(v, bounds)
        sums = torch.zeros(k).index_add_(0, idx, v)
        counts = torch.zeros(k).index_add_(0, idx, torch.ones_like(v))
        moved = torch.where(counts > 0, sums / counts.clamp_min(1), centroids)
        if torch.allclose(moved, centroids):
            break
        centroids = moved
    centroids, _ = centroids.sort()
    idx = torch.bucketize(v, (centroids[1:] + centroids[:-1]) / 2)
    return centroids, idx


def pack4(idx: torch.Tensor) -> torch.Tensor:
    flat = idx.reshape(-1).to(torch.uint8)
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    return flat[0::2] | (flat[1::2] << 4)


def unpack4(packed: torch.Tensor, numel: int) -> torch.Tensor:
    return torch.from_numpy(weights.unpack4(packed.numpy(), numel))


def encode(tensor: torch.Tensor, codec: str) -> dict[str, torch.Tensor | str | list[int]]:
    t = tensor.detach().float().cpu()
    shape = list(t.shape)
    if codec == "fp32":
        return {"codec": "fp32", "shape": shape, "data": t.clone()}
    if codec == "int8":
        rows = t.reshape(t.shape[0], -1)
        scale = rows.abs().amax(dim=1).clamp_min(1e-12) / 127.0  # (rows,)
        q = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8)
        return {"codec": "int8", "shape": shape, "data": q, "scale": scale}
    if codec == "kmeans4":
        codebook, idx = kmeans_1d(t)
        return {"codec": "kmeans4", "shape": shape, "data": pack4(idx), "codebook": codebook}
    raise ValueError(f"unknown codec {codec!r}")


def decode(entry: dict) -> torch.Tensor:
    """Back to a float tensor (``weights.decode_array``, the one decoder, shared with the torch-free runtime)."""
    arrays = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in entry.items()}
    return torch.from_numpy(np.ascontiguousarray(decode_array(arrays)))


def encoded_bytes(entry: dict) -> int:
    return sum(v.numel() * v.element_size() for v in entry.values() if isinstance(v, torch.Tensor))


def compress_state_dict(state: dict[str, torch.Tensor], codec: str) -> dict[str, dict]:
    return {name: encode(t, codec_for(name, t, codec)) for name, t in state.items()}


def decompress_state_dict(tensors: dict[str, dict]) -> dict[str, torch.Tensor]:
    return {name: decode(entry) for name, entry in tensors.items()}
