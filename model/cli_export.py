"""`edgescribe export CHECKPOINT --codec kmeans4 --out FILE`: re-encode a model and report the cost.

CHECKPOINT is a model file (.esm) or a training checkpoint (runs/r1/checkpoints/step-N.ckpt), whose
weights are taken with how they were trained (steps, manifests, seed) as the model's metadata.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch

from .checkpoint import CheckpointError, ModelBundle, bundle_from_payload, load_model, read_container, save_model
from .compress import CODECS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="model file, or training checkpoint (step-N.ckpt), to encode")
    parser.add_argument("--codec", choices=CODECS, default="kmeans4", help="weight codec")
    parser.add_argument("--out", required=True, help="where to write the exported model")
    g = parser.add_argument_group("decoding defaults stored in the file (default: keep the source's)")
    g.add_argument("--beam-size", type=int, default=None, help="CTC beam width; 1 = greedy")
    g.add_argument("--lm-weight", type=float, default=None, help="weight of the word LM, as tuned on a dev set")
    g.add_argument("--word-bonus", type=float, default=None, help="score per word with an LM, as tuned")


def load_source(path: str) -> ModelBundle:
    """A model file, or the model inside a training checkpoint with its training as metadata."""
    from .training.checkpoints import FORMAT as TRAIN_STATE

    payload = read_container(path)
    if payload.get("format") != TRAIN_STATE:
        return bundle_from_payload(payload, path)
    try:
        bundle = bundle_from_payload(payload["model"], path)
        config = payload["config"]
        bundle.metadata = {**bundle.metadata, "trained_steps": payload["step"],
                           "train_manifests": list(config["train"]), "seed": config["seed"]}
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: inconsistent training checkpoint: {e}") from e
    return bundle


def max_output_difference(reference, candidate, seconds: float = 4.0, seed: int = 0) -> float:
    """Largest log-prob difference between two models on a fixed pseudo-random feature input."""
    g = torch.Generator().manual_seed(seed)
    frames = int(seconds * 100)
    x = torch.randn(1, frames, reference.network.cfg.num_mel_bins, generator=g)
    x = x * reference.network.feat_std + reference.network.feat_mean  # typical feature scale
    lengths = torch.tensor([frames])
    with torch.inference_mode():
        a, _ = reference.network.eval()(x, lengths)
        b, _ = candidate.network.eval()(x, lengths)
    return float((a - b).abs().max())


def run(args: argparse.Namespace) -> int:
    try:
        ref = load_source(args.checkpoint)
        changes = {k: v for k in ("beam_size", "lm_weight", "word_bonus") if (v := getattr(args, k)) is not None}
        ref.decoding = dataclasses.replace(ref.decoding, **changes)
        size = save_model(ref, args.out, args.codec)
        exported = load_model(args.out)
    except (CheckpointError, OSError) as e:
        print(f"edgescribe: {e}", file=sys.stderr)
        return 1
    diff = max_output_difference(ref, exported)
    params = sum(p.numel() for p in ref.network.parameters())
    print(f"wrote {args.out}: codec {args.codec}, {size} bytes ({size / 1e6:.3f} MB), {params} parameters, "
          f"max log-prob difference vs source {diff:.4g}; decoding {exported.decoding}")
    return 0
