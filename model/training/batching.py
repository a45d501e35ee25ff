"""Duration-bucketed batches, a pure function of (seed, epoch), so a resumed run replays the same order.

An epoch's batches: each utterance appears ``floor(w)`` times plus once more with probability
``w - floor(w)`` (its manifest's weight), is sorted by a jittered duration so that neighbours have
similar lengths (little padding) but the grouping changes from epoch to epoch, and consecutive
utterances fill a batch until its padded audio (longest x count) would pass ``max_seconds``.
The batches are then shuffled. Under DDP each rank takes every ``world``-th batch, after the list
is cut to a multiple of ``world`` so that every rank runs the same number of steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

# Relative jitter of durations before sorting: +-10% mixes utterances of similar length across
# epochs while keeping padding low.
DURATION_JITTER = 0.1


def epoch_batches(
    durations: Sequence[float],
    weights: Sequence[float],
    max_seconds: float,
    max_size: int,
    seed: int,
    epoch: int,
) -> list[list[int]]:
    """All batches (lists of utterance indices) of one epoch, in training order."""
    if max_seconds <= 0 or max_size < 1:
        raise ValueError("max_seconds and max_size must be positive")
    rng = np.random.default_rng([seed, epoch])
    dur = np.asarray(durations, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if dur.size == 0:
        return []
    copies = np.floor(w).astype(np.int64) + (rng.random(w.size) < (w - np.floor(w)))
    idx = np.repeat(np.arange(dur.size), copies)
    if idx.size == 0:
        return []
    jitter = 1.0 + DURATION_JITTER * (2.0 * rng.random(idx.size) - 1.0)
    idx = idx[np.argsort(dur[idx] * jitter, kind="stable")]
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0.0
    for i in idx.tolist():
        d = float(dur[i])
        if current and (max(longest, d) * (len(current) + 1) > max_seconds or len(current) >= max_size):
            batches.append(current)
            current, longest = [], 0.0
        current.append(i)
        longest = max(longest, d)
    if current:
        batches.append(current)
    order = rng.permutation(len(batches))
    return [batches[k] for k in order]


def shard(batches: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """This rank's batches; every rank gets the same count (the remainder is dropped this epoch)."""
    if world <= 1:
        return batches
    usable = len(batches) - len(batches) % world
    return batches[rank:usable:world]


def utterance_seed(seed: int, epoch: int, batch: int, position: int) -> int:
    """A seed for one utterance's augmentation, independent of which process loads it."""
    return int(np.random.SeedSequence([seed, epoch, batch, position]).generate_state(1)[0])


class BatchPlan:
    """The batch sampler handed to a DataLoader: yields keys ``(utterance index, augmentation seed)``.

    ``set_position(epoch, start)`` before iterating; ``start`` skips the batches a resumed run
    already trained on in this epoch.
    """

    def __init__(self, durations: Sequence[float], weights: Sequence[float], max_seconds: float, max_size: int,
                 seed: int, rank: int = 0, world: int = 1) -> None:
        self.durations, self.weights = list(durations), list(weights)
        self.max_seconds, self.max_size, self.seed = max_seconds, max_size, seed
        self.rank, self.world = rank, world
        self.epoch, self.start = 0, 0

    def batches(self, epoch: int) -> list[list[int]]:
        all_batches = epoch_batches(self.durations, self.weights, self.max_seconds, self.max_size, self.seed, epoch)
        return shard(all_batches, self.rank, self.world)

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return max(0, len(self.batches(self.epoch)) - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for b, batch in enumerate(self.batches(self.epoch)):
            if b < self.start:
                continue
            # The batch number is global (rank-independent) so seeds differ between ranks' batches.
            global_b = b * self.world + self.rank
            yield [(i, utterance_seed(self.seed, self.epoch, global_b, p)) for p, i in enumerate(batch)]
