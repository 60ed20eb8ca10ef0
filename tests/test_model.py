"""HyperLoaderModel: parameter counts, freezing, injection, mixed batches, caching, save/load."""

from __future__ import annotations

import pickle
from collections import Counter

import pytest
import torch
from transformers import MT5Config, T5Config
from typer.testing import CliRunner

from spacy_hyperloader.cli import app
from spacy_hyperloader.model import HyperLoaderConfig, HyperLoaderModel
from spacy_hyperloader.model.backbone import build_backbone
from spacy_hyperloader.model.generated import lora_delta
from spacy_hyperloader.model.training import build_optimizer, optimizer_step

from .tiny import make_model, randomize_, tiny_t5_config

T5_BASE = dict(
    d_model=768, d_ff=3072, num_layers=12, num_decoder_layers=12, num_heads=12, d_kv=64, vocab_size=32128
)
SEVEN = [f"task{i}" for i in range(7)]


def meta_model(variant: str, **backbone) -> HyperLoaderModel:
    with torch.device("meta"):
        return HyperLoaderModel(build_backbone(T5Config(**(backbone or T5_BASE))), HyperLoaderConfig(tasks=SEVEN, variant=variant))


def test_t5_base_parameter_counts_match_the_authors():
    model = meta_model("hyperloader")
    trainable, total = model.parameter_counts()
    assert trainable == 6_784_368
    assert total == 229_640_304  # the authors' 229,640,688 minus a relative-bias table current T5 lacks
    for stack in ("encoder", "decoder"):
        assert sum(p.numel() for p in model.hypernetworks[stack].parameters()) == 3_368_152
    assert model.parameter_counts()[0] - 2 * 3_368_152 - 7 * 64 == 47_616  # T5's own layer norms


def test_adapters_only_matches_hyperformer_plus_plus_count():
    model = meta_model("adapters_only")
    assert model.parameter_counts()[0] == 5_210_992
    assert model.hypernetworks["encoder"].position_embedding.num_embeddings == 2
    assert model.hypernetworks["encoder"].lora_heads is None


def test_params_command_prints_counts(tmp_path):
    config = tmp_path / "t5-base.json"
    T5Config(**T5_BASE).to_json_file(config)
    result = CliRunner().invoke(app, ["params", str(config), "--tasks", "7"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "trainable=6784368 total=229640304 percent=2.9543"
    result = CliRunner().invoke(app, ["params", str(config), "--tasks", "7", "--variant", "hyperformer++"])
    assert "trainable=5210992 " in result.output
    bad = CliRunner().invoke(app, ["params", str(config), "--tasks", "7", "--variant", "nope"])
    assert bad.exit_code != 0 and "nope" in bad.output


def test_every_lora_delta_is_zero_at_initialisation(tokenizer):
    model = make_model(tokenizer)
    weights = model.generated_weights(torch.tensor([0, 1]))
    x = torch.randn(3, 5, 32)
    n_sites = 0
    for stack, sites in weights.items():
        for site, w in sites.items():
            if "a" not in w:
                continue
            assert w["a"].abs().sum() > 0  # A is random, B is exactly zero
            for task in range(2):
                for layer in range(2):
                    delta = lora_delta(x, {k: v[task, layer] for k, v in w.items()}, model.config.lora_scale)
                    assert torch.equal(delta, torch.zeros_like(delta))
            n_sites += 1
    assert n_sites == 6  # q, v of self-attention in both stacks; q, v of cross-attention


def _batch(tokenizer, task_ids):
    torch.manual_seed(3)
    n = len(task_ids)
    input_ids = torch.randint(3, len(tokenizer) - 100, (n, 7))
    mask = torch.ones_like(input_ids)
    mask[0, 5:] = 0
    decoder = torch.randint(3, len(tokenizer) - 100, (n, 4))
    return torch.tensor(task_ids), input_ids, mask, decoder


def test_only_trainable_parameters_move_and_lora_a_waits_for_b(tokenizer):
    model = make_model(tokenizer)
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    params = model.trainable_parameters()
    optimizer = build_optimizer(params, lr=1e-2)
    task_ids, input_ids, mask, decoder = _batch(tokenizer, [0, 1, 0, 1])

    def step():
        logits = model.sequence_logits(task_ids, input_ids, mask, decoder)
        optimizer_step(logits.logsumexp(-1).mean() - logits[..., 5].mean(), params, optimizer)

    step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    lora_a = {n for n in before if ".lora_heads." in n and n.endswith(".a.weight")}
    # B starts at zero, so A's first gradient is exactly zero: LoRA starts as the identity.
    assert lora_a and not (moved & lora_a)
    step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert moved == trainable
    assert all(".layer_norm." in n or "final_layer_norm" in n for n in trainable if n.startswith("backbone."))
    assert any(n.startswith("backbone.") for n in trainable)


def test_train_backbone_makes_everything_trainable(tokenizer):
    model = make_model(tokenizer, train_backbone=True)
    trainable, total = model.parameter_counts()
    assert trainable == total
    frozen_ln = make_model(tokenizer, train_backbone_layer_norms=False)
    assert not any(p.requires_grad for p in frozen_ln.backbone.parameters())


def test_mixed_task_batch_equals_per_task_batches(tokenizer):
    model = randomize_(make_model(tokenizer)).eval()
    task_ids, input_ids, mask, decoder = _batch(tokenizer, [1, 0, 0, 1, 1])
    with torch.no_grad():
        mixed = model.sequence_logits(task_ids, input_ids, mask, decoder)
        for task in (0, 1):
            rows = (task_ids == task).nonzero().squeeze(1)
            alone = model.sequence_logits(task_ids[rows], input_ids[rows], mask[rows], decoder[rows])
            torch.testing.assert_close(mixed[rows], alone, atol=1e-5, rtol=1e-5)
        # and the task really matters: the same row under the other task differs
        swapped = model.sequence_logits(1 - task_ids, input_ids, mask, decoder)
    assert (swapped - mixed).abs().max() > 1e-3


def test_cached_weights_equal_fresh_and_follow_parameter_changes(tokenizer):
    model = randomize_(make_model(tokenizer)).eval()
    tasks = torch.tensor([0, 1])
    with torch.no_grad():
        cached = model.generated_weights(tasks)
        one = model.generated_weights(tasks[:1])
        one_again = model.generated_weights(tasks[:1])
    fresh = model._generate(tasks)
    for stack in fresh:
        for site in fresh[stack]:
            for name, value in fresh[stack][site].items():
                # cached weights were generated one task at a time: same math, other batching
                torch.testing.assert_close(cached[stack][site][name], value, rtol=1e-5, atol=1e-5)
                assert one_again[stack][site][name] is one[stack][site][name]  # a hit, not a rerun
    task_ids, input_ids, mask, decoder = _batch(tokenizer, [0, 1])
    bias = model.hypernetworks["decoder"].adapter_heads["norm_bias"].bias

    def cached_and_fresh():
        with torch.no_grad():
            cached = model.sequence_logits(task_ids, input_ids, mask, decoder)
        return cached, model.sequence_logits(task_ids, input_ids, mask, decoder).detach()  # grad on: never cached

    first, _ = cached_and_fresh()
    with torch.no_grad():
        bias.add_(0.5)  # in place while in eval mode: the documented case that needs invalidating
    model.invalidate_generated_weights()
    second, fresh = cached_and_fresh()
    torch.testing.assert_close(second, fresh, atol=1e-4, rtol=1e-4)
    assert (first - second).abs().max() > 1e-2
    model.train()  # going back to training drops the cache by itself
    with torch.no_grad():
        bias.add_(0.5)
    model.eval()
    third, fresh = cached_and_fresh()
    torch.testing.assert_close(third, fresh, atol=1e-4, rtol=1e-4)
    assert (second - third).abs().max() > 1e-2
    state = {name: p.detach().clone() for name, p in model.trainable_state_dict().items()}
    state["hypernetworks.decoder.adapter_heads.norm_bias.bias"] += 0.5
    model.load_trainable(state)  # and so does loading weights
    fourth, fresh = cached_and_fresh()
    torch.testing.assert_close(fourth, fresh, atol=1e-4, rtol=1e-4)
    assert (third - fourth).abs().max() > 1e-2


def test_optimizer_step_invalidates_the_cache(tokenizer):
    model = randomize_(make_model(tokenizer))
    params = model.trainable_parameters()
    optimizer = build_optimizer(params, lr=1e-2)
    task_ids, input_ids, mask, decoder = _batch(tokenizer, [0, 1])
    model.eval()
    with torch.no_grad():
        before = model.sequence_logits(task_ids, input_ids, mask, decoder)
    model.train()
    optimizer_step(model.sequence_logits(task_ids, input_ids, mask, decoder).mean(), params, optimizer)
    model.eval()
    with torch.no_grad():
        after = model.sequence_logits(task_ids, input_ids, mask, decoder)
    fresh = model.sequence_logits(task_ids, input_ids, mask, decoder)  # grad on: never cached
    torch.testing.assert_close(after, fresh.detach(), atol=1e-4, rtol=1e-4)
    assert (before - after).abs().max() > 1e-2


def _count_generations(model: HyperLoaderModel) -> Counter:
    calls: Counter = Counter()
    for stack, hyper in model.hypernetworks.items():
        hyper.register_forward_hook(lambda module, args, out, stack=stack: calls.update([stack]))
    return calls


def test_regenerating_every_forward_gives_the_same_outputs_at_the_authors_cost(tokenizer):
    model = randomize_(make_model(tokenizer)).eval()
    calls = _count_generations(model)
    task_ids, input_ids, mask, decoder = _batch(tokenizer, [0, 1, 1])
    steps = 4

    def greedy():
        with model.task_context(task_ids):
            return model.backbone.generate(
                input_ids=input_ids, attention_mask=mask, do_sample=False, num_beams=1,
                min_new_tokens=steps, max_new_tokens=steps,
            )

    with torch.no_grad():
        cached_logits, cached_tokens = model.sequence_logits(task_ids, input_ids, mask, decoder), greedy()
        calls.clear()
        with model.regenerating_every_forward(), model.regenerating_every_forward():  # nesting is harmless
            logits = model.sequence_logits(task_ids, input_ids, mask, decoder)
            assert calls == {"encoder": 1, "decoder": 1}  # each stack once per forward, nothing up front
            calls.clear()
            tokens = greedy()
            assert calls == {"encoder": 1, "decoder": steps}  # the decoder regenerates at every step
        calls.clear()
        after = model.sequence_logits(task_ids, input_ids, mask, decoder)
    assert not calls  # the cache is intact and in use again
    assert not any(m._forward_pre_hooks for m in model.backbone.modules())
    torch.testing.assert_close(logits, cached_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(after, cached_logits, rtol=0, atol=0)
    assert torch.equal(tokens, cached_tokens)


def test_regenerating_every_forward_trains_like_the_default(tokenizer):
    model = randomize_(make_model(tokenizer)).train()
    task_ids, input_ids, mask, decoder = _batch(tokenizer, [1, 0])
    default = model.sequence_logits(task_ids, input_ids, mask, decoder)
    with model.regenerating_every_forward():
        regenerated = model.sequence_logits(task_ids, input_ids, mask, decoder)
    torch.testing.assert_close(regenerated, default, rtol=1e-5, atol=1e-5)
    regenerated.sum().backward()
    assert all(p.grad is not None for p in model.hypernetworks.parameters())


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(lambda v: tiny_t5_config(v, feed_forward_proj="relu"), id="t5-v1.0-relu"),
        pytest.param(lambda v: tiny_t5_config(v, feed_forward_proj="gated-gelu", tie_word_embeddings=False), id="t5-v1.1-gated-gelu"),
        pytest.param(
            lambda v: MT5Config(vocab_size=v, d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16,
                                decoder_start_token_id=0, pad_token_id=0, eos_token_id=1), id="mt5"),
    ],
)
def test_every_t5_family_gets_every_site(tokenizer, config):
    torch.manual_seed(0)
    model = HyperLoaderModel.from_backbone_config(config(len(tokenizer)), HyperLoaderConfig(tasks=["a", "b"]))
    hooked = {n for n, m in model.backbone.named_modules() if m._forward_hooks}
    assert len(hooked) == 2 * 4 + 2 * 6  # encoder: 2 adapters + self q, v; decoder: + cross q, v
    assert any("EncDecAttention.v" in n for n in hooked) and not any("encoder" in n and "EncDec" in n for n in hooked)
    randomize_(model).eval()
    task_ids, input_ids, mask, decoder = _batch(tokenizer, [0, 1])
    with torch.no_grad():
        a = model.sequence_logits(task_ids, input_ids, mask, decoder)
        b = model.sequence_logits(1 - task_ids, input_ids, mask, decoder)
    assert torch.isfinite(a).all() and (a - b).abs().max() > 1e-4


def test_backbone_outside_task_context_is_an_error(tokenizer):
    model = make_model(tokenizer)
    with pytest.raises(RuntimeError, match="task_context"):
        model.backbone(input_ids=torch.tensor([[5, 6]]), decoder_input_ids=torch.tensor([[0]]))
    with pytest.raises(ValueError, match="out of range"):
        with model.task_context([0, 2]):
            pass


def test_bad_config_values_name_the_fix():
    with pytest.raises(ValueError, match="variant 'x'"):
        HyperLoaderConfig(tasks=["a"], variant="x")
    with pytest.raises(ValueError, match="lora_rank"):
        HyperLoaderConfig(tasks=["a"], lora_rank=0)
    with pytest.raises(ValueError, match="at least one task"):
        HyperLoaderConfig(tasks=[])
    with pytest.raises(ValueError, match="unique"):
        HyperLoaderConfig(tasks=["a", "a"])


def test_save_load_round_trip_without_pickle(tokenizer, tmp_path, monkeypatch):
    model = randomize_(make_model(tokenizer)).eval()
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "backbone" / "model.safetensors").is_file()  # random backbone: saved
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load (pickle) was called"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle.load was called"))
    loaded = HyperLoaderModel.from_pretrained(tmp_path / "m").eval()
    _assert_identical_outputs(loaded, model, tokenizer, [1, 0, 1])


def _assert_identical_outputs(a, b, tokenizer, task_ids):
    task_ids, input_ids, mask, decoder = _batch(tokenizer, task_ids)
    with torch.no_grad():
        torch.testing.assert_close(
            a.sequence_logits(task_ids, input_ids, mask, decoder),
            b.sequence_logits(task_ids, input_ids, mask, decoder), rtol=0, atol=0,
        )


def test_pretrained_backbone_is_named_not_copied(tokenizer, tmp_path):
    torch.manual_seed(0)
    build_backbone(tiny_t5_config(len(tokenizer))).save_pretrained(tmp_path / "bb")
    model = randomize_(HyperLoaderModel.from_backbone(tmp_path / "bb", HyperLoaderConfig(tasks=["a", "b"]))).eval()
    model.save_pretrained(tmp_path / "m")
    assert not (tmp_path / "m" / "backbone").exists()
    loaded = HyperLoaderModel.from_pretrained(tmp_path / "m").eval()
    _assert_identical_outputs(loaded, model, tokenizer, [0, 1])


def test_loading_refuses_pickled_or_missing_backbones(tokenizer, tmp_path):
    torch.manual_seed(0)
    build_backbone(tiny_t5_config(len(tokenizer))).save_pretrained(tmp_path / "bin", safe_serialization=False)
    with pytest.raises(ValueError, match="safetensors"):
        HyperLoaderModel.from_backbone(tmp_path / "bin", HyperLoaderConfig(tasks=["a"]))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        HyperLoaderModel.from_backbone(tmp_path / "nowhere", HyperLoaderConfig(tasks=["a"]))
    with pytest.raises(FileNotFoundError, match="hyperloader.json"):
        HyperLoaderModel.from_pretrained(tmp_path)


def test_load_rejects_weights_of_another_variant(tokenizer, tmp_path):
    make_model(tokenizer).save_pretrained(tmp_path / "m")
    other = make_model(tokenizer, variant="adapters_only")
    from safetensors.torch import load_file

    with pytest.raises(ValueError, match="another variant"):
        other.load_trainable(load_file(str(tmp_path / "m" / "hyperloader.safetensors")))


def test_bf16_autocast_runs(tokenizer):
    model = randomize_(make_model(tokenizer)).eval()
    task_ids, input_ids, mask, decoder = _batch(tokenizer, [0, 1])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model.sequence_logits(task_ids, input_ids, mask, decoder)
    reference = model.sequence_logits(task_ids, input_ids, mask, decoder)
    assert torch.isfinite(logits.float()).all()
    similarity = torch.nn.functional.cosine_similarity(logits.float().flatten(), reference.flatten(), dim=0)
    assert similarity > 0.99


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_runs_on_cuda(tokenizer):
    model = randomize_(make_model(tokenizer)).cuda().eval()
    task_ids, input_ids, mask, decoder = (t.cuda() for t in _batch(tokenizer, [0, 1]))
    with torch.no_grad():
        logits = model.sequence_logits(task_ids, input_ids, mask, decoder)
    cpu = model.cpu().sequence_logits(*(t.cpu() for t in (task_ids, input_ids, mask, decoder)))
    torch.testing.assert_close(logits.cpu(), cpu.detach(), atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------------------- full fine-tuning


def test_full_finetune_is_the_plain_backbone_all_trainable(tokenizer):
    model = make_model(tokenizer, variant="full_finetune").eval()
    assert model.config.train_backbone is True  # None resolves to the variant's default
    assert len(model.hypernetworks) == 0
    assert not any(m._forward_hooks for m in model.backbone.modules())
    assert all(p.requires_grad for p in model.backbone.parameters())
    assert not model.task_embedding.weight.requires_grad  # kept for the task-id interface, unused
    trainable, total = model.parameter_counts()
    assert trainable == total - model.task_embedding.weight.numel()
    task_ids, input_ids, mask, decoder = _batch(tokenizer, [0, 1, 1])
    with torch.no_grad():
        logits = model.sequence_logits(task_ids, input_ids, mask, decoder)
        plain = model.backbone(input_ids=input_ids, attention_mask=mask, decoder_input_ids=decoder).logits
        torch.testing.assert_close(logits, plain, rtol=0, atol=0)
        # the task id changes nothing, and task ids are still checked
        torch.testing.assert_close(model.sequence_logits([1, 0, 0], input_ids, mask, decoder), logits, rtol=0, atol=0)
    with pytest.raises(ValueError, match="out of range"):
        with model.task_context([2]):
            pass


def test_full_finetune_trains_saves_and_loads(tokenizer, tmp_path):
    model = make_model(tokenizer, variant="full_finetune")
    model.train()
    params = model.trainable_parameters()
    optimizer = build_optimizer(params, lr=1e-2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    task_ids, input_ids, mask, decoder = _batch(tokenizer, [0, 1])
    logits = model.sequence_logits(task_ids, input_ids, mask, decoder)
    optimizer_step(logits.logsumexp(-1).mean() - logits[..., 5].mean(), params, optimizer)
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved and all(n.startswith("backbone.") for n in moved)
    model.eval().save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "backbone" / "model.safetensors").is_file()  # a trained backbone is saved
    loaded = HyperLoaderModel.from_pretrained(tmp_path / "m").eval()
    assert loaded.config.variant == "full_finetune" and loaded.config.train_backbone is True
    _assert_identical_outputs(loaded, model, tokenizer, [1, 0])


def test_full_finetune_needs_the_backbone_trained_and_counts_in_params(tmp_path):
    with pytest.raises(ValueError, match="train_backbone=True"):
        HyperLoaderConfig(tasks=["a"], variant="full_finetune", train_backbone=False)
    assert HyperLoaderConfig(tasks=["a"]).train_backbone is False  # other variants keep the frozen default
    config = tmp_path / "t5-base.json"
    T5Config(**T5_BASE).to_json_file(config)
    result = CliRunner().invoke(app, ["params", str(config), "--tasks", "7", "--variant", "full_finetune"])
    assert result.exit_code == 0, result.output
    backbone = 229_640_304 - 2 * 3_368_152 - 7 * 64  # t5-base: the hyperloader total minus its extras
    assert f"trainable={backbone} total={backbone + 7 * 64} " in result.output  # 7 x 64 frozen task rows
