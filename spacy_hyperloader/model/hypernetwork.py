"""The per-stack hypernetwork: (task, layer, position) -> weights of every generated module.

Generator heads are shared across layers and positions (the paper): a module's identity
reaches them only through the layer-id and position embeddings.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import ADAPTER_SITES, LORA_SITES, HyperLoaderConfig

# One generated module's weights for a set of tasks: name -> tensor of shape (tasks, layers, ...).
SiteWeights = dict[str, Tensor]


def _normal_init(linear: nn.Linear, std: float = 0.01) -> nn.Linear:
    nn.init.normal_(linear.weight, std=std)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)
    return linear


class StackHypernetwork(nn.Module):
    """Generates adapters, their conditional layer norms and LoRA matrices for one stack.

    ``stack_sites`` are the sites that exist in this stack (the encoder has no cross-attention);
    the position embedding keeps a row for every site of the variant, as the authors' code.
    """

    def __init__(
        self,
        config: HyperLoaderConfig,
        *,
        n_layers: int,
        d_model: int,
        attention_dim: int,
        stack_sites: tuple[str, ...],
    ) -> None:
        super().__init__()
        variant = config.variant_spec
        self.sites = variant.sites
        self.stack_sites = tuple(s for s in self.sites if s in stack_sites)
        self.n_layers = n_layers
        self.d_model = d_model
        self.attention_dim = attention_dim
        self.bottleneck = config.bottleneck_for(d_model)
        self.rank = config.lora_rank
        out = config.projector_output_dim

        self.layer_embedding = nn.Embedding(n_layers, config.layer_embedding_dim)
        self.position_embedding = nn.Embedding(len(self.sites), config.position_embedding_dim)
        in_dim = config.task_embedding_dim + config.layer_embedding_dim + config.position_embedding_dim
        self.projector = nn.Sequential(
            _normal_init(nn.Linear(in_dim, config.projector_hidden_dim)),
            nn.ReLU(),
            _normal_init(nn.Linear(config.projector_hidden_dim, out)),
        )
        self.projector_norm = nn.LayerNorm(out)

        self.adapter_heads: nn.ModuleDict | None = None
        if variant.adapters:
            k, d = self.bottleneck, d_model
            self.adapter_heads = nn.ModuleDict(
                {
                    "down_weight": _normal_init(nn.Linear(out, k * d)),
                    "down_bias": _normal_init(nn.Linear(out, k)),
                    "up_weight": _normal_init(nn.Linear(out, d * k)),
                    "up_bias": _normal_init(nn.Linear(out, d)),
                    "norm_weight": _normal_init(nn.Linear(out, d)),
                    "norm_bias": _normal_init(nn.Linear(out, d)),
                }
            )
        self.lora_heads: nn.ModuleDict | None = None
        if variant.lora:
            groups = [s for s in LORA_SITES if s in self.stack_sites] if variant.lora_heads_per_site else ["shared"]
            self.lora_heads = nn.ModuleDict({g: self._lora_pair(out) for g in groups})

    def _lora_pair(self, out: int) -> nn.ModuleDict:
        a = nn.Linear(out, self.rank * self.d_model, bias=False)  # default init, as the authors
        b = nn.Linear(out, self.attention_dim * self.rank, bias=False)
        nn.init.zeros_(b.weight)  # every LoRA delta starts at exactly zero
        return nn.ModuleDict({"a": a, "b": b})

    def forward(self, task_vectors: Tensor) -> dict[str, SiteWeights]:
        """Weights of every site of this stack for each task vector (rows of ``task_vectors``)."""
        n_tasks, n_layers, n_pos = task_vectors.shape[0], self.n_layers, len(self.sites)
        shape = (n_tasks, n_layers, n_pos, -1)
        features = torch.cat(
            [
                task_vectors[:, None, None, :].expand(shape),
                self.layer_embedding.weight[None, :, None, :].expand(shape),
                self.position_embedding.weight[None, None, :, :].expand(shape),
            ],
            dim=-1,
        )
        z = self.projector_norm(self.projector(features))  # (tasks, layers, positions, out)
        weights: dict[str, SiteWeights] = {}
        k, d, r = self.bottleneck, self.d_model, self.rank
        for p, site in enumerate(self.sites):
            if site not in self.stack_sites:
                continue
            zs = z[:, :, p]
            lead = zs.shape[:2]
            if site in ADAPTER_SITES:
                h = self.adapter_heads
                weights[site] = {
                    "down_weight": h["down_weight"](zs).view(*lead, k, d),
                    "down_bias": h["down_bias"](zs),
                    "up_weight": h["up_weight"](zs).view(*lead, d, k),
                    "up_bias": h["up_bias"](zs),
                    "norm_weight": h["norm_weight"](zs),
                    "norm_bias": h["norm_bias"](zs),
                }
            else:
                pair = self.lora_heads[site if site in self.lora_heads else "shared"]
                weights[site] = {
                    "a": pair["a"](zs).view(*lead, r, d),
                    "b": pair["b"](zs).view(*lead, self.attention_dim, r),
                }
        return weights
