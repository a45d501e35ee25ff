"""Frozen configuration objects, one per concern, passed whole.

Every default carries the reason it was chosen. A checkpoint stores these as plain dicts and
rebuilds them with ``from_dict`` so that a model never guesses its own dimensions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**kwargs)


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = 16000  # every model and peer in the field works at 16 kHz mono
    num_mel_bins: int = 80  # the Kaldi/icefall/whisper standard
    frame_length_ms: float = 25.0  # 400 samples: long enough for two pitch periods of a low voice
    frame_shift_ms: float = 10.0  # 160 samples: 100 frames per second
    preemphasis: float = 0.97  # Kaldi's default
    low_freq: float = 20.0  # Kaldi's default; below this is mains hum and DC
    high_freq: float = 0.0  # <= 0 means Nyquist + high_freq, as in Kaldi
    energy_floor: float = 1e-10  # log(0) guard, applied as a floor on mel energies

    @property
    def window_size(self) -> int:
        return int(self.sample_rate * self.frame_length_ms / 1000)

    @property
    def window_shift(self) -> int:
        return int(self.sample_rate * self.frame_shift_ms / 1000)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class NetworkConfig:
    num_mel_bins: int = 80
    conv_channels: int = 32  # two 3x3 stride-2 convolutions: 4x subsampling to 40 ms frames
    hidden: int = 256  # width of the recurrent block and the residual stream
    depth: int = 4  # how many times the (shared) recurrent block is applied
    shared: bool = True  # False builds `depth` distinct blocks of the same size, for ablations
    cell: str = "gru"  # "gru" or "lstm"; GRU has 3/4 of the LSTM's weights at equal width
    vocab_size: int = 29  # blank + space + apostrophe + a-z
    dropout: float = 0.1  # between depth steps, training only

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class DecodingConfig:
    beam_size: int = 8  # past 8 a character CTC model gains little without a language model
    prune_log_prob: float = -8.0  # per-frame: skip symbols far below the best one
    hotword_bonus: float = 2.0  # log-score added per character that extends a hotword
    lm_weight: float = 0.5  # weight of an external word LM, when one is given
    word_bonus: float = 1.0  # insertion bonus per word, balancing the LM's length penalty
    # Seconds of silence run through the network after the end of the audio (uncounted), so a model that emits
    # a word's last letters late gets them out: the shipped one lost them where the audio stops right at the
    # word ("eight" -> "eigh" on FSDD). 0 for a model that does not ask for it (a tiny model overfit on clips
    # that end at their last word loses that word's last letter to it).
    end_padding_seconds: float = 0.0
    hotwords: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecodingConfig:
        return _from_dict(cls, data)


# What may run the network when serving (``runtime.load_serving_model``): "auto" takes ONNX Runtime
# where the model file has an ONNX graph and onnxruntime is installed, torch otherwise.
ENGINES = ("auto", "onnxruntime", "torch")


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
