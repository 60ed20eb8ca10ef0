"""What a HyperLoader model is made of, as plain data that round-trips through JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Every place a generated module can sit inside one transformer block. The order is the order
# of the rows of the hypernetwork's position embedding (the authors' order).
ADAPTER_SITES = ("ffn_adapter", "self_attn_adapter")
LORA_SITES = ("self_q", "self_v", "cross_q", "cross_v")


@dataclass(frozen=True)
class Variant:
    """Which generated modules a variant uses; the ablations of the paper differ only here."""

    adapters: bool
    lora: bool
    lora_heads_per_site: bool = False

    @property
    def sites(self) -> tuple[str, ...]:
        return (ADAPTER_SITES if self.adapters else ()) + (LORA_SITES if self.lora else ())

    @property
    def generates_modules(self) -> bool:
        """False for full fine-tuning: no hypernetworks, nothing injected, the backbone learns."""
        return bool(self.sites)


VARIANTS: dict[str, Variant] = {
    "hyperloader": Variant(adapters=True, lora=True),
    "adapters_only": Variant(adapters=True, lora=False),
    "lora_only": Variant(adapters=False, lora=True),
    "lora_per_site": Variant(adapters=True, lora=True, lora_heads_per_site=True),
    # the baseline without generated modules: the plain backbone, all of it trained
    "full_finetune": Variant(adapters=False, lora=False),
}
VARIANT_ALIASES = {"hyperformer++": "adapters_only", "hyperformer": "adapters_only"}


def resolve_variant(name: str) -> Variant:
    key = VARIANT_ALIASES.get(name.lower(), name.lower())
    if key not in VARIANTS:
        raise ValueError(
            f"Unknown HyperLoader variant {name!r}. Choose one of: "
            f"{', '.join(sorted(VARIANTS))} (or the alias 'hyperformer++' for adapters_only)."
        )
    return VARIANTS[key]


@dataclass
class HyperLoaderConfig:
    """Hyperparameters of the hypernetworks and generated modules (the paper's by default).

    ``adapter_bottleneck`` of None means ``d_model // 32`` (24 for t5-base), as the authors.
    ``train_backbone`` unfreezes the whole backbone: needed when the backbone is not pretrained.
    None means the variant's default: False, except for ``full_finetune`` (which generates
    nothing, so only the backbone can learn: it requires True). ``position_bias_scale`` makes a
    trained backbone's relative position bias learn that many times faster (see
    ``position_bias.py``); 1 leaves the backbone untouched.
    """

    tasks: list[str] = field(default_factory=list)
    variant: str = "hyperloader"
    adapter_bottleneck: int | None = None
    lora_rank: int = 8
    lora_alpha: float = 8.0
    task_embedding_dim: int = 64
    layer_embedding_dim: int = 64
    position_embedding_dim: int = 64
    projector_hidden_dim: int = 128
    projector_output_dim: int = 64
    adapter_layer_norm_eps: float = 1e-5
    train_backbone: bool | None = None
    train_backbone_layer_norms: bool = True
    position_bias_scale: float = 1.0

    def __post_init__(self) -> None:
        self.tasks = list(self.tasks)
        generates = resolve_variant(self.variant).generates_modules
        if self.train_backbone is None:
            self.train_backbone = not generates
        elif not self.train_backbone and not generates:
            raise ValueError(
                f"Variant {self.variant!r} generates no modules, so nothing but the backbone can learn: "
                f"it needs train_backbone=True (or None)."
            )
        if not self.tasks:
            raise ValueError("HyperLoaderConfig needs at least one task name in `tasks`.")
        if len(set(self.tasks)) != len(self.tasks):
            dup = sorted({t for t in self.tasks if self.tasks.count(t) > 1})
            raise ValueError(f"Task names must be unique; repeated: {dup}.")
        positive = (
            "lora_rank", "task_embedding_dim", "layer_embedding_dim", "position_embedding_dim",
            "projector_hidden_dim", "projector_output_dim",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"HyperLoaderConfig.{name} must be a positive integer, got {value!r}.")
        if self.adapter_bottleneck is not None and self.adapter_bottleneck <= 0:
            raise ValueError(
                f"HyperLoaderConfig.adapter_bottleneck must be positive or None (d_model // 32), "
                f"got {self.adapter_bottleneck!r}."
            )
        if not (isinstance(self.position_bias_scale, (int, float)) and self.position_bias_scale > 0):
            raise ValueError(
                f"HyperLoaderConfig.position_bias_scale must be a positive number (1: off), got {self.position_bias_scale!r}."
            )
        if self.lora_alpha <= 0:
            raise ValueError(f"HyperLoaderConfig.lora_alpha must be positive, got {self.lora_alpha!r}.")

    @property
    def variant_spec(self) -> Variant:
        return resolve_variant(self.variant)

    @property
    def lora_scale(self) -> float:
        return self.lora_alpha / self.lora_rank

    def bottleneck_for(self, d_model: int) -> int:
        return self.adapter_bottleneck or max(1, d_model // 32)

    def task_index(self, name: str) -> int:
        try:
            return self.tasks.index(name)
        except ValueError:
            raise KeyError(f"Unknown task {name!r}; this model knows: {', '.join(self.tasks)}.") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HyperLoaderConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown HyperLoaderConfig keys {unknown}; known keys: {sorted(known)}.")
        return cls(**data)
