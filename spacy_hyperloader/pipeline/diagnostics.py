"""Learning curves of a ``spacy train`` config: is it a bug, or slow learning?

Trains the config's pipeline exactly as ``spacy train`` would (same reader, batcher, optimizer,
dropout, ``nlp.update``) and every few steps records, per task: the training loss, the
teacher-forced label accuracy and the constrained-decoding accuracy on the same slice of
training docs, the alignment masses, and the dev scores. Teacher-forced accuracy high but
decoded accuracy low points at decoding; both low, at learning.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.training import Example
from spacy.training.initialize import init_nlp
from spacy.training.loop import create_train_batches
from spacy.util import load_config, registry, resolve_dot_names

from .component import HyperLoaderComponent

#: One point of the curves: the step and its figures (``None`` where not measured).
Point = dict[str, Any]


def run_diagnostics(
    config_path: Path,
    output_dir: Path,
    *,
    overrides: dict[str, Any] | None = None,
    steps: int = 1000,
    every: int = 100,
    slice_size: int = 64,
    component: str = "hyperloader",
    progress: bool = True,
) -> list[Point]:
    """Train for ``steps`` updates and write ``curves.json`` and ``curves.png`` to ``output_dir``."""
    if every < 1 or steps < 1 or slice_size < 1:
        raise ValueError(f"steps, every and slice_size must be at least 1, got {steps}, {every}, {slice_size}.")
    config = load_config(config_path, overrides=overrides or {}, interpolate=False)
    nlp = init_nlp(config)
    pipe = nlp.get_pipe(component)
    if not isinstance(pipe, HyperLoaderComponent):
        raise ValueError(f"Pipe {component!r} is a {type(pipe).__name__}, not a hyperloader component.")
    training = registry.resolve(nlp.config.interpolate()["training"])
    train_corpus, dev_corpus = resolve_dot_names(nlp.config.interpolate(), [training["train_corpus"], training["dev_corpus"]])
    train_slice = list(islice(train_corpus(nlp), slice_size))
    dev = list(dev_corpus(nlp))
    optimizer = training["optimizer"]
    batches = create_train_batches(nlp, train_corpus, training["batcher"], training["max_epochs"])
    output_dir.mkdir(parents=True, exist_ok=True)
    points: list[Point] = [_measure(nlp, pipe, 0, None, train_slice, dev, 0.0)]
    _report(points[-1], progress)
    losses: dict[str, float] = {}
    window: list[float] = []
    started = time.perf_counter()
    for step, (_, batch) in enumerate(islice(batches, steps), start=1):
        losses.clear()
        nlp.update(batch, drop=training["dropout"], sgd=optimizer, losses=losses)
        optimizer.step_schedules()
        window.append(losses.get(component, 0.0))
        if step % every == 0 or step == steps:
            elapsed = time.perf_counter() - started
            points.append(_measure(nlp, pipe, step, sum(window) / len(window), train_slice, dev, elapsed))
            window.clear()
            _report(points[-1], progress)
            write_curves(points, output_dir)
    write_curves(points, output_dir)
    return points


def _measure(
    nlp: Language, pipe: HyperLoaderComponent, step: int, loss: float | None,
    train_slice: Sequence[Example], dev: Sequence[Example], seconds: float,
) -> Point:
    labeler = pipe.labeler
    point: Point = {"step": step, "train_loss": loss, "seconds": round(seconds, 1), "tasks": {}}
    items = pipe._items(train_slice)
    for task in pipe.task_names:
        task_items = [it for it in items if it[0] == task]
        if not task_items:
            continue
        figures = labeler.diagnose(task_items)
        predicted = labeler.predict([(t, words) for t, words, _ in task_items])
        right = sum(p == g for pred, (_, _, gold) in zip(predicted, task_items) for p, g in zip(pred, gold))
        total = sum(len(gold) for _, _, gold in task_items)
        figures["decoded_accuracy"] = right / max(total, 1)
        point["tasks"][task] = {k: round(v, 4) for k, v in figures.items()}
    scores = nlp.evaluate(dev) if dev else {}
    point["dev"] = {k: round(float(v), 4) for k, v in scores.items() if isinstance(v, (int, float)) and v is not None
                    and not k.startswith("token_") and (k.endswith("_acc") or k.endswith("_f"))}
    return point


def _report(point: Point, progress: bool) -> None:
    if not progress:
        return
    tasks = "  ".join(
        f"{name}: tf {f['teacher_forced_accuracy']:.2f} dec {f['decoded_accuracy']:.2f} "
        f"align {f['alignment_mass']:.2f}/{f['encoder_alignment_mass']:.2f}"
        for name, f in point["tasks"].items()
    )
    dev = " ".join(f"{k} {v:.3f}" for k, v in point["dev"].items())
    loss = "-" if point["train_loss"] is None else f"{point['train_loss']:.3f}"
    print(f"step {point['step']} ({point['seconds']} s) loss {loss}  {tasks}  dev {dev}", flush=True)


def write_curves(points: Sequence[Point], output_dir: Path) -> None:
    """``curves.json`` (all figures) and ``curves.png`` (four panels against the step)."""
    (output_dir / "curves.json").write_text(json.dumps(list(points), indent=2), encoding="utf8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p["step"] for p in points]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    loss_points = [(p["step"], p["train_loss"]) for p in points if p["train_loss"] is not None]
    if loss_points:
        axes[0, 0].plot(*zip(*loss_points), marker="o")
    axes[0, 0].set_title("training loss")
    tasks = sorted({t for p in points for t in p["tasks"]})
    for task in tasks:
        series = [p["tasks"].get(task, {}) for p in points]
        line, = axes[0, 1].plot(steps, [s.get("teacher_forced_accuracy") for s in series], marker="o", label=f"{task} teacher-forced")
        axes[0, 1].plot(steps, [s.get("decoded_accuracy") for s in series], marker="x", linestyle="--",
                        color=line.get_color(), label=f"{task} decoded")
        line, = axes[1, 1].plot(steps, [s.get("alignment_mass") for s in series], marker="o", label=f"{task} decoder → word")
        axes[1, 1].plot(steps, [s.get("encoder_alignment_mass") for s in series], marker="x", linestyle="--",
                        color=line.get_color(), label=f"{task} encoder sentinel → word")
    axes[0, 1].set_title("label accuracy on a training slice")
    axes[1, 1].set_title("attention mass on the own word")
    for key in sorted({k for p in points for k in p["dev"]}):
        axes[1, 0].plot(steps, [p["dev"].get(key) for p in points], marker="o", label=key)
    axes[1, 0].set_title("dev scores")
    for ax in axes.flat:
        ax.set_xlabel("step")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(output_dir / "curves.png", dpi=90)
    plt.close(fig)


def parse_overrides(args: Iterable[str]) -> dict[str, Any]:
    """``--section.key value`` pairs, as ``spacy train`` takes them."""
    from spacy.cli._util import parse_config_overrides

    return parse_config_overrides(list(args))
