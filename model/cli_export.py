"""`edgescribe export CHECKPOINT --codec kmeans4 --out FILE`: re-encode a model and report the cost.

CHECKPOINT is a model file (.esm) or a training checkpoint (runs/r1/checkpoints/step-N.ckpt), whose
weights are taken with how they were trained (steps, manifests, seed) as the model's metadata.

The written file carries the network's streaming step as an ONNX graph too (``--onnx``, see
``model/onnx_export.py``), so it serves on ONNX Runtime without torch. ``--codec keep`` leaves a
model file's encoded weights as they are (e.g. to add the graph to a shipped model, bit for bit);
``--format onnx`` writes the bare graph for other runtimes instead of a model file.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch

from .checkpoint import (
    CheckpointError,
    ModelBundle,
    bundle_from_payload,
    load_model,
    model_payload,
    read_container,
    write_container,
)
from .compress import CODECS
from .onnx_export import QUANTIZATIONS

KEEP = "keep"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="model file, or training checkpoint (step-N.ckpt), to encode")
    parser.add_argument("--codec", choices=(*CODECS, KEEP), default="kmeans4",
                        help="weight codec; 'keep': a model file's weights as they are")
    parser.add_argument("--onnx", choices=(*QUANTIZATIONS, "off"), default="none",
                        help="embed the streaming step as an ONNX graph (for the onnxruntime engine) with this "
                        "quantisation of its matrix products; 'off': no graph (torch engine only)")
    parser.add_argument("--format", choices=("esm", "onnx"), default="esm",
                        help="esm: a model file; onnx: only the bare ONNX graph of the step")
    parser.add_argument("--out", required=True, help="where to write the exported model")
    g = parser.add_argument_group("decoding defaults stored in the file (default: keep the source's)")
    g.add_argument("--beam-size", type=int, default=None, help="CTC beam width; 1 = greedy")
    g.add_argument("--lm-weight", type=float, default=None, help="weight of the word LM, as tuned on a dev set")
    g.add_argument("--word-bonus", type=float, default=None, help="score per word with an LM, as tuned")
    g.add_argument("--end-padding", dest="end_padding_seconds", type=float, default=None, metavar="SECONDS",
                   help="seconds of silence run through the network after the audio ends, as tuned")


def load_source(path: str) -> ModelBundle:
    """A model file, or the model inside a training checkpoint with its training as metadata."""
    return _load_source(path)[0]


def _load_source(path: str) -> tuple[ModelBundle, dict | None]:
    """The bundle, and a model file's encoded tensors (None for a training checkpoint)."""
    from .training.checkpoints import FORMAT as TRAIN_STATE

    payload = read_container(path)
    if payload.get("format") != TRAIN_STATE:
        return bundle_from_payload(payload, path), payload.get("tensors")
    try:
        bundle = bundle_from_payload(payload["model"], path)
        config = payload["config"]
        bundle.metadata = {**bundle.metadata, "trained_steps": payload["step"],
                           "train_manifests": list(config["train"]), "seed": config["seed"]}
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: inconsistent training checkpoint: {e}") from e
    return bundle, None


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
    onnx = None if args.onnx == "off" else args.onnx
    try:
        ref, encoded = _load_source(args.checkpoint)
        if args.codec == KEEP and encoded is None:
            raise CheckpointError(f"{args.checkpoint}: --codec keep needs a model file, not a training checkpoint")
        changes = {k: v for k in ("beam_size", "lm_weight", "word_bonus", "end_padding_seconds")
                   if (v := getattr(args, k)) is not None}
        ref.decoding = dataclasses.replace(ref.decoding, **changes)
        codec = "fp32" if args.codec == KEEP else args.codec
        graph = onnx if args.format == "esm" else (onnx or "none")  # a bare graph is always made
        payload = model_payload(ref, codec, graph, tensors=encoded if args.codec == KEEP else None)
        if args.format == "onnx":
            import lzma

            from .checkpoint import atomic_write_bytes

            graph = lzma.decompress(payload["onnx"]["graph"])
            atomic_write_bytes(args.out, graph)
            print(f"wrote {args.out}: the streaming step as ONNX (opset {payload['onnx']['opset']}, "
                  f"{payload['onnx']['quantization']}), {len(graph)} bytes; inputs {payload['onnx']['inputs']}, "
                  f"outputs {payload['onnx']['outputs']}")
            return 0
        size = write_container(args.out, payload)
        exported = load_model(args.out)
    except (CheckpointError, OSError, RuntimeError) as e:
        print(f"edgescribe: {e}", file=sys.stderr)
        return 1
    diff = max_output_difference(ref, exported)
    params = sum(p.numel() for p in ref.network.parameters())
    graph = "no ONNX graph" if onnx is None else f"ONNX graph ({onnx})"
    print(f"wrote {args.out}: codec {args.codec}, {graph}, {size} bytes ({size / 1e6:.3f} MB), {params} parameters, "
          f"max log-prob difference vs source {diff:.4g}; decoding {exported.decoding}")
    return 0
