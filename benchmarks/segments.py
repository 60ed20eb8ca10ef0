"""Segments per test sentence at prediction: the old plan against the current one.

    python benchmarks/segments.py [--tokenizer DIR] [--data ../shared/data]

The old prediction path budgeted every word as the task's longest label on the target side,
so long sentences of tasks with long labels (ATIS: ``fromloc.city_name``) were cut into pieces
that training never saw. Now prediction plans segments exactly as training does, on the
source alone. Prints, per test set, the mean segments per sentence and the share of sentences
cut, for both plans.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import DEFAULT_DATA, print_table, read_sentences, write_json  # noqa: E402
from spacy_hyperloader.sentt.codec import SentTCodec  # noqa: E402
from spacy_hyperloader.sentt.format import plan_segments, plan_source_segments, simplify_bio  # noqa: E402
from spacy_hyperloader.sentt.tokenizer import load_tokenizer  # noqa: E402

TEST_SETS = {
    "ATIS": ("seq", "paper/atis/test"),
    "SNIPS": ("seq", "paper/snips/test"),
    "MIT Movie": ("mit", "paper/mit_movie/test"),
    "MIT Movie Trivia": ("mit", "paper/mit_movie_trivia/test"),
    "MIT Restaurant": ("mit", "paper/mit_restaurant/test"),
    "CoNLL-2003 NER": ("conll2003", "conll2003/test.txt"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="tokenizer directory or tokenizer.json (default: the T5 vocabulary under --data)")
    parser.add_argument("--max-source-tokens", type=int, default=128)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    codec = SentTCodec(load_tokenizer(args.tokenizer or args.data / "t5_vocab" / "tokenizer.json"))
    rows, results = [], {}
    for name, (fmt, rel) in TEST_SETS.items():
        sentences = read_sentences(args.data / rel, fmt)
        labels = sorted({t for s in sentences for t in simplify_bio(s.ner)} | {"I", "O"})
        longest = max(len(p) for p in codec.label_piece_ids(labels))
        old, new = [], []
        for s in sentences:
            pieces = [len(p) for p in codec.piece_ids(s.words)]
            old.append(len(plan_segments(pieces, [longest] * len(pieces), max_source_tokens=args.max_source_tokens)))
            new.append(len(plan_source_segments(pieces, max_source_tokens=args.max_source_tokens)))
        n = len(sentences)
        results[name] = {
            "sentences": n, "longest_label_pieces": longest,
            "before_segments_per_sentence": sum(old) / n, "before_cut_share": sum(k > 1 for k in old) / n,
            "after_segments_per_sentence": sum(new) / n, "after_cut_share": sum(k > 1 for k in new) / n,
        }
        r = results[name]
        rows.append([name, n, longest, f"{r['before_segments_per_sentence']:.3f}", f"{100 * r['before_cut_share']:.1f}",
                     f"{r['after_segments_per_sentence']:.3f}", f"{100 * r['after_cut_share']:.1f}"])
    print_table(["test set", "sentences", "longest label", "segments before", "% cut before",
                 "segments after", "% cut after"], rows, title="Segments per test sentence at prediction")
    write_json(args.output, results)


if __name__ == "__main__":
    main()
