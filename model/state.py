"""The streaming state of one or many streams, as plain data.

The network is shared by every stream; each stream owns one ``StreamState`` and passes it into
``Network.step`` and gets the next one back. Nothing about a stream lives on the module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Input frames one output frame needs: receptive field of two (kernel 3, stride 2) convolutions.
RECEPTIVE_FIELD = 7
SUBSAMPLING = 4  # input frames (10 ms) per output frame (40 ms)


@dataclass
class StreamState:
    """The arrays are torch tensors for the torch engine and NumPy arrays for ONNX Runtime."""

    pending: Any  # (B, n, F) feature frames the front end has not consumed yet (n < 7 after a step)
    hidden: Any  # (depth, B, H) recurrent state of each depth step
    cell: Any | None  # (depth, B, H) LSTM cell state; None for GRU
    frames_out: int = 0  # output frames emitted so far (40 ms each); gives word times from stream start

    @property
    def batch_size(self) -> int:
        return self.hidden.shape[1]


def stack_states(states: list[StreamState]) -> StreamState:
    """Batch streams that are at the same front-end phase (equal pending length) into one state."""
    import torch  # batching is the torch engine's; a plain import here keeps this module torch-free

    if not states:
        raise ValueError("no states to stack")
    if len({s.pending.shape[1] for s in states}) != 1:
        raise ValueError("streams with different pending frame counts cannot share a batch step")
    cells = [s.cell for s in states]
    return StreamState(
        pending=torch.cat([s.pending for s in states], dim=0),
        hidden=torch.cat([s.hidden for s in states], dim=1),
        cell=None if cells[0] is None else torch.cat(cells, dim=1),  # type: ignore[arg-type]
        frames_out=states[0].frames_out,
    )


def unstack_states(state: StreamState, frames_out: list[int]) -> list[StreamState]:
    """Inverse of ``stack_states``; ``frames_out`` restores each stream's own clock."""
    return [
        StreamState(
            pending=state.pending[i : i + 1],
            hidden=state.hidden[:, i : i + 1],
            cell=None if state.cell is None else state.cell[:, i : i + 1],
            frames_out=frames_out[i],
        )
        for i in range(state.batch_size)
    ]
