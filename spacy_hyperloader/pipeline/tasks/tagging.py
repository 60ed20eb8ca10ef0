"""Token labels: treebank tags in ``token.tag_`` (and UD POS through PTB -> UD), or UD POS alone."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from spacy.scorer import Scorer
from spacy.tokens import Doc
from spacy.training import Example

from ...annotation.ptb_to_ud import UD_POS_TAGS, ptb_to_ud
from .base import Task


class TagTask(Task):
    """``token.tag_``; with ``map_pos`` also ``token.pos_`` through the PTB -> UD table."""

    target = "tag"
    scheme = "tags"
    settings = ("map_pos",)

    def __init__(self, name: str, labels: Iterable[str] | None = None, map_pos: bool = True) -> None:
        if not isinstance(map_pos, bool):
            raise ValueError(f"Task {name!r}: map_pos must be true or false, got {map_pos!r}.")
        self.map_pos = map_pos
        super().__init__(name, labels)

    @property
    def writes(self) -> frozenset[str]:
        return frozenset({"token.tag", "token.pos"} if self.map_pos else {"token.tag"})

    def _annotated(self, doc: Doc) -> bool:
        return doc.has_annotation("TAG")

    def gold_tags(self, doc: Doc) -> list[str]:
        return [t.tag_ for t in doc]

    def write(self, doc: Doc, tags: Sequence[str], *, overwrite: bool = False) -> None:
        for token, tag in zip(doc, tags):
            if overwrite or not token.tag_:
                token.tag_ = tag
            if self.map_pos and (overwrite or not token.pos_):
                token.pos_ = ptb_to_ud(token.tag_)

    def score(self, examples: Sequence[Example], **kwargs: Any) -> dict[str, Any]:
        scores = Scorer.score_token_attr(examples, "tag", **kwargs)
        if self.map_pos:
            scores.update(Scorer.score_token_attr(examples, "pos", **kwargs))
        return scores

    def score_keys(self) -> list[str]:
        return ["tag_acc", "pos_acc"] if self.map_pos else ["tag_acc"]


class PosTask(Task):
    """``token.pos_`` from Universal POS labels only."""

    target = "pos"
    scheme = "tags"

    @property
    def writes(self) -> frozenset[str]:
        return frozenset({"token.pos"})

    def validate_labels(self, labels: Sequence[str]) -> None:
        super().validate_labels(labels)
        bad = sorted(set(labels) - UD_POS_TAGS)
        if bad:
            raise ValueError(
                f"Task {self.name!r} (target 'pos') got labels that are not Universal POS tags: "
                f"{bad[:10]}. Use target 'tag' for treebank tags (with map_pos to fill pos_)."
            )

    def _annotated(self, doc: Doc) -> bool:
        return doc.has_annotation("POS")

    def gold_tags(self, doc: Doc) -> list[str]:
        return [t.pos_ for t in doc]

    def write(self, doc: Doc, tags: Sequence[str], *, overwrite: bool = False) -> None:
        for token, tag in zip(doc, tags):
            if overwrite or not token.pos_:
                token.pos_ = tag if tag in UD_POS_TAGS else "X"

    def score(self, examples: Sequence[Example], **kwargs: Any) -> dict[str, Any]:
        return Scorer.score_token_attr(examples, "pos", **kwargs)

    def score_keys(self) -> list[str]:
        return ["pos_acc"]
