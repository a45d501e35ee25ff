"""Resumable training checkpoints in the run folder: written atomically, read back newest-good-first.

Each checkpoint is one checksummed container (``model.checkpoint.write_container``: temp file,
fsync, rename) holding the model, optimiser, scheduler, RNG state and data position. A crash
mid-write leaves the previous files intact; a file damaged anyway (a full disk under a copy, a
truncation) fails its checksum and the one before it is used instead.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from ..checkpoint import CheckpointError, read_container, write_container

log = logging.getLogger(__name__)

FORMAT = "edgescribe-train-state"
FORMAT_VERSION = 1
_NAME = re.compile(r"^step-(\d+)\.ckpt$")


class CheckpointDir:
    def __init__(self, run_dir: str | Path, keep: int = 3) -> None:
        self.dir = Path(run_dir) / "checkpoints"
        self.keep = keep

    def path(self, step: int) -> Path:
        return self.dir / f"step-{step:08d}.ckpt"

    def steps(self) -> list[int]:
        """Steps that have a checkpoint file, newest first."""
        if not self.dir.is_dir():
            return []
        found = (_NAME.match(p.name) for p in self.dir.iterdir())
        return sorted((int(m.group(1)) for m in found if m), reverse=True)

    def save(self, step: int, payload: dict[str, Any]) -> Path:
        path = self.path(step)
        write_container(path, {"format": FORMAT, "format_version": FORMAT_VERSION, **payload})
        for old in self.steps()[self.keep :]:
            self.path(old).unlink(missing_ok=True)
        return path

    def latest(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest checkpoint that reads back whole; damaged newer ones are reported and passed over."""
        for step in self.steps():
            path = self.path(step)
            try:
                payload = read_container(path)
            except CheckpointError as e:
                log.warning("ignoring damaged checkpoint: %s", e)
                continue
            if payload.get("format") != FORMAT:
                log.warning("ignoring %s: not a training checkpoint", path)
                continue
            return path, payload
        return None
