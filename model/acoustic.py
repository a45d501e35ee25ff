"""The network's streaming step behind one interface, on torch or on ONNX Runtime.

Recognition (``recognize.py``) sees NumPy in and NumPy out: ``step`` takes (t, F) feature frames and
the stream's ``StreamState`` and returns (t', V) log-probabilities and the next state. ``TorchAcoustic``
runs ``Network.step``; ``OnnxAcoustic`` runs the exported graph of the same step (``onnx_export.py``)
with the state as NumPy arrays. Both are shared by every stream and hold no stream's state.
Neither engine library is imported by this module until an engine is made.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import numpy as np

from .state import StreamState

TORCH, ONNXRUNTIME = "torch", "onnxruntime"


def import_onnxruntime() -> Any:
    """``onnxruntime``, imported with its telemetry off, or RuntimeError saying what to install.

    ONNX Runtime 1.32's Linux wheels collect usage telemetry unless ORT_DISABLE_TELEMETRY is set before
    the import: at import they write a device id (``.ses``) into TMPDIR, and they carry an uploader
    with an offline store. A transcription service on someone's device sends nothing anywhere, so it is
    set here (an operator's own value wins).
    """
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    try:
        import onnxruntime
    except ImportError as e:
        raise RuntimeError("the onnxruntime engine needs ONNX Runtime: pip install onnxruntime "
                           "(or pip install edgescribe, whose serving runtime it is)") from e
    return onnxruntime


class Acoustic(Protocol):
    engine: str  # "torch" or "onnxruntime": what /healthz and the logs report
    feat_mean: np.ndarray  # (F,) the features' mean: what pads the end of a stream (zero once normalised)

    def initial_state(self) -> StreamState: ...

    def step(self, features: np.ndarray, state: StreamState) -> tuple[np.ndarray, StreamState]:
        """(t, F) new feature frames -> (t', V) log-probs of the output frames now complete, next state."""
        ...


class TorchAcoustic:
    """``Network.step`` (or a subclass's) on one stream, NumPy at the edges."""

    engine = TORCH

    def __init__(self, network: Any) -> None:
        import torch

        self._torch = torch
        self.network = network.eval()
        self.feat_mean = network.feat_mean.detach().cpu().numpy()

    def initial_state(self) -> StreamState:
        return self.network.initial_state(1)

    def step(self, features: np.ndarray, state: StreamState) -> tuple[np.ndarray, StreamState]:
        chunk = self._torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))[None]  # (1, t, F)
        with self._torch.inference_mode():
            out, state = self.network.step(chunk, state)
        return out[0].numpy(), state


class OnnxAcoustic:
    """The exported streaming step on ONNX Runtime; its state is NumPy. Sessions are thread-safe,
    so one serves every stream."""

    engine = ONNXRUNTIME

    def __init__(self, graph: bytes, inputs: list[str], outputs: list[str], feat_mean: np.ndarray,
                 depth: int, hidden: int, lstm: bool, threads: int = 1) -> None:
        ort = import_onnxruntime()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        # The same reason as torch's thread count of 1: spinning workers fight other work on a small CPU.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3  # warnings about unused initialisers are not the operator's business
        self.session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.feat_mean = np.asarray(feat_mean, dtype=np.float32)
        self.shape = (depth, 1, hidden)
        self.lstm = lstm
        self.threads = max(1, threads)  # fixed for the session's life, unlike torch's global setting

    def initial_state(self) -> StreamState:
        zeros = np.zeros(self.shape, np.float32)
        return StreamState(np.zeros((1, 0, self.feat_mean.size), np.float32), zeros,
                           zeros.copy() if self.lstm else None)

    def step(self, features: np.ndarray, state: StreamState) -> tuple[np.ndarray, StreamState]:
        values = [np.ascontiguousarray(features, dtype=np.float32)[None], state.pending, state.hidden]
        if self.lstm:
            values.append(state.cell)
        log_probs, pending, hidden, *cell = self.session.run(self.outputs, dict(zip(self.inputs, values, strict=True)))
        n = log_probs.shape[1]
        return log_probs[0], StreamState(pending, hidden, cell[0] if cell else None, state.frames_out + n)
