"""Labelled spans in a span group, ``doc.spans[spans_key]`` (chunks, slots, one group per task)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from spacy.scorer import Scorer
from spacy.tokens import Doc, SpanGroup
from spacy.training import Example
from spacy.util import filter_spans

from ..errors import Warnings
from .base import Task, not_overlapping, spans_from_tags


class SpansTask(Task):
    target = "spans"
    scheme = "bio"
    settings = ("spans_key",)

    def __init__(self, name: str, labels: Iterable[str] | None = None, spans_key: str | None = None) -> None:
        if spans_key is not None and (not isinstance(spans_key, str) or not spans_key):
            raise ValueError(f"Task {name!r}: spans_key must be a non-empty string, got {spans_key!r}.")
        self.spans_key = spans_key or name
        super().__init__(name, labels)

    @property
    def writes(self) -> frozenset[str]:
        return frozenset({f"doc.spans[{self.spans_key!r}]"})

    def _annotated(self, doc: Doc) -> bool:
        return self.spans_key in doc.spans

    def gold_tags(self, doc: Doc) -> list[str]:
        group = doc.spans[self.spans_key]
        spans = filter_spans(group)
        if len(spans) < len(group):
            warnings.warn(Warnings.HLW001.format(task=self.name, key=self.spans_key))
        tags = ["O"] * len(doc)
        for span in spans:
            tags[span.start : span.end] = [f"B-{span.label_}"] + [f"I-{span.label_}"] * (len(span) - 1)
        return tags

    def write(self, doc: Doc, tags: Sequence[str], *, overwrite: bool = False) -> None:
        predicted = spans_from_tags(doc, tags)
        kept = [] if overwrite else list(doc.spans.get(self.spans_key, []))
        spans = sorted(kept + not_overlapping(predicted, kept), key=lambda s: (s.start, s.end))
        doc.spans[self.spans_key] = SpanGroup(doc, name=self.spans_key, spans=spans)

    def score(self, examples: Sequence[Example], **kwargs: Any) -> dict[str, Any]:
        key = self.spans_key
        scores = Scorer.score_spans(
            examples, f"spans_{key}", getter=lambda doc, attr: list(doc.spans.get(key, [])),
            has_annotation=lambda doc: key in doc.spans, **kwargs,
        )
        scores.pop(f"spans_{key}_per_type", None)
        return scores

    def score_keys(self) -> list[str]:
        return [f"spans_{self.spans_key}_{m}" for m in ("f", "p", "r")]
