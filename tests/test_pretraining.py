"""Span-corruption pretraining: the objective, the streamed data and the resumable loop."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM, T5ForConditionalGeneration
from typer.testing import CliRunner

from spacy_hyperloader.cli import app
from spacy_hyperloader.model import HyperLoaderConfig, HyperLoaderModel
from spacy_hyperloader.pretraining.span_corruption import SpanCorruption, random_spans_noise_mask
from spacy_hyperloader.pretraining import PackedExamples, PretrainConfig, pretrain
from spacy_hyperloader.pretraining.data import check_train_splits, is_held_out
from spacy_hyperloader.sentt.tokenizer import sentinel_ids

from .tiny import TOY_TEXT, tiny_t5_config

SENTINELS = list(range(1099, 999, -1))
CORRUPTION = SpanCorruption(SENTINELS, eos_id=1)


# ------------------------------------------------------------------ the objective


def _restore(inputs, targets, sentinels=SENTINELS):
    """The text before corruption: each sentinel of the input replaced by the span it hid."""
    spans: dict[int, list[int]] = {}
    for token in targets[:-1]:
        if token in sentinels:
            current = spans.setdefault(token, [])
        else:
            current.append(token)
    return [t for token in inputs[:-1] for t in (spans[token] if token in sentinels else [token])]


def test_lengths_match_t5():
    # T5's inputs_length 512 takes 568 text tokens and yields 114-token targets
    assert CORRUPTION.raw_length_for(512) == 568
    assert CORRUPTION.lengths(568) == (512, 114)


@settings(max_examples=200, deadline=None)
@given(length=st.integers(2, 700), seed=st.integers(0, 10**6))
def test_corruption_hides_spans_and_the_target_restores_them(length, seed):
    tokens = list(range(10, 10 + length))
    inputs, targets = CORRUPTION(tokens, random.Random(seed))
    assert (len(inputs), len(targets)) == CORRUPTION.lengths(length)
    assert inputs[-1] == targets[-1] == 1
    # put every hidden span back in place of its sentinel: the text comes back whole
    assert _restore(inputs, targets) == tokens
    used = [t for t in inputs if t in SENTINELS]
    assert used == SENTINELS[: len(used)]  # <extra_id_0>, <extra_id_1>, ... in order
    assert used == [t for t in targets if t in SENTINELS]
    assert all(a + 1 != b for a, b in zip(targets, targets[1:]) if a in SENTINELS)  # no empty span


def test_noise_density_and_span_length_on_average():
    rng = random.Random(0)
    masks = [random_spans_noise_mask(568, 0.15, 3.0, rng) for _ in range(200)]
    assert all(sum(m) == round(568 * 0.15) for m in masks)
    assert all(not m[0] for m in masks)
    spans = [sum(1 for i, x in enumerate(m) if x and not m[i - 1]) for m in masks]
    assert all(s == round(85 / 3) for s in spans)
    # the spans are placed at random: different masks, noise everywhere in the sequence
    assert len({tuple(m) for m in masks}) == 200
    assert min(sum(m[i] for m in masks) for i in range(1, 568)) > 0


# ------------------------------------------------------------------ the data


def _text(tmp_path, n_lines=400, name="train.txt"):
    lines = [f"{' '.join(random.Random(i).sample(TOY_TEXT[i % 5].split(), 4))} w{i}" for i in range(n_lines)]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    return path, lines


def _data(tokenizer, sources, **kwargs):
    corruption = SpanCorruption(sentinel_ids(tokenizer), tokenizer.eos_token_id)
    return PackedExamples(sources, tokenizer, corruption, corruption.raw_length_for(32), **kwargs)


def test_stream_is_packed_reproducible_and_resumable(tokenizer, tmp_path):
    path, _ = _text(tmp_path)
    data = _data(tokenizer, [path], seed=3, shuffle_buffer=8)
    first = list(itertools.islice(data.train(), 40))
    assert {len(i) for i, _ in first} == {32}  # packed: every example fills the input
    assert first == list(itertools.islice(_data(tokenizer, [path], seed=3, shuffle_buffer=8).train(), 40))
    assert list(itertools.islice(data.train(skip=25), 15)) == first[25:]
    assert first != list(itertools.islice(_data(tokenizer, [path], seed=4, shuffle_buffer=8).train(), 40))


class WordTokenizer:
    """One id per word (ids from 2000 up), enough to trace every token back to its line."""

    def __init__(self, lines):
        self.ids = {w: 2000 + i for i, w in enumerate(dict.fromkeys(w for line in lines for w in line.split()))}

    def __call__(self, batch, add_special_tokens=False):
        return {"input_ids": [[self.ids[w] for w in line.split()] for line in batch]}


def test_small_text_is_read_once_large_text_every_epoch(tokenizer, tmp_path, monkeypatch):
    import spacy_hyperloader.pretraining.data as data_module

    path, _ = _text(tmp_path, n_lines=100)
    reads = []
    real = data_module.source_lines
    monkeypatch.setattr(data_module, "source_lines", lambda p: (reads.append(p), real(p))[1])
    streams = {}
    for limit in (32_000_000, 50, 0):  # all cached, cache given up in epoch 1, no cache
        reads.clear()
        streams[limit] = list(itertools.islice(_data(tokenizer, [path], cache_tokens=limit).train(), 160))  # 50 an epoch
        assert len(reads) == (1 if limit > 50 else 4), limit
    assert streams[32_000_000] == streams[50] == streams[0]


def test_held_out_lines_never_train(tmp_path):
    path, lines = _text(tmp_path, n_lines=600)
    words = WordTokenizer(lines)
    corruption = SpanCorruption(SENTINELS, eos_id=1)
    data = PackedExamples([path], words, corruption, corruption.raw_length_for(32), eval_fraction=0.2)
    held = {words.ids[line.split()[-1]] for line in lines if is_held_out(line, 0.2)}  # each line's own word
    assert 60 < len(held) < 200
    own = set(held) | {words.ids[line.split()[-1]] for line in lines}
    trained = {t for i, t in itertools.islice(data.train(), 400) for t in _restore(i, t)} & own  # > 1 epoch
    assert not trained & held
    assert len(trained) >= 600 - len(held) - 7  # all training lines but the tail of < 1 chunk (34 tokens)
    evaluated = {t for i, t in data.held_out(20) for t in _restore(i, t)} & own
    assert evaluated and evaluated <= held


def test_held_out_examples_come_from_every_file(tmp_path):
    first, lines_a = _text(tmp_path, n_lines=600, name="a.txt")
    second = tmp_path / "b.txt"
    lines_b = [line.replace(" w", " v") for line in lines_a]
    second.write_text("\n".join(lines_b) + "\n", encoding="utf8")
    words = WordTokenizer(lines_a + lines_b)
    corruption = SpanCorruption(SENTINELS, eos_id=1)
    data = PackedExamples([first, second], words, corruption, corruption.raw_length_for(32), eval_fraction=0.3)
    evaluated = {t for i, t in data.held_out(6) for t in _restore(i, t)}
    for lines in (lines_a, lines_b):
        assert evaluated & {words.ids[line.split()[-1]] for line in lines}


def test_evaluation_splits_are_refused(tmp_path):
    for name in ("test.txt", "valid.txt", "en_ewt-ud-dev.conllu", "dev.spacy", "testb.txt"):
        with pytest.raises(ValueError, match="dev/test"):
            check_train_splits([tmp_path / name])
    check_train_splits([tmp_path / n for n in ("train.txt", "brown.zip", "latest.txt", "contest.txt")])


# ------------------------------------------------------------------ the loop


@pytest.fixture
def backbone(tokenizer, tmp_path):
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(tiny_t5_config(len(tokenizer), dropout_rate=0.1))
    path = tmp_path / "backbone"
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


CONFIG = dict(batch_size=4, input_length=32, eval_every=3, save_every=2, eval_examples=8, eval_fraction=0.1, lr=3e-3, warmup_steps=2, dropout=0.1)


def test_interrupted_run_resumes_to_the_same_weights(backbone, tmp_path):
    text, _ = _text(tmp_path)
    straight = pretrain(backbone, [text], tmp_path / "a", PretrainConfig(steps=7, **CONFIG), progress=False, log=lambda _: None)
    assert straight.step == 7 and not straight.run["interrupted"]

    def interrupt(step, loss):
        if step == 3:  # as Ctrl-C would: the step finishes, a checkpoint is saved
            os.kill(os.getpid(), signal.SIGINT)

    stopped = pretrain(backbone, [text], tmp_path / "b", PretrainConfig(steps=7, **CONFIG), progress=False, log=lambda _: None, on_step=interrupt)
    assert stopped.step == 3 and stopped.run["interrupted"]
    resumed = pretrain(backbone, [text], tmp_path / "b", PretrainConfig(steps=7, **CONFIG), progress=False, log=lambda _: None)
    assert resumed.step == 7 and resumed.examples == straight.examples == 28
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [e["step"] for e in resumed.eval_loss] == [0, 3, 6, 7]
    assert resumed.eval_loss == straight.eval_loss


def test_output_is_a_backbone_and_pretraining_lowers_the_loss(backbone, tmp_path):
    text, _ = _text(tmp_path)
    state = pretrain(backbone, [text], tmp_path / "out", PretrainConfig(steps=30, **{**CONFIG, "eval_every": 30}), progress=False, log=lambda _: None)
    before, after = state.eval_loss[0]["loss"], state.eval_loss[-1]["loss"]
    assert after < before - 0.5
    summary = json.loads((tmp_path / "out" / "pretrain.json").read_text())
    assert summary["step"] == 30 and summary["tokens"] == 30 * 4 * summary["run"]["raw_length"] and summary["tokens_per_second"] > 0
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "out", use_safetensors=True)
    assert model.config.dropout_rate == 0.1  # the backbone's own rate, not the pretraining one
    hyper = HyperLoaderModel.from_backbone(tmp_path / "out", HyperLoaderConfig(tasks=["ner"]))
    assert hyper.backbone_source == str(tmp_path / "out")


def test_resume_refuses_other_stream_settings_and_foreign_folders(backbone, tmp_path):
    text, _ = _text(tmp_path)
    pretrain(backbone, [text], tmp_path / "out", PretrainConfig(steps=2, **CONFIG), progress=False, log=lambda _: None)
    with pytest.raises(ValueError, match="batch_size=4"):
        pretrain(backbone, [text], tmp_path / "out", PretrainConfig(steps=4, **{**CONFIG, "batch_size": 2}), progress=False, log=lambda _: None)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--restart"):
        pretrain(backbone, [text], tmp_path / "other", PretrainConfig(steps=2, **CONFIG), progress=False, log=lambda _: None)


def test_cli_smoke(backbone, tmp_path):
    text, _ = _text(tmp_path)
    args = ["pretrain", str(backbone), str(tmp_path / "out"), "--text", str(text), "--steps", "2", "--batch-size", "2",
            "--input-length", "32", "--eval-examples", "4", "--eval-fraction", "0.1", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("steps=2 tokens=") and "held_out_loss=" in last and "->" in last
    result = CliRunner().invoke(app, ["pretrain", str(backbone), str(tmp_path / "x"), "--text", str(tmp_path / "test.txt")])
    assert result.exit_code == 1 and "does not exist" in result.output
    (tmp_path / "test.txt").write_text("a b c\n" * 50)
    result = CliRunner().invoke(app, ["pretrain", str(backbone), str(tmp_path / "x"), "--text", str(tmp_path / "test.txt")])
    assert result.exit_code == 1 and "dev/test" in result.output


@pytest.mark.parametrize("warmup", [0, 1, 4])
def test_the_schedule_warms_up_linearly_then_decays_as_one_over_sqrt_step(warmup):
    from spacy_hyperloader.pretraining.trainer import inverse_sqrt_schedule

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = inverse_sqrt_schedule(optimizer, warmup)
    lrs = []
    for _ in range(12):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    w = max(warmup, 1)
    # update n (from 1) runs at min(n / w, sqrt(w / n)): the first update already learns
    assert lrs == pytest.approx([min(n / w, (w / n) ** 0.5) for n in range(1, 13)], rel=1e-12)
    if warmup == 4:
        assert lrs[:5] == pytest.approx([0.25, 0.5, 0.75, 1.0, (4 / 5) ** 0.5])


def test_padded_batches_mask_inputs_and_ignore_padded_labels():
    from spacy_hyperloader.pretraining.trainer import _tensors

    batch = _tensors([([5, 6, 7], [9]), ([8], [3, 4])], pad_id=0, device=torch.device("cpu"))
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[9, -100], [3, 4]]
