"""Faster learning of T5's relative position bias, by reparametrization.

SentT' needs one positional hop: the encoder's ``<extra_id_i>`` must read the word that follows
it, since the decoder finds word i by matching sentinel i. In T5 only the relative position
bias can express "the next token", and that bias is a table of a few scalars per head. Adam
moves each scalar by at most the learning rate per step, so turning a bias from 0 into the
several units that concentrate attention takes thousands of steps (measured: no movement in
100 steps at lr 2e-3, with guided attention). Storing the table as ``scale * table`` makes
Adam move it ``scale`` times faster without changing the function at the start; it works the
same under torch's and thinc's optimizers, and saved backbones keep T5's plain layout.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ScaledPositionBias(nn.Module):
    """Drop-in for a bias ``nn.Embedding``: the same output, with the table learning ``scale`` times faster."""

    def __init__(self, embedding: nn.Embedding, scale: float) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"position bias scale must be positive, got {scale!r}.")
        self.scale = float(scale)
        self.num_embeddings, self.embedding_dim = embedding.weight.shape
        self.table = nn.Parameter(embedding.weight.detach().clone() / self.scale,
                                  requires_grad=embedding.weight.requires_grad)

    @property
    def weight(self) -> Tensor:
        """The effective bias table (what T5's own embedding would hold)."""
        return self.table * self.scale

    def forward(self, buckets: Tensor) -> Tensor:
        return F.embedding(buckets, self.weight)


def scale_position_bias(backbone: nn.Module, attribute: str, scale: float) -> int:
    """Replace every ``module.<attribute>`` embedding by a ``ScaledPositionBias``; returns how many."""
    count = 0
    for module in backbone.modules():
        embedding = getattr(module, attribute, None)
        if isinstance(embedding, nn.Embedding):
            setattr(module, attribute, ScaledPositionBias(embedding, scale))
            count += 1
    return count


def plain_state_dict(backbone: nn.Module) -> dict[str, Tensor]:
    """The backbone's state dict with every scaled table written back as its plain ``.weight``,
    so the saved backbone loads as an ordinary Hugging Face model."""
    state = backbone.state_dict()
    for name, module in backbone.named_modules():
        if isinstance(module, ScaledPositionBias):
            state.pop(f"{name}.table")
            state[f"{name}.weight"] = module.weight.detach()
    return state
