"""What the benchmarks share, defined once: the shared-data folder, the corpus reader (the
package's own, ``spacy_hyperloader.corpora``), peak-memory measuring, backbones, mixed-task
batches, the training loop, the table printer and the JSON writer.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import itertools
import json
import math
import os
import platform
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

# Before torch loads OpenMP: threads that sleep while waiting instead of spinning. When other
# jobs share the cores, spinning threads slow training several times over (measured: 8x on 2
# busy cores); on free cores sleeping costs little. Import this module before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/x.py` from a checkout, installed or not
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from spacy.tokens import Doc  # noqa: E402
from spacy.vocab import Vocab  # noqa: E402

from spacy_hyperloader.pretraining.backbone_init import SHAPES, init_backbone  # noqa: E402
from spacy_hyperloader.corpora import FORMATS, Sentence, sample_indices  # noqa: E402
from spacy_hyperloader.corpora.base import ConversionStats, build_doc, drop_blank_tokens  # noqa: E402
from spacy_hyperloader.model.training import TemperatureSampler  # noqa: E402

#: The read-only corpora and vocabularies beside the checkout (the project's offline mirror).
DEFAULT_DATA = ROOT.parent / "shared" / "data"
#: The vocabulary of a random backbone (``--random-shape``): the T5 SentencePiece vocabulary.
T5_VOCAB = Path("t5_vocab") / "tokenizer.json"

T = TypeVar("T")


# ----------------------------------------------------------------------------- arguments


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options both benchmarks take, with the same names and meanings."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--backbone", help="a local Hugging Face T5 directory (pretrained, or made by init-backbone)")
    source.add_argument(
        "--random-shape", choices=sorted(SHAPES),
        help="a random backbone of this shape with the T5 vocabulary of --data (smoke runs: nothing is pretrained)",
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the corpora folder (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps per model (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per training batch (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (default: %(default)s, the paper)")
    parser.add_argument(
        "--warmup", type=int, default=None,
        help="linear warm-up steps, then linear decay to 0 (default: min(500, steps // 10); the paper: 500)",
    )
    parser.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=10.0, help="task sampling temperature T (default: %(default)s)")
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--loss-reduction", choices=("sum", "mean"), default="sum",
                        help="sum over target tokens (the authors) or mean (default: %(default)s)")
    parser.add_argument(
        "--restrict-vocabulary", action=argparse.BooleanOptionalAction, default=None,
        help="normalise the loss over the labels' tokens only (default: on for --random-shape, off otherwise)",
    )
    parser.add_argument(
        "--train-backbone", action=argparse.BooleanOptionalAction, default=None,
        help="train the whole backbone too (default: on for --random-shape; the paper freezes a pretrained one)",
    )
    parser.add_argument("--alignment-weight", type=float, default=0.0,
                        help="guided attention on the alignment SentT' states (model.alignment_weight; 0: off)")
    parser.add_argument("--position-bias-scale", type=float, default=1.0,
                        help="with a trained backbone, its relative position bias learns this many times faster "
                             "(model.position_bias_scale; default: %(default)s)")
    parser.add_argument("--dropout", type=float, default=0.1, help="dropout while training (default: %(default)s)")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="score a dev slice every N steps for the learning curves (0: never)")
    parser.add_argument("--dev-limit", type=int, default=200, help="dev sentences per task for the learning curves")
    parser.add_argument("--seed", type=int, default=42, help="model init and task sampling seed (default: %(default)s)")
    parser.add_argument("--data-seed", type=int, default=0,
                        help="seed of the data fractions and --limit samples (project.yml's convert uses 0)")
    parser.add_argument("--limit", type=int, default=None, help="at most N train and N test sentences per task (smoke runs)")
    parser.add_argument("--eval-batch-size", type=int, default=64, help="segments per decoding batch")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--log-every", type=int, default=100, help="print the loss every N steps (0: never)")
    parser.add_argument("--output", type=Path, default=None, help="write all figures and settings to this JSON file")


def resolve_common(args: argparse.Namespace) -> None:
    """Fill the defaults that depend on other options, and check ranges."""
    if args.steps < 1:
        raise SystemExit("--steps must be at least 1")
    if args.batch_size < 1:
        raise SystemExit("--batch-size must be at least 1")
    if args.limit is not None and args.limit < 1:
        raise SystemExit("--limit must be at least 1")
    random_backbone = args.random_shape is not None
    if args.restrict_vocabulary is None:
        args.restrict_vocabulary = random_backbone
    if args.train_backbone is None:
        args.train_backbone = random_backbone
    if args.warmup is None:
        args.warmup = min(500, args.steps // 10)
    args.warmup = min(args.warmup, args.steps)
    if args.threads:
        torch.set_num_threads(args.threads)


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings as JSON values, plus the machine."""
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings["torch_threads"] = torch.get_num_threads()
    settings["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY")
    settings["torch"] = torch.__version__
    settings["python"] = platform.python_version()
    settings["machine"] = platform.machine()
    return settings


# ----------------------------------------------------------------------------- corpora


def require_paths(data: Path, relative: Sequence[str | Path]) -> list[Path]:
    """The paths under ``data``; one error naming every missing one."""
    paths = [data / r for r in relative]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"Missing under {data}: {', '.join(missing)}. Pass --data, a folder laid out like the "
            f"project's offline mirror ../shared/data (see its README.md)."
        )
    return paths


def read_sentences(path: Path, format: str = "conll2003", limit: int = 0) -> list[Sentence]:
    """The non-empty sentences of a corpus file (the first ``limit``; 0: all), read by the
    package's own reader, so every benchmark parses corpora exactly as ``convert`` does."""
    sentences = (s for s in FORMATS[format].reader(Path(path), ConversionStats()) if s.words)
    return list(itertools.islice(sentences, limit or None))


class CorpusFile:
    """One corpus file, parsed once; ``docs(fraction, seed)`` gives exactly the Docs that
    ``read_docs(format, path, fraction=fraction, seed=seed)`` (and so ``convert --fraction``)
    gives, but builds Docs only for the sentences kept (after ``limit``)."""

    def __init__(self, format: str, path: Path, vocab: Vocab) -> None:
        spec = FORMATS[format]
        self.format, self.path, self.vocab = format, Path(path), vocab
        self.stats = ConversionStats(format=format, input_path=str(path))
        sentences = (drop_blank_tokens(s, self.stats) for s in spec.reader(self.path, self.stats))
        self.sentences = [s for s in sentences if s.words]
        if not self.sentences:
            raise ValueError(f"No sentences in {path} (format {format}).")

    def __len__(self) -> int:
        return len(self.sentences)

    def docs(self, fraction: float = 1.0, seed: int = 0, limit: int | None = None) -> list[Doc]:
        keep = sample_indices(len(self.sentences), fraction, seed)
        if limit is not None and len(keep) > limit:
            keep = sorted(random.Random(seed).sample(keep, limit))
        return [build_doc(self.vocab, self.sentences[i], self.stats) for i in keep]


def bio_tags(doc: Doc) -> list[str]:
    """IOB2 tags of ``doc.ents``."""
    return [f"{t.ent_iob_}-{t.ent_type_}" if t.ent_iob_ in ("B", "I") else "O" for t in doc]


# ----------------------------------------------------------------------------- memory
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    """The process's resident set size now (None where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def _peak_mark_bytes() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _reset_peak_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _release_free_memory() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakRSS:
    """Peak RSS increase over the RSS at entry (bytes), via the kernel's reset peak mark (exact,
    torch's allocations included) or, where it cannot be reset, by sampling."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.increase: int | None = None
        self.method = "unavailable"
        self._stop = threading.Event()
        self._peak = 0
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "PeakRSS":
        _release_free_memory()
        self.baseline = rss_bytes()
        if self.baseline is None:
            return self
        if _reset_peak_mark() and _peak_mark_bytes() is not None:
            self.method = "VmHWM reset via /proc/self/clear_refs"
        else:
            self.method = f"RSS sampled every {self.interval * 1000:g} ms"
            self._peak = self.baseline
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, rss_bytes() or 0)

    def __exit__(self, *exc: object) -> None:
        if self.baseline is None:
            return
        now = rss_bytes() or 0
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, now)
        else:
            peak = max(_peak_mark_bytes() or 0, now)
        self.increase = max(0, peak - self.baseline)


# ----------------------------------------------------------------------------- backbone


@contextmanager
def backbone_source(args: argparse.Namespace) -> Iterator[tuple[str, dict[str, Any]]]:
    """(directory, description) of the backbone: ``--backbone`` as given, or a random
    ``--random-shape`` one with the T5 vocabulary, saved to a temporary folder for the run."""
    if args.backbone is not None:
        if not Path(args.backbone).is_dir():
            raise FileNotFoundError(f"--backbone {args.backbone} is not a directory (a Hugging Face T5 model folder).")
        yield args.backbone, {"backbone": args.backbone, "random": False}
        return
    vocab = require_paths(args.data, [T5_VOCAB])[0]
    with tempfile.TemporaryDirectory(prefix="hyperloader-backbone-") as tmp:
        init_backbone(tmp, args.random_shape, vocab=vocab, seed=args.seed, force=True)
        yield tmp, {"backbone": f"random {args.random_shape}", "random": True, "shape": dict(SHAPES[args.random_shape])}


# ----------------------------------------------------------------------------- training


class MixedTaskBatches(Generic[T]):
    """Endless mixed-task batches of ``(task, example)``: each example's task is drawn by
    temperature sampling (``p_t ∝ n_t^(1/T)``, the paper's T = 10); within a task, examples come
    in reshuffled passes, so every example is seen before any repeats."""

    def __init__(self, data: Mapping[str, Sequence[T]], batch_size: int, *, temperature: float = 10.0, seed: int = 0):
        self.data = {task: list(examples) for task, examples in data.items() if examples}
        if not self.data:
            raise ValueError("No training examples in any task.")
        self.batch_size = batch_size
        self.sampler = TemperatureSampler({t: len(e) for t, e in self.data.items()}, temperature, seed=seed)
        self._rng = random.Random(seed)
        self._order: dict[str, list[int]] = {task: [] for task in self.data}

    @property
    def probabilities(self) -> dict[str, float]:
        return self.sampler.probabilities

    def _next(self, task: str) -> T:
        order = self._order[task]
        if not order:
            order.extend(self._rng.sample(range(len(self.data[task])), len(self.data[task])))
        return self.data[task][order.pop()]

    def __iter__(self) -> Iterator[list[tuple[str, T]]]:
        while True:
            yield [(task, self._next(task)) for task in self.sampler.sample_many(self.batch_size)]


def train_loop(
    update: Callable[[list[tuple[str, T]]], float],
    batches: MixedTaskBatches[T],
    steps: int,
    *,
    log_every: int = 100,
    name: str = "",
    evaluate_every: int = 0,
    evaluate: Callable[[], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """``steps`` calls of ``update(batch) -> loss``; returns the wall time, the loss curve's ends
    and, with ``evaluate``, its figures every ``evaluate_every`` steps (time spent there excluded)."""
    losses: list[float] = []
    curve: list[dict[str, Any]] = []
    start = time.perf_counter()
    paused = 0.0
    for step, batch in zip(range(1, steps + 1), batches):
        loss = float(update(batch))
        if not math.isfinite(loss):
            raise FloatingPointError(f"{name}: the loss is {loss} at step {step}.")
        losses.append(loss)
        if log_every and (step % log_every == 0 or step == steps):
            window = losses[-log_every:]
            print(f"  [{name}] step {step}/{steps} loss {sum(window) / len(window):.4f} "
                  f"({time.perf_counter() - start - paused:.0f} s)", flush=True)
        if evaluate is not None and evaluate_every and (step % evaluate_every == 0 or step == steps):
            before = time.perf_counter()
            figures = evaluate()
            paused += time.perf_counter() - before
            curve.append({"step": step, **figures})
            print(f"  [{name}] step {step} dev " + " ".join(f"{k} {v:.3f}" for k, v in figures.items()), flush=True)
    wall = time.perf_counter() - start - paused
    tail = losses[-max(1, len(losses) // 10):]
    return {
        "steps": len(losses),
        "train_wall_s": round(wall, 3),
        "steps_per_s": round(len(losses) / wall, 3) if wall > 0 else None,
        "loss_first": losses[0],
        "loss_last": sum(tail) / len(tail),
        "dev_curve": curve,
    }


# ----------------------------------------------------------------------------- output


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str = "") -> str:
    """A plain aligned text table (first column left-aligned, the rest right-aligned); returns it."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    out = ([title] if title else []) + [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells[1:]]
    text = "\n".join(out)
    print(text, flush=True)
    return text


def write_json(path: Path | None, data: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf8")
    print(f"wrote {path}", flush=True)
