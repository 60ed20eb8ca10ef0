"""Every transformers internal the package relies on, checked against the installed version.

The family-specific names live in ``model/architectures.py`` (one ``ArchitectureTable`` per
model family); these tests resolve each of them on a tiny backbone of that family, and check
the library functions the code calls, so that an unsupported transformers fails here with the
internal named, not deep inside training or decoding.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import AutoConfig, AutoModelForSeq2SeqLM

from spacy_hyperloader.model.architectures import ARCHITECTURES, ArchitectureTable

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
SUPPORTED = re.search(r'"transformers([^"]*)"', PYPROJECT.read_text(encoding="utf8")).group(1)
FAMILIES = sorted(ARCHITECTURES)


def require(ok: bool, internal: str) -> None:
    """Fail naming the internal, the installed version and the supported range."""
    if not ok:
        pytest.fail(
            f"transformers {transformers.__version__} is not supported: spacy-hyperloader relies on "
            f"{internal}, which this version lacks or changed. Supported: transformers{SUPPORTED} "
            f"(pyproject.toml); a new version needs model/architectures.py updated.",
            pytrace=False,
        )


def parameter_names(function) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


def tiny_backbone(model_type: str, **overrides) -> tuple[ArchitectureTable, nn.Module]:
    """A random backbone of the family, sized through the table's own config attribute names."""
    arch = ARCHITECTURES[model_type]
    defaults = AutoConfig.for_model(model_type)
    names = [arch.d_model_attr, *arch.layers_attr.values(), arch.heads_attr, arch.head_dim_attr]
    for name in names:
        require(hasattr(defaults, name), f"the config attribute {type(defaults).__name__}.{name}")
    sizes = {arch.d_model_attr: 16, arch.layers_attr["encoder"]: 2, arch.layers_attr["decoder"]: 3,
             arch.heads_attr: 2, arch.head_dim_attr: 4}
    config = AutoConfig.for_model(
        model_type, vocab_size=40, d_ff=32, dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0,
        eos_token_id=1, **sizes, **overrides,
    )
    torch.manual_seed(0)
    return arch, AutoModelForSeq2SeqLM.from_config(config).eval()


@pytest.mark.parametrize("model_type", FAMILIES)
def test_config_attributes_mean_what_the_table_says(model_type):
    arch, backbone = tiny_backbone(model_type)
    config = backbone.config
    for stack in arch.blocks:
        require(
            len(arch.blocks_of(backbone, stack)) == arch.n_layers(config, stack),
            f"{type(config).__name__}.{arch.layers_attr[stack]} as the number of {stack} blocks",
        )
    q = arch.site_module(arch.blocks_of(backbone, "encoder")[0], "self_q", "encoder")
    require(
        (q.in_features, q.out_features) == (arch.d_model(config), arch.attention_dim(config)),
        f"{arch.d_model_attr} and {arch.heads_attr} * {arch.head_dim_attr} as the widths of the attention projections",
    )


@pytest.mark.parametrize("model_type", FAMILIES)
def test_every_block_and_site_path_resolves_to_a_linear_layer(model_type):
    arch, backbone = tiny_backbone(model_type)
    d_model, attention_dim = arch.d_model(backbone.config), arch.attention_dim(backbone.config)
    for stack, path in arch.blocks.items():
        try:
            blocks = arch.blocks_of(backbone, stack)
        except AttributeError:
            blocks = None
        require(isinstance(blocks, nn.ModuleList), f"the {stack} blocks at `{path}`")
        for block in blocks:
            for site, paths in arch.sites.items():
                if stack not in paths:
                    continue
                try:
                    module = arch.site_module(block, site, stack)
                except AttributeError:
                    module = None
                require(isinstance(module, nn.Linear), f"the {site} module at `{path}.N.{paths[stack]}`")
                widths = {"ffn_adapter": d_model, "self_attn_adapter": d_model}
                require(
                    module.out_features == widths.get(site, attention_dim),
                    f"the output width of `{paths[stack]}` ({site})",
                )


@pytest.mark.parametrize("model_type", FAMILIES)
def test_the_layer_norm_pattern_finds_exactly_the_layer_norm_weights(model_type):
    arch, backbone = tiny_backbone(model_type)
    norms = {
        f"{name}.weight" for name, module in backbone.named_modules() if type(module).__name__.endswith("LayerNorm")
    }
    matched = {name for name, _ in backbone.named_parameters() if arch.is_layer_norm(name)}
    require(bool(norms) and matched == norms, f"layer norm parameters named like {arch.layer_norm_pattern!r}")


@pytest.mark.parametrize("model_type", FAMILIES)
@pytest.mark.parametrize("tied", [True, False])
def test_output_states_reproduce_the_backbones_own_logits(model_type, tied):
    arch, backbone = tiny_backbone(model_type, tie_word_embeddings=tied)
    ids = torch.tensor([[5, 6, 7, 1]])
    decoder_ids = torch.tensor([[0, 8, 9]])
    with torch.no_grad():
        out = backbone(input_ids=ids, decoder_input_ids=decoder_ids, output_hidden_states=True)
        hidden = out.decoder_hidden_states[-1]
        logits = F.linear(arch.output_states(backbone.config, hidden), backbone.get_output_embeddings().weight)
    require(
        torch.allclose(logits, out.logits, atol=1e-5),
        f"{type(backbone).__name__} scaling decoder states by d_model ** -0.5 before a tied LM head "
        f"(rescales_tied_output={arch.rescales_tied_output})",
    )


@pytest.mark.parametrize("model_type", [t for t in FAMILIES if ARCHITECTURES[t].position_bias is not None])
def test_relative_position_bias_internals(model_type):
    arch, backbone = tiny_backbone(model_type)
    bias = arch.position_bias
    for stack in arch.blocks:
        try:
            owner = arch.blocks_of(backbone, stack)[0].get_submodule(bias.owner)
        except AttributeError:
            owner = None
        require(owner is not None and getattr(owner, bias.flag, False) is True,
                f"the {stack}'s relative position bias in `{bias.owner}.{bias.flag}` of its first block")
        kind = type(owner).__name__
        require(isinstance(getattr(owner, bias.embedding, None), nn.Embedding), f"{kind}.{bias.embedding} (an nn.Embedding)")
        for name in (bias.num_buckets, bias.max_distance):
            require(isinstance(getattr(owner, name, None), int), f"{kind}.{name} (an int)")
        compute = getattr(type(owner), bias.compute, None)
        require(
            compute is not None and parameter_names(compute) == ["query_length", "key_length", "device", "cache_position"],
            f"{kind}.{bias.compute}(query_length, key_length, device=None, cache_position=None)",
        )
        bucket = inspect.getattr_static(type(owner), bias.bucket, None)
        require(
            isinstance(bucket, staticmethod)
            and parameter_names(bucket.__func__) == ["relative_position", "bidirectional", "num_buckets", "max_distance"],
            f"the static method {kind}.{bias.bucket}(relative_position, bidirectional, num_buckets, max_distance)",
        )


@pytest.mark.parametrize("model_type", [t for t in FAMILIES if ARCHITECTURES[t].position_bias is not None])
def test_the_decoder_bias_is_computed_through_the_method_constrained_decoding_replaces(model_type):
    arch, backbone = tiny_backbone(model_type)
    owner = arch.position_bias_owner(backbone, "decoder")
    compute = getattr(owner, arch.position_bias.compute)
    queries, keys = 3, 5
    # the table's bucket + embedding path reproduces the backbone's own bias (causal positions)
    relative = torch.arange(keys)[None, None, :] - (torch.arange(queries) + keys - queries)[None, :, None]
    ours = arch.bias_values(owner, arch.position_buckets(owner, relative, bidirectional=False)).permute(0, 3, 1, 2)
    with torch.no_grad():
        theirs = compute(keys, keys)[:, :, -queries:, :]
    require(torch.allclose(ours, theirs), f"{type(owner).__name__}.{arch.position_bias.bucket} as the decoder's bucketing")
    calls = []

    def spy(*args, **kwargs):
        calls.append(args)
        return compute(*args, **kwargs)

    setattr(owner, arch.position_bias.compute, spy)
    try:
        with torch.no_grad():
            backbone(input_ids=torch.tensor([[5, 6, 1]]), decoder_input_ids=torch.tensor([[0, 7]]))
    finally:
        delattr(owner, arch.position_bias.compute)
    require(len(calls) == 1, f"the decoder calling {type(owner).__name__}.{arch.position_bias.compute} once per forward")


def test_library_functions_the_package_calls():
    from transformers import get_inverse_sqrt_schedule, get_linear_schedule_with_warmup
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    require(
        parameter_names(get_inverse_sqrt_schedule)[:4] == ["optimizer", "num_warmup_steps", "timescale", "last_epoch"],
        "transformers.get_inverse_sqrt_schedule(optimizer, num_warmup_steps, timescale, last_epoch)",
    )
    require(
        parameter_names(get_linear_schedule_with_warmup)[:3] == ["optimizer", "num_warmup_steps", "num_training_steps"],
        "transformers.get_linear_schedule_with_warmup(optimizer, num_warmup_steps, num_training_steps)",
    )
    require(
        parameter_names(EncoderDecoderCache.__init__)[:2] == ["self_attention_cache", "cross_attention_cache"],
        "transformers.cache_utils.EncoderDecoderCache(self_attention_cache, cross_attention_cache)",
    )
    require(callable(DynamicCache), "transformers.cache_utils.DynamicCache")
