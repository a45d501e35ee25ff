"""The training loop: CTC on bucketed batches, AdamW with warm-up and cosine decay, resumable exactly.

What makes ``--resume`` reproduce an uninterrupted run bit for bit (same threads, same machine):
the batch order is a function of (seed, epoch) and the resumed epoch skips the batches already
seen; each utterance's augmentation is seeded from (seed, epoch, batch, position), not from a
worker's RNG; the DataLoader gets its own generator so it never draws from torch's global RNG,
which is saved (for dropout) with the weights, optimiser and scheduler in every checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..checkpoint import ModelBundle, bundle_from_payload, load_model, model_payload, save_model
from ..config import FeatureConfig
from ..ctc import greedy_decode
from ..network import RECEPTIVE_FIELD, Network
from ..tokens import Vocabulary
from . import distributed
from .batching import BatchPlan
from .checkpoints import CheckpointDir
from .config import TrainConfig
from .data import (
    SKIP_REASONS,
    Batch,
    Example,
    Skipped,
    SpeechDataset,
    collate,
    describe_skips,
    feature_stats,
    load_utterances,
)
from .metrics import ErrorRates, corpus_error_rates

log = logging.getLogger(__name__)

VALID_BATCH_FRAMES = 30000  # 300 s of 10 ms frames: no gradients in validation, so batches can be larger
_NO_TOKENS = torch.zeros(0, dtype=torch.long)
# ``Stream.finish`` (model/recognize.py) flushes a stream by zero-filling the last analysis window
# (``data.flush_padding``) and appending RECEPTIVE_FIELD - 1 frames of the feature mean. Training
# and validation append the same tail, so the output frames it yields are ones the model has seen
# (an untaught tail made an overfit model print "worldd"), and validation scores what
# `edgescribe transcribe` prints with greedy decoding.
STREAM_TAIL_FRAMES = RECEPTIVE_FIELD - 1


def add_stream_tail(features: torch.Tensor, lengths: torch.Tensor, fill: torch.Tensor):
    """(B, T, F) padded features -> (B, T + tail, F) with ``fill`` in the tail after each utterance."""
    b, t, f = features.shape
    out = torch.cat([features, features.new_zeros(b, STREAM_TAIL_FRAMES, f)], dim=1)
    pos = torch.arange(t + STREAM_TAIL_FRAMES, device=features.device)[None, :]  # (1, T + tail)
    start = lengths.to(features.device)[:, None]
    out[(pos >= start) & (pos < start + STREAM_TAIL_FRAMES)] = fill.to(out.dtype)
    return out, lengths + STREAM_TAIL_FRAMES


@dataclass(frozen=True)
class ValidSet:
    features: list[torch.Tensor]  # (T, F) each, un-augmented
    texts: list[str]  # normalised references
    seconds: float


@dataclass(frozen=True)
class ExportReport:
    fp32_path: Path
    fp32_bytes: int
    fp32_rates: ErrorRates | None
    path: Path
    codec: str
    bytes: int
    rates: ErrorRates | None


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    step: int
    network: Network  # the final (not necessarily best) weights, on the CPU
    export: ExportReport | None  # None on ranks other than 0, or when stopped early


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to the peak, then cosine decay to ``min_ratio`` of it at ``total`` steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def config_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Top-level keys whose values differ between a checkpoint's configuration and this run's, compared as
    JSON (a checkpoint keeps tuples where the configuration file has lists)."""
    a, b = json.loads(json.dumps(saved)), json.loads(json.dumps(current))
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def load_valid_set(specs: tuple[str, ...], vocab: Vocabulary, features: FeatureConfig, limit: int | None) -> ValidSet:
    items, skipped = load_utterances(specs, vocab, features, limit=limit)
    if skipped:
        log.warning("validation: %s", describe_skips(skipped))
    ds = SpeechDataset(items, features)
    feats, texts, seconds = [], [], 0.0
    for i in range(len(ds)):
        ex = ds[i]
        if isinstance(ex, Skipped):
            log.warning("validation: skipping %s (%s)", ex.path, SKIP_REASONS[ex.reason])
            continue
        feats.append(ex.features)
        texts.append(items[i].text)
        seconds += ex.seconds
    return ValidSet(feats, texts, seconds)


@torch.inference_mode()
def validate(network: Network, valid: ValidSet, vocab: Vocabulary, device: torch.device) -> ErrorRates:
    """Greedy-decoded WER/CER on the whole-utterance path (equal to streaming; see the network tests)."""
    was_training = network.training
    network.eval()
    order = sorted(range(len(valid.features)), key=lambda i: valid.features[i].shape[0])
    hyps: dict[int, str] = {}
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and valid.features[order[end]].shape[0] * (end + 1 - start) <= VALID_BATCH_FRAMES:
            end += 1
        chunk = order[start:end]
        batch = collate([Example(valid.features[i], _NO_TOKENS, 0.0) for i in chunk])
        feats, lens = add_stream_tail(batch.features.to(device), batch.feature_lengths.to(device), network.feat_mean)
        log_probs, out_lens = network(feats, lens)
        for row, i in enumerate(chunk):
            hyps[i] = greedy_decode(log_probs[row, : int(out_lens[row])].cpu(), vocab).text
        start = end
    network.train(was_training)
    return corpus_error_rates(valid.texts, [hyps[i] for i in range(len(valid.texts))])


def ctc_loss(network: torch.nn.Module, batch: Batch, device: torch.device, fill: torch.Tensor,
             precision: str = "fp32") -> torch.Tensor:
    """Mean over utterances of the summed CTC loss; an all-skipped batch gives a zero loss with gradients.

    ``precision="bf16"`` runs the network under bfloat16 autocast; the loss is always computed in fp32
    (CTC sums thousands of log-probabilities, which bfloat16's 8-bit mantissa would blur).
    """
    if batch.size == 0:
        # Every rank must take part in DDP's gradient all-reduce, so an empty batch still yields a graph.
        return sum(p.sum() * 0.0 for p in network.parameters())  # type: ignore[return-value]
    feats, lens = add_stream_tail(batch.features.to(device), batch.feature_lengths.to(device), fill)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        log_probs, out_lens = network(feats, lens)
    loss = F.ctc_loss(
        log_probs.float().transpose(0, 1),  # (T', B, V), as ctc_loss wants
        batch.targets.to(device), out_lens, batch.target_lengths.to(device),
        blank=0, reduction="sum", zero_infinity=True,
    )
    return loss / batch.size


class MetricsLog:
    """metrics.jsonl: one JSON object per line, appended and flushed as it happens (rank 0 only)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def truncate_after(self, step: int) -> None:
        """On resume, drop rows the killed run wrote after its last checkpoint: they are redone."""
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def write(self, **row: Any) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # loader workers share the machine with the training threads


def train(cfg: TrainConfig, resume: bool = False, stop_after: int | None = None,
          echo: Callable[[str], None] | None = None, device: str | None = None,
          checkpoint_at_stop: bool = False) -> TrainResult:
    """Run (or resume) a training run in ``cfg.out``.

    ``stop_after`` returns after that many steps as if the process had been killed: no final
    checkpoint, no export (tests use it to check that --resume reproduces an uninterrupted run).
    With ``checkpoint_at_stop`` it writes a checkpoint of that step first (`--stop-at-step`: a long
    run trained in chunks, each ending where the next ``--resume`` starts).
    ``echo`` receives the human-readable report lines (the CLI prints them; rank 0 only).
    ``device`` forces "cpu" or "cuda"; by default CUDA is used when present.
    """
    ctx = distributed.init_distributed(device)
    try:
        return _train(cfg, ctx, resume, stop_after, echo or (lambda _: None), checkpoint_at_stop)
    finally:
        distributed.cleanup(ctx)


def cpu_lacks_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True where the CPU's flags are readable (Linux) and list neither AVX512-BF16 nor AMX-BF16."""
    try:
        flags = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False  # not Linux, or not readable: no claim
    return "flags" in flags and not re.search(r"\b(avx512_bf16|amx_bf16)\b", flags)


def _train(cfg: TrainConfig, ctx: distributed.DistContext, resume: bool, stop_after: int | None,
           echo: Callable[[str], None], checkpoint_at_stop: bool = False) -> TrainResult:
    torch.set_num_threads(cfg.threads)
    run_dir = Path(cfg.out)
    say = echo if ctx.is_main else (lambda _: None)
    ckpts = CheckpointDir(run_dir, cfg.keep_checkpoints)
    found = ckpts.latest() if resume else None
    if not resume and ckpts.steps():
        raise ValueError(f"{run_dir} already holds checkpoints: pass --resume to continue, or choose a new --out")
    if resume and found is None:
        say(f"no usable checkpoint in {run_dir}: starting from scratch")
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n", encoding="utf-8")

    if cfg.precision == "bf16" and ctx.device.type == "cpu" and cpu_lacks_bf16():
        log.warning("--precision bf16 on a CPU without bfloat16 arithmetic (no avx512_bf16 or amx_bf16 in "
                    "/proc/cpuinfo): torch emulates it, and a step can take ten times as long as in fp32")
    vocab, features = Vocabulary(), FeatureConfig()
    items, manifest_skips = load_utterances(cfg.train, vocab, features, cfg.max_utterance_seconds)
    hours = sum(u.duration * u.weight for u in items) / 3600
    say(f"training data: {len(items)} utterances, {hours:.2f} h per epoch (weighted); "
        f"skipped when reading manifests: {describe_skips(manifest_skips)}")
    dataset = SpeechDataset(items, features, cfg.augment, cache=cfg.cache)
    valid = load_valid_set(cfg.valid, vocab, features, cfg.valid_limit) if cfg.valid and ctx.is_main else None

    torch.manual_seed(cfg.seed)
    bundle = ModelBundle.new(cfg.network, features, vocab)
    if found is None and cfg.init:
        bundle = load_model(cfg.init)
        if bundle.vocab.symbols != vocab.symbols or bundle.features != features:
            raise ValueError(f"{cfg.init}: its vocabulary or features differ from this trainer's; cannot fine-tune")
        bundle.metadata = {}
        say(f"fine-tuning {cfg.init} ({sum(p.numel() for p in bundle.network.parameters())} parameters)")
    step, epoch, batch_pos, best_wer = 0, 0, 0, math.inf
    epoch_skips: Counter = Counter()
    if found is not None:
        path, state = found
        changed = config_changes(state["config"], cfg.to_dict())
        if changed:
            log.warning("resuming %s with a configuration that differs from the checkpoint's: %s",
                        path, ", ".join(changed))
        bundle = bundle_from_payload(state["model"], str(path))
        step, epoch, batch_pos = state["step"], state["epoch"], state["batch_in_epoch"]
        best_wer = state["best_wer"]
        epoch_skips = Counter(state["epoch_skips"])
        say(f"resuming from {path} (step {step}, epoch {epoch}, batch {batch_pos})")
    elif not cfg.init:
        mean, std = feature_stats(dataset, cfg.stats_utterances, cfg.seed)
        bundle.network.feat_mean.copy_(mean)
        bundle.network.feat_std.copy_(std)
    network = bundle.network.to(ctx.device).train()
    model = distributed.wrap_model(network, ctx)

    plan = BatchPlan([u.duration for u in items], [u.weight for u in items], cfg.max_batch_seconds,
                     cfg.max_batch_size, cfg.seed, ctx.rank, ctx.world_size)
    if cfg.max_steps is not None:
        total = cfg.max_steps
    else:
        total = sum(len(plan.batches(e)) for e in range(cfg.epochs or 0))
    if total == 0:
        raise ValueError("the training data makes no batches")
    optimizer = torch.optim.AdamW(network.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.warmup_steps, total, cfg.min_lr_ratio))
    if found is not None:
        optimizer.load_state_dict(found[1]["optimizer"])
        scheduler.load_state_dict(found[1]["scheduler"])
        torch.set_rng_state(found[1]["torch_rng"])
    loader = DataLoader(
        dataset, batch_sampler=plan, collate_fn=collate, num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0, worker_init_fn=_worker_init if cfg.workers > 0 else None,
        prefetch_factor=4 if cfg.workers > 0 else None,
        generator=torch.Generator().manual_seed(cfg.seed),  # keeps the global RNG untouched (see module doc)
    )
    metrics = MetricsLog(run_dir / "metrics.jsonl", ctx.is_main)
    metrics.truncate_after(step)

    def checkpoint() -> None:
        if ctx.is_main:
            ckpts.save(step, {
                "config": cfg.to_dict(), "model": model_payload(bundle, "fp32"),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(), "step": step, "epoch": epoch, "batch_in_epoch": batch_pos,
                "best_wer": best_wer, "epoch_skips": dict(epoch_skips),
            })

    def run_validation() -> None:
        nonlocal best_wer
        if valid is None:
            return
        rates = validate(network, valid, vocab, ctx.device)
        metrics.write(step=step, epoch=epoch, valid_wer=rates.wer, valid_cer=rates.cer, time=time.time())
        improved = rates.wer < best_wer
        if improved:
            best_wer = rates.wer
            save_model(_cpu_bundle(bundle, cfg, step, rates), run_dir / "best.esm", "fp32")
        bar.write(f"step {step}: valid WER {rates.wer:.2%} CER {rates.cer:.2%}" + (" (best)" if improved else ""))

    from tqdm import tqdm

    bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, disable=not (cfg.progress and ctx.is_main))
    window_seconds, window_start, window_loss, window_n = 0.0, time.perf_counter(), 0.0, 0
    stopped = stop_after is not None and step >= stop_after and step < total  # a chunk already done
    while step < total and not stopped:
        plan.set_position(epoch, batch_pos)
        epoch_len = len(plan.batches(epoch))
        if epoch_len == 0:
            raise ValueError("the training data makes no batches in this epoch")
        for batch in loader:
            epoch_skips.update(batch.skipped)
            loss = ctc_loss(model, batch, ctx.device, network.feat_mean, cfg.precision)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(network.parameters(), cfg.grad_clip)
            if torch.isfinite(norm):
                optimizer.step()
            else:
                log.warning("step %d: non-finite gradient norm; update skipped", step)
            scheduler.step()
            step += 1
            batch_pos += 1
            window_seconds += batch.seconds * ctx.world_size
            window_loss += float(loss.detach())
            window_n += 1
            if step % cfg.log_every == 0 or step == total:
                elapsed = time.perf_counter() - window_start
                speed = window_seconds / max(elapsed, 1e-9)
                lr = scheduler.get_last_lr()[0]
                metrics.write(step=step, epoch=epoch, loss=window_loss / window_n, lr=lr,
                              audio_seconds_per_second=speed, time=time.time())
                bar.set_postfix(loss=f"{window_loss / window_n:.3f}", lr=f"{lr:.2e}", audio_s_per_s=f"{speed:.1f}")
                window_seconds, window_start, window_loss, window_n = 0.0, time.perf_counter(), 0.0, 0
            bar.update(1)
            if step % cfg.valid_every == 0 and ctx.is_main:
                run_validation()
            if batch_pos >= epoch_len:
                _end_epoch(ctx, epoch, epoch_skips, manifest_skips, metrics, step, bar)
                epoch, batch_pos, epoch_skips = epoch + 1, 0, Counter()
            if step % cfg.checkpoint_every == 0:
                checkpoint()
            if stop_after is not None and step >= stop_after:
                if checkpoint_at_stop and step % cfg.checkpoint_every != 0:
                    checkpoint()
                stopped = True
                break
            if step >= total:
                break
        if stopped:
            break
    bar.close()
    network = network.cpu()
    if stopped:
        return TrainResult(run_dir, step, network, None)
    if step % cfg.checkpoint_every != 0:
        checkpoint()
    report = None
    if ctx.is_main:
        if valid is not None and step % cfg.valid_every != 0:
            run_validation()
        plan.set_position(epoch, 0)  # codebook fine-tuning (if any) draws batches from here
        report = export(cfg, bundle, run_dir, valid, step, loader)
        say(f"fp32 model: {report.fp32_path} {report.fp32_bytes / 1e6:.3f} MB" + _rates(report.fp32_rates))
        say(f"{report.codec} model: {report.path} {report.bytes / 1e6:.3f} MB" + _rates(report.rates))
    distributed.barrier(ctx)
    return TrainResult(run_dir, step, network, report)


def _rates(rates: ErrorRates | None) -> str:
    return "" if rates is None else f", valid WER {rates.wer:.2%} CER {rates.cer:.2%}"


def _end_epoch(ctx, epoch: int, skips: Counter, manifest_skips: Counter, metrics: MetricsLog, step: int, bar) -> None:
    if ctx.distributed:
        import torch.distributed as dist

        keys = sorted(SKIP_REASONS)
        counts = torch.tensor([skips.get(k, 0) for k in keys], dtype=torch.long)
        dist.all_reduce(counts)
        skips = Counter({k: int(n) for k, n in zip(keys, counts.tolist(), strict=True) if n})
    if ctx.is_main:
        total = skips + manifest_skips
        metrics.write(step=step, epoch=epoch, epoch_end=True, skipped=dict(total))
        bar.write(f"epoch {epoch} done at step {step}; skipped: {describe_skips(total)}")


def _cpu_bundle(bundle: ModelBundle, cfg: TrainConfig, step: int, rates: ErrorRates | None) -> ModelBundle:
    """A copy of the model for saving, with metadata saying how it was trained."""
    net = Network(bundle.network.cfg)
    net.load_state_dict({k: v.detach().cpu() for k, v in bundle.network.state_dict().items()})
    meta = {"trained_steps": step, "train_manifests": list(cfg.train), "seed": cfg.seed}
    if rates is not None:
        meta.update(valid_wer=rates.wer, valid_cer=rates.cer, valid_manifests=list(cfg.valid))
    return replace(bundle, network=net.eval(), metadata={**bundle.metadata, **meta})


def export(cfg: TrainConfig, bundle: ModelBundle, run_dir: Path, valid: ValidSet | None, step: int,
           batches: Iterable[Batch] | None = None) -> ExportReport:
    """Write model-fp32.esm (the best validated weights, else the last) and model.esm in ``cfg.codec``.

    With ``cfg.codebook_steps`` and training ``batches``, the kmeans4 codebooks are fine-tuned first.
    """
    from ..checkpoint import load_model

    best = run_dir / "best.esm"
    source = load_model(best) if valid is not None and best.exists() else _cpu_bundle(bundle, cfg, step, None)
    fp32_path, path = run_dir / "model-fp32.esm", run_dir / "model.esm"
    fp32_bytes = save_model(source, fp32_path, "fp32")
    fp32_rates = validate(source.network, valid, source.vocab, torch.device("cpu")) if valid else None
    if cfg.codebook_steps > 0 and cfg.codec == "kmeans4" and batches is not None:
        from .codebook import finetune_codebooks

        cpu = torch.device("cpu")
        compressed = finetune_codebooks(source, batches, cfg.codebook_steps,
                                        lambda net, batch: ctc_loss(net, batch, cpu, net.feat_mean),
                                        lr=cfg.lr * 0.1, grad_clip=cfg.grad_clip)
        size = compressed.save(path)
    else:
        size = save_model(source, path, cfg.codec)
    exported = load_model(path)
    rates = validate(exported.network, valid, exported.vocab, torch.device("cpu")) if valid else None
    return ExportReport(fp32_path, fp32_bytes, fp32_rates, path, cfg.codec, size, rates)
