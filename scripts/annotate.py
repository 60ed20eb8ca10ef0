"""Run a trained pipeline over raw text, print a few annotated docs and write a displaCy page.

    python scripts/annotate.py training/model-best assets/conll2003/test.txt metrics/annotate.html --n 50

INPUT is a plain text file (one text per line) or a CoNLL-style column file such as CoNLL-2003
(sentences separated by blank lines, ``-DOCSTART-`` lines skipped; the first column is the word),
whose sentences are re-joined with spaces into raw text. The page shows the entities
(``style="ent"``) and the chunk spans (``style="span"``, ``doc.spans[--spans-key]``).
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator
from pathlib import Path

import spacy
from spacy import displacy
from spacy.displacy.templates import TPL_PAGE
from wasabi import msg


def conll_sentences(path: Path) -> Iterator[str]:
    words: list[str] = []
    with path.open(encoding="utf8") as fh:
        for line in fh:
            line = line.strip()
            if line.startswith("-DOCSTART-"):
                continue
            if not line:
                if words:
                    yield " ".join(words)
                words = []
                continue
            words.append(line.split()[0])
    if words:
        yield " ".join(words)


def text_lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf8") as fh:
        for line in fh:
            if line.strip():
                yield line.strip()


def looks_like_columns(path: Path) -> bool:
    with path.open(encoding="utf8") as fh:
        head = [line.strip() for line in itertools.islice(fh, 50) if line.strip()]
    if any(line.startswith("-DOCSTART-") for line in head):
        return True
    return bool(head) and all(len(line.split()) in (3, 4) for line in head) and len(head) > 5


def describe(doc, spans_key: str) -> str:
    lines = [f"text:   {doc.text}"]
    lines.append("ents:   " + (", ".join(f"{e.text} [{e.label_}]" for e in doc.ents) or "-"))
    if any(t.tag_ for t in doc):
        lines.append("tags:   " + " ".join(f"{t.text}/{t.tag_}" + (f"/{t.pos_}" if t.pos_ else "") for t in doc))
    if spans_key in doc.spans:
        lines.append(f"{spans_key}: " + (" ".join(f"[{s.text}]{s.label_}" for s in doc.spans[spans_key]) or "-"))
    for key, group in doc.spans.items():
        if key != spans_key:
            lines.append(f"{key}: " + (" ".join(f"[{s.text}]{s.label_}" for s in group) or "-"))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a trained pipeline directory or package name")
    parser.add_argument("input", type=Path, help="a .txt file (one text per line) or a CoNLL-style column file")
    parser.add_argument("output", type=Path, help="the HTML page to write")
    parser.add_argument("--n", type=int, default=50, help="annotate the first N texts")
    parser.add_argument("--show", type=int, default=3, help="print this many annotated docs")
    parser.add_argument("--format", choices=("auto", "text", "conll"), default="auto")
    parser.add_argument("--spans-key", default="chunks", help="doc.spans key to render with style='span'")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    fmt = args.format
    if fmt == "auto":
        fmt = "conll" if looks_like_columns(args.input) else "text"
    texts = list(itertools.islice((conll_sentences if fmt == "conll" else text_lines)(args.input), args.n))
    if not texts:
        msg.fail(f"No text in {args.input}", exits=1)
    nlp = spacy.load(args.model)
    docs = list(nlp.pipe(texts, batch_size=args.batch_size))
    for doc in docs[: args.show]:
        print(describe(doc, args.spans_key), end="\n\n")
    n_ents = sum(len(doc.ents) for doc in docs)
    n_spans = sum(len(doc.spans.get(args.spans_key, [])) for doc in docs)
    if n_ents:
        sections = [f"<h2>Entities</h2>{displacy.render(docs, style='ent', page=False)}"]
    else:
        sections = ["<h2>Entities</h2><p>No entities predicted.</p>"]
    if n_spans:
        rendered = displacy.render(docs, style="span", page=False, options={"spans_key": args.spans_key})
        sections.append(f"<h2>Spans: doc.spans[&quot;{args.spans_key}&quot;]</h2>{rendered}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(TPL_PAGE.format(lang=nlp.lang, dir="ltr", content="\n".join(sections)), encoding="utf8")
    msg.good(f"Annotated {len(docs)} texts ({n_ents} entities, {n_spans} {args.spans_key} spans): {args.output}")


if __name__ == "__main__":
    main()
