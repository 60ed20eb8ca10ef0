"""The ``hyperloader`` pipeline component: one HyperLoader model, many labelling tasks."""

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import srsly
import torch
from spacy import util
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import SimpleFrozenList, ensure_path
from spacy.vocab import Vocab
from thinc.api import CupyOps, Model, Optimizer, get_current_ops

from ..labeler import Labeler
from ..model import HyperLoaderModel
from ..model.backbone import load_backbone
from ..model.files import read_json, write_checksums
from ..sentt.tokenizer import load_tokenizer
from .architecture import MODEL_NAME, attach_labeler, get_labeler, hyperloader_config
from .scorer import SCORER_NAME
from .tasks import Task, parse_tasks

CFG_NAME = "cfg.json"
MODEL_DIR = "model"
BACKBONE_DIR = "backbone"  # inside MODEL_DIR, as HyperLoaderModel.save_pretrained writes it
BATCHING = ("mixed", "per_task")
DECODING = ("draft", "sequential")
_THREAD_TASKS = threading.local()  # use_tasks() overrides, per thread and component


@Language.factory(
    "hyperloader",
    assigns=["doc.ents", "token.tag", "token.pos", "doc.spans"],
    default_config={
        # every other model setting and its default lives in the architecture's signature
        "model": {"@architectures": MODEL_NAME, "backbone": "t5-small"},
        "tasks": {},
        "active_tasks": None,
        "batch_size": 64,
        "constrained": True,
        # 6-11x fewer decoder calls: faster with torch's default threads (README's speed table)
        "decoding": "draft",
        "batching": "mixed",
        "overwrite": False,
        "threads": None,
        "scorer": {"@scorers": SCORER_NAME},
    },
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "tag_acc": 1.0, "pos_acc": 0.0},
)
def make_hyperloader(
    nlp: Language,
    name: str,
    model: Model,
    tasks: dict[str, dict[str, Any]],
    active_tasks: list[str] | None,
    batch_size: int,
    constrained: bool,
    decoding: str,
    batching: str,
    overwrite: bool,
    threads: int | None,
    scorer: Callable[..., dict[str, Any]] | None,
) -> "HyperLoaderComponent":
    return HyperLoaderComponent(
        nlp.vocab, model, name, tasks=tasks, active_tasks=active_tasks, batch_size=batch_size,
        constrained=constrained, decoding=decoding, batching=batching, overwrite=overwrite, threads=threads,
        scorer=scorer,
    )


class HyperLoaderComponent(TrainablePipe):
    """Annotates ``doc.ents``, ``token.tag_``/``pos_`` and ``doc.spans[key]`` from one model.

    ``active_tasks`` chooses which tasks run (``None``: all); change it at run time with the
    property or, for a block of calls, ``with component.use_tasks("ner"):``. Run-time changes
    are not saved: a saved pipeline runs what its config says.
    """

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "hyperloader",
        *,
        tasks: dict[str, dict[str, Any]],
        active_tasks: Sequence[str] | None = None,
        batch_size: int = 64,
        constrained: bool = True,
        decoding: str = "draft",
        batching: str = "mixed",
        overwrite: bool = False,
        threads: int | None = None,
        scorer: Callable[..., dict[str, Any]] | None = None,
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"hyperloader batch_size must be an integer of at least 1, got {batch_size!r}.")
        if batching not in BATCHING:
            raise ValueError(
                f"hyperloader batching must be one of {', '.join(map(repr, BATCHING))}, got {batching!r}: "
                f"'mixed' puts segments of all tasks in one batch, 'per_task' one task per batch (the authors)."
            )
        if decoding not in DECODING:
            raise ValueError(
                f"hyperloader decoding must be one of {', '.join(map(repr, DECODING))}, got {decoding!r}: "
                f"'draft' guesses a segment's labels and verifies them in parallel, 'sequential' decodes "
                f"word by word (the same labels, slower)."
            )
        for setting, value in (("constrained", constrained), ("overwrite", overwrite)):
            if not isinstance(value, bool):
                raise ValueError(f"hyperloader {setting} must be true or false, got {value!r}.")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise ValueError(f"hyperloader threads must be null (torch's default) or at least 1, got {threads!r}.")
        self.cfg: dict[str, Any] = {
            "batch_size": batch_size, "constrained": constrained, "decoding": decoding, "batching": batching,
            "overwrite": overwrite, "threads": threads,
        }
        self._tasks = parse_tasks(tasks)
        self._active: list[str] | None = None
        self.active_tasks = active_tasks
        self.scorer = scorer
        self._pid = os.getpid()
        self._saved_backbone: Path | None = None  # where this run last wrote the frozen backbone
        self._saved_as_trained = False  # what the cfg.json being loaded says

    # ------------------------------------------------------------------ tasks
    @property
    def tasks(self) -> list[Task]:
        return list(self._tasks)

    def task(self, name: str) -> Task:
        for task in self._tasks:
            if task.name == name:
                return task
        raise KeyError(f"Unknown task {name!r}; this component has: {', '.join(self.task_names)}.")

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self._tasks]

    @property
    def active_tasks(self) -> list[str]:
        override = _task_overrides().get(id(self))
        active = override if override is not None else self._active
        return list(self.task_names if active is None else active)

    @active_tasks.setter
    def active_tasks(self, names: Sequence[str] | str | None) -> None:
        if names is None:
            self._active = None
            return
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise ValueError(
                f"hyperloader active_tasks must be null or a list of task names "
                f"(of {self.task_names}), got {names!r}."
            )
        for name in names:
            self.task(name)  # raises for an unknown task, naming the known ones
        self._active = list(dict.fromkeys(names))

    @contextmanager
    def use_tasks(self, *names: str) -> Iterator[None]:
        """Run only these tasks inside the block, in this thread (task switching without
        reloading; other threads calling the same pipeline keep their tasks)."""
        for name in names:
            self.task(name)  # raises for an unknown task, naming the known ones
        overrides = _task_overrides()
        previous = overrides.get(id(self))
        overrides[id(self)] = list(dict.fromkeys(names))
        try:
            yield
        finally:
            if previous is None:
                del overrides[id(self)]
            else:
                overrides[id(self)] = previous

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(f"{t.name}:{label}" for t in self._tasks for label in t.labels)

    @property
    def label_data(self) -> dict[str, list[str]]:
        """The labels of every task, as ``spacy init labels`` writes them for ``initialize``."""
        return {t.name: list(t.labels) for t in self._tasks}

    def add_label(self, label: str, task: str | None = None) -> int:
        if task is None:
            if len(self._tasks) != 1:
                raise ValueError(f"add_label needs task= (one of {self.task_names}) when there are several tasks.")
            task = self._tasks[0].name
        spec = self.task(task)
        if label in spec.labels:
            return 0
        if get_labeler(self.model) is not None:
            raise ValueError(
                f"Cannot add label {label!r} to task {task!r} after the model was created; "
                f"add labels before nlp.initialize()."
            )
        return spec.add_labels([label])

    # ------------------------------------------------------------------ model
    @property
    def labeler(self) -> Labeler:
        labeler = get_labeler(self.model)
        if labeler is None:
            raise ValueError(
                f"The '{self.name}' component has no model yet: call nlp.initialize() (to train) "
                f"or load a trained pipeline with spacy.load()."
            )
        return labeler

    def _device(self) -> torch.device:
        return torch.device("cuda") if isinstance(get_current_ops(), CupyOps) else torch.device("cpu")

    def _build_labeler(self) -> Labeler:
        settings = self.model.attrs["settings"]
        missing = [t.name for t in self._tasks if not t.labels]
        if missing:
            raise ValueError(
                f"Tasks {missing} have no labels: the training examples carry no gold annotation for "
                f"them and none were given. Add `labels` to the task config or fix the corpus."
            )
        backbone = load_backbone(settings["backbone"])
        tokenizer = load_tokenizer(settings["tokenizer"] or settings["backbone"])
        config = hyperloader_config(settings, self.task_names)
        model = HyperLoaderModel(backbone, config, backbone_source=settings["backbone"]).to(self._device())
        return Labeler(
            model, tokenizer, [t.task_labels() for t in self._tasks],
            max_source_tokens=settings["max_source_tokens"], max_target_tokens=settings["max_target_tokens"],
        )

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Language | None = None,
        labels: dict[str, Sequence[str]] | None = None,
    ) -> None:
        """Labels from ``labels`` (``spacy init labels``) or else from the gold examples, then the model."""
        if not callable(get_examples):
            validate_get_examples(get_examples, "HyperLoaderComponent.initialize")  # spaCy's E930
        examples = list(get_examples())  # read once: a streamed corpus gives a fresh sample per call
        if examples:  # none are needed when the config or `labels` gives every task's labels
            validate_get_examples(lambda: examples, "HyperLoaderComponent.initialize")
        if labels is not None:
            unknown = sorted(set(labels) - set(self.task_names))
            if unknown:
                raise ValueError(f"Labels given for unknown tasks {unknown}; tasks are {self.task_names}.")
            for name, task_labels in labels.items():
                self.task(name).add_labels(task_labels)
        else:
            for task in self._tasks:
                found: set[str] = set()
                for example in examples:
                    if task.has_gold(example.reference):
                        found.update(task.gold_labels(example.reference))
                task.add_labels(sorted(found))
        attach_labeler(self.model, self._build_labeler())

    # ------------------------------------------------------------------ prediction
    def _set_threads(self) -> None:
        # GNU OpenMP's thread pool does not survive fork(): a forked worker (nlp.pipe(n_process=2))
        # would hang in its first parallel op. One intra-op thread per worker avoids the pool.
        if os.getpid() != self._pid:
            torch.set_num_threads(1)
            self._pid = os.getpid()
        elif self.cfg["threads"] is not None and torch.get_num_threads() != self.cfg["threads"]:
            torch.set_num_threads(self.cfg["threads"])  # asked for in the config: process-wide

    def predict(self, docs: Iterable[Doc]) -> list[dict[str, list[str]]]:
        self._set_threads()
        docs = list(docs)
        active = self.active_tasks
        items, owners = [], []
        for i, doc in enumerate(docs):
            if len(doc) == 0:
                continue
            words = [t.text for t in doc]
            for name in active:
                items.append((name, words))
                owners.append((i, name))
        preds: list[dict[str, list[str]]] = [{} for _ in docs]
        if not items:
            return preds
        tags = self.labeler.predict(
            items, batch_size=self.cfg["batch_size"], constrained=self.cfg["constrained"],
            mixed_tasks=self.cfg["batching"] == "mixed", draft=self.cfg["decoding"] == "draft",
        )
        for (i, name), doc_tags in zip(owners, tags):
            preds[i][name] = doc_tags
        return preds

    def set_annotations(self, docs: Iterable[Doc], preds: list[dict[str, list[str]]]) -> None:
        overwrite = self.cfg["overwrite"]
        for doc, by_task in zip(docs, preds):
            for name, tags in by_task.items():
                self.task(name).write(doc, tags, overwrite=overwrite)

    # ------------------------------------------------------------------ training
    def _items(self, examples: Iterable[Example]) -> list[tuple[str, list[str], list[str]]]:
        items = []
        for example in examples:
            ref = example.reference
            words = [t.text for t in ref]
            for task in self._tasks:
                if task.has_gold(ref):
                    items.append((task.name, words, task.gold_tags(ref)))
        return items

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optimizer | None = None,
        losses: dict[str, float] | None = None,
    ) -> dict[str, float]:
        """One seq2seq example per (doc, task) whose gold the reference doc carries, one mixed batch."""
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "HyperLoaderComponent.update")
        items = self._items(examples)
        if not items:
            return losses
        labeler = self.labeler
        settings = self.model.attrs["settings"]
        labeler.model.train()
        labeler.model.set_dropout(drop)
        loss = labeler.loss(
            items, label_smoothing=settings["label_smoothing"], reduction=settings["loss_reduction"],
            restrict_vocabulary=settings["restrict_vocabulary"], alignment_weight=settings["alignment_weight"],
            alignment_heads=settings["alignment_heads"],
        )
        if not torch.isfinite(loss):
            raise ValueError(f"The hyperloader loss is {loss.item()}; lower the learning rate or use loss_reduction='mean'.")
        loss.backward()
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += float(loss.detach())
        return losses

    def finish_update(self, sgd: Optimizer) -> None:
        """Clip the global gradient norm of all trainable parameters, then step. thinc's own
        ``grad_clip`` clips each tensor alone, which changes the relative step sizes across the
        hypernetwork; the shipped configs turn it off."""
        max_norm = self.model.attrs["settings"]["max_grad_norm"]
        if max_norm:
            torch.nn.utils.clip_grad_norm_(self.labeler.model.trainable_parameters(), max_norm)
        self.model.finish_update(sgd)
        self.labeler.model.invalidate_generated_weights()

    def get_loss(self, examples: Iterable[Example], scores: Any) -> tuple[float, Any]:
        raise NotImplementedError("The hyperloader component computes its loss inside update().")

    def score(self, examples: Iterable[Example], **kwargs: Any) -> dict[str, Any]:
        validate_examples(examples, "HyperLoaderComponent.score")
        if self.scorer is None:
            return {}
        return self.scorer(examples, tasks=[self.task(n) for n in self.active_tasks], **kwargs)

    # ------------------------------------------------------------------ serialization
    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = SimpleFrozenList()) -> None:
        """``cfg.json`` (the tasks and their labels) and ``model/``. Settings such as
        ``active_tasks`` or ``batch_size`` belong to the pipeline's config, not to these files."""
        writers: dict[str, Callable[[Path], None]] = {CFG_NAME: self._write_cfg}
        if get_labeler(self.model) is not None:
            writers[MODEL_DIR] = self._write_model
        util.to_disk(path, writers, exclude)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = SimpleFrozenList()) -> "HyperLoaderComponent":
        util.from_disk(path, {CFG_NAME: self._read_cfg, MODEL_DIR: self._read_model}, exclude)
        return self

    def _write_cfg(self, path: Path) -> None:
        cfg = {"tasks": {t.name: t.to_config() for t in self._tasks}, "trained": get_labeler(self.model) is not None}
        srsly.write_json(path, cfg)

    def _read_cfg(self, path: Path) -> None:
        """Take the saved labels; the tasks themselves must be the ones the config names."""
        cfg = read_json(path, what=f"the '{self.name}' component's tasks and labels")
        if not isinstance(cfg.get("tasks"), dict):
            raise ValueError(f"{str(path)!r} names no tasks: the file is damaged. Copy the pipeline folder again.")
        saved = parse_tasks(cfg["tasks"])
        if [(t.name, t.target) for t in saved] != [(t.name, t.target) for t in self._tasks]:
            raise ValueError(
                f"The saved '{self.name}' component has tasks {[(t.name, t.target) for t in saved]}, but its "
                f"config names {[(t.name, t.target) for t in self._tasks]}. Task lists must match to load the weights."
            )
        for mine, theirs in zip(self._tasks, saved):
            unknown = sorted(set(mine.labels) - set(theirs.labels))
            if unknown:
                raise ValueError(
                    f"Labels {unknown} of task {mine.name!r} in the pipeline's config are not in {str(path)!r}, "
                    f"the saved model's labels; remove them from the config, restore the file, or retrain."
                )
            mine.labels = list(theirs.labels)
        self._saved_as_trained = bool(cfg.get("trained", True))  # older pipelines: trained

    def _write_model(self, path: Path) -> None:
        """The frozen backbone is written once per run; later checkpoints link to that copy (its
        trainable layer norms are saved with the other trainable weights, which load over it)."""
        labeler = self.labeler
        frozen = not labeler.model.config.train_backbone
        earlier = self._saved_backbone
        if frozen and earlier is not None and earlier.is_dir():
            labeler.save(path, save_backbone=False)
            if earlier != (path / BACKBONE_DIR).resolve():
                _link_tree(earlier, path / BACKBONE_DIR)
            write_checksums(path)
            return
        labeler.save(path, save_backbone=True)
        self._saved_backbone = (path / BACKBONE_DIR).resolve() if frozen else None

    def _read_model(self, path: Path) -> None:
        if not path.is_dir():
            if self._saved_as_trained:
                raise FileNotFoundError(
                    f"The '{self.name}' component's {CFG_NAME} says it has a trained model, but {str(path)!r} "
                    f"is missing. Copy the whole pipeline folder again, or retrain."
                )
            return  # saved before initialize: no model yet
        labeler = Labeler.load(path, local_only=True)
        theirs = {t.name: list(t.labels) for t in labeler.tasks}
        for task in self._tasks:
            if task.labels != theirs.get(task.name):
                only_cfg = sorted(set(task.labels) - set(theirs.get(task.name, [])))
                only_model = sorted(set(theirs.get(task.name, [])) - set(task.labels))
                raise ValueError(
                    f"Task {task.name!r}: the labels in {str(path.parent / CFG_NAME)!r} differ from the ones the "
                    f"model in {str(path)!r} was trained with (only in {CFG_NAME}: {only_cfg}; only in the model: "
                    f"{only_model}; or another order). The model would still emit its own. Restore the file or retrain."
                )
        labeler.model.to(self._device())
        if self.model.attrs["settings"]["quantize"] == "int8" and self._device().type == "cpu":
            labeler.model.quantize_int8()  # a loaded pipeline serves; training uses the float model
        attach_labeler(self.model, labeler)

    def to_bytes(self, *, exclude: Iterable[str] = SimpleFrozenList()) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            self.to_disk(tmp, exclude=exclude)
            root = Path(tmp)
            files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        return srsly.msgpack_dumps(files)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = SimpleFrozenList()) -> "HyperLoaderComponent":
        files = srsly.msgpack_loads(bytes_data)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for rel, data in files.items():
                target = root / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            self.from_disk(root, exclude=exclude)
        return self


def _task_overrides() -> dict[int, list[str]]:
    """This thread's ``use_tasks`` overrides, by component."""
    if not hasattr(_THREAD_TASKS, "by_component"):
        _THREAD_TASKS.by_component = {}
    return _THREAD_TASKS.by_component


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link every file of ``source`` into ``target`` (a copy where links are impossible)."""
    if target.exists():
        shutil.rmtree(target)
    for file in source.rglob("*"):
        if file.is_file():
            dest = target / file.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(file, dest)
            except OSError:
                shutil.copy2(file, dest)
