"""Save a tiny, untrained `hyperloader` pipeline (NER + PTB tags) for packaging checks.

    python scripts/make_tiny_pipeline.py OUTPUT_DIR [--seed 0]

Builds a random `tiny` T5 backbone with a 300-piece vocabulary trained on a few sentences
and the label names (`python -m spacy_hyperloader init-backbone`), adds the component with its labels
given in the config, so `nlp.initialize()` needs no examples, and writes the pipeline with
`nlp.to_disk`. The backbone lives in a temporary directory that is deleted afterwards: the
saved pipeline must carry its own copy. Annotations are random; this is for packaging and
loading checks only. Takes a few seconds on a CPU.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

NER_LABELS = ["PER", "LOC", "ORG", "MISC"]
TAG_LABELS = ["NNP", "NN", "NNS", "VBZ", "VBD", "JJ", "DT", "IN", "TO", "VB", "PRP", "CD", "."]
SENTENCES = [
    "EU rejects German call to boycott British lamb .",
    "Peter Blackburn went to Brussels on Monday .",
    "The quick brown fox jumps over the lazy dog .",
    "Germany 's representative to the European Union 's veterinary committee said on Wednesday .",
    "Show me films with Tom Hanks and Meg Ryan .",
    "The market rose 3 percent in London and New York .",
    "I said O .",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import spacy
    from spacy.util import fix_random_seed

    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "text.txt"
        # The label strings (and BIO's "I" / "O") must be in the vocabulary, or several of them
        # would all be <unk> and the component refuses labels it cannot tell apart.
        labels = " ".join([*NER_LABELS, "I", "O", *TAG_LABELS])
        text.write_text("\n".join([*SENTENCES, labels] * 20) + "\n", encoding="utf8")
        backbone = Path(tmp) / "backbone"
        subprocess.run(
            [sys.executable, "-m", "spacy_hyperloader", "init-backbone", str(backbone), "--shape", "tiny",
             "--train-text", str(text), "--vocab-size", "300", "--seed", str(args.seed)],
            check=True,
        )
        nlp = spacy.blank("en")
        nlp.add_pipe("hyperloader", config={
            "model": {"backbone": str(backbone)},
            "tasks": {
                "ner": {"target": "ents", "labels": NER_LABELS},
                "tag": {"target": "tag", "labels": TAG_LABELS},
            },
        })
        fix_random_seed(args.seed)  # the hypernetworks' random init
        nlp.initialize()
        nlp.to_disk(args.output_dir)
    print(f"Saved a tiny hyperloader pipeline ({', '.join(nlp.pipe_names)}) to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
