"""The pretraining loop: span corruption on streamed text, checkpoints, held-out loss.

``OUTPUT`` ends up a Hugging Face model directory (``config.json``, ``model.safetensors``,
tokenizer files) that a pipeline names as its ``backbone``, plus ``pretrain.json`` (settings,
throughput, loss curves) and ``checkpoint/`` (what ``--resume`` continues from).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence
from transformers import get_inverse_sqrt_schedule

from .span_corruption import SpanCorruption
from ..model.training import build_optimizer, optimizer_step
from .checkpoint import TrainerState, has_checkpoint, load_checkpoint, save_checkpoint
from .data import PackedExamples, check_train_splits

__all__ = ["PretrainConfig", "pretrain"]

RESULT_FILE = "pretrain.json"
# Settings that decide which examples a step sees: a resumed run must keep them.
_STREAM_SETTINGS = ("input_length", "batch_size", "seed", "noise_density", "mean_noise_span_length", "eval_fraction", "shuffle_buffer")


@dataclass
class PretrainConfig:
    """Pretraining settings; the defaults suit the tiny and mini shapes on a CPU."""

    steps: int = 10_000
    """Stop after this many optimizer steps in total (a resumed run counts the earlier ones)."""
    max_minutes: float = 0.0
    """Also stop after this many minutes of this invocation (0: no time limit)."""
    batch_size: int = 32
    input_length: int = 128
    """Encoder tokens per example (with ``</s>``); T5 used 512."""
    noise_density: float = 0.15
    mean_noise_span_length: float = 3.0
    lr: float = 1e-3
    """Peak AdamW learning rate, after linear warm-up; then it decays as 1/sqrt(step), as T5's."""
    warmup_steps: int = 200
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    dropout: float = 0.0
    """Dropout while pretraining (the saved config keeps the backbone's own rate)."""
    eval_every: int = 200
    eval_examples: int = 64
    eval_fraction: float = 0.01
    """Share of text lines held out (chosen by a hash of the line)."""
    save_every: int = 200
    shuffle_buffer: int = 1000
    seed: int = 0
    device: str = "cpu"
    bf16: bool | None = None
    """bf16 autocast; None: on for CUDA, off on the CPU."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "eval_examples", "max_minutes", "dropout", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")

    @property
    def use_bf16(self) -> bool:
        return self.device.startswith("cuda") if self.bf16 is None else self.bf16


def inverse_sqrt_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then ``lr * sqrt(warmup / step)``: no total step count, so a run can be
    stopped by time or extended later without a schedule that already ran out.

    transformers' schedule at step s is ``s / warmup`` during warm-up, so its first update would
    run at lr 0; it starts one step in here (``last_epoch=0``), so update n (from 1) runs at
    ``lr * min(n / warmup, sqrt(warmup / n))``.
    """
    warmup = max(warmup_steps, 1)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])  # what a scheduler starting at last_epoch=-1 records
    return get_inverse_sqrt_schedule(optimizer, num_warmup_steps=warmup, timescale=warmup, last_epoch=0)


class _StopRequest:
    """SIGINT/SIGTERM finish the current step and save; a second signal aborts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "_StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _batches(examples: Iterator[tuple[list[int], list[int]]], size: int) -> Iterator[list[tuple[list[int], list[int]]]]:
    while True:
        yield [next(examples) for _ in range(size)]


def _tensors(batch: Sequence[tuple[list[int], list[int]]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """(input ids, target ids) pairs as the backbone's padded inputs; -100 pads the labels (no loss)."""

    def padded(rows: Iterable[list[int]], value: int) -> torch.Tensor:
        tensors = [torch.tensor(r, dtype=torch.long) for r in rows]
        return pad_sequence(tensors, batch_first=True, padding_value=value).to(device)

    inputs = padded((i for i, _ in batch), pad_id)
    return {"input_ids": inputs, "attention_mask": (inputs != pad_id).long(), "labels": padded((t for _, t in batch), -100)}


def _set_dropout(model: torch.nn.Module, rate: float) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = rate


def _autocast(config: PretrainConfig):
    if not config.use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda" if config.device.startswith("cuda") else "cpu", dtype=torch.bfloat16)


@torch.no_grad()
def held_out_loss(model, examples: Sequence[tuple[list[int], list[int]]], config: PretrainConfig, pad_id: int) -> float:
    """Mean per-target-token cross-entropy over the held-out examples (no dropout)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    for start in range(0, len(examples), config.batch_size):
        batch = _tensors(examples[start : start + config.batch_size], pad_id, device)
        with _autocast(config):
            logits = model(**batch, use_cache=False).logits
        labels = batch["labels"]
        losses = torch.nn.functional.cross_entropy(
            logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum"
        )
        total += float(losses)
        count += int((labels != -100).sum())
    model.train(was_training)
    return total / max(count, 1)


def _check_output(output_dir: Path, resume: bool) -> bool:
    """Whether to resume; refuses to mix a new run into a non-empty folder."""
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"{output_dir} exists and is not a directory")
    if has_checkpoint(output_dir):
        return resume
    if output_dir.is_dir() and any(output_dir.iterdir()) and resume:
        raise FileExistsError(
            f"{output_dir} is not empty and holds no pretraining checkpoint; choose another OUTPUT "
            f"or pass --restart to overwrite it"
        )
    return False


def _device(config: PretrainConfig) -> torch.device:
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {config.device}: CUDA is not available here; use --device cpu")
    return torch.device(config.device)


def pretrain(
    backbone: str | Path,
    sources: Sequence[str | Path],
    output_dir: str | Path,
    config: PretrainConfig | None = None,
    *,
    resume: bool = True,
    allow_eval_splits: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainerState:
    """Pretrain ``backbone`` (a local HF T5 directory) with span corruption on ``sources``.

    With ``resume`` (the default) a checkpoint in ``output_dir`` is continued; otherwise the run
    starts over.  Returns the final state; ``state.run["interrupted"]`` says whether a signal
    stopped it early (its checkpoint then resumes it without losing a step).
    """
    from tqdm import tqdm

    from ..model.backbone import load_backbone
    from ..sentt.tokenizer import check_t5_tokenizer, load_tokenizer, sentinel_ids

    config = config or PretrainConfig()
    output_dir = Path(output_dir)
    device = _device(config)
    resuming = _check_output(output_dir, resume)
    tokenizer = load_tokenizer(backbone)
    check_t5_tokenizer(tokenizer, str(backbone))
    corruption = SpanCorruption(
        sentinel_ids(tokenizer), tokenizer.eos_token_id, config.noise_density, config.mean_noise_span_length
    )
    raw_length = corruption.raw_length_for(config.input_length)
    data = PackedExamples(
        sources, tokenizer, corruption, raw_length,
        seed=config.seed, eval_fraction=config.eval_fraction, shuffle_buffer=config.shuffle_buffer,
    )
    if not allow_eval_splits:
        check_train_splits(data.files)

    torch.manual_seed(config.seed)
    model = load_backbone(backbone).to(device)
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError(f"the tokenizer of {backbone} has {len(tokenizer)} tokens but the model only {model.config.vocab_size}")
    _set_dropout(model, config.dropout)
    model.train()
    optimizer = build_optimizer(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = inverse_sqrt_schedule(optimizer, config.warmup_steps)
    run = {
        "backbone": str(backbone), "sources": [str(f) for f in data.files], **asdict(config),
        "raw_length": raw_length, "target_length": corruption.lengths(raw_length)[1],
    }
    if resuming:
        state = load_checkpoint(output_dir, model, optimizer, scheduler)
        changed = [k for k in _STREAM_SETTINGS if state.run.get(k) != run[k]]
        if changed:
            raise ValueError(
                f"{output_dir} was pretrained with other {', '.join(changed)} "
                f"({', '.join(f'{k}={state.run.get(k)!r}' for k in changed)}); keep them to resume, or pass --restart"
            )
        log(f"Resuming from step {state.step} ({state.tokens:,} tokens) in {output_dir / 'checkpoint'}")
    else:
        state = TrainerState()
    state.run = {**run, "interrupted": False}
    output_dir.mkdir(parents=True, exist_ok=True)

    pad_id = tokenizer.pad_token_id
    eval_set = data.held_out(config.eval_examples)
    if config.eval_examples and not eval_set:
        log(f"No held-out text: no line fell in the {config.eval_fraction:.2%} hash slice; evaluation is skipped")
    if eval_set and not state.eval_loss:
        state.eval_loss.append({"step": 0, "loss": held_out_loss(model, eval_set, config, pad_id)})
        log(f"Held-out span-corruption loss before pretraining: {state.eval_loss[-1]['loss']:.4f} ({len(eval_set)} examples)")

    tokens_per_step = config.batch_size * raw_length
    batches = _batches(data.train(skip=state.examples), config.batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    started = time.monotonic()
    bar = tqdm(
        total=config.steps * tokens_per_step, initial=state.step * tokens_per_step, unit="tok", unit_scale=True,
        desc="pretraining", disable=not progress, mininterval=1.0,
    )
    smoothed = None
    with _StopRequest() as stop:
        while state.step < config.steps:
            if config.max_minutes and time.monotonic() - started >= config.max_minutes * 60:
                log(f"Stopping after {config.max_minutes:g} minutes")
                break
            step_start = time.monotonic()
            batch = _tensors(next(batches), pad_id, device)
            with _autocast(config):
                loss = model(**batch, use_cache=False).loss
            optimizer_step(loss, params, optimizer, scheduler, max_grad_norm=config.max_grad_norm)
            value = float(loss.detach())
            state.step += 1
            state.examples += config.batch_size
            state.tokens += tokens_per_step
            state.train_seconds += time.monotonic() - step_start
            smoothed = value if smoothed is None else 0.98 * smoothed + 0.02 * value
            bar.update(tokens_per_step)
            bar.set_postfix(step=state.step, loss=f"{smoothed:.3f}", lr=f"{scheduler.get_last_lr()[0]:.1e}", refresh=False)
            if on_step is not None:
                on_step(state.step, value)
            if state.step % config.eval_every == 0 or state.step == config.steps:
                state.train_loss.append({"step": state.step, "loss": smoothed})
                if eval_set:
                    state.eval_loss.append({"step": state.step, "loss": held_out_loss(model, eval_set, config, pad_id)})
                    (bar.write if progress else log)(f"step {state.step}: held-out loss {state.eval_loss[-1]['loss']:.4f}")
            if stop.requested:
                state.run["interrupted"] = True
                break
            if state.step % config.save_every == 0 and state.step < config.steps:  # the last is saved below
                save_checkpoint(output_dir, model, optimizer, scheduler, state)
        bar.close()
        if eval_set and state.eval_loss[-1]["step"] != state.step:
            state.eval_loss.append({"step": state.step, "loss": held_out_loss(model, eval_set, config, pad_id)})
        save_checkpoint(output_dir, model, optimizer, scheduler, state)
        _write_model(output_dir, model, tokenizer, state)
    if state.run["interrupted"]:
        log(f"Interrupted at step {state.step}; the same command resumes from {output_dir / 'checkpoint'}")
    return state


def _write_model(output_dir: Path, model, tokenizer, state: TrainerState) -> None:
    """The HF model directory a pipeline loads, with the backbone's own dropout in its config."""
    import json

    model.save_pretrained(output_dir, safe_serialization=True)
    tokenizer.save_pretrained(output_dir)
    summary = {**state.to_json(), "tokens_per_second": state.tokens_per_second}
    (output_dir / RESULT_FILE).write_text(json.dumps(summary, indent=1), encoding="utf8")
