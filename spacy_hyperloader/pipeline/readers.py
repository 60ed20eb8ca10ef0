"""A training reader that mixes several corpora with temperature sampling (the paper's recipe)."""


import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from spacy.language import Language
from spacy.tokens import Span
from spacy.training import Corpus, Example
from spacy.util import registry

from ..model.training import TemperatureSampler
from .tasks import TASKS_USER_DATA_KEY

READER_NAME = "spacy-hyperloader.MultiCorpus.v1"
STREAM_READER_NAME = "spacy-hyperloader.MultiCorpus.v2"
T = TypeVar("T")


@registry.readers(READER_NAME)
def create_multi_corpus(
    paths: dict[str, str],
    temperature: float = 10.0,
    mark_tasks: bool = False,
    sample: bool = True,
    max_length: int = 0,
    limit: int = 0,
    seed: int = 0,
) -> Callable[[Language], Iterator[Example]]:
    """Examples from several ``.spacy`` corpora (name -> file or directory).

    With ``sample`` (training), one pass draws as many examples as all corpora hold, each from
    corpus t with probability proportional to n_t^(1/temperature); without it (evaluation),
    every example of every corpus comes once. ``mark_tasks`` makes each doc gold for the task
    named like its corpus only, and copies its entities into ``doc.spans[<corpus>]`` (the
    paper's setting: one span task per corpus).
    """
    _check_reader_args(paths, temperature)
    epoch = 0

    def read(nlp: Language) -> Iterator[Example]:
        nonlocal epoch
        corpora = _read_corpora(paths, nlp, mark_tasks=mark_tasks, max_length=max_length, limit=limit)
        if not sample:
            for egs in corpora.values():
                yield from egs
            return
        rng = random.Random(seed + epoch)
        epoch += 1
        order = {n: rng.sample(range(len(e)), len(e)) for n, e in corpora.items()}
        cursor = dict.fromkeys(corpora, 0)
        sampler = _sampler(corpora, temperature, rng)
        for name in sampler.sample_many(sum(len(e) for e in corpora.values())):
            egs = corpora[name]
            yield egs[order[name][cursor[name] % len(egs)]]
            cursor[name] += 1

    return read


def _mark(example: Example, name: str) -> Example:
    doc = example.reference
    doc.user_data[TASKS_USER_DATA_KEY] = [name]
    if name not in doc.spans and doc.has_annotation("ENT_IOB"):
        doc.spans[name] = [Span(doc, e.start, e.end, label=e.label_) for e in doc.ents]
    return example


@registry.readers(STREAM_READER_NAME)
def create_multi_corpus_stream(
    paths: dict[str, str],
    temperature: float = 10.0,
    mark_tasks: bool = False,
    sample: bool = True,
    max_length: int = 0,
    limit: int = 0,
    seed: int = 0,
    run_length: int = 1,
) -> Callable[[Language], Iterator[Example]]:
    """Like v1, but with ``sample`` an endless stream: every example is drawn afresh, corpus t
    with probability proportional to n_t^(1/temperature), then one of its examples uniformly,
    with replacement. Every example stays reachable for the whole run, and small corpora do not
    repeat a fixed multiset (v1's one pass is drawn once when ``max_epochs = 0``).

    Train with ``[training] max_epochs = -1`` and give the labels up front through
    ``[initialize.components]`` (spaCy initializes a streamed corpus from 100 examples only);
    ``spacy init labels ... --training.max_epochs 0 --corpora.train.sample false`` writes them,
    since ``sample = false`` reads every example once.

    ``run_length`` draws that many examples in a row from one corpus: with the batcher's size
    equal to it (``spacy.batch_by_sequence.v1``), every batch holds one task, as the authors train.
    """
    _check_reader_args(paths, temperature)
    if not isinstance(run_length, int) or run_length < 1:
        raise ValueError(f"run_length must be a positive integer (1: tasks mix within a batch), got {run_length!r}.")

    def read(nlp: Language) -> Iterator[Example]:
        corpora = _read_corpora(paths, nlp, mark_tasks=mark_tasks, max_length=max_length, limit=limit)
        if not sample:
            for egs in corpora.values():
                yield from egs
            return
        yield from sample_stream(corpora, temperature, random.Random(seed), run_length=run_length)

    return read


def sample_stream(
    corpora: dict[str, list[T]], temperature: float, rng: random.Random, *, run_length: int = 1
) -> Iterator[T]:
    """Endless draws with replacement: a corpus by temperature, then ``run_length`` of its items
    uniformly."""
    sampler = _sampler(corpora, temperature, rng)
    while True:
        for name in sampler.sample_many(1024):
            items = corpora[name]
            for _ in range(run_length):
                yield items[rng.randrange(len(items))]


def _sampler(corpora: dict[str, list[T]], temperature: float, rng: random.Random) -> TemperatureSampler:
    """Corpus t drawn with probability proportional to n_t^(1/temperature), from ``rng``."""
    return TemperatureSampler({name: len(items) for name, items in corpora.items()}, temperature, rng=rng)


def _check_reader_args(paths: dict[str, str], temperature: float) -> None:
    if not paths:
        raise ValueError("spacy-hyperloader.MultiCorpus needs at least one corpus in `paths` (name -> .spacy path).")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}.")


def _read_corpora(
    paths: dict[str, str], nlp: Language, *, mark_tasks: bool, max_length: int, limit: int
) -> dict[str, list[Example]]:
    """Each corpus's examples (empty corpora left out); paths are checked when read, so configs
    validate with placeholders."""
    for name, path in paths.items():
        if not Path(path).exists():
            raise FileNotFoundError(f"Corpus {name!r}: {path} does not exist. Run the project's convert step first.")
    corpora = {
        name: [_mark(eg, name) if mark_tasks else eg for eg in Corpus(path, max_length=max_length, limit=limit)(nlp)]
        for name, path in paths.items()
    }
    corpora = {name: egs for name, egs in corpora.items() if egs}
    if not corpora:
        raise ValueError(f"The corpora {dict(paths)} hold no examples.")
    return corpora
