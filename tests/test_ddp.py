"""Two CPU processes train with DistributedDataParallel (gloo on loopback) and end with equal weights.

This is the `torchrun --nproc-per-node 2` path without torchrun: the environment variables
torchrun would set are set by hand in each spawned process.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from model.config import NetworkConfig
from model.training.config import TrainConfig

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, manifest: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(WORLD), GLOO_SOCKET_IFNAME="lo")
    from model.training.loop import train

    cfg = TrainConfig(
        train=(manifest,), out=out, network=NetworkConfig(conv_channels=4, hidden=32, depth=2),
        max_steps=6, max_batch_seconds=2.0, max_utterance_seconds=2.0, warmup_steps=2, threads=1, workers=0,
        log_every=1, checkpoint_every=3, progress=False, stats_utterances=6,
    )
    result = train(cfg, device="cpu")
    torch.save(result.network.state_dict(), Path(out) / f"rank{rank}.pt")


def test_two_ranks_end_with_identical_weights(fixtures_dir, tmp_path):
    out = tmp_path / "run"
    mp.spawn(_rank_main, args=(_free_port(), str(fixtures_dir / "tiny.jsonl"), str(out)), nprocs=WORLD, join=True)
    states = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for name in states[0]:
        assert torch.equal(states[0][name], states[1][name]), name
    # Rank 0 alone wrote the checkpoints and the exported model.
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000003.ckpt", "step-00000006.ckpt"]
    assert (out / "model.esm").exists()
    # The weights moved: the ranks trained, they did not merely agree on the initial ones.
    torch.manual_seed(0)
    from model.network import Network

    fresh = Network(NetworkConfig(conv_channels=4, hidden=32, depth=2)).state_dict()
    assert not torch.equal(fresh["out.weight"], states[0]["out.weight"])
