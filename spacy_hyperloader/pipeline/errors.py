"""Numbered warnings, spaCy style (``[HLW001] ...``), so users can filter and look them up."""

from spacy.errors import ErrorsWithCodes


class Warnings(metaclass=ErrorsWithCodes):
    HLW001 = (
        "Task {task!r}: overlapping gold spans in doc.spans[{key!r}] were dropped for training; SentT' "
        "gives every token one label, so only the longest non-overlapping spans are learned."
    )
    HLW002 = (
        "Task {task!r}: tokens without entity annotation (missing, not 'O') were read as 'O' for "
        "training. Annotate them, or leave the whole doc without entities to skip it for this task."
    )
