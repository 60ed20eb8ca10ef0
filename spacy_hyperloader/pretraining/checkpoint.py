"""Resumable pretraining checkpoints: weights, optimizer, schedule, RNG and stream position.

A checkpoint is written to a temporary folder and swapped in by renames, so an interrupt while
saving leaves the previous checkpoint intact.  Weights are safetensors; the optimizer state is a
plain tensor dictionary loaded with ``torch.load(weights_only=True)``, which unpickles no code.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["CHECKPOINT_DIR", "TrainerState", "has_checkpoint", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_DIR = "checkpoint"
_STATE_FILE = "trainer_state.json"
_OPTIMIZER_FILE = "optimizer.pt"


@dataclass
class TrainerState:
    """Where a run is: everything a resumed run needs besides the tensors."""

    step: int = 0
    examples: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    run: dict[str, Any] = field(default_factory=dict)
    eval_loss: list[dict[str, float]] = field(default_factory=list)
    train_loss: list[dict[str, float]] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        """Text tokens per second of training-step time, over every session of the run."""
        return self.tokens / self.train_seconds if self.train_seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def has_checkpoint(output_dir: Path) -> bool:
    return (output_dir / CHECKPOINT_DIR / _STATE_FILE).is_file()


def save_checkpoint(output_dir: Path, model, optimizer, scheduler, state: TrainerState) -> None:
    final = output_dir / CHECKPOINT_DIR
    tmp = output_dir / f"{CHECKPOINT_DIR}.tmp"
    old = output_dir / f"{CHECKPOINT_DIR}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state()},
        tmp / _OPTIMIZER_FILE,
    )
    (tmp / _STATE_FILE).write_text(json.dumps(state.to_json(), indent=1), encoding="utf8")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(output_dir: Path, model, optimizer, scheduler) -> TrainerState:
    """Restore the tensors into ``model``/``optimizer``/``scheduler`` and return the state."""
    from safetensors.torch import load_file

    folder = output_dir / CHECKPOINT_DIR
    weights = load_file(folder / "model.safetensors")
    # tied embeddings are stored once; strict=False lets their second name go unlisted
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    if unexpected or set(missing) - tied:
        raise ValueError(
            f"checkpoint {folder} does not fit this backbone (missing {sorted(set(missing) - tied)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}); pass --restart to start over"
        )
    if tied:
        model.tie_weights()
    tensors = torch.load(folder / _OPTIMIZER_FILE, weights_only=True)
    optimizer.load_state_dict(tensors["optimizer"])
    scheduler.load_state_dict(tensors["scheduler"])
    torch.set_rng_state(tensors["torch_rng"])
    data = json.loads((folder / _STATE_FILE).read_text(encoding="utf8"))
    return TrainerState(**data)
