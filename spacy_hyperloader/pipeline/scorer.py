"""One ``score()`` for all tasks, merging spaCy Scorer calls (as the morphologizer does)."""


from collections.abc import Callable, Iterable, Sequence
from typing import Any

from spacy.scorer import Scorer, get_ner_prf
from spacy.training import Example
from spacy.util import registry

from .tasks import TaskSpec

SCORER_NAME = "spacy-hyperloader.scorer.v1"


def score_tasks(examples: Iterable[Example], *, tasks: Sequence[TaskSpec], **kwargs: Any) -> dict[str, Any]:
    """``ents_f/p/r`` + ``ents_per_type``, ``tag_acc``, ``pos_acc``, ``spans_<key>_f/p/r``."""
    examples = list(examples)
    scores: dict[str, Any] = {}
    for task in tasks:
        if task.target == "ents":
            scores.update(get_ner_prf(examples))
        elif task.target == "spans":
            key = task.spans_key
            scores.update(
                Scorer.score_spans(
                    examples, f"spans_{key}", getter=lambda doc, attr, key=key: list(doc.spans.get(key, [])),
                    has_annotation=lambda doc, key=key: key in doc.spans, **kwargs,
                )
            )
            scores.pop(f"spans_{key}_per_type", None)
        elif task.target == "tag":
            scores.update(Scorer.score_token_attr(examples, "tag", **kwargs))
            if task.map_pos:
                scores.update(Scorer.score_token_attr(examples, "pos", **kwargs))
        else:
            scores.update(Scorer.score_token_attr(examples, "pos", **kwargs))
    return scores


@registry.scorers(SCORER_NAME)
def make_hyperloader_scorer() -> Callable[..., dict[str, Any]]:
    return score_tasks
