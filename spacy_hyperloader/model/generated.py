"""The modules whose weights the hypernetwork generates, as functions of those weights.

Inputs are one layer's weights for one task; ``RowGroups`` runs them on the rows of a batch
that belong to each task, so a batch may mix tasks and still equal per-task batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def adapter(y: Tensor, w: dict[str, Tensor], eps: float) -> Tensor:
    """``CondLN(Up(gelu_new(Down(y)))) + y``: a bottleneck adapter with a generated layer norm."""
    h = F.linear(y, w["down_weight"], w["down_bias"])
    h = F.gelu(h, approximate="tanh")  # transformers' gelu_new
    h = F.linear(h, w["up_weight"], w["up_bias"])
    h = F.layer_norm(h, (h.shape[-1],), w["norm_weight"], w["norm_bias"], eps)
    return (h + y).to(y.dtype)


def lora_delta(x: Tensor, w: dict[str, Tensor], scale: float) -> Tensor:
    """``scale * B(A x)``, added to the frozen projection's output."""
    return F.linear(F.linear(x, w["a"]), w["b"]) * scale


@dataclass
class RowGroups:
    """Which batch rows belong to which of the batch's distinct tasks (``unique``, sorted)."""

    unique: Tensor
    rows: list[Tensor]
    restore: Tensor | None  # permutation from task-grouped order back to batch order

    @classmethod
    def from_task_ids(cls, task_ids: Tensor) -> "RowGroups":
        unique, inverse = torch.unique(task_ids, sorted=True, return_inverse=True)
        if unique.numel() == 1:
            return cls(unique, [], None)
        rows = [torch.nonzero(inverse == g).squeeze(1) for g in range(unique.numel())]
        order = torch.cat(rows)
        return cls(unique, rows, torch.argsort(order))

    def apply(self, x: Tensor, fn: Callable[[Tensor, int], Tensor]) -> Tensor:
        """``fn(rows_of_task_g, g)`` for every task g, reassembled in batch order."""
        if self.restore is None:
            return fn(x, 0)
        parts = [fn(x.index_select(0, idx), g) for g, idx in enumerate(self.rows)]
        return torch.cat(parts, dim=0).index_select(0, self.restore)
