"""The training run's configuration: one frozen dataclass per concern, built from CLI args and JSON.

Precedence is defaults < ``--config FILE`` < flags given on the command line, so a config file can
describe a recipe and a flag can still change one knob of it. The resolved config is written into
the run folder and into every checkpoint, so a run can always say how it was made.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..config import NetworkConfig, to_dict

# Every switchable kind of augmentation, as its AugmentConfig field (and --KIND / --KIND-prob flag).
AUGMENTATIONS = ("speed", "specaugment", "noise", "gain", "reverb", "vtlp", "eq", "babble", "lossy")


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly augmentation; each kind is switchable and applied with its own probability."""

    speed: bool = True  # speed perturbation (Ko et al. 2015): the cheapest large gain for small corpora
    speed_prob: float = 0.5  # half the time at 1.0x keeps the natural rate well represented
    speed_factors: tuple[float, ...] = (0.9, 1.1)  # Ko et al.'s factors; one is drawn when perturbing
    specaugment: bool = True  # SpecAugment (Park et al. 2019) masks on log-mel features
    specaugment_prob: float = 0.8  # leave some batches clean so the model also sees whole spectra
    freq_masks: int = 2  # LibriSpeech "LD" policy: two frequency masks...
    freq_mask_width: int = 15  # ...of up to 15 of 80 bins (the paper's F=27 is for 80 bins at larger models)
    time_masks: int = 2  # short utterances dominate our data: two masks...
    time_mask_frames: int = 40  # ...of up to 0.4 s...
    time_mask_max_fraction: float = 0.2  # ...but never more than 20% of an utterance each
    noise: bool = True  # additive coloured Gaussian noise: no noise corpus ships with the project
    noise_prob: float = 0.3
    noise_snr_db: tuple[float, float] = (10.0, 35.0)  # from noisy room to near clean
    gain: bool = True  # loudness changes: microphones and speakers vary by tens of dB
    gain_prob: float = 0.5
    gain_db: tuple[float, float] = (-15.0, 6.0)  # mostly quieter: clipping limits how much louder helps
    # Reverberation with synthetic room responses. Off by default so that the runs behind the shipped
    # model resume and replay exactly; switch it on (--reverb) for far-field microphones.
    reverb: bool = False
    reverb_prob: float = 0.3
    reverb_rt60: tuple[float, float] = (0.2, 0.8)  # seconds: furnished living room to bare hall
    reverb_drr_db: tuple[float, float] = (0.0, 12.0)  # direct-to-reverberant ratio: 3 m away to close by
    # A folder of measured room impulse responses (*.wav); when given, half the reverberated utterances
    # use one of them instead of a synthetic response (scripts/fetch_rirs.sh extracts four real rooms).
    reverb_rirs: str | None = None
    # Issue 11's speaker and channel levers, all off by default for the same reason as reverb.
    # Vocal-tract-length perturbation (Jaitly & Hinton 2013): the filterbank's frequency axis is warped
    # by a factor per utterance, Kaldi's piecewise-linear VTLN warp, as if the vocal tract were longer
    # or shorter. Applied in the features, so it costs nothing on the waveform.
    vtlp: bool = False
    vtlp_prob: float = 0.5
    vtlp_range: tuple[float, float] = (0.9, 1.1)  # typical adult speakers span about +-10%
    # Microphone colouring: a smooth random gain curve over frequency (cheap microphones, laptop and
    # phone responses), up to eq_db of boost or cut at its control points.
    eq: bool = False
    eq_prob: float = 0.5
    eq_db: float = 8.0
    # Other talkers: 1-3 other training utterances mixed in below the speech, as babble.
    babble: bool = False
    babble_prob: float = 0.2
    babble_snr_db: tuple[float, float] = (8.0, 25.0)  # babble must stay below the talker to be noise
    babble_talkers: tuple[int, int] = (1, 3)
    # A lossy round trip like the real sets' (Opus at 16-48 kbit/s, MP3, 8 kHz telephone band with mu-law).
    lossy: bool = False
    lossy_prob: float = 0.3
    lossy_kbps: tuple[int, int] = (16, 48)

    def __post_init__(self) -> None:
        for name in ("speed_prob", "specaugment_prob", "noise_prob", "gain_prob", "reverb_prob",
                     "time_mask_max_fraction", "vtlp_prob", "eq_prob", "babble_prob", "lossy_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if any(f <= 0 for f in self.speed_factors):
            raise ValueError("speed factors must be positive")
        if not 0.0 < self.reverb_rt60[0] <= self.reverb_rt60[1]:
            raise ValueError("reverb_rt60 must be a positive (low, high) range in seconds")
        if not 0.5 <= self.vtlp_range[0] <= self.vtlp_range[1] <= 2.0:
            raise ValueError("vtlp_range must be a (low, high) warp factor range within [0.5, 2]")
        if not 1 <= self.babble_talkers[0] <= self.babble_talkers[1]:
            raise ValueError("babble_talkers must be a (low, high) range of at least one talker")
        if not 6 <= self.lossy_kbps[0] <= self.lossy_kbps[1] <= 320:
            raise ValueError("lossy_kbps must be a (low, high) bitrate range within 6-320 kbit/s")

    def disabled(self) -> AugmentConfig:
        return AugmentConfig(**{name: False for name in AUGMENTATIONS})


PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    train: tuple[str, ...]  # manifests, "a.jsonl" or "a.jsonl:WEIGHT" (oversampling)
    out: str  # the run folder: checkpoints, metrics.jsonl, model.esm
    valid: tuple[str, ...] = ()
    network: NetworkConfig = field(default_factory=NetworkConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    max_steps: int | None = None  # either max_steps or epochs; max_steps wins when both are set
    epochs: int | None = None
    max_batch_seconds: float = 160.0  # padded audio per batch: fits 2 cores' caches, ~16 utterances of 10 s
    max_batch_size: int = 64  # caps batches of very short clips (digits), whose padding is cheap anyway
    max_utterance_seconds: float = 20.0  # longer ones are skipped: rare in our sets, and they dominate padding
    lr: float = 1.5e-3  # peak learning rate; AdamW on a small GRU tolerates this after warm-up
    min_lr_ratio: float = 0.05  # cosine decay ends at 5% of the peak rather than zero
    warmup_steps: int = 300  # recurrent nets with CTC diverge easily in the first hundred steps
    weight_decay: float = 0.01  # AdamW's default scale; the shared block is small enough not to need more
    grad_clip: float = 5.0  # RNN gradients spike on long utterances; clipping keeps one batch from undoing many
    seed: int = 0
    threads: int = 2  # torch intra-op threads in the training process
    # "bf16": the network's forward (and so its backward) under bfloat16 autocast, the CTC loss and the
    # weights in fp32. ~1.4x faster per step on CPUs with AVX512-BF16 or AMX; "fp32" elsewhere.
    precision: str = "fp32"
    workers: int = 1  # data-loading processes; one keeps decoding off the training cores' critical path
    cache: bool = False  # keep decoded audio in memory across epochs (int16: 115 MB per hour)
    log_every: int = 10  # steps between metrics.jsonl rows
    valid_every: int = 500  # steps between validations (and one at the end)
    valid_limit: int | None = None  # only the first N utterances of each --valid manifest
    checkpoint_every: int = 500  # steps between resumable checkpoints
    keep_checkpoints: int = 3  # older ones are deleted; one survivor is enough to resume after a bad write
    stats_utterances: int = 200  # utterances sampled to estimate feature mean/std
    codec: str = "kmeans4"  # codec of the exported RUN_DIR/model.esm
    codebook_steps: int = 0  # trained quantisation: steps fine-tuning the kmeans4 codebooks after clustering
    progress: bool = True  # the tqdm bar (rank 0 only)
    init: str | None = None  # fine-tune: start from this model file's weights, size and feature statistics

    def __post_init__(self) -> None:
        if not self.train:
            raise ValueError("at least one --train manifest is needed")
        if self.max_steps is None and self.epochs is None:
            raise ValueError("give --max-steps or --epochs")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError("epochs must be at least 1")
        if self.max_utterance_seconds > self.max_batch_seconds:
            raise ValueError("max_utterance_seconds cannot exceed max_batch_seconds")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        for name in ("log_every", "valid_every", "checkpoint_every", "keep_checkpoints", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        net = NetworkConfig.from_dict(data.pop("network", {}))
        aug = _build(AugmentConfig, data.pop("augment", {}))
        return _build(cls, {**data, "network": net, "augment": aug})


def _build(cls, data: dict[str, Any]):
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


# CLI flag dest -> (section, field). Sections: "" = TrainConfig, "network", "augment".
_NETWORK_FLAGS = ("hidden", "depth", "shared", "cell", "conv_channels", "dropout")
_AUGMENT_FLAGS = tuple(f.name for f in fields(AugmentConfig))
_TRAIN_FLAGS = tuple(f.name for f in fields(TrainConfig) if f.name not in ("network", "augment"))


class _Group:
    """An argument group whose flags default to SUPPRESS: only flags actually given reach the namespace.

    That is what lets a --config file fill the gaps and still lose to the command line; each
    help text states the real default itself.
    """

    def __init__(self, group) -> None:
        self.group = group

    def add_argument(self, *names: str, **kwargs: Any):
        kwargs["default"] = argparse.SUPPRESS
        return self.group.add_argument(*names, **kwargs)

    def add_mutually_exclusive_group(self) -> _Group:
        return _Group(self.group.add_mutually_exclusive_group())


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Every TrainConfig knob as a flag (config_from_args turns them into a TrainConfig)."""
    d, n, a = TrainConfig.__dataclass_fields__, NetworkConfig(), AugmentConfig()

    def default(name: str) -> Any:
        return d[name].default

    g = _Group(parser.add_argument_group("data"))
    g.add_argument("--train", action="append", metavar="MANIFEST[:WEIGHT]",
                   help="training manifest, repeatable; WEIGHT oversamples it (default 1)")
    g.add_argument("--valid", action="append", metavar="MANIFEST", help="validation manifest, repeatable")
    g.add_argument("--out", help="run folder (checkpoints, metrics.jsonl, model.esm)")
    g.add_argument("--config", help="JSON file of settings (same names as the flags, with underscores; "
                   "'network' and 'augment' may be nested objects); flags given here win")
    g.add_argument("--init", metavar="MODEL",
                   help="fine-tune from this model file (its network size and feature statistics are kept; "
                   "the model-size flags are ignored)")
    g.add_argument("--cache", action=argparse.BooleanOptionalAction,
                   help=f"keep decoded audio in memory across epochs (default {default('cache')})")
    g.add_argument("--workers", type=int, help=f"data-loading processes (default {default('workers')})")
    for name, typ, text in (
        ("max_batch_seconds", float, "padded audio seconds per batch"),
        ("max_batch_size", int, "utterances per batch at most"),
        ("max_utterance_seconds", float, "longer utterances are skipped"),
        ("valid_limit", int, "only the first N utterances of each --valid manifest"),
        ("stats_utterances", int, "utterances sampled for the feature mean/std"),
    ):
        g.add_argument(_flag(name), type=typ, help=f"{text} (default {default(name)})")

    g = _Group(parser.add_argument_group("schedule"))
    length = g.add_mutually_exclusive_group()
    length.add_argument("--max-steps", type=int, help="optimizer steps to run")
    length.add_argument("--epochs", type=int, help="passes over the (weighted) training data")
    for name, typ, text in (
        ("lr", float, "peak learning rate (AdamW)"),
        ("min_lr_ratio", float, "the cosine decay ends at this fraction of --lr"),
        ("warmup_steps", int, "linear warm-up steps"),
        ("weight_decay", float, "AdamW weight decay"),
        ("grad_clip", float, "gradient norm clipping"),
        ("seed", int, "seed of initialisation, batch order and augmentation"),
        ("threads", int, "torch CPU threads for training"),
        ("log_every", int, "steps between metrics.jsonl rows"),
        ("valid_every", int, "steps between validations"),
        ("checkpoint_every", int, "steps between resumable checkpoints"),
        ("keep_checkpoints", int, "checkpoints kept"),
        ("codebook_steps", int, "steps fine-tuning the kmeans4 codebooks after clustering (0: off)"),
    ):
        g.add_argument(_flag(name), type=typ, help=f"{text} (default {default(name)})")
    g.add_argument("--codec", choices=("fp32", "int8", "kmeans4"), help=f"export codec (default {default('codec')})")
    g.add_argument("--precision", choices=PRECISIONS,
                   help=f"arithmetic of the forward and backward passes (default {default('precision')})")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, help="show a progress bar")

    g = _Group(parser.add_argument_group("model size"))
    g.add_argument("--hidden", type=int, help=f"recurrent width (default {n.hidden})")
    g.add_argument("--depth", type=int, help=f"depth steps of the recurrent block (default {n.depth})")
    g.add_argument("--shared", action=argparse.BooleanOptionalAction,
                   help="one block reused at every depth step; --no-shared builds distinct blocks "
                   f"(default {n.shared})")
    g.add_argument("--cell", choices=("gru", "lstm"), help=f"recurrent cell (default {n.cell})")
    g.add_argument("--conv-channels", type=int, help=f"front-end convolution channels (default {n.conv_channels})")
    g.add_argument("--dropout", type=float, help=f"dropout between depth steps (default {n.dropout})")

    g = _Group(parser.add_argument_group("augmentation"))
    g.add_argument("--reverb-rirs", metavar="DIR",
                   help="measured room impulse responses (*.wav) for --reverb, used for half of it (default: "
                   "synthetic rooms only)")
    for name in AUGMENTATIONS:
        g.add_argument("--" + name, action=argparse.BooleanOptionalAction,
                       help=f"switch {name} augmentation (default {getattr(a, name)})")
        g.add_argument(f"--{name}-prob", type=float,
                       help=f"probability of {name} per utterance (default {getattr(a, name + '_prob')})")
    g.add_argument("--no-augment", action="store_true", help="switch every augmentation off")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then the --config JSON file, then the flags that were given."""
    data: dict[str, Any] = {"network": {}, "augment": {}}
    if getattr(args, "config", None):
        try:
            loaded = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot read --config {args.config}: {e}") from e
        if not isinstance(loaded, dict):
            raise ValueError(f"--config {args.config}: expected a JSON object")
        for key, value in loaded.items():
            if key in ("network", "augment"):
                data[key].update(value)
            else:
                _place(data, key, value)
    for key, value in vars(args).items():
        if key in ("config", "command", "log_level", "resume", "stop_at_step", "no_augment"):
            continue
        _place(data, key, value)
    if getattr(args, "no_augment", False):
        data["augment"].update({name: False for name in AUGMENTATIONS})
    for key in ("train", "valid"):
        if key in data and isinstance(data[key], str):
            data[key] = [data[key]]
    if not data.get("out"):
        raise ValueError("--out RUN_DIR is required")
    if not data.get("train"):
        raise ValueError("at least one --train manifest is required")
    if data.get("max_steps") is not None and data.get("epochs") is not None:
        data.pop("epochs")  # a flag --max-steps overrides a config file's epochs (and the reverse is rare)
    data["network"] = {**to_dict(NetworkConfig()), **data["network"]}
    return TrainConfig.from_dict(data)


def _place(data: dict[str, Any], key: str, value: Any) -> None:
    if key in _NETWORK_FLAGS:
        data["network"][key] = value
    elif key in _AUGMENT_FLAGS:
        data["augment"][key] = value
    elif key in _TRAIN_FLAGS:
        data[key] = value
    else:
        raise ValueError(f"unknown setting {key!r}")
