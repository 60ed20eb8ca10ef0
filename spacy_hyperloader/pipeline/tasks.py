"""Task specs: where a task's gold labels live on a ``Doc`` and where its predictions go."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spacy.tokens import Doc, Span, SpanGroup
from spacy.util import filter_spans

from ..annotation.iob import iob_spans
from ..annotation.ptb_to_ud import UD_POS_TAGS, ptb_to_ud
from ..labeler import TaskLabels

TARGETS = ("ents", "spans", "tag", "pos")
TASKS_USER_DATA_KEY = "hyperloader_tasks"  # set by the MultiCorpus reader on gold docs


@dataclass
class TaskSpec:
    """One task of the component: a name, an annotation target and its labels.

    ``ents`` writes ``doc.ents``; ``spans`` a SpanGroup ``doc.spans[spans_key]``; ``tag`` writes
    ``token.tag_`` (and ``token.pos_`` through the PTB -> UD map when ``map_pos``); ``pos``
    writes ``token.pos_`` and only accepts UD tags.
    """

    name: str
    target: str
    labels: list[str] = field(default_factory=list)
    spans_key: str | None = None
    map_pos: bool = True

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(
                f"Task {self.name!r}: target must be one of {', '.join(TARGETS)}, got {self.target!r}."
            )
        if self.target == "spans" and not self.spans_key:
            self.spans_key = self.name
        if self.target != "spans" and self.spans_key is not None:
            raise ValueError(f"Task {self.name!r}: spans_key only applies to target 'spans'.")
        self.labels = list(dict.fromkeys(self.labels or []))
        self.validate_labels(self.labels)

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> "TaskSpec":
        known = {"target", "labels", "spans_key", "map_pos"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"Task {name!r}: unknown settings {unknown}; known: {sorted(known)}.")
        if "target" not in config:
            raise ValueError(f"Task {name!r} needs a target: one of {', '.join(TARGETS)}.")
        return cls(name=name, **dict(config))

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target": self.target, "labels": list(self.labels)}
        if self.target == "spans":
            out["spans_key"] = self.spans_key
        if self.target == "tag":
            out["map_pos"] = self.map_pos
        return out

    @property
    def scheme(self) -> str:
        return "bio" if self.target in ("ents", "spans") else "tags"

    def task_labels(self) -> TaskLabels:
        return TaskLabels(self.name, self.scheme, list(self.labels))

    def validate_labels(self, labels: Iterable[str]) -> None:
        if self.target == "pos":
            bad = sorted(set(labels) - UD_POS_TAGS)
            if bad:
                raise ValueError(
                    f"Task {self.name!r} (target 'pos') got labels that are not Universal POS tags: "
                    f"{bad[:10]}. Use target 'tag' for treebank tags (with map_pos to fill pos_)."
                )

    # ------------------------------------------------------------ gold
    def has_gold(self, doc: Doc) -> bool:
        marked = doc.user_data.get(TASKS_USER_DATA_KEY)
        if marked is not None and self.name not in marked:
            return False
        if len(doc) == 0:
            return False
        if self.target == "ents":
            return doc.has_annotation("ENT_IOB")
        if self.target == "spans":
            return self.spans_key in doc.spans
        if self.target == "tag":
            return doc.has_annotation("TAG")
        return doc.has_annotation("POS")

    def gold_tags(self, doc: Doc) -> list[str]:
        """One tag per token: IOB2 for span targets, the plain tag otherwise."""
        if self.target == "ents":
            return [f"{t.ent_iob_}-{t.ent_type_}" if t.ent_iob_ in ("B", "I") else "O" for t in doc]
        if self.target == "spans":
            tags = ["O"] * len(doc)
            for span in filter_spans(doc.spans[self.spans_key]):
                tags[span.start] = f"B-{span.label_}"
                for i in range(span.start + 1, span.end):
                    tags[i] = f"I-{span.label_}"
            return tags
        if self.target == "tag":
            return [t.tag_ for t in doc]
        return [t.pos_ for t in doc]

    def gold_labels(self, doc: Doc) -> set[str]:
        tags = self.gold_tags(doc)
        if self.scheme == "bio":
            return {t[2:] for t in tags if t[:2] in ("B-", "I-")}
        return {t for t in tags if t}

    # ------------------------------------------------------------ predictions
    def write(self, doc: Doc, tags: Sequence[str]) -> None:
        if self.target in ("ents", "spans"):
            spans = [Span(doc, start, end, label=label) for start, end, label in iob_spans(list(tags))[0]]
            if self.target == "ents":
                doc.set_ents(filter_spans(spans), default="outside")
            else:
                doc.spans[self.spans_key] = SpanGroup(doc, name=self.spans_key, spans=spans)
        elif self.target == "tag":
            for token, tag in zip(doc, tags):
                token.tag_ = tag
                if self.map_pos:
                    token.pos_ = ptb_to_ud(tag)
        else:
            for token, tag in zip(doc, tags):
                token.pos_ = tag if tag in UD_POS_TAGS else "X"

    def score_keys(self) -> list[str]:
        if self.target == "ents":
            return ["ents_f", "ents_p", "ents_r", "ents_per_type"]
        if self.target == "spans":
            return [f"spans_{self.spans_key}_{m}" for m in ("f", "p", "r")]
        if self.target == "tag":
            return ["tag_acc", "pos_acc"] if self.map_pos else ["tag_acc"]
        return ["pos_acc"]


def parse_tasks(config: Mapping[str, Mapping[str, Any]]) -> list[TaskSpec]:
    if not config:
        raise ValueError(
            "The hyperloader component needs at least one task, e.g. "
            'config={"tasks": {"ner": {"target": "ents"}}}.'
        )
    specs = [TaskSpec.from_config(name, dict(cfg)) for name, cfg in config.items()]
    keys = [s.spans_key for s in specs if s.target == "spans"]
    if len(keys) != len(set(keys)):
        raise ValueError(f"Two span tasks write the same doc.spans key: {keys}.")
    owners = [s.name for s in specs if s.target == "ents"]
    if len(owners) > 1:
        raise ValueError(f"Tasks {owners} all write doc.ents; give all but one target 'spans'.")
    return specs
