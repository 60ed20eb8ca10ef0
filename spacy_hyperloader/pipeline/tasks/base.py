"""What every task of the component is: a name, labels, a target on the ``Doc``, and the four
things a target decides (where gold lives, how predictions are written, what is scored, and
which attributes it owns). One subclass per target."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from spacy.tokens import Doc, Span
from spacy.training import Example, biluo_tags_to_spans, iob_to_biluo

from ...labeler import TaskLabels

TASKS_USER_DATA_KEY = "hyperloader_tasks"  # set by the MultiCorpus reader on gold docs
RESERVED_SPAN_LABELS = ("O", "I")  # SentT' writes these for outside and continuation


class Task:
    """A labelling task; subclasses set ``target`` and ``scheme`` and implement the hooks."""

    target: ClassVar[str]
    scheme: ClassVar[str]  # "bio": spans as BIO tags; "tags": one plain label per token
    settings: ClassVar[tuple[str, ...]] = ()  # config keys beyond target and labels

    def __init__(self, name: str, labels: Iterable[str] | None = None) -> None:
        self.name = name
        self.labels: list[str] = []
        self.add_labels(labels or [])

    # ------------------------------------------------------------ config
    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> "Task":
        """The task class named by ``config["target"]``, built from the rest of the config."""
        from . import TASK_TYPES

        if not isinstance(config, Mapping):
            raise ValueError(f"Task {name!r}: its config must be a table, e.g. {{target = \"ents\"}}; got {config!r}.")
        target = config.get("target")
        if target not in TASK_TYPES:
            raise ValueError(
                f"Task {name!r}: target must be one of {', '.join(TASK_TYPES)}, got {target!r}."
            )
        task_type = TASK_TYPES[target]
        known = {"target", "labels", *task_type.settings}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"Task {name!r} (target {target!r}): unknown settings {unknown}; known: {sorted(known)}.")
        return task_type(name, **{k: v for k, v in config.items() if k != "target"})

    def to_config(self) -> dict[str, Any]:
        return {"target": self.target, "labels": list(self.labels), **{k: getattr(self, k) for k in self.settings}}

    # ------------------------------------------------------------ labels
    def add_labels(self, labels: Iterable[str]) -> int:
        """Validate and append new labels (order kept, duplicates ignored); returns how many."""
        if isinstance(labels, str):
            raise ValueError(
                f"Task {self.name!r}: labels must be a list of strings, got the string {labels!r}; "
                f"write [{labels!r}]."
            )
        new = [label for label in dict.fromkeys(labels) if label not in self.labels]
        self.validate_labels(new)
        self.labels.extend(new)
        return len(new)

    def validate_labels(self, labels: Sequence[str]) -> None:
        for label in labels:
            if not isinstance(label, str) or not label or label != label.strip():
                raise ValueError(
                    f"Task {self.name!r}: every label must be a non-empty string without surrounding "
                    f"whitespace, got {label!r}."
                )
            if self.scheme == "bio" and label in RESERVED_SPAN_LABELS:
                raise ValueError(
                    f"Task {self.name!r}: {label!r} cannot be a span label; SentT' uses 'O' and 'I' "
                    f"for outside and continuation."
                )

    def task_labels(self) -> TaskLabels:
        return TaskLabels(self.name, self.scheme, list(self.labels))

    # ------------------------------------------------------------ what subclasses decide
    @property
    def writes(self) -> frozenset[str]:
        """The Doc attributes this task writes; two tasks of one component may not share one."""
        raise NotImplementedError

    def has_gold(self, doc: Doc) -> bool:
        marked = doc.user_data.get(TASKS_USER_DATA_KEY)
        if marked is not None and self.name not in marked:
            return False
        return len(doc) > 0 and self._annotated(doc)

    def _annotated(self, doc: Doc) -> bool:
        raise NotImplementedError

    def gold_tags(self, doc: Doc) -> list[str]:
        """One tag per token: IOB2 for span targets, the plain label otherwise."""
        raise NotImplementedError

    def gold_labels(self, doc: Doc) -> set[str]:
        tags = self.gold_tags(doc)
        if self.scheme == "bio":
            return {t[2:] for t in tags if t[:2] in ("B-", "I-")}
        return {t for t in tags if t}

    def write(self, doc: Doc, tags: Sequence[str], *, overwrite: bool = False) -> None:
        """Write predictions; without ``overwrite`` annotation already on the doc is kept."""
        raise NotImplementedError

    def score(self, examples: Sequence[Example], **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError

    def score_keys(self) -> list[str]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, labels={len(self.labels)})"


def spans_from_tags(doc: Doc, tags: Sequence[str]) -> list[Span]:
    """Predicted IOB2 tags as spans, through spaCy's own BILUO conversion."""
    return biluo_tags_to_spans(doc, iob_to_biluo(list(tags)))


def not_overlapping(new: Iterable[Span], kept: Iterable[Span]) -> list[Span]:
    """The spans of ``new`` that share no token with a span of ``kept``."""
    taken = {i for span in kept for i in range(span.start, span.end)}
    return [span for span in new if not taken.intersection(range(span.start, span.end))]
