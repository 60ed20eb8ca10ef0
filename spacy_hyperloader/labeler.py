"""Multi-task sequence labelling with a HyperLoader model: words in, labels out.

This is the engine the spaCy component drives; it knows nothing of spaCy. It segments long
sentences, batches segments of many tasks together sorted by length, decodes, and rejoins.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .codec import SentTCodec
from .format import expand_bio, join_segments, parse_target, plan_segments, simplify_bio
from .model.decoding import LabelTrie, constrained_greedy, unconstrained_greedy
from .model.hyperloader import HyperLoaderModel
from .model.training import label_smoothed_nll

TASKS_NAME = "tasks.json"
TOKENIZER_DIR = "tokenizer"
Scheme = Literal["bio", "tags"]


@dataclass
class TaskLabels:
    """A task's output space. ``bio``: span types (targets are types, ``I`` and ``O``);
    ``tags``: plain tags, one per word (POS)."""

    name: str
    scheme: Scheme
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.scheme not in ("bio", "tags"):
            raise ValueError(f"Task {self.name!r}: scheme must be 'bio' or 'tags', got {self.scheme!r}.")
        self.labels = list(dict.fromkeys(self.labels))
        if self.scheme == "bio":
            reserved = sorted({"I", "O"} & set(self.labels))
            if reserved:
                raise ValueError(
                    f"Task {self.name!r}: span types {reserved} clash with the simplified tags I and O; rename them."
                )

    @property
    def targets(self) -> list[str]:
        """Target strings in label-index order (what the decoder may write for one word)."""
        return [*self.labels, "I", "O"] if self.scheme == "bio" else list(self.labels)

    def to_targets(self, tags: Sequence[str]) -> list[str]:
        return simplify_bio(tags) if self.scheme == "bio" else list(tags)

    def from_targets(self, targets: Sequence[str]) -> list[str]:
        return expand_bio(targets) if self.scheme == "bio" else list(targets)


@dataclass
class _Segment:
    item: int
    task: int
    words: range
    source: list[int]


class Labeler:
    """A HyperLoader model, its tokenizer and each task's labels."""

    def __init__(
        self,
        model: HyperLoaderModel,
        tokenizer: PreTrainedTokenizerBase,
        tasks: Sequence[TaskLabels],
        *,
        max_source_tokens: int = 128,
        max_target_tokens: int = 128,
    ) -> None:
        names = [t.name for t in tasks]
        if names != model.task_names:
            raise ValueError(f"Task labels {names} do not match the model's tasks {model.task_names} (same order).")
        self.model = model
        self.codec = SentTCodec(tokenizer)
        self.tasks = list(tasks)
        self.max_source_tokens = max_source_tokens
        self.max_target_tokens = max_target_tokens
        self._trie: LabelTrie | None = None
        self._label_pieces: list[dict[str, list[int]]] = []
        self.refresh_labels()

    # ------------------------------------------------------------------ labels
    def refresh_labels(self) -> None:
        """Rebuild the decoding trie; call after adding labels to a task."""
        piece_ids = [self.codec.label_piece_ids(t.targets) for t in self.tasks]
        self._label_pieces = [dict(zip(t.targets, pieces)) for t, pieces in zip(self.tasks, piece_ids)]
        if all(t.labels for t in self.tasks):
            self._trie = LabelTrie.build(piece_ids, task_names=[t.name for t in self.tasks])
        else:
            self._trie = None
        self._vocab = self._restricted_vocab(piece_ids)

    def _restricted_vocab(self, piece_ids: list[list[list[int]]]) -> Tensor:
        ids = {i for pieces in piece_ids for seq in pieces for i in seq}
        ids.update(self.codec.sentinel_ids.tolist())
        ids.add(self.codec.eos_id)
        return torch.tensor(sorted(ids), dtype=torch.long)

    def task_index(self, name: str) -> int:
        for i, task in enumerate(self.tasks):
            if task.name == name:
                return i
        raise KeyError(f"Unknown task {name!r}; known tasks: {', '.join(t.name for t in self.tasks)}.")

    @property
    def device(self) -> torch.device:
        return self.model.task_embedding.weight.device

    # ------------------------------------------------------------------ encoding
    def _longest_label(self, task: int) -> int:
        return max(map(len, self._label_pieces[task].values()), default=1)

    def _target_pieces(self, task: int, targets: Sequence[str]) -> list[list[int]]:
        """Label ids of each target, from the cache built with the trie (tokenizing only unknown ones)."""
        known = self._label_pieces[task]
        unknown = [t for t in dict.fromkeys(targets) if t not in known]
        extra = dict(zip(unknown, self.codec.label_piece_ids(unknown)))
        return [known[t] if t in known else extra[t] for t in targets]

    def _segments(
        self, task: int, words: Sequence[str], target_lengths: Sequence[int] | None
    ) -> tuple[list[range], list[list[int]]]:
        """Segment ranges within the budgets, and each word's subword ids. Without target lengths
        (prediction) every word is budgeted for the task's longest label."""
        word_pieces = self.codec.piece_ids(words)
        if target_lengths is None:
            target_lengths = [self._longest_label(task)] * len(words)
        ranges = plan_segments(
            [len(p) for p in word_pieces], target_lengths,
            max_source_tokens=self.max_source_tokens, max_target_tokens=self.max_target_tokens,
        )
        return ranges, word_pieces

    def _pad(self, rows: Sequence[Sequence[int]], value: int) -> Tensor:
        width = max(len(r) for r in rows)
        out = torch.full((len(rows), width), value, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out.to(self.device)

    # ------------------------------------------------------------------ training
    def loss(
        self,
        items: Sequence[tuple[str, Sequence[str], Sequence[str]]],
        *,
        label_smoothing: float = 0.1,
        reduction: Literal["sum", "mean"] = "sum",
        restrict_vocabulary: bool = False,
    ) -> Tensor:
        """Label-smoothed loss of (task, words, tags) items, all segments in one mixed batch.

        ``restrict_vocabulary`` normalises over label tokens, sentinels and ``</s>`` only: the
        same support constrained decoding searches, and far cheaper for small models.
        """
        sources, targets, task_ids = [], [], []
        for task_name, words, tags in items:
            t = self.task_index(task_name)
            if len(words) != len(tags):
                raise ValueError(f"{len(words)} words but {len(tags)} tags in an example of task {task_name!r}.")
            spec = self.tasks[t]
            sentence_targets = spec.to_targets(tags)
            if restrict_vocabulary:
                unknown = sorted(set(sentence_targets) - set(self._label_pieces[t]))
                if unknown:
                    raise ValueError(
                        f"Task {task_name!r} has no label(s) {unknown}: the restricted-vocabulary loss "
                        f"cannot score them. Add them to the task's labels before training."
                    )
            lengths = [len(p) for p in self._target_pieces(t, sentence_targets)]
            ranges, word_pieces = self._segments(t, words, lengths)
            for r in ranges:
                # simplified per segment: a span cut by a boundary restarts as a type label
                seg_targets = spec.to_targets(list(tags)[r.start : r.stop])
                sources.append(self.codec.interleave(word_pieces[r.start : r.stop]))
                targets.append(self.codec.interleave(self._target_pieces(t, seg_targets)))
                task_ids.append(t)
        if not sources:
            raise ValueError("No words to learn from in this batch.")
        input_ids = self._pad(sources, self.codec.pad_id)
        labels = self._pad(targets, -100)
        start = self.model.backbone.config.decoder_start_token_id
        decoder_input = torch.cat([torch.full_like(labels[:, :1], start), labels[:, :-1]], dim=1)
        decoder_input = decoder_input.masked_fill(decoder_input == -100, self.codec.pad_id)
        vocab = self._vocab.to(self.device) if restrict_vocabulary else None
        logits = self.model.sequence_logits(
            task_ids, input_ids, (input_ids != self.codec.pad_id).long(), decoder_input, vocab_ids=vocab
        )
        if vocab is not None:
            columns = torch.searchsorted(vocab, labels.clamp(min=0))
            labels = torch.where(labels == -100, labels, columns)
        return label_smoothed_nll(logits, labels, epsilon=label_smoothing, reduction=reduction)

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        items: Sequence[tuple[str, Sequence[str]]],
        *,
        batch_size: int = 64,
        constrained: bool = True,
    ) -> list[list[str]]:
        """Tags for each (task, words) item, in order: BIO tags for span tasks, plain tags otherwise."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        segments: list[_Segment] = []
        for i, (task_name, words) in enumerate(items):
            t = self.task_index(task_name)
            if constrained and not self.tasks[t].labels:
                raise ValueError(f"Task {task_name!r} has no labels; initialize it with labels before predicting.")
            ranges, word_pieces = self._segments(t, words, None)
            for r in ranges:
                segments.append(_Segment(i, t, r, self.codec.interleave(word_pieces[r.start : r.stop])))
        targets: list[list[str]] = [[] for _ in segments]
        order = sorted(range(len(segments)), key=lambda s: len(segments[s].source), reverse=True)
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(order), batch_size):
                chunk = [segments[s] for s in order[start : start + batch_size]]
                decoded = self._decode(chunk, constrained)
                for s, labels in zip(order[start : start + batch_size], decoded):
                    targets[s] = labels
        finally:
            self.model.train(was_training)
        per_item: list[list[list[str]]] = [[] for _ in items]
        for seg, labels in zip(segments, targets):
            per_item[seg.item].append(self.tasks[seg.task].from_targets(labels))
        return [join_segments(parts) for parts in per_item]

    def _decode(self, chunk: list[_Segment], constrained: bool) -> list[list[str]]:
        input_ids = self._pad([s.source for s in chunk], self.codec.pad_id)
        mask = (input_ids != self.codec.pad_id).long()
        task_ids = torch.tensor([s.task for s in chunk], device=self.device)
        n_words = torch.tensor([len(s.words) for s in chunk], device=self.device)
        if constrained:
            indices = constrained_greedy(
                self.model, self._trie, task_ids=task_ids, input_ids=input_ids, attention_mask=mask,
                n_words=n_words, sentinel_ids=self.codec.sentinel_ids, pad_id=self.codec.pad_id,
                decoder_start_id=self.model.backbone.config.decoder_start_token_id,
            ).tolist()
            return [
                [self.tasks[s.task].targets[j] for j in row[: len(s.words)]] for s, row in zip(chunk, indices)
            ]
        longest = max(self._longest_label(s.task) for s in chunk)
        budget = int(n_words.max()) * (longest + 1) + 2
        generated = unconstrained_greedy(
            self.model, task_ids=task_ids, input_ids=input_ids, attention_mask=mask, max_new_tokens=budget
        )
        return [parse_target(self.codec.decode(row), len(s.words)) for s, row in zip(chunk, generated.tolist())]

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | Path, *, save_backbone: bool | None = True) -> None:
        """Model, tokenizer and labels in one directory; loads offline with ``Labeler.load``."""
        path = Path(path)
        self.model.save_pretrained(path, save_backbone=save_backbone)
        self.codec.tokenizer.save_pretrained(str(path / TOKENIZER_DIR))
        meta = {
            "tasks": [asdict(t) for t in self.tasks],
            "max_source_tokens": self.max_source_tokens,
            "max_target_tokens": self.max_target_tokens,
        }
        (path / TASKS_NAME).write_text(json.dumps(meta, indent=2), encoding="utf8")

    @classmethod
    def load(cls, path: str | Path) -> "Labeler":
        path = Path(path)
        meta = json.loads((path / TASKS_NAME).read_text(encoding="utf8"))
        model = HyperLoaderModel.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(str(path / TOKENIZER_DIR), local_files_only=True)
        return cls(
            model, tokenizer, [TaskLabels(**t) for t in meta["tasks"]],
            max_source_tokens=meta["max_source_tokens"], max_target_tokens=meta["max_target_tokens"],
        )
