"""Everything the package knows about a backbone's model family, one table per family.

Where each generated module goes, which config attributes give the sizes, how the family turns
decoder states into logits and how it computes its relative position bias: another
encoder-decoder family becomes a new table entry (as peft's target modules do), not a rewrite
of the injection or decoding code. ``tests/test_transformers_internals.py`` checks every name
given here against the installed transformers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn
from transformers import PretrainedConfig


@dataclass(frozen=True)
class RelativePositionBias:
    """Names inside the attention module that owns a stack's relative position bias (T5: the
    self-attention of the stack's first block; later blocks reuse its output)."""

    owner: str  # path of the bias owner inside a block
    flag: str  # attribute that is true when the module really holds a bias
    embedding: str  # attribute holding the bias table (buckets -> one value per head)
    compute: str  # method (query_length, key_length, device=, cache_position=) -> (1, heads, q, k)
    bucket: str  # static method (relative_position, bidirectional=, num_buckets=, max_distance=)
    num_buckets: str  # attribute: how many buckets
    max_distance: str  # attribute: the distance from which buckets stop growing


@dataclass(frozen=True)
class ArchitectureTable:
    """Paths, attribute names and conventions of one model family.

    Module paths in ``sites`` are relative to one block of a stack; a site missing from a stack
    is skipped.
    """

    blocks: dict[str, str]  # stack name -> path of its ModuleList of blocks
    sites: dict[str, dict[str, str]]  # site -> {stack -> path inside a block}
    layer_norm_pattern: str  # parameter names of the backbone's own layer norms
    d_model_attr: str  # config attribute: width of the hidden states
    layers_attr: dict[str, str]  # stack -> config attribute: its number of blocks
    heads_attr: str  # config attribute: attention heads
    head_dim_attr: str  # config attribute: width of one head (q and v project to heads * this)
    rescales_tied_output: bool  # states are scaled by d_model ** -0.5 before a tied output layer
    position_bias: RelativePositionBias | None = None

    # ----------------------------------------------------------------- sizes
    def d_model(self, config: PretrainedConfig) -> int:
        return getattr(config, self.d_model_attr)

    def n_layers(self, config: PretrainedConfig, stack: str) -> int:
        return getattr(config, self.layers_attr[stack])

    def attention_dim(self, config: PretrainedConfig) -> int:
        """Output width of the attention projections that LoRA adapts."""
        return getattr(config, self.heads_attr) * getattr(config, self.head_dim_attr)

    # ----------------------------------------------------------------- modules
    def blocks_of(self, backbone: nn.Module, stack: str) -> nn.ModuleList:
        return backbone.get_submodule(self.blocks[stack])

    def site_module(self, block: nn.Module, site: str, stack: str) -> nn.Module | None:
        path = self.sites.get(site, {}).get(stack)
        return None if path is None else block.get_submodule(path)

    def is_layer_norm(self, parameter_name: str) -> bool:
        return re.search(self.layer_norm_pattern, parameter_name) is not None

    def output_states(self, config: PretrainedConfig, hidden: Tensor) -> Tensor:
        """Decoder states as the backbone's own LM head receives them."""
        if self.rescales_tied_output and getattr(config, "tie_word_embeddings", False):
            return hidden * (self.d_model(config) ** -0.5)
        return hidden

    # ----------------------------------------------------------------- relative position bias
    def position_bias_owner(self, backbone: nn.Module, stack: str) -> nn.Module:
        """The module computing ``stack``'s relative position bias (for per-row positions)."""
        bias = self.position_bias
        owner = None if bias is None else self.blocks_of(backbone, stack)[0].get_submodule(bias.owner)
        if owner is None or not getattr(owner, bias.flag, False):
            raise TypeError(
                f"The {stack} of this {type(backbone).__name__} has no relative position bias; "
                f"constrained decoding needs a T5-style decoder."
            )
        return owner

    def position_buckets(self, owner: nn.Module, relative: Tensor, *, bidirectional: bool) -> Tensor:
        """Bucket ids of relative positions (key minus query), as ``owner`` buckets them."""
        bias = self.position_bias
        bucket: Callable[..., Tensor] = getattr(owner, bias.bucket)
        return bucket(
            relative,
            bidirectional=bidirectional,
            num_buckets=getattr(owner, bias.num_buckets),
            max_distance=getattr(owner, bias.max_distance),
        )

    def bias_values(self, owner: nn.Module, buckets: Tensor) -> Tensor:
        """One bias per head for each bucket id: shape ``buckets.shape + (heads,)``."""
        return getattr(owner, self.position_bias.embedding)(buckets)


_T5 = ArchitectureTable(
    blocks={"encoder": "encoder.block", "decoder": "decoder.block"},
    sites={
        "ffn_adapter": {"encoder": "layer.1.DenseReluDense.wo", "decoder": "layer.2.DenseReluDense.wo"},
        "self_attn_adapter": {"encoder": "layer.0.SelfAttention.o", "decoder": "layer.0.SelfAttention.o"},
        "self_q": {"encoder": "layer.0.SelfAttention.q", "decoder": "layer.0.SelfAttention.q"},
        "self_v": {"encoder": "layer.0.SelfAttention.v", "decoder": "layer.0.SelfAttention.v"},
        "cross_q": {"decoder": "layer.1.EncDecAttention.q"},
        "cross_v": {"decoder": "layer.1.EncDecAttention.v"},
    },
    layer_norm_pattern=r"(^|\.)(layer_norm|final_layer_norm)\.weight$",
    d_model_attr="d_model",
    layers_attr={"encoder": "num_layers", "decoder": "num_decoder_layers"},
    heads_attr="num_heads",
    head_dim_attr="d_kv",
    rescales_tied_output=True,
    position_bias=RelativePositionBias(
        owner="layer.0.SelfAttention",
        flag="has_relative_attention_bias",
        embedding="relative_attention_bias",
        compute="compute_bias",
        bucket="_relative_position_bucket",
        num_buckets="relative_attention_num_buckets",
        max_distance="relative_attention_max_distance",
    ),
)

# T5 v1.0 (ReLU FFN), T5 v1.1 / FLAN-T5 (gated-GELU FFN) and mT5 share module names.
ARCHITECTURES: dict[str, ArchitectureTable] = {"t5": _T5, "mt5": _T5}


def architecture_for(model_type: str) -> ArchitectureTable:
    if model_type not in ARCHITECTURES:
        raise ValueError(
            f"No HyperLoader injection table for model type {model_type!r}; supported: "
            f"{', '.join(sorted(ARCHITECTURES))}. Add an ArchitectureTable entry for it."
        )
    return ARCHITECTURES[model_type]
