"""The training and prediction path follows the method: the same segments in training and
prediction, fresh temperature sampling, global clipping, spaCy's dropout, guided alignment."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import pytest
import spacy
import torch

from spacy_hyperloader.labeler import Labeler, TaskLabels
from spacy_hyperloader.model.training import guided_alignment_loss, task_sampling_probabilities
from spacy_hyperloader.pipeline.readers import sample_stream
from spacy_hyperloader.sentt.tokenizer import load_tokenizer, train_sentencepiece

from .test_component import gold_examples, make_nlp
from .tiny import NER_DATA, POS_DATA, make_labeler, make_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WORDS = ["said", "European", "NNP", "Brussels", "rejects", "lamb", "B-PER", "fromloc.city_name"]


# --------------------------------------------------------------------------- tokenizer
def _pieces_alone_and_in_sentence(tokenizer):
    """Each word tokenized on its own (as SentT' does), and the pieces of the running sentence."""
    def pieces(text):
        return tokenizer.convert_ids_to_tokens(tokenizer(text, add_special_tokens=False)["input_ids"])

    return [p for w in WORDS for p in pieces(w)], pieces(" ".join(WORDS))


def test_a_trained_vocabulary_gives_isolated_words_their_word_initial_piece():
    text = ["he said the European Union rejects lamb from Brussels"] * 30 + ["NNP B-PER fromloc.city_name"] * 30
    tokenizer = train_sentencepiece(text, vocab_size=80)
    alone, inside = _pieces_alone_and_in_sentence(tokenizer)
    assert alone == inside
    assert tokenizer.convert_ids_to_tokens(tokenizer("said", add_special_tokens=False)["input_ids"])[0].startswith("\u2581")


@pytest.mark.skipif(not (DATA / "t5_vocab" / "tokenizer.json").is_file(), reason=f"no T5 vocabulary under {DATA}")
def test_t5_vocabulary_tokenizes_isolated_words_as_in_a_sentence():
    tokenizer = load_tokenizer(DATA / "t5_vocab" / "tokenizer.json")
    alone, inside = _pieces_alone_and_in_sentence(tokenizer)
    assert alone == inside
    assert alone[0] == "\u2581said"


def test_a_saved_never_prepending_tokenizer_is_repaired_on_load(tmp_path):
    import json

    tokenizer = train_sentencepiece(["he said the European Union rejects lamb"] * 30, vocab_size=60)
    tokenizer.save_pretrained(tmp_path)
    state = json.loads((tmp_path / "tokenizer.json").read_text())
    state["pre_tokenizer"]["prepend_scheme"] = "never"  # what init-backbone used to write
    (tmp_path / "tokenizer.json").write_text(json.dumps(state))
    loaded = load_tokenizer(tmp_path)
    assert loaded.convert_ids_to_tokens(loaded("said", add_special_tokens=False)["input_ids"])[0].startswith("\u2581")


# --------------------------------------------------------------------------- segments
def _plans(labeler: Labeler, task: str, sentences, tags):
    """(prediction segments, training segments) as source id rows."""
    recorded = []

    def record(chunk, *settings):
        recorded.extend(s for s in chunk)
        return [["O"] * len(s.words) for s in chunk]

    labeler._decode = record
    labeler.predict([(task, w) for w in sentences], batch_size=10_000)
    predicted = sorted((s.item, s.words.start, s.words.stop) for s in recorded)
    trained = []
    for i, (words, t) in enumerate(zip(sentences, tags)):
        batch = labeler.training_batch([(task, words, t)])
        start = 0
        for row in batch.source_words:
            n = int(row.max()) + 1 if bool((row >= 0).any()) else 0
            trained.append((i, start, start + n))
            start += n
    return predicted, trained


def test_prediction_segments_a_sentence_exactly_as_training_does(tokenizer):
    labeler = make_labeler(tokenizer)
    labeler.max_source_tokens = 24
    words = ["Peter", "Blackburn", "went", "to", "Brussels", "on", "Monday", "with", "tom", "hanks"] * 3
    tags = ["B-PER", "I-PER", "O", "O", "B-LOC", "O", "O", "O", "B-PER", "I-PER"] * 3
    predicted, trained = _plans(labeler, "ner", [words], [tags])
    assert predicted == trained and len(predicted) > 1


PAPER_TEST_SETS = {
    "atis": ("seq", "paper/atis/test"),
    "snips": ("seq", "paper/snips/test"),
    "mit_movie": ("mit", "paper/mit_movie/test"),
    "mit_movie_trivia": ("mit", "paper/mit_movie_trivia/test"),
    "mit_restaurant": ("mit", "paper/mit_restaurant/test"),
    "conll2003": ("conll2003", "conll2003/test.txt"),
}


@pytest.mark.skipif(not (DATA / "t5_vocab" / "tokenizer.json").is_file(), reason=f"corpora not found under {DATA}")
@pytest.mark.parametrize("name", sorted(PAPER_TEST_SETS))
def test_every_test_sentence_is_segmented_alike_in_training_and_prediction(name):
    from spacy_hyperloader.corpora import FORMATS
    from spacy_hyperloader.corpora.base import ConversionStats

    fmt, rel = PAPER_TEST_SETS[name]
    sentences = [s for s in FORMATS[fmt].reader(DATA / rel, ConversionStats()) if s.words]
    tokenizer = load_tokenizer(DATA / "t5_vocab" / "tokenizer.json")
    tags = [s.ner for s in sentences]
    types = sorted({t[2:] for ts in tags for t in ts if t != "O"})
    labeler = Labeler(make_model(tokenizer, tasks=["span"]), tokenizer, [TaskLabels("span", "bio", types)])
    predicted, trained = _plans(labeler, "span", [s.words for s in sentences], tags)
    assert predicted == trained
    # a sentence of at most 99 words that fits the source budget is one segment
    whole = {i for i, start, stop in predicted if start == 0 and stop == len(sentences[i].words)}
    fits = {
        i for i, s in enumerate(sentences)
        if len(s.words) <= 99 and sum(map(len, labeler.codec.piece_ids(s.words))) + len(s.words) + 2 <= 128
    }
    assert fits <= whole


# --------------------------------------------------------------------------- sampling
def test_the_stream_draws_tasks_by_temperature_and_reaches_every_example():
    corpora = {"big": list(range(1000)), "mid": list(range(1000, 1100)), "small": list(range(1100, 1105))}
    stream = sample_stream(corpora, 10.0, random.Random(0))
    draws = [next(stream) for _ in range(200_000)]
    shares = Counter("big" if d < 1000 else "mid" if d < 1100 else "small" for d in draws)
    expected = task_sampling_probabilities({k: len(v) for k, v in corpora.items()}, 10.0)
    for name, p in expected.items():
        assert abs(shares[name] / len(draws) - p) < 4 * math.sqrt(p * (1 - p) / len(draws)) + 1e-3
    assert set(draws) == set(range(1105))  # every example reachable, the big corpus included
    # fresh draws, not a fixed multiset repeated: two windows of the small corpus differ in order
    small = [d for d in draws if d >= 1100]
    assert small[:50] != small[50:100]


def test_stream_reader_is_endless_and_the_finite_mode_reads_everything_once(tmp_path):
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    for name, n in (("a", 30), ("b", 3)):
        db = DocBin()
        for i in range(n):
            db.add(nlp.make_doc(f"{name} doc {i}"))
        db.to_disk(tmp_path / f"{name}.spacy")
    paths = {"a": str(tmp_path / "a.spacy"), "b": str(tmp_path / "b.spacy")}
    reader = spacy.registry.readers.get("spacy-hyperloader.MultiCorpus.v2")
    stream = reader(paths=paths, temperature=2.0)(nlp)
    texts = [next(stream).reference.text for _ in range(2000)]
    assert len(set(texts)) == 33
    finite = [eg.reference.text for eg in reader(paths=paths, sample=False)(nlp)]
    assert sorted(finite) == sorted({*texts})


# --------------------------------------------------------------------------- the update
def test_update_clips_the_global_norm_and_honours_drop(backbone_dir):
    nlp = make_nlp(backbone_dir, max_grad_norm=0.5)
    examples = gold_examples(nlp)
    nlp.initialize(lambda: examples)
    model = nlp.get_pipe("hyperloader").labeler.model

    class Recorder:
        """A thinc optimizer stand-in that records the gradients it is given and steps nothing."""

        learn_rate = 0.0

        def __init__(self):
            self.squared = 0.0
            self.dropout = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}

        def __call__(self, key, param, grad):
            self.squared += float((grad**2).sum())
            return param, grad

        def step_schedules(self):
            pass

    recorder = Recorder()
    nlp.update(examples * 20, sgd=recorder, drop=0.3)  # the summed raw gradient is far above 0.5
    assert math.sqrt(recorder.squared) == pytest.approx(0.5, rel=1e-4)
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.3}


def test_component_decoding_settings_reach_the_labeler(backbone_dir):
    nlp = spacy.blank("en")
    nlp.add_pipe("hyperloader", config={
        "tasks": {"ner": {"target": "ents"}, "tag": {"target": "tag"}},
        "model": {"backbone": backbone_dir, "adapter_bottleneck": 16},
        "constrained": False, "batching": "per_task", "decoding": "sequential",
    })
    nlp.initialize(lambda: gold_examples(nlp))
    pipe = nlp.get_pipe("hyperloader")
    calls = []
    original = pipe.labeler._decode

    def spy(chunk, constrained, draft, stats):
        calls.append(({s.task for s in chunk}, constrained, draft))
        return original(chunk, constrained, draft, stats)

    pipe.labeler._decode = spy
    doc = nlp("Peter went to Brussels")
    assert len(doc) == 4 and calls and all(len(tasks) == 1 and not c and not d for tasks, c, d in calls)
    pipe.cfg.update(constrained=True, decoding="draft")
    calls.clear()
    nlp("Peter went to Brussels")
    assert calls and all(c and d for _, c, d in calls)
    with pytest.raises(ValueError, match="batching"):
        nlp.add_pipe("hyperloader", name="bad", config={
            "tasks": {"ner": {"target": "ents"}}, "model": {"backbone": backbone_dir}, "batching": "shuffled"})


# --------------------------------------------------------------------------- alignment
def test_guided_alignment_rewards_attention_on_the_own_word():
    target_words = torch.tensor([[-1, 0, 0, 1]])
    source_words = torch.tensor([[-1, 0, -1, 1, -1]])
    on_word = torch.zeros(1, 1, 4, 5)
    on_word[0, 0, :, 0] = 1.0  # position 0 (no word) attends anywhere
    on_word[0, 0, 1, 1] = on_word[0, 0, 2, 1] = on_word[0, 0, 3, 3] = 1.0
    on_word[0, 0, 1:, 0] = 0.0
    elsewhere = torch.full((1, 1, 4, 5), 0.2)
    good = guided_alignment_loss([on_word], target_words, source_words)
    bad = guided_alignment_loss([elsewhere], target_words, source_words)
    assert float(good) == pytest.approx(0.0, abs=1e-5) and float(bad) == pytest.approx(-math.log(0.2), rel=1e-5)


def test_alignment_loss_teaches_a_tiny_model_to_point_at_its_words(tokenizer):
    items = [("ner", w, t) for w, t in NER_DATA] + [("pos", w, t) for w, t in POS_DATA]

    def train(weight):
        labeler = make_labeler(tokenizer, train_backbone=True)
        optimizer = torch.optim.Adam(labeler.model.trainable_parameters(), lr=3e-3)
        for _ in range(60):
            labeler.loss(items, reduction="mean", restrict_vocabulary=True, alignment_weight=weight,
                         alignment_heads=2).backward()
            optimizer.step()
            optimizer.zero_grad()
        return labeler.diagnose(items)["alignment_mass"]

    guided, free = train(1.0), train(0.0)
    assert guided > free + 0.2, (guided, free)


# --------------------------------------------------------------------------- position bias
def test_scaled_position_bias_keeps_the_function_learns_faster_and_saves_plain(tokenizer, tmp_path):
    from transformers import T5ForConditionalGeneration

    from spacy_hyperloader.model import HyperLoaderModel
    from spacy_hyperloader.model.position_bias import ScaledPositionBias

    plain = make_model(tokenizer, train_backbone=True)
    scaled = make_model(tokenizer, train_backbone=True, position_bias_scale=50.0)
    ids = torch.tensor([[5, 6, 7, 1]])
    for model in (plain, scaled):
        model.eval()
    with torch.no_grad():
        a = plain(task_ids=[0], input_ids=ids, decoder_input_ids=ids).logits
        b = scaled(task_ids=[0], input_ids=ids, decoder_input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-5)
    bias = scaled.backbone.encoder.block[0].layer[0].SelfAttention.relative_attention_bias
    assert isinstance(bias, ScaledPositionBias) and bias.table.requires_grad
    # one Adam step moves the effective bias ~50 times as far as the plain table's
    moved = []
    for model in (plain, scaled):
        model.train()
        attn = model.backbone.encoder.block[0].layer[0].SelfAttention.relative_attention_bias
        before = attn.weight.detach().clone()
        optimizer = torch.optim.Adam(model.trainable_parameters(), lr=1e-3)
        model(task_ids=[0], input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        moved.append(float((attn.weight.detach() - before).abs().max()))
    assert moved[1] == pytest.approx(50 * moved[0], rel=0.05)
    scaled.save_pretrained(tmp_path, save_backbone=True)
    backbone = T5ForConditionalGeneration.from_pretrained(tmp_path / "backbone")  # plain T5 layout
    assert torch.allclose(backbone.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight, bias.weight)
    reloaded = HyperLoaderModel.from_pretrained(tmp_path)
    reloaded.eval()
    scaled.eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(task_ids=[0], input_ids=ids, decoder_input_ids=ids).logits,
                              scaled(task_ids=[0], input_ids=ids, decoder_input_ids=ids).logits, atol=1e-5)


def test_runs_of_one_corpus_make_single_task_batches():
    corpora = {"a": list(range(100)), "b": list(range(100, 110))}
    stream = sample_stream(corpora, 10.0, random.Random(0), run_length=8)
    batches = [[next(stream) for _ in range(8)] for _ in range(200)]
    assert all(len({x < 100 for x in batch}) == 1 for batch in batches)
    assert {x < 100 for batch in batches for x in batch} == {True, False}


def test_the_recipe_with_alignment_aids_still_overfits_and_round_trips(backbone_dir, tmp_path):
    from .test_component import TRAIN, annotations, expected

    nlp = make_nlp(backbone_dir, train_backbone=True, alignment_weight=1.0, position_bias_scale=10.0)
    examples = gold_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 1e-3
    texts = [" ".join(w) for w, *_ in TRAIN]
    gold = [expected(*t) for t in TRAIN]
    for step in range(300):
        nlp.update(examples, sgd=optimizer, drop=0.0)
        if step % 20 == 19 and [annotations(d) for d in nlp.pipe(texts)] == gold:
            break
    assert [annotations(d) for d in nlp.pipe(texts)] == gold, f"not overfit after {step + 1} steps"
    assert [annotations(nlp(t)) for t in texts] == gold
    nlp.to_disk(tmp_path / "pipeline")
    assert [annotations(d) for d in spacy.load(tmp_path / "pipeline").pipe(texts)] == gold
