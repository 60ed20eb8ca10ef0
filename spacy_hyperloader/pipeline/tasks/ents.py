"""Named entities in ``doc.ents``."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from spacy.scorer import get_ner_prf
from spacy.tokens import Doc
from spacy.training import Example, biluo_to_iob
from spacy.training.iob_utils import doc_to_biluo_tags
from spacy.util import filter_spans

from ..errors import Warnings
from .base import Task, not_overlapping, spans_from_tags


class EntsTask(Task):
    target = "ents"
    scheme = "bio"

    @property
    def writes(self) -> frozenset[str]:
        return frozenset({"doc.ents"})

    def _annotated(self, doc: Doc) -> bool:
        return doc.has_annotation("ENT_IOB")

    def gold_tags(self, doc: Doc) -> list[str]:
        if any(token.ent_iob_ == "" for token in doc):
            warnings.warn(Warnings.HLW002.format(task=self.name))
        return biluo_to_iob(doc_to_biluo_tags(doc, missing="O"))

    def write(self, doc: Doc, tags: Sequence[str], *, overwrite: bool = False) -> None:
        predicted = spans_from_tags(doc, tags)
        kept = [] if overwrite else list(doc.ents)
        doc.set_ents(filter_spans(kept + not_overlapping(predicted, kept)), default="outside")

    def score(self, examples: Sequence[Example], **kwargs: Any) -> dict[str, Any]:
        return get_ner_prf(examples)

    def score_keys(self) -> list[str]:
        return ["ents_f", "ents_p", "ents_r", "ents_per_type"]
