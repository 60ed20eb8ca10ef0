"""The thinc model that carries a HyperLoader ``Labeler`` through spaCy's config and training.

The model's settings come from the config; the torch model itself is attached when the
component is initialized or loaded (it needs the tasks), as a ``PyTorchShim`` so that spaCy's
``[training.optimizer]`` updates exactly the trainable torch parameters.
"""


from typing import Any

from spacy.util import registry
from thinc.api import Model, PyTorchShim

from ..labeler import Labeler

MODEL_NAME = "spacy-hyperloader.HyperLoaderModel.v1"


@registry.architectures(MODEL_NAME)
def build_hyperloader_model(
    backbone: str,
    tokenizer: str | None = None,
    variant: str = "hyperloader",
    train_backbone: bool | None = None,
    restrict_vocabulary: bool = False,
    label_smoothing: float = 0.1,
    loss_reduction: str = "sum",
    max_source_tokens: int = 128,
    max_target_tokens: int = 128,
    adapter_bottleneck: int | None = None,
    lora_rank: int = 8,
    lora_alpha: float = 8.0,
    max_grad_norm: float = 1.0,
    alignment_weight: float = 0.0,
    alignment_heads: int = 1,
    position_bias_scale: float = 1.0,
) -> Model:
    """Settings of a HyperLoader model; see the README's config reference for each."""
    if not max_grad_norm >= 0:
        raise ValueError(f"max_grad_norm must be >= 0 (0: no clipping), got {max_grad_norm!r}.")
    if not alignment_weight >= 0:
        raise ValueError(f"alignment_weight must be >= 0 (0: off), got {alignment_weight!r}.")
    if alignment_heads < 1:
        raise ValueError(f"alignment_heads must be at least 1, got {alignment_heads!r}.")
    if loss_reduction not in ("sum", "mean"):
        raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {loss_reduction!r}.")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}.")
    settings = {
        "backbone": backbone, "tokenizer": tokenizer, "variant": variant, "train_backbone": train_backbone,
        "restrict_vocabulary": restrict_vocabulary, "label_smoothing": label_smoothing,
        "loss_reduction": loss_reduction, "max_source_tokens": max_source_tokens,
        "max_target_tokens": max_target_tokens, "adapter_bottleneck": adapter_bottleneck,
        "lora_rank": lora_rank, "lora_alpha": lora_alpha, "max_grad_norm": max_grad_norm,
        "alignment_weight": alignment_weight, "alignment_heads": alignment_heads,
        "position_bias_scale": position_bias_scale,
    }
    return Model("hyperloader", _forward, attrs={"settings": settings, "labeler": None})


def _forward(model: Model, docs: Any, is_train: bool) -> Any:
    raise NotImplementedError("The hyperloader model is driven by its component, not called directly.")


def attach_labeler(model: Model, labeler: Labeler) -> None:
    """Make ``labeler`` the model's torch side (replacing any earlier one)."""
    model.attrs["labeler"] = labeler
    model._shims[:] = [PyTorchShim(labeler.model)]


def get_labeler(model: Model) -> Labeler | None:
    return model.attrs.get("labeler")
