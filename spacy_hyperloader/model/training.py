"""Training-recipe building blocks for HyperLoader (loss, task sampling, optimisation).

The defaults reproduce the HyperLoader authors' recipe: AdamW (lr 3e-4, no weight
decay), gradient-norm clipping at 1.0, 500 linear warm-up steps followed by linear
decay to zero, label-smoothed NLL (epsilon 0.1) summed over target tokens, and
temperature-based task sampling with T = 10.

Everything here is framework-agnostic PyTorch so that the spaCy component (and tests)
can use it without pulling in spaCy.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "TemperatureSampler",
    "build_optimizer",
    "guided_alignment_loss",
    "label_smoothed_nll",
    "linear_warmup_decay",
    "optimizer_step",
    "task_sampling_probabilities",
]

LossReduction = Literal["sum", "mean"]
_REDUCTIONS: tuple[str, ...] = ("sum", "mean")


# --------------------------------------------------------------------------- loss


def label_smoothed_nll(
    logits: Tensor,
    targets: Tensor,
    *,
    epsilon: float = 0.1,
    ignore_index: int = -100,
    reduction: LossReduction = "sum",
) -> Tensor:
    """Label-smoothed negative log-likelihood, as used to train HyperLoader.

    Per token the loss is ``(1 - epsilon) * nll + epsilon * smooth`` with
    ``smooth = -mean_V(log_probs)``: ``torch.nn.functional.cross_entropy(label_smoothing=...)``
    computes it, the fairseq / Hugging Face ``LabelSmoother`` formulation, so results are
    comparable with those implementations. This wrapper only adds what the recipe needs
    around it: the authors' ``"sum"`` reduction, a safe ``"mean"`` and float32 softmax.

    ``reduction="sum"`` (the authors' choice) sums over non-ignored target tokens, which
    weights long targets more and makes the gradient norm grow with batch size -- this
    interacts with gradient clipping, hence ``"mean"`` (divide by the number of
    non-ignored tokens) is offered as well. With no non-ignored tokens both reductions
    return a zero that stays attached to the graph, so ``backward()`` is always safe.

    Positions whose target equals ``ignore_index`` are dropped before the softmax, so
    they contribute neither loss nor gradient, even if their logits are non-finite.
    ``log_softmax`` runs in float32 whatever the logits dtype, because bf16/fp16
    log-probabilities over a large vocabulary lose too much precision; the result is
    a float32 scalar.

    The vocabulary axis may be a *restricted* vocabulary (e.g. only the label tokens of
    a classification task): pass the logits of that column subset and targets already
    remapped to column indices within it. The smoothing mass is then spread over the
    subset only, which is the intended behaviour for constrained decoding.

    Args:
        logits: ``(..., V)`` unnormalised scores, any floating dtype.
        targets: ``(...)`` integer class indices in ``[0, V)`` or ``ignore_index``.
        epsilon: smoothing factor in ``[0, 1)``; 0 gives plain cross-entropy.
        ignore_index: target value marking padding.
        reduction: ``"sum"`` or ``"mean"`` over non-ignored tokens.
    """
    if not (0.0 <= epsilon < 1.0):  # also rejects NaN
        raise ValueError(f"epsilon must be in [0, 1), got {epsilon!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if logits.dim() < 1 or targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"targets shape {tuple(targets.shape)} must equal logits shape without the "
            f"vocabulary axis, got logits shape {tuple(logits.shape)}"
        )
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise TypeError(f"targets must be an integer tensor, got dtype {targets.dtype}")

    active = targets.ne(ignore_index)
    # Boolean indexing keeps only real tokens: padding costs no softmax and cannot leak
    # NaN/inf into the gradient through masked-but-computed rows (cross_entropy's own
    # ignore_index still runs their softmax backward). So the sum over no tokens is 0.
    loss = F.cross_entropy(
        logits[active].float(), targets[active].long(), label_smoothing=epsilon, reduction="sum"
    )
    if reduction == "mean":
        loss = loss / active.sum().clamp_min(1).to(loss.dtype)
    return loss


def _own_word_mask(query_words: Tensor, key_words: Tensor) -> tuple[Tensor, Tensor]:
    """(aligned, supervised): aligned[b, q, k] when key k belongs to query q's word; supervised[b, q]
    when query q has a word with at least one key."""
    aligned = (query_words[:, :, None] == key_words[:, None, :]) & (query_words[:, :, None] >= 0)
    return aligned, aligned.any(dim=-1)


def guided_alignment_loss(
    attentions: Sequence[Tensor],
    query_words: Tensor,
    key_words: Tensor,
    *,
    heads: int = 1,
) -> Tensor:
    """Mean ``-log`` of the attention mass each query position puts on its own word.

    SentT' states the alignment exactly: the decoder positions that write word i's label
    (fed ``<extra_id_i>`` and that label's pieces) belong to word i in the encoder, and the
    encoder's ``<extra_id_i>`` belongs to word i's pieces. A model learning from a weak
    backbone finds these pointers slowly on its own; supervising the first ``heads`` heads of
    each given layer gives them directly (guided alignment, Garg et al. 2019) and leaves the
    other heads free.

    ``query_words`` (batch, queries) and ``key_words`` (batch, keys) hold the word index of each
    position, ``-1`` where there is none; ``attentions`` holds one (batch, heads, queries, keys)
    tensor per layer.
    """
    if heads < 1:
        raise ValueError(f"heads must be at least 1, got {heads!r}")
    if not attentions:
        raise ValueError("No attention tensors: call the backbone with output_attentions=True.")
    aligned, supervised = _own_word_mask(query_words, key_words)
    if not bool(supervised.any()):
        return attentions[0].sum() * 0.0
    losses = []
    for attention in attentions:
        mass = (attention[:, :heads].float() * aligned[:, None].float()).sum(dim=-1)  # (batch, heads, queries)
        # no clamp: a clamped log has no gradient exactly where attention is most wrong
        nll = -torch.log(mass + 1e-12)
        losses.append(nll.masked_select(supervised[:, None, :].expand_as(nll)).mean())
    return torch.stack(losses).mean()


def alignment_mass(attentions: Sequence[Tensor], query_words: Tensor, key_words: Tensor) -> float:
    """Attention mass on each query's own word, averaged over layers, heads and positions
    (uniform attention gives about 1/words): the diagnostic of whether the model aligns."""
    aligned, supervised = _own_word_mask(query_words, key_words)
    if not bool(supervised.any()):
        return float("nan")
    masses = [
        (a.float() * aligned[:, None].float()).sum(dim=-1).mean(dim=1).masked_select(supervised).mean()
        for a in attentions
    ]
    return float(torch.stack(masses).mean())


# ------------------------------------------------------------------ task sampling


def task_sampling_probabilities(
    sizes: Mapping[str, int], temperature: float = 10.0
) -> dict[str, float]:
    """Temperature-scaled task mixing probabilities, ``p_t ∝ n_t ** (1 / T)``.

    ``T = 1`` samples proportionally to dataset size (large tasks dominate);
    ``T → inf`` (``math.inf`` is accepted) samples tasks uniformly. The authors use
    ``T = 10`` to keep small tasks from being drowned out without over-fitting them.
    Computed in log space so huge sizes or tiny temperatures cannot overflow. Keys
    keep the order of ``sizes``.
    """
    if not sizes:
        raise ValueError(f"at least one task is required, got sizes={dict(sizes)!r}")
    if math.isnan(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    for name, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, (int, float)) or not math.isfinite(n) or n <= 0:
            raise ValueError(f"task sizes must be positive finite numbers, got {name!r}: {n!r}")
    log_w = {name: math.log(n) / temperature for name, n in sizes.items()}
    top = max(log_w.values())
    w = {name: math.exp(lw - top) for name, lw in log_w.items()}
    total = math.fsum(w.values())
    return {name: wi / total for name, wi in w.items()}


class TemperatureSampler:
    """Draws which task (or corpus) the next batch or example comes from, ``p_t ∝ n_t ** (1/T)``.

    The package's one temperature sampler: the spaCy readers draw corpora with it and the
    benchmarks draw batch tasks with it. Uses a private ``random.Random(seed)`` so runs are
    reproducible and independent of any other code touching the global RNG; pass ``rng``
    instead to share one generator with the caller (a reader also draws its examples from
    it). Tasks are drawn in sorted-name order, so the sequence depends only on
    ``(sizes, temperature, seed)``, not on the insertion order of ``sizes``.
    ``sample_many(k)`` yields exactly what ``k`` calls to ``sample()`` would.
    """

    def __init__(
        self,
        sizes: Mapping[str, int],
        temperature: float = 10.0,
        seed: int = 0,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._probabilities = task_sampling_probabilities(sizes, temperature)
        self._names = sorted(self._probabilities)
        self._cum_weights = list(itertools.accumulate(self._probabilities[n] for n in self._names))
        self._rng = random.Random(seed) if rng is None else rng

    @property
    def probabilities(self) -> dict[str, float]:
        """Copy of the per-task probabilities (in the order of ``sizes``)."""
        return dict(self._probabilities)

    def sample(self) -> str:
        """Draw one task name."""
        return self.sample_many(1)[0]

    def sample_many(self, k: int) -> list[str]:
        """Draw ``k`` task names independently (e.g. for mixed-task batches)."""
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k!r}")
        return self._rng.choices(self._names, cum_weights=self._cum_weights, k=k)


# ------------------------------------------------------------------- optimisation


def build_optimizer(
    params: Iterable[torch.nn.Parameter],
    *,
    lr: float = 3e-4,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters only (the frozen T5 backbone is skipped).

    Parameters are de-duplicated (tied weights may be yielded twice). Raises
    ``ValueError`` when nothing is trainable, which usually means the hypernetwork
    was frozen by mistake.
    """
    seen: set[int] = set()
    trainable: list[torch.nn.Parameter] = []
    for p in params:
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            trainable.append(p)
    if not trainable:
        raise ValueError("build_optimizer got no parameters with requires_grad=True")
    return torch.optim.AdamW(trainable, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def linear_warmup_decay(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int = 500, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0 to the optimizer's lr, then linear decay to 0 at ``total_steps``.

    Delegates to ``transformers.get_linear_schedule_with_warmup`` so the schedule is
    bit-for-bit the one the authors trained with. Call ``scheduler.step()`` once per
    optimizer step. ``warmup_steps > total_steps`` is rejected because the peak lr
    would never be reached.
    """
    from transformers import get_linear_schedule_with_warmup

    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps!r}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps!r}")
    if warmup_steps > total_steps:
        raise ValueError(
            f"warmup_steps must be <= total_steps, got warmup_steps={warmup_steps!r} "
            f"and total_steps={total_steps!r}"
        )
    return get_linear_schedule_with_warmup(
        optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps
    )


def optimizer_step(
    loss: Tensor,
    parameters: Sequence[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    max_grad_norm: float | None = 1.0,
) -> float:
    """One training update: backward, clip, step, schedule, clear gradients.

    Returns the global L2 gradient norm *before* clipping, the number worth logging
    to spot instabilities. A non-finite loss raises ``FloatingPointError`` before
    ``backward()`` so the parameters and optimizer state are untouched. A non-finite
    gradient norm also raises ``FloatingPointError`` -- after clearing the gradients
    but before the optimizer step -- because clipping by a NaN/inf norm would
    silently corrupt every parameter.

    ``parameters`` must be the parameters the optimizer updates (those without a
    gradient are ignored); ``max_grad_norm`` ``None`` or ``<= 0`` disables clipping.
    """
    if loss.numel() != 1:
        raise ValueError(f"loss must be a scalar, got shape {tuple(loss.shape)}")
    if not torch.isfinite(loss.detach()).all():
        raise FloatingPointError(
            f"loss is not finite ({loss.item()}); refusing to backpropagate. "
            "Check the inputs of this batch and the learning rate."
        )
    params = [p for p in parameters if p.requires_grad]
    loss.backward()
    grads = [p.grad for p in params if p.grad is not None]
    if max_grad_norm is not None and max_grad_norm > 0:
        total_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    elif grads:
        total_norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
    else:
        total_norm = torch.zeros(())
    norm = float(total_norm)
    if not math.isfinite(norm):
        _clear_grads(optimizer, params)
        raise FloatingPointError(
            f"gradient norm is not finite ({norm}); skipped the optimizer step."
        )
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    _clear_grads(optimizer, params)
    return norm


def _clear_grads(optimizer: torch.optim.Optimizer, params: Sequence[torch.nn.Parameter]) -> None:
    # Also clear ``params`` in case some are not registered with this optimizer, so a
    # stale gradient can never be accumulated into the next step.
    optimizer.zero_grad(set_to_none=True)
    for p in params:
        p.grad = None
