"""Trained quantisation (Deep Compression, Han et al. 2016, section 3): fine-tune kmeans4 codebooks.

After clustering, every weight of a compressed tensor is one of its 16 shared values. Training then
continues with the weights *defined* as ``codebook[index]``: autograd's gradient for a codebook
entry is the sum of the gradients of the weights that share it, which is exactly the paper's
centroid update. Indices and every uncompressed parameter stay fixed, so the result is written
as kmeans4 without clustering again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from ..checkpoint import ModelBundle, model_payload, write_container
from ..compress import codec_for, kmeans_1d, pack4
from .data import Batch

log = logging.getLogger(__name__)


class ClusteredNetwork(nn.Module):
    """Calls the network with each compressed weight replaced by ``codebook[index]``."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network.requires_grad_(False)
        self.codebooks = nn.ParameterDict()
        self.indices: dict[str, torch.Tensor] = {}
        self.keys: dict[str, str] = {}  # ParameterDict keys cannot contain dots
        for name, tensor in network.state_dict().items():
            if codec_for(name, tensor, "kmeans4") != "kmeans4":
                continue
            codebook, idx = kmeans_1d(tensor)
            key = name.replace(".", "__")
            self.codebooks[key] = nn.Parameter(codebook)
            self.indices[name] = idx.reshape(tensor.shape)
            self.keys[name] = key

    @property
    def feat_mean(self) -> torch.Tensor:
        return self.network.feat_mean

    def shared_weights(self) -> dict[str, torch.Tensor]:
        return {name: self.codebooks[key][self.indices[name]] for name, key in self.keys.items()}

    def forward(self, features: torch.Tensor, lengths: torch.Tensor):
        return functional_call(self.network, self.shared_weights(), (features, lengths))


@dataclass
class CompressedModel:
    bundle: ModelBundle  # its network holds codebook[index] weights
    clustered: ClusteredNetwork

    def save(self, path: str | os.PathLike) -> int:
        payload = model_payload(self.bundle, "fp32")
        for name, key in self.clustered.keys.items():
            idx = self.clustered.indices[name]
            payload["tensors"][name] = {
                "codec": "kmeans4", "shape": list(idx.shape), "data": pack4(idx),
                "codebook": self.clustered.codebooks[key].detach().float().clone(),
            }
        return write_container(path, payload)


def finetune_codebooks(
    bundle: ModelBundle,
    batches: Iterable[Batch],
    steps: int,
    loss_fn: Callable[[nn.Module, Batch], torch.Tensor],
    lr: float = 1e-4,
    grad_clip: float = 5.0,
) -> CompressedModel:
    """Cluster ``bundle``'s weights, then ``steps`` Adam steps on the codebooks alone.

    ``lr`` is small: a centroid moves every weight of its cluster at once.
    """
    clustered = ClusteredNetwork(bundle.network).train()
    optimizer = torch.optim.Adam(clustered.codebooks.parameters(), lr=lr)
    it: Iterator[Batch] = iter(batches)
    for step in range(steps):
        batch = next(it, None)
        if batch is None:
            it = iter(batches)
            batch = next(it)
        loss = loss_fn(clustered, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(clustered.codebooks.parameters(), grad_clip)
        optimizer.step()
        if step % 50 == 0:
            log.info("codebook fine-tuning step %d: loss %.3f", step, float(loss.detach()))
    clustered.eval()
    bundle.network.requires_grad_(True)
    with torch.no_grad():
        state = bundle.network.state_dict()
        state.update({k: v.detach() for k, v in clustered.shared_weights().items()})
        bundle.network.load_state_dict(state)
    return CompressedModel(bundle, clustered)
