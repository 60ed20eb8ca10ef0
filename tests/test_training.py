"""Behavioural tests for spacy_hyperloader.model.training (loss, sampling, optimisation)."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_hyperloader.model.training import (
    TemperatureSampler,
    build_optimizer,
    label_smoothed_nll,
    linear_warmup_decay,
    optimizer_step,
    task_sampling_probabilities,
)


def _logits_and_targets(seed: int, shape=(3, 5), vocab: int = 11, ignore_frac: float = 0.3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, vocab, generator=g) * 3
    targets = torch.randint(0, vocab, shape, generator=g)
    ignore = torch.rand(shape, generator=g) < ignore_frac
    targets = targets.masked_fill(ignore, -100)
    return logits, targets


# ------------------------------------------------------------------------ loss


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_epsilon_zero_is_cross_entropy(reduction):
    logits, targets = _logits_and_targets(0)
    got = label_smoothed_nll(logits, targets, epsilon=0.0, reduction=reduction)
    want = F.cross_entropy(logits.flatten(0, -2), targets.flatten(), reduction=reduction)
    torch.testing.assert_close(got, want)


def test_hand_computed_two_token_example():
    # Token 1: uniform logits over 3 classes -> nll = smooth = ln 3.
    # Token 2: probs (1/2, 1/4, 1/4), target 1 -> nll = ln 4,
    #          smooth = -(ln 1/2 + 2 ln 1/4) / 3 = 5 ln 2 / 3.
    logits = torch.tensor([[0.0, 0.0, 0.0], [math.log(2.0), 0.0, 0.0]])
    targets = torch.tensor([0, 1])
    eps = 0.1
    tok1 = math.log(3.0)
    tok2 = (1 - eps) * math.log(4.0) + eps * 5 * math.log(2.0) / 3
    got_sum = label_smoothed_nll(logits, targets, epsilon=eps, reduction="sum")
    got_mean = label_smoothed_nll(logits, targets, epsilon=eps, reduction="mean")
    assert got_sum.item() == pytest.approx(tok1 + tok2, rel=1e-6)
    assert got_mean.item() == pytest.approx((tok1 + tok2) / 2, rel=1e-6)


def _direct_formula(logits, targets, eps, reduction, ignore_index=-100):
    """The loss written out: log-softmax in float32 over real tokens, (1-eps)*nll + eps*mean(-logp)."""
    keep = targets != ignore_index
    logp = torch.log_softmax(logits[keep].float(), dim=-1)
    nll = -logp.gather(-1, targets[keep].long().unsqueeze(-1)).squeeze(-1)
    loss = ((1 - eps) * nll + eps * -logp.mean(dim=-1)).sum()
    return loss / max(int(keep.sum()), 1) if reduction == "mean" else loss


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    eps=st.sampled_from([0.0, 0.1, 0.5]),
    reduction=st.sampled_from(["sum", "mean"]),
    ignore_frac=st.sampled_from([0.0, 0.3, 1.0]),
    dtype=st.sampled_from([torch.float32, torch.bfloat16]),
)
def test_equals_the_direct_formula(seed, eps, reduction, ignore_frac, dtype):
    # the values the component trained with before the loss moved onto torch's cross_entropy
    logits, targets = _logits_and_targets(seed, shape=(3, 6), vocab=13, ignore_frac=ignore_frac)
    logits = logits.to(dtype)
    got = label_smoothed_nll(logits, targets, epsilon=eps, reduction=reduction)
    torch.testing.assert_close(got, _direct_formula(logits, targets, eps, reduction), rtol=1e-6, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    eps=st.floats(0.0, 0.9),
    reduction=st.sampled_from(["sum", "mean"]),
    n=st.integers(1, 6),
    vocab=st.integers(2, 9),
)
def test_matches_torch_cross_entropy_label_smoothing(seed, eps, reduction, n, vocab):
    # torch's label_smoothing uses the same (1-eps)*nll + eps/V*sum(-logp) formulation.
    logits, targets = _logits_and_targets(seed, shape=(n,), vocab=vocab)
    targets[0] = 0  # at least one real token (torch returns NaN for an all-ignored mean)
    got = label_smoothed_nll(logits, targets, epsilon=eps, reduction=reduction)
    want = F.cross_entropy(logits, targets, label_smoothing=eps, reduction=reduction)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_ignored_positions_change_nothing(reduction):
    logits = torch.randn(4, 7, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([3, 0, 6, 2])
    base = label_smoothed_nll(logits, targets, reduction=reduction)

    # Append padded positions with garbage (even non-finite) logits.
    pad_logits = torch.tensor([[1e4] * 7, [float("nan")] * 7, [float("-inf")] + [0.0] * 6])
    all_logits = torch.cat([logits, pad_logits]).requires_grad_()
    all_targets = torch.cat([targets, torch.full((3,), -100)])
    padded = label_smoothed_nll(all_logits, all_targets, reduction=reduction)
    torch.testing.assert_close(padded, base)

    padded.backward()
    assert torch.isfinite(all_logits.grad).all()
    assert torch.all(all_logits.grad[4:] == 0)


def test_custom_ignore_index():
    logits, _ = _logits_and_targets(2, shape=(6,), vocab=5)
    targets = torch.tensor([1, 0, 4, 0, 2, 3])  # pad id 0, as in T5 labels before -100 masking
    got = label_smoothed_nll(logits, targets, ignore_index=0, reduction="mean")
    keep = targets != 0
    want = label_smoothed_nll(logits[keep], targets[keep], reduction="mean")
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, label_smoothed_nll(logits, targets, reduction="mean"))


def test_restricted_vocabulary_equals_direct_subset_computation():
    logits, _ = _logits_and_targets(3, shape=(2, 4), vocab=20)
    subset = torch.tensor([7, 2, 15, 11])  # e.g. the label tokens of a classification task
    full_targets = torch.tensor([[7, 15, 11, -100], [2, 2, 7, 15]])
    # Caller-side remapping from full-vocab ids to column indices of the subset.
    remap = torch.full((20,), -100)
    remap[subset] = torch.arange(len(subset))
    sub_targets = torch.where(full_targets == -100, full_targets, remap[full_targets.clamp_min(0)])

    sub_logits = logits[..., subset]
    got = label_smoothed_nll(sub_logits, sub_targets, epsilon=0.1)

    # Direct computation on the subset: softmax and smoothing only over 4 columns.
    logp = torch.log_softmax(sub_logits, -1)
    mask = sub_targets != -100
    nll = -logp.gather(-1, sub_targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    smooth = -logp.mean(-1)
    want = ((0.9 * nll + 0.1 * smooth) * mask).sum()
    torch.testing.assert_close(got, want)
    # ... which is a genuinely different quantity from the full-vocabulary loss.
    assert got.item() < label_smoothed_nll(logits, full_targets).item()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_logits_give_float32_loss(dtype):
    g = torch.Generator().manual_seed(4)
    logits32 = torch.randn(64, 512, generator=g) * 4
    targets = torch.randint(0, 512, (64,), generator=g)
    low = logits32.to(dtype)

    got = label_smoothed_nll(low, targets)
    assert got.dtype == torch.float32
    # Computed in float32 on the (rounded) low-precision values ...
    torch.testing.assert_close(got, label_smoothed_nll(low.float(), targets), rtol=1e-6, atol=1e-4)
    # ... and close to the full-precision result (only input rounding differs).
    torch.testing.assert_close(got, label_smoothed_nll(logits32, targets), rtol=1e-2, atol=0.0)
    # Sanity: doing the softmax in low precision would be measurably off, so the
    # first check above can detect a missing upcast.
    logp_low = torch.log_softmax(low, -1)
    naive = (0.9 * -logp_low.gather(-1, targets[:, None]).squeeze(-1) - 0.1 * logp_low.mean(-1)).sum()
    assert abs(naive.float().item() - got.item()) > 1e-2


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_no_real_tokens_gives_zero_with_grad(reduction):
    logits = torch.randn(2, 3, 5, requires_grad=True)
    targets = torch.full((2, 3), -100)
    loss = label_smoothed_nll(logits, targets, reduction=reduction)
    assert loss.item() == 0.0
    assert loss.grad_fn is not None
    loss.backward()
    assert torch.all(logits.grad == 0)


def test_gradients_flow_for_real_tokens():
    logits, targets = _logits_and_targets(5)
    logits.requires_grad_()
    label_smoothed_nll(logits, targets).backward()
    real = targets != -100
    assert torch.all(logits.grad[real].abs().sum(-1) > 0)
    assert torch.all(logits.grad[~real] == 0)
    # Gradient of a softmax loss sums to zero over the vocabulary.
    torch.testing.assert_close(logits.grad.sum(-1), torch.zeros(real.shape), atol=1e-6, rtol=0)


@pytest.mark.parametrize("eps", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_epsilon_raises(eps):
    logits, targets = _logits_and_targets(0)
    with pytest.raises(ValueError, match=r"epsilon.*\[0, 1\)"):
        label_smoothed_nll(logits, targets, epsilon=eps)


def test_bad_reduction_raises():
    logits, targets = _logits_and_targets(0)
    with pytest.raises(ValueError, match="reduction") as info:
        label_smoothed_nll(logits, targets, reduction="none")
    assert "'none'" in str(info.value) and "'sum'" in str(info.value) and "'mean'" in str(info.value)


def test_shape_and_dtype_mismatch_raise():
    logits, targets = _logits_and_targets(0)
    with pytest.raises(ValueError, match="shape"):
        label_smoothed_nll(logits, targets[:, :-1])
    with pytest.raises(TypeError, match="integer"):
        label_smoothed_nll(logits, targets.float())


def test_matches_hf_label_smoother_with_mean_reduction():
    """HF's LabelSmoother == label_smoothed_nll(..., reduction="mean"), exactly.

    LabelSmoother divides both the NLL sum and the smoothing sum by the number of
    non-padded tokens N (the smoothing sum additionally by V), i.e. it is the per-token
    mean of (1-eps)*nll + eps*(-sum_V logp)/V -- the same smoothing term as ours. Our
    default "sum" reduction is therefore LabelSmoother * N. The one difference: with no
    non-padded tokens LabelSmoother returns NaN (0/0), we return 0.
    """
    from transformers.trainer_pt_utils import LabelSmoother

    smoother = LabelSmoother(epsilon=0.1)
    logits, targets = _logits_and_targets(6, shape=(4, 9), vocab=32, ignore_frac=0.4)
    n_real = int((targets != -100).sum())
    assert 0 < n_real < targets.numel()

    hf = smoother({"logits": logits}, targets)
    ours_mean = label_smoothed_nll(logits, targets, epsilon=0.1, reduction="mean")
    ours_sum = label_smoothed_nll(logits, targets, epsilon=0.1, reduction="sum")
    torch.testing.assert_close(ours_mean, hf, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours_sum, hf * n_real, rtol=1e-6, atol=1e-5)

    all_pad = torch.full_like(targets, -100)
    assert torch.isnan(smoother({"logits": logits}, all_pad))
    assert label_smoothed_nll(logits, all_pad, reduction="mean").item() == 0.0


# -------------------------------------------------------------------- sampling


def _closed_form(sizes, T):
    w = {k: v ** (1.0 / T) for k, v in sizes.items()}
    z = sum(w.values())
    return {k: x / z for k, x in w.items()}


SIZES = {"a": 100, "b": 10000}


def test_sampling_probabilities_closed_form():
    p1 = task_sampling_probabilities(SIZES, temperature=1.0)
    assert p1["a"] == pytest.approx(100 / 10100, abs=1e-12)
    assert p1["b"] == pytest.approx(10000 / 10100, abs=1e-12)

    p10 = task_sampling_probabilities(SIZES, temperature=10.0)
    # 100**0.1 = 10**0.2, 10000**0.1 = 10**0.4
    a10 = 10**0.2 / (10**0.2 + 10**0.4)
    assert p10["a"] == pytest.approx(a10, abs=1e-12)
    assert p10["b"] == pytest.approx(1 - a10, abs=1e-12)
    assert p10["a"] == pytest.approx(0.386863, abs=1e-6)

    p_inf = task_sampling_probabilities(SIZES, temperature=1e9)
    assert p_inf["a"] == pytest.approx(0.5, abs=1e-6)
    assert p_inf["b"] == pytest.approx(0.5, abs=1e-6)
    assert task_sampling_probabilities(SIZES, temperature=math.inf) == {"a": 0.5, "b": 0.5}


def test_default_temperature_is_ten_and_order_is_kept():
    sizes = {"z": 3, "m": 50, "a": 700}
    p = task_sampling_probabilities(sizes)
    assert list(p) == ["z", "m", "a"]
    for k, v in _closed_form(sizes, 10.0).items():
        assert p[k] == pytest.approx(v, rel=1e-12)
    assert math.fsum(p.values()) == pytest.approx(1.0, abs=1e-12)


def test_sampling_probabilities_do_not_overflow():
    p = task_sampling_probabilities({"a": 10**300, "b": 10**299}, temperature=0.01)
    assert p["a"] == pytest.approx(1.0) and p["b"] >= 0.0
    assert all(math.isfinite(v) for v in p.values())


@pytest.mark.parametrize(
    "sizes,temperature,needle",
    [
        ({}, 10.0, "task"),
        ({"a": 0, "b": 5}, 10.0, "'a': 0"),
        ({"a": -3}, 10.0, "-3"),
        ({"a": 5}, 0.0, "0.0"),
        ({"a": 5}, -1.0, "-1.0"),
        ({"a": 5}, float("nan"), "nan"),
    ],
)
def test_sampling_probabilities_validation(sizes, temperature, needle):
    with pytest.raises(ValueError) as info:
        task_sampling_probabilities(sizes, temperature)
    assert needle in str(info.value)


@pytest.mark.parametrize("T", [1.0, 10.0, 1e9])
def test_sampler_empirical_frequencies(T):
    sampler = TemperatureSampler(SIZES, temperature=T, seed=123)
    draws = sampler.sample_many(20_000)
    counts = Counter(draws)
    assert set(counts) <= set(SIZES)
    for name, p in sampler.probabilities.items():
        assert counts[name] / 20_000 == pytest.approx(p, abs=0.01)


def test_sampler_is_deterministic_per_seed():
    a = TemperatureSampler(SIZES, seed=7)
    b = TemperatureSampler(SIZES, seed=7)
    c = TemperatureSampler(SIZES, seed=8)
    seq_a = [a.sample() for _ in range(200)]
    assert seq_a == [b.sample() for _ in range(200)]
    assert seq_a != [c.sample() for _ in range(200)]
    # sample_many(k) is exactly k calls of sample().
    assert TemperatureSampler(SIZES, seed=7).sample_many(200) == seq_a


def test_sampler_ignores_global_rng_and_insertion_order():
    import random

    random.seed(0)
    first = TemperatureSampler({"x": 5, "y": 50, "z": 500}, seed=3).sample_many(100)
    random.seed(999)
    random.random()
    second = TemperatureSampler({"z": 500, "x": 5, "y": 50}, seed=3).sample_many(100)
    assert first == second


def test_sampler_can_share_the_callers_generator():
    import random

    shared = random.Random(11)
    sampler = TemperatureSampler(SIZES, rng=shared)
    draws = sampler.sample_many(50)
    assert draws == TemperatureSampler(SIZES, rng=random.Random(11)).sample_many(50)
    # it used the caller's generator: the next number is the 51st of that stream
    expected = random.Random(11)
    for _ in range(50):
        expected.random()
    assert shared.random() == expected.random()


def test_sampler_probabilities_property_is_a_copy():
    sampler = TemperatureSampler(SIZES, temperature=10.0)
    assert sampler.probabilities == task_sampling_probabilities(SIZES, 10.0)
    sampler.probabilities["a"] = 1.0
    assert sampler.probabilities["a"] == pytest.approx(0.386863, abs=1e-6)
    assert sampler.sample_many(0) == []
    with pytest.raises(ValueError, match="-1"):
        sampler.sample_many(-1)


# -------------------------------------------------------- optimizer & schedule


def test_build_optimizer_keeps_trainable_params_and_recipe_defaults():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[0].requires_grad_(False)
    opt = build_optimizer(list(model.parameters()) + [model[1].weight])  # duplicate too
    assert isinstance(opt, torch.optim.AdamW)
    (group,) = opt.param_groups
    assert [id(p) for p in group["params"]] == [id(model[1].weight), id(model[1].bias)]
    assert group["lr"] == 3e-4 and group["weight_decay"] == 0.0
    assert group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8

    with pytest.raises(ValueError, match="requires_grad"):
        build_optimizer(model[0].parameters())


def test_linear_warmup_decay_schedule_values():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], lr=1.0)
    sched = linear_warmup_decay(opt, warmup_steps=4, total_steps=12)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(14):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    want = [0.0, 0.25, 0.5, 0.75, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0.0, 0.0, 0.0]
    assert lrs == pytest.approx(want, abs=1e-12)
    assert max(lrs) == lrs[4] == 1.0


def test_linear_warmup_decay_default_warmup_and_validation():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], lr=3e-4)
    sched = linear_warmup_decay(opt, total_steps=1000)
    assert sched.lr_lambdas[0](250) == pytest.approx(0.5)
    assert sched.lr_lambdas[0](500) == pytest.approx(1.0)
    assert sched.lr_lambdas[0](750) == pytest.approx(0.5)
    for kwargs, needle in [
        (dict(total_steps=0), "total_steps"),
        (dict(total_steps=10, warmup_steps=-1), "warmup_steps"),
        (dict(total_steps=10, warmup_steps=11), "warmup_steps"),
    ]:
        with pytest.raises(ValueError, match=needle):
            linear_warmup_decay(opt, **kwargs)


def _tiny_problem(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    x = torch.randn(8, 4)
    y = torch.randint(0, 3, (8,))
    return model, x, y


def _hand_grad_norm(model, x, y):
    loss = label_smoothed_nll(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))


def test_optimizer_step_updates_clears_and_reports_preclip_norm():
    model, x, y = _tiny_problem()
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    want_norm = _hand_grad_norm(model, x, y)
    assert want_norm > 1e-3  # so max_grad_norm=1e-3 below really clips

    opt = build_optimizer(params)
    sched = linear_warmup_decay(opt, warmup_steps=2, total_steps=10)
    opt.param_groups[0]["lr"] = 0.1  # make the change visible despite warm-up lr 0
    norm = optimizer_step(label_smoothed_nll(model(x), y), params, opt, sched, max_grad_norm=1e-3)

    assert norm == pytest.approx(want_norm, rel=1e-5)
    assert all(not torch.equal(b, p) for b, p in zip(before, params))
    assert all(p.grad is None for p in params)
    assert sched.last_epoch == 1
    assert opt.param_groups[0]["lr"] == pytest.approx(3e-4 * 0.5)


@pytest.mark.parametrize("off", [None, 0.0, -1.0])
def test_clipping_caps_the_update(off):
    # Plain SGD with lr 1: the update *is* the (clipped) gradient, so its norm must
    # equal max_grad_norm when clipping and the raw norm when it is disabled.
    def run(max_grad_norm):
        model, x, y = _tiny_problem()
        params = list(model.parameters())
        before = torch.cat([p.detach().flatten().clone() for p in params])
        opt = torch.optim.SGD(params, lr=1.0)
        norm = optimizer_step(label_smoothed_nll(model(x), y), params, opt, max_grad_norm=max_grad_norm)
        after = torch.cat([p.detach().flatten() for p in params])
        return norm, float((after - before).norm())

    raw_norm, unclipped_update = run(off)
    clip_norm, clipped_update = run(1e-3)
    assert raw_norm == pytest.approx(clip_norm)  # both report the pre-clip norm
    assert unclipped_update == pytest.approx(raw_norm, rel=1e-4)
    assert clipped_update == pytest.approx(1e-3, rel=1e-3)
    assert clipped_update < unclipped_update / 10


def test_clipping_shrinks_adamw_update_too():
    def update_size(max_grad_norm):
        model, x, y = _tiny_problem()
        params = list(model.parameters())
        before = torch.cat([p.detach().flatten().clone() for p in params])
        opt = build_optimizer(params, lr=1e-2)
        optimizer_step(label_smoothed_nll(model(x), y), params, opt, max_grad_norm=max_grad_norm)
        return float((torch.cat([p.detach().flatten() for p in params]) - before).norm())

    # Adam is scale-invariant except for eps, so only a tiny cap (≈ eps) shows.
    assert update_size(1e-9) < 0.5 * update_size(None)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_raises_before_backward(bad):
    model, x, y = _tiny_problem()
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    opt = build_optimizer(params, lr=0.1)
    backward_ran = []
    model.weight.register_hook(lambda g: backward_ran.append(True))
    loss = label_smoothed_nll(model(x), y) * bad
    with pytest.raises(FloatingPointError, match="loss is not finite"):
        optimizer_step(loss, params, opt)
    assert backward_ran == []
    assert all(torch.equal(b, p) for b, p in zip(before, params))
    assert all(p.grad is None for p in params)  # backward never ran
    assert opt.state_dict()["state"] == {}


def test_non_finite_gradient_skips_step():
    model, x, y = _tiny_problem()
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    opt = build_optimizer(params, lr=0.1)
    # Finite loss but non-finite gradient: sqrt'(0) = inf, times 0 -> NaN.
    loss = label_smoothed_nll(model(x), y) + torch.sqrt(model.bias.abs() * 0).sum()
    assert torch.isfinite(loss)
    with pytest.raises(FloatingPointError, match="gradient norm"):
        optimizer_step(loss, params, opt)
    assert all(torch.equal(b, p) for b, p in zip(before, params))
    assert all(p.grad is None for p in params)
