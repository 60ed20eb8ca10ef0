"""Where each generated module goes inside a backbone, one table per model family.

Another encoder-decoder family becomes a new table entry (as peft's target modules do),
not a rewrite of the injection code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class ArchitectureTable:
    """Module paths relative to one block of each stack; a site missing from a stack is skipped."""

    blocks: dict[str, str]  # stack name -> path of its ModuleList of blocks
    sites: dict[str, dict[str, str]]  # site -> {stack -> path inside a block}
    layer_norm_pattern: str  # parameter names of the backbone's own layer norms
    d_model_attr: str = "d_model"
    position_bias_attribute: str | None = None  # attribute holding a relative position bias embedding

    def blocks_of(self, backbone: nn.Module, stack: str) -> nn.ModuleList:
        return backbone.get_submodule(self.blocks[stack])

    def site_module(self, block: nn.Module, site: str, stack: str) -> nn.Module | None:
        path = self.sites.get(site, {}).get(stack)
        return None if path is None else block.get_submodule(path)

    def is_layer_norm(self, parameter_name: str) -> bool:
        return re.search(self.layer_norm_pattern, parameter_name) is not None


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
    position_bias_attribute="relative_attention_bias",
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
