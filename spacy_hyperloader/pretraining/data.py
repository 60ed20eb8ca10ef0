"""Streamed, packed span-corruption examples from unlabelled text.

Text is read line by line (:mod:`spacy_hyperloader.pretraining.text_sources`), tokenized in small batches,
concatenated and cut into chunks of exactly ``raw_length`` tokens, so every example fills the
input length and nothing is padded.  A line belongs to the held-out slice by a hash of its text:
the split needs no pass over the corpus, holds across runs and sources, and a line never
trains and evaluates.  Examples are a pure function of (sources, seed, example index): resuming
replays the stream up to where a checkpoint stopped and continues with the very same batches.
"""

from __future__ import annotations

import itertools
import random
from array import array
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .span_corruption import SpanCorruption
from .text_sources import expand_sources, source_lines

__all__ = ["EVAL_SPLIT_NAMES", "PackedExamples", "check_train_splits"]

# File names that say "evaluation data"; pretraining on them would leak test words into the backbone.
EVAL_SPLIT_NAMES = re.compile(r"(^|[._-])(dev|valid|validation|val|test|testa|testb)([._-]|$)", re.IGNORECASE)
_TOKENIZE_LINES = 256  # lines per tokenizer call
_HASH_BUCKETS = 1_000_000


def check_train_splits(files: Iterable[Path]) -> None:
    """Refuse files named like dev/test splits (``valid.txt``, ``en_ewt-ud-test.conllu``, ``dev.spacy``)."""
    bad = [str(f) for f in files if EVAL_SPLIT_NAMES.search(f.stem)]
    if bad:
        raise ValueError(
            f"{', '.join(bad)} look(s) like dev/test data; pretraining on it leaks evaluation text into "
            f"the backbone. Give train splits only, or pass --allow-eval-splits if the name misleads."
        )


def is_held_out(line: str, fraction: float) -> bool:
    return zlib.crc32(line.encode("utf-8")) % _HASH_BUCKETS < fraction * _HASH_BUCKETS


@dataclass
class PackedExamples:
    """The training and held-out examples of one pretraining run."""

    sources: Sequence[str | Path]
    tokenizer: object
    corruption: SpanCorruption
    raw_length: int
    seed: int = 0
    eval_fraction: float = 0.01
    shuffle_buffer: int = 1000
    cache_tokens: int = 32_000_000
    """Text of at most this many tokens is tokenized once and kept (4 bytes a token); more is
    re-read every epoch, so memory stays bounded whatever the corpus size."""

    def __post_init__(self) -> None:
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.shuffle_buffer < 1:
            raise ValueError(f"shuffle_buffer must be at least 1, got {self.shuffle_buffer}")
        self.files = expand_sources(self.sources)

    # ------------------------------------------------------------------ chunks
    def _file_ids(self, path: Path, keep: Callable[[str], bool]) -> Iterator[list[int]]:
        """Token ids of a file's kept lines, a few hundred lines at a time."""
        lines = (line for line in source_lines(path) if keep(line))
        while batch := list(itertools.islice(lines, _TOKENIZE_LINES)):
            yield [t for ids in self.tokenizer(batch, add_special_tokens=False)["input_ids"] for t in ids]

    def _ids(
        self, files: Sequence[Path], keep: Callable[[str], bool], cache: _TokenCache | None = None
    ) -> Iterator[Sequence[int]]:
        for path in files:
            if cache is not None and path in cache:
                yield cache[path]
                continue
            for ids in self._file_ids(path, keep):
                if cache is not None:
                    cache.add(path, ids)
                yield ids
            if cache is not None:
                cache.finish(path)

    def _chunks(self, pieces: Iterable[Sequence[int]]) -> Iterator[list[int]]:
        """Consecutive ``raw_length``-token pieces of the concatenated text; the tail is dropped."""
        buffer: list[int] = []
        for ids in pieces:
            buffer.extend(ids)
            start = 0
            while len(buffer) - start >= self.raw_length:
                yield buffer[start : start + self.raw_length]
                start += self.raw_length
            del buffer[:start]

    def _example(self, chunk: list[int], key: str) -> tuple[list[int], list[int]]:
        return self.corruption(chunk, random.Random(key))

    # ------------------------------------------------------------------ streams
    def train(self, skip: int = 0) -> Iterator[tuple[list[int], list[int]]]:
        """Endless (input ids, target ids) examples, epoch after epoch, the first ``skip`` left out.

        Each epoch visits the files in a seeded order through a seeded shuffle buffer; example
        ``i`` is corrupted with its own seeded generator, so the stream is reproducible.
        """
        keep = (lambda line: not is_held_out(line, self.eval_fraction)) if self.eval_fraction else (lambda line: True)
        cache = _TokenCache(self.cache_tokens)
        index = 0
        for epoch in itertools.count():
            rng = random.Random(f"{self.seed}:epoch:{epoch}")
            files = list(self.files)
            rng.shuffle(files)
            produced = 0
            for chunk in _shuffled(self._chunks(self._ids(files, keep, cache)), self.shuffle_buffer, rng):
                produced += 1
                if index >= skip:
                    yield self._example(chunk, f"{self.seed}:train:{index}")
                index += 1
            if not produced:
                raise ValueError(
                    f"the training text ({', '.join(map(str, self.files))}) has fewer than "
                    f"{self.raw_length} tokens outside the held-out slice; give more text or a shorter input length"
                )

    def held_out(self, n: int) -> list[tuple[list[int], list[int]]]:
        """``n`` held-out examples, as evenly from every file as their held-out text allows (the
        loss then speaks for the whole mix, not the first file), corrupted with fixed generators:
        the same for every seed, so losses of different runs compare."""
        if n <= 0 or not self.eval_fraction:
            return []
        keep = lambda line: is_held_out(line, self.eval_fraction)  # noqa: E731
        per_file = [self._chunks(self._ids([path], keep)) for path in self.files]
        chunks: list[list[int]] = []
        while per_file and len(chunks) < n:  # round robin until n or every file is used up
            for stream in list(per_file):
                chunk = next(stream, None)
                if chunk is None:
                    per_file.remove(stream)
                elif len(chunks) < n:
                    chunks.append(chunk)
        return [self._example(chunk, f"held-out:{i}") for i, chunk in enumerate(chunks)]


class _TokenCache:
    """Token ids of whole files, for small corpora that many epochs would otherwise re-read."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.enabled = limit > 0
        self.size = 0
        self._ids: dict[Path, array] = {}
        self._complete: set[Path] = set()

    def __contains__(self, path: Path) -> bool:
        return path in self._complete

    def __getitem__(self, path: Path) -> array:
        return self._ids[path]

    def add(self, path: Path, ids: Sequence[int]) -> None:
        if not self.enabled:
            return
        self.size += len(ids)
        if self.size > self.limit:  # too big to keep: stream every epoch instead
            self.enabled = False
            self._ids.clear()
            self._complete.clear()
            return
        self._ids.setdefault(path, array("I")).extend(ids)

    def finish(self, path: Path) -> None:
        if self.enabled:
            self._ids.setdefault(path, array("I"))
            self._complete.add(path)


def _shuffled(items: Iterator[list[int]], size: int, rng: random.Random) -> Iterator[list[int]]:
    """A streaming shuffle: a buffer of ``size`` items, each draw replaced by the next item."""
    buffer: list[list[int]] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = rng.randrange(size)
        yield buffer[j]
        buffer[j] = item
    rng.shuffle(buffer)
    yield from buffer
