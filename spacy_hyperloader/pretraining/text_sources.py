"""Unlabelled text for vocabularies and pretraining, read lazily line by line.

Sources: ``.txt`` files (any other suffix is read as text too; gzip/xz/bzip2 decompressed),
directories (their ``.txt``, ``.txt.gz``/``.xz``/``.bz2``, ``.spacy`` and ``.zip`` files), ``.spacy`` DocBins (each doc's words joined by spaces)
and NLTK corpus ``.zip`` files (text members only; ``word/tag`` corpora such as Brown have their
tags stripped).  Plain files are streamed, so a corpus never has to fit in memory; a zip member or
a DocBin is read whole, which is one small file at a time.
"""

from __future__ import annotations

import io
import itertools
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

__all__ = ["expand_sources", "iter_training_text", "source_lines"]

# SentencePiece silently skips sentences over ``max_sentence_length`` (4192 bytes): split them.
_MAX_LINE_CHARS = 2000
# Lines looked at to tell a ``word/tag`` corpus from plain text.
_SNIFF_LINES = 50
# Members of NLTK corpus zips that are not corpus text.
_SKIP_MEMBERS = {"readme", "contents", "cats.txt", "license", "license.txt", "citation.txt", "fileids"}
# What a directory source contributes (other files in it are ignored).
_DIRECTORY_SUFFIXES = (".txt", ".txt.gz", ".txt.xz", ".txt.bz2", ".spacy", ".zip")
_BINARY_SUFFIXES = {".zip", ".gz", ".xz", ".bz2", ".pickle", ".pkl", ".npy", ".bin", ".model", ".png", ".jpg", ".pdf"}


def _split_long(line: str) -> Iterator[str]:
    while len(line) > _MAX_LINE_CHARS:
        cut = line.rfind(" ", 0, _MAX_LINE_CHARS)
        if cut <= 0:
            cut = _MAX_LINE_CHARS
        yield line[:cut]
        line = line[cut:].lstrip()
    if line:
        yield line


def _is_tagged(lines: Sequence[str]) -> bool:
    """Whether the text is ``word/tag`` tokens (the Brown corpus and other tagged NLTK corpora)."""
    tokens = [t for line in lines for t in line.split()][:500]
    if len(tokens) < 5:
        return False
    tagged = sum(1 for t in tokens if "/" in t[1:] and not t.endswith("/") and "://" not in t)
    return tagged / len(tokens) >= 0.9


def _strip_tags(line: str) -> str:
    return " ".join(t.rsplit("/", 1)[0] if "/" in t[1:] else t for t in line.split())


def _text_lines(raw_lines: Iterable[str]) -> Iterator[str]:
    """Non-empty stripped lines, tags removed when the first lines look tagged."""
    lines = (line.strip() for line in raw_lines)
    lines = (line for line in lines if line)
    head = list(itertools.islice(lines, _SNIFF_LINES))
    tagged = _is_tagged(head)
    for line in itertools.chain(head, lines):
        yield from _split_long(_strip_tags(line) if tagged else line)


def _zip_lines(path: Path) -> Iterator[str]:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename.rsplit("/", 1)[-1]
            if info.is_dir() or not name or name.startswith("."):
                continue
            if name.lower() in _SKIP_MEMBERS or name.lower().startswith("readme"):
                continue
            if Path(name).suffix.lower() in _BINARY_SUFFIXES:
                continue
            data = archive.read(info)
            if b"\x00" in data[:4096]:
                continue  # binary
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
            yield from _text_lines(io.StringIO(text))


def _docbin_lines(path: Path) -> Iterator[str]:
    import spacy
    from spacy.tokens import DocBin

    vocab = spacy.blank("xx").vocab
    for doc in DocBin().from_disk(path).get_docs(vocab):
        words = [token.text for token in doc if token.text.strip()]
        if words:
            yield from _split_long(" ".join(words))


def source_lines(path: Path) -> Iterator[str]:
    """The text lines of one file (see the module docstring for the formats)."""
    if path.suffix == ".spacy":
        yield from _docbin_lines(path)
    elif path.suffix == ".zip":
        yield from _zip_lines(path)
    else:
        from ..corpora.base import open_text  # transparent gzip / xz / bzip2

        with open_text(path) as fh:
            yield from _text_lines(fh)


def _is_text_file(path: Path) -> bool:
    return path.name.endswith(_DIRECTORY_SUFFIXES)


def expand_sources(sources: Iterable[str | Path]) -> list[Path]:
    """The files behind ``sources`` (directories expanded, sorted); missing sources fail here,
    before any reading."""
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"training text {str(source)!r} does not exist")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _is_text_file(p))
            if not found:
                raise ValueError(f"training text directory {path} has no {', '.join(_DIRECTORY_SUFFIXES)} files")
            files.extend(found)
        else:
            files.append(path)
    return files


def iter_training_text(sources: Iterable[str | Path]) -> Iterator[str]:
    """Lines of text from every source, in order (see the module docstring)."""
    for path in expand_sources(sources):
        yield from source_lines(path)
