"""The thinc model that carries a HyperLoader ``Labeler`` through spaCy's config and training.

Its signature is the one place the model's settings and their defaults are written: the
component's default config names only ``@architectures`` and ``backbone``, spaCy fills the rest
from here, and ``hyperloader_config`` derives the torch model's ``HyperLoaderConfig`` from the
result. The method's own hyperparameters default to ``HyperLoaderConfig``'s class values (the
authors'), so the pure-PyTorch package and the spaCy layer cannot drift apart.

The torch model itself is attached when the component is initialized or loaded (it needs the
tasks), as a ``PyTorchShim`` so that ``[training.optimizer]`` updates exactly its trainable
parameters.
"""

from collections.abc import Sequence
from typing import Any

from spacy.util import registry
from thinc.api import Model, PyTorchShim

from ..labeler import Labeler
from ..model import HyperLoaderConfig
from ..model.config import resolve_variant

MODEL_NAME = "spacy-hyperloader.HyperLoaderModel.v1"
# the settings that go to HyperLoaderConfig; the others are the Labeler's and the loss's
MODEL_SETTINGS = ("variant", "train_backbone", "adapter_bottleneck", "lora_rank", "lora_alpha", "position_bias_scale")


@registry.architectures(MODEL_NAME)
def build_hyperloader_model(
    backbone: str,
    tokenizer: str | None = None,
    variant: str = HyperLoaderConfig.variant,
    train_backbone: bool | None = HyperLoaderConfig.train_backbone,
    restrict_vocabulary: bool = False,
    label_smoothing: float = 0.1,
    loss_reduction: str = "sum",
    max_source_tokens: int = 128,
    max_target_tokens: int = 128,
    adapter_bottleneck: int | None = HyperLoaderConfig.adapter_bottleneck,
    lora_rank: int = HyperLoaderConfig.lora_rank,
    lora_alpha: float = HyperLoaderConfig.lora_alpha,
    max_grad_norm: float = 1.0,
    alignment_weight: float = 0.0,
    alignment_heads: int = 1,
    position_bias_scale: float = HyperLoaderConfig.position_bias_scale,
    quantize: str | None = None,
) -> Model:
    """Settings of a HyperLoader model; see the README's config reference for each."""
    settings = dict(locals())  # exactly the arguments: nothing is bound before this line
    resolve_variant(variant)  # a bad name fails here, with the list of variants
    if not max_grad_norm >= 0:
        raise ValueError(f"max_grad_norm must be >= 0 (0: no clipping), got {max_grad_norm!r}.")
    if not alignment_weight >= 0:
        raise ValueError(f"alignment_weight must be >= 0 (0: off), got {alignment_weight!r}.")
    if alignment_heads < 1:
        raise ValueError(f"alignment_heads must be at least 1, got {alignment_heads!r}.")
    if loss_reduction not in ("sum", "mean"):
        raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {loss_reduction!r}.")
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be null or 'int8' (dynamic int8 for CPU inference), got {quantize!r}.")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}.")
    return Model("hyperloader", _forward, attrs={"settings": settings, "labeler": None})


def hyperloader_config(settings: dict[str, Any], tasks: Sequence[str]) -> HyperLoaderConfig:
    """The torch model's config: the tasks plus this architecture's model settings."""
    return HyperLoaderConfig(tasks=list(tasks), **{name: settings[name] for name in MODEL_SETTINGS})


def _forward(model: Model, docs: Any, is_train: bool) -> Any:
    raise NotImplementedError("The hyperloader model is driven by its component, not called directly.")


def attach_labeler(model: Model, labeler: Labeler) -> None:
    """Make ``labeler`` the model's torch side (replacing any earlier one)."""
    model.attrs["labeler"] = labeler
    model._shims[:] = [PyTorchShim(labeler.model)]


def get_labeler(model: Model) -> Labeler | None:
    return model.attrs.get("labeler")
