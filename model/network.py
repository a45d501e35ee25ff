"""The acoustic model: a strided convolutional front end and one recurrent block reused in depth.

Shapes: B batch, T input frames (10 ms), T' = output frames (40 ms), F mel bins, H hidden, V vocab.

Look-ahead: the front end uses two 3x3 convolutions with stride 2 and no time padding, so output
frame t sees input frames 4t..4t+6: 30 ms of input beyond its own 40 ms block (plus the 25 ms
analysis window). Everything after it is causal, which is why ``step`` reproduces ``forward``.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import NetworkConfig
from .state import RECEPTIVE_FIELD, SUBSAMPLING, StreamState

__all__ = ["RECEPTIVE_FIELD", "SUBSAMPLING", "Network", "output_lengths"]


def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
    return torch.where(lengths >= RECEPTIVE_FIELD, (lengths - RECEPTIVE_FIELD) // SUBSAMPLING + 1, 0)


class ConvFrontEnd(nn.Module):
    """(B, T, F) -> (B, T', H). Convolutions share their weights across time and frequency."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        c = cfg.conv_channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, c, kernel_size=3, stride=2, padding=(0, 1)),
            nn.ReLU(),
            nn.Conv2d(c, c, kernel_size=3, stride=2, padding=(0, 1)),
            nn.ReLU(),
        )
        freq = (cfg.num_mel_bins + 1) // 2
        freq = (freq + 1) // 2
        self.proj = nn.Linear(c * freq, cfg.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = x.shape
        x = x.permute(0, 2, 1, 3).reshape(b, t, c * f)  # (B, T', C*F')
        return self.proj(x)


class Network(nn.Module):
    """forward(features, lengths) for training; step(chunk, state) for streaming. No decoding here."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        if cfg.cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', not {cfg.cell!r}")
        if cfg.depth < 1:
            raise ValueError("depth must be at least 1")
        self.cfg = cfg
        # Per-model feature normalisation, set from training data statistics and saved with the weights.
        self.register_buffer("feat_mean", torch.zeros(cfg.num_mel_bins))
        self.register_buffer("feat_std", torch.ones(cfg.num_mel_bins))
        self.front = ConvFrontEnd(cfg)
        rnn = nn.GRU if cfg.cell == "gru" else nn.LSTM
        n_blocks = 1 if cfg.shared else cfg.depth
        self.blocks = nn.ModuleList(rnn(cfg.hidden, cfg.hidden, batch_first=True) for _ in range(n_blocks))
        # Cheap per-step parameters let the one shared block tell its depth steps apart.
        self.step_norms = nn.ModuleList(nn.LayerNorm(cfg.hidden) for _ in range(cfg.depth))
        self.step_embed = nn.Parameter(torch.zeros(cfg.depth, cfg.hidden))
        self.dropout = nn.Dropout(cfg.dropout)
        self.out_norm = nn.LayerNorm(cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.vocab_size)

    def block(self, i: int) -> nn.Module:
        return self.blocks[0 if self.cfg.shared else i]

    def _encode(
        self, x: torch.Tensor, hidden: torch.Tensor | None, cell: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(B, T', H) -> log-probs (B, T', V) and the new per-step recurrent states."""
        new_h, new_c = [], []
        for i in range(self.cfg.depth):
            y = self.step_norms[i](x) + self.step_embed[i]
            if self.cfg.cell == "gru":
                h0 = None if hidden is None else hidden[i : i + 1].contiguous()
                y, h = self.block(i)(y, h0)
            else:
                hc = None
                if hidden is not None and cell is not None:
                    hc = (hidden[i : i + 1].contiguous(), cell[i : i + 1].contiguous())
                y, (h, c) = self.block(i)(y, hc)
                new_c.append(c)
            new_h.append(h)
            x = x + self.dropout(y)
        logits = self.out(self.out_norm(x))
        cells = torch.cat(new_c) if new_c else None
        return logits.log_softmax(dim=-1), torch.cat(new_h), cells

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.feat_mean) / self.feat_std

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F) log-mels, (B,) lengths -> (B, T', V) log-probs, (B,) output lengths.

        Padding sits at the end and everything after the front end is causal, so padded frames
        never change the outputs of real ones.
        """
        out_lens = output_lengths(lengths)
        if features.shape[1] < RECEPTIVE_FIELD:
            empty = features.new_zeros(features.shape[0], 0, self.cfg.vocab_size)
            return empty, out_lens
        x = self.front(self.normalize(features))
        log_probs, _, _ = self._encode(x, None, None)
        return log_probs, out_lens

    def initial_state(self, batch_size: int = 1) -> StreamState:
        zeros = torch.zeros(self.cfg.depth, batch_size, self.cfg.hidden)
        return StreamState(
            pending=torch.zeros(batch_size, 0, self.cfg.num_mel_bins),
            hidden=zeros,
            cell=zeros.clone() if self.cfg.cell == "lstm" else None,
        )

    def step(self, chunk: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, StreamState]:
        """(B, t, F) new feature frames + state -> (B, t', V) log-probs for the frames now complete."""
        log_probs, rest, h, c = self.stream_step(chunk, state.pending, state.hidden, state.cell)
        return log_probs, StreamState(rest, h, c, state.frames_out + log_probs.shape[1])

    def stream_step(
        self, chunk: torch.Tensor, pending: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``step`` on plain tensors: (chunk, pending, hidden, cell) -> (log_probs, pending, hidden, cell).

        This is what ``model/onnx_export.py`` exports, so it has no Python branch on a shape: how many
        frames are complete (n_out, possibly 0) is computed with tensor ops, and the graph then holds for
        any chunk size. The buffer gets RECEPTIVE_FIELD padding frames so the convolutions always
        give at least one frame; only the first n_out are real (a frame sees only its own 7 inputs),
        and with n_out = 0 the recurrent state is passed through unchanged.
        """
        buf = torch.cat([pending, chunk], dim=1)  # (B, T, F)
        # A shape as a tensor, not a Python int, so the ONNX trace keeps it symbolic.
        total = torch._shape_as_tensor(buf)[1]
        n_out = torch.clamp(torch.div(total - RECEPTIVE_FIELD, SUBSAMPLING, rounding_mode="floor") + 1, min=0)
        x = self.normalize(buf)
        x = torch.cat([x, x.new_zeros(x.shape[0], RECEPTIVE_FIELD, x.shape[2])], dim=1)
        x = self.front(x)  # (B, >= max(n_out, 1), H)
        x = torch.index_select(x, 1, torch.arange(torch.clamp(n_out, min=1)))
        log_probs, h, c = self._encode(x, hidden, cell)
        emitted = n_out > 0
        h = torch.where(emitted, h, hidden)
        if c is not None:
            c = torch.where(emitted, c, cell)
        log_probs = torch.index_select(log_probs, 1, torch.arange(n_out))  # (B, n_out, V)
        rest = torch.index_select(buf, 1, torch.arange(n_out * SUBSAMPLING, total))
        return log_probs, rest, h, c
