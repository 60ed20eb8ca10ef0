"""One ``score()`` for all tasks: each task scores its own target with spaCy's Scorer."""

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from spacy.training import Example
from spacy.util import registry

from .tasks import Task

SCORER_NAME = "spacy-hyperloader.scorer.v1"


def score_tasks(examples: Iterable[Example], *, tasks: Sequence[Task], **kwargs: Any) -> dict[str, Any]:
    """``ents_f/p/r`` + ``ents_per_type``, ``tag_acc``, ``pos_acc``, ``spans_<key>_f/p/r``."""
    examples = list(examples)
    scores: dict[str, Any] = {}
    for task in tasks:
        scores.update(task.score(examples, **kwargs))
    return scores


@registry.scorers(SCORER_NAME)
def make_hyperloader_scorer() -> Callable[..., dict[str, Any]]:
    return score_tasks
