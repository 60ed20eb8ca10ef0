"""The MultiCorpus readers (v1: one temperature-sampled pass per epoch; v2: an endless stream)."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import spacy
from spacy.tokens import DocBin, Span

from spacy_hyperloader.model.training import task_sampling_probabilities
from spacy_hyperloader.pipeline.readers import READER_NAME, STREAM_READER_NAME
from spacy_hyperloader.pipeline.tasks import TASKS_USER_DATA_KEY

READERS = [READER_NAME, STREAM_READER_NAME]


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


def write_corpus(nlp, path, name: str, n: int, *, ents: bool = False, spans: bool = False) -> str:
    """``n`` docs reading "<name> doc <i>"; with ``ents`` the name is a LOC entity, with ``spans``
    the doc already holds spans under the corpus name."""
    db = DocBin(store_user_data=True)
    for i in range(n):
        doc = nlp.make_doc(f"{name} doc {i}")
        if ents:
            doc.ents = [Span(doc, 0, 1, label="LOC")]
        if spans:
            doc.spans[name] = [Span(doc, 2, 3, label="NUM")]
        db.add(doc)
    db.to_disk(path / f"{name}.spacy")
    return str(path / f"{name}.spacy")


def reader(name: str, **kwargs):
    return spacy.registry.readers.get(name)(**kwargs)


def origin(example) -> str:
    return example.reference.text.split()[0]


def test_both_readers_are_registered_under_their_names():
    from spacy_hyperloader.pipeline import readers

    assert spacy.registry.readers.get(READER_NAME) is readers.create_multi_corpus
    assert spacy.registry.readers.get(STREAM_READER_NAME) is readers.create_multi_corpus_stream


@pytest.mark.parametrize("name", READERS)
def test_marking_makes_each_doc_gold_for_its_corpus_task_only(nlp, tmp_path, name):
    paths = {
        "ner": write_corpus(nlp, tmp_path, "ner", 4, ents=True),
        "pos": write_corpus(nlp, tmp_path, "pos", 3),
        "slots": write_corpus(nlp, tmp_path, "slots", 2, ents=True, spans=True),
    }
    examples = list(reader(name, paths=paths, mark_tasks=True, sample=False)(nlp))
    assert Counter(map(origin, examples)) == {"ner": 4, "pos": 3, "slots": 2}
    for eg in examples:
        doc, task = eg.reference, origin(eg)
        assert doc.user_data[TASKS_USER_DATA_KEY] == [task]
        if task == "ner":  # entities become the corpus's span group
            assert [(s.start, s.end, s.label_) for s in doc.spans["ner"]] == [(0, 1, "LOC")]
        elif task == "pos":  # nothing to copy without entity annotation
            assert "pos" not in doc.spans
        else:  # spans already there are kept, not overwritten by the entities
            assert [(s.start, s.end, s.label_) for s in doc.spans["slots"]] == [(2, 3, "NUM")]
    unmarked = list(reader(name, paths=paths, sample=False)(nlp))
    assert not any(TASKS_USER_DATA_KEY in eg.reference.user_data for eg in unmarked)
    assert not any(eg.reference.spans for eg in unmarked if origin(eg) == "ner")


@pytest.mark.parametrize("name", READERS)
def test_the_finite_mode_reads_every_example_once_in_corpus_order(nlp, tmp_path, name):
    paths = {"a": write_corpus(nlp, tmp_path, "a", 5), "b": write_corpus(nlp, tmp_path, "b", 2)}
    texts = [eg.reference.text for eg in reader(name, paths=paths, sample=False)(nlp)]
    assert texts == [f"a doc {i}" for i in range(5)] + [f"b doc {i}" for i in range(2)]
    limited = [eg.reference.text for eg in reader(name, paths=paths, sample=False, limit=2)(nlp)]
    assert limited == ["a doc 0", "a doc 1", "b doc 0", "b doc 1"]


def test_v1_passes_draw_corpora_by_temperature_and_each_corpus_without_repeats(nlp, tmp_path):
    paths = {"big": write_corpus(nlp, tmp_path, "big", 200), "small": write_corpus(nlp, tmp_path, "small", 10)}
    read = reader(READER_NAME, paths=paths, temperature=2.0, seed=1)
    expected = task_sampling_probabilities({"big": 200, "small": 10}, 2.0)
    shares: Counter = Counter()
    for _ in range(10):  # each call is the next epoch, with its own draws
        epoch = [eg.reference.text for eg in read(nlp)]
        assert len(epoch) == 210  # one pass draws as many examples as the corpora hold
        big = [t for t in epoch if t.startswith("big")]
        assert len(big) == len(set(big))  # drawn fewer times than it holds: no repeats
        small = Counter(t for t in epoch if t.startswith("small"))
        assert max(small.values()) - min(small.values()) <= 1  # cycles through its shuffled order
        shares.update(t.split()[0] for t in epoch)
    n = sum(shares.values())
    p = expected["small"]
    assert abs(shares["small"] / n - p) < 4 * math.sqrt(p * (1 - p) / n)
    assert p > 10 / 210  # the temperature really lifted the small corpus above its size share


def test_v1_epochs_differ_and_a_seed_reproduces_them(nlp, tmp_path):
    paths = {"a": write_corpus(nlp, tmp_path, "a", 30), "b": write_corpus(nlp, tmp_path, "b", 5)}

    def epochs(seed):
        read = reader(READER_NAME, paths=paths, seed=seed)
        return [[eg.reference.text for eg in read(nlp)] for _ in range(2)]

    first, second = epochs(0)
    assert first != second
    assert epochs(0) == [first, second]
    assert epochs(1)[0] != first


def test_v2_is_endless_shares_by_temperature_and_is_seeded(nlp, tmp_path):
    paths = {"big": write_corpus(nlp, tmp_path, "big", 100), "small": write_corpus(nlp, tmp_path, "small", 4)}

    def draws(seed, k=3000):
        stream = reader(STREAM_READER_NAME, paths=paths, temperature=math.inf, seed=seed)(nlp)
        return [eg.reference.text for eg in itertools.islice(stream, k)]

    texts = draws(0)
    assert len(texts) == 3000  # far more than the 104 examples: the stream does not end
    share = sum(t.startswith("small") for t in texts) / len(texts)
    assert abs(share - 0.5) < 4 * math.sqrt(0.25 / len(texts))  # infinite temperature: uniform over corpora
    assert draws(0, 200) == texts[:200] and draws(1, 200) != texts[:200]


def test_v2_runs_keep_one_corpus_per_run(nlp, tmp_path):
    paths = {"a": write_corpus(nlp, tmp_path, "a", 20), "b": write_corpus(nlp, tmp_path, "b", 20)}
    stream = reader(STREAM_READER_NAME, paths=paths, run_length=4)(nlp)
    runs = [[origin(next(stream)) for _ in range(4)] for _ in range(50)]
    assert all(len(set(run)) == 1 for run in runs)
    assert {run[0] for run in runs} == {"a", "b"}


def test_empty_corpora_are_left_out_and_all_empty_is_an_error(nlp, tmp_path):
    paths = {"a": write_corpus(nlp, tmp_path, "a", 3), "none": write_corpus(nlp, tmp_path, "none", 0)}
    for name in READERS:
        drawn = itertools.islice(reader(name, paths=paths)(nlp), 50)  # v2 never ends
        assert {origin(eg) for eg in drawn} == {"a"}
    only_empty = {"none": paths["none"]}
    for name in READERS:
        with pytest.raises(ValueError, match="hold no examples"):
            next(iter(reader(name, paths=only_empty)(nlp)))


@pytest.mark.parametrize("name", READERS)
def test_bad_arguments_give_clear_errors(nlp, tmp_path, name):
    with pytest.raises(ValueError, match="at least one corpus"):
        reader(name, paths={})
    for temperature in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature must be positive"):
            reader(name, paths={"a": "a.spacy"}, temperature=temperature)
    # paths are checked when read, so configs validate with placeholders
    read = reader(name, paths={"ner": str(tmp_path / "missing.spacy")})
    with pytest.raises(FileNotFoundError, match="Corpus 'ner'.*missing.spacy"):
        next(iter(read(nlp)))


@pytest.mark.parametrize("run_length", [0, -2, 1.5, "4"])
def test_v2_rejects_a_run_length_that_is_not_a_positive_integer(run_length):
    with pytest.raises(ValueError, match="run_length must be a positive integer"):
        reader(STREAM_READER_NAME, paths={"a": "a.spacy"}, run_length=run_length)
