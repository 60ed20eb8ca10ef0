"""A training reader that mixes several corpora with temperature sampling (the paper's recipe)."""


import random
from collections.abc import Callable, Iterator
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Span
from spacy.training import Corpus, Example
from spacy.util import registry

from ..model.training import task_sampling_probabilities
from .tasks import TASKS_USER_DATA_KEY

READER_NAME = "spacy-hyperloader.MultiCorpus.v1"


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
    if not paths:
        raise ValueError(f"{READER_NAME} needs at least one corpus in `paths` (name -> .spacy path).")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}.")
    epoch = 0

    def read(nlp: Language) -> Iterator[Example]:
        nonlocal epoch
        for name, path in paths.items():  # checked when read, so configs validate with placeholders
            if not Path(path).exists():
                raise FileNotFoundError(f"Corpus {name!r}: {path} does not exist. Run the project's convert step first.")
        corpora = {
            name: [_mark(eg, name) if mark_tasks else eg for eg in Corpus(path, max_length=max_length, limit=limit)(nlp)]
            for name, path in paths.items()
        }
        corpora = {name: egs for name, egs in corpora.items() if egs}
        if not sample:
            for egs in corpora.values():
                yield from egs
            return
        rng = random.Random(seed + epoch)
        epoch += 1
        probabilities = task_sampling_probabilities({n: len(e) for n, e in corpora.items()}, temperature)
        names = list(probabilities)
        weights = [probabilities[n] for n in names]
        order = {n: rng.sample(range(len(e)), len(e)) for n, e in corpora.items()}
        cursor = dict.fromkeys(names, 0)
        for _ in range(sum(len(e) for e in corpora.values())):
            name = rng.choices(names, weights)[0]
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
