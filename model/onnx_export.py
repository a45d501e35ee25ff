"""The network's streaming step as an ONNX graph, for serving on ONNX Runtime without torch.

The graph is ``Network.stream_step`` traced as it is (``torch.onnx.export``, the TorchScript exporter,
opset 17), with the stream's state as explicit inputs and outputs:

    inputs   chunk (B, t, F) new feature frames, pending (B, p, F), hidden (depth, B, H)[, cell]
    outputs  log_probs (B, n, V), pending_out (B, p', F), hidden_out (depth, B, H)[, cell_out]

Every length is dynamic (t and p may be 0), so chunked streaming through ONNX Runtime gives the
frames of the whole-utterance torch forward pass whatever the chunk size (``tests/test_onnx.py``).

A model file carries the graph beside its weights (``checkpoint.model_payload(..., onnx=True)``),
xz-compressed: its weights are the codec's decoded values, which compress well (kmeans4 leaves 16
distinct values per tensor). Exporting needs torch and the ``onnx`` package; serving needs neither.
"""

from __future__ import annotations

import io
import lzma
import warnings
from typing import Any

import torch
from torch import nn

from .container import ONNX_GRAPH_FORMAT, ONNX_GRAPH_VERSION
from .network import Network

OPSET = 17  # LayerNormalization is a single op from 17; every ONNX Runtime since 1.14 runs it
QUANTIZATIONS = ("none", "int8")


def io_names(network: Network) -> tuple[list[str], list[str]]:
    state = ["pending", "hidden"] + (["cell"] if network.cfg.cell == "lstm" else [])
    return ["chunk", *state], ["log_probs", *(f"{name}_out" for name in state)]


class _StepGraph(nn.Module):
    """``stream_step`` with the LSTM cell as an optional trailing argument, the form the exporter traces."""

    def __init__(self, network: Network) -> None:
        super().__init__()
        self.network = network

    def forward(self, chunk, pending, hidden, *cell):
        log_probs, rest, h, c = self.network.stream_step(chunk, pending, hidden, cell[0] if cell else None)
        return (log_probs, rest, h) if c is None else (log_probs, rest, h, c)


def export_step(network: Network, quantization: str = "none") -> bytes:
    """The serialised ONNX model of ``network``'s streaming step (fp32, or int8 matrix products)."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, not {quantization!r}")
    try:
        import onnx  # noqa: F401  (torch.onnx needs it to serialise)
    except ImportError as e:
        raise RuntimeError("exporting an ONNX graph needs the onnx package: pip install onnx "
                           "(or pip install 'edgescribe[train]')") from e
    network = network.eval()
    cfg = network.cfg
    inputs, outputs = io_names(network)
    state = network.initial_state(1)
    # Example inputs with non-zero lengths; every length is declared dynamic below.
    args = [torch.zeros(1, 11, cfg.num_mel_bins), torch.zeros(1, 3, cfg.num_mel_bins), state.hidden]
    if state.cell is not None:
        args.append(state.cell)
    axes: dict[str, dict[int, str]] = {"chunk": {0: "batch", 1: "chunk_frames"},
                                       "pending": {0: "batch", 1: "pending_frames_in"},
                                       "pending_out": {0: "batch", 1: "pending_frames"},
                                       "log_probs": {0: "batch", 1: "out_frames"}}
    for name in inputs[2:] + outputs[2:]:
        axes[name] = {1: "batch"}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The legacy exporter says it is legacy, and warns about GRU batch sizes we do declare dynamic.
        warnings.simplefilter("ignore")
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(_StepGraph(network), tuple(args), buf, dynamo=False, opset_version=OPSET,
                              input_names=inputs, output_names=outputs, dynamic_axes=axes, do_constant_folding=True)
    graph = buf.getvalue()
    if quantization == "int8":
        graph = _quantize_dynamic(graph)
    return graph


def _quantize_dynamic(graph: bytes) -> bytes:
    """ONNX Runtime's dynamic int8 quantisation of the matrix products (weights int8, activations per call)."""
    import tempfile
    from pathlib import Path

    from .acoustic import import_onnxruntime

    import_onnxruntime()  # with its telemetry off
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(graph)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        return dst.read_bytes()


def onnx_entry(network: Network, quantization: str = "none") -> dict[str, Any]:
    """What a model payload stores under ``"onnx"``: the compressed graph and how to call it."""
    inputs, outputs = io_names(network)
    return {
        "format": ONNX_GRAPH_FORMAT,
        "format_version": ONNX_GRAPH_VERSION,
        "opset": OPSET,
        "quantization": quantization,
        "compression": "xz",
        # A uint8 tensor, not bytes: protocol-2 pickles spell bytes as latin-1 text (up to 2x the size).
        "graph": torch.frombuffer(bytearray(lzma.compress(export_step(network, quantization), preset=9)),
                                  dtype=torch.uint8),
        "inputs": inputs,
        "outputs": outputs,
    }
