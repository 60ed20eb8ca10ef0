"""Multi-task sequence labelling with a HyperLoader model: words in, labels out.

This is the engine the spaCy component drives; it knows nothing of spaCy. It segments long
sentences, batches segments of many tasks together sorted by length, decodes, and rejoins.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .sentt.codec import SentTCodec
from .sentt.format import MAX_WORD_PIECES, expand_bio, join_segments, parse_target, plan_source_segments, simplify_bio
from .model.decoding import DecodingStats, LabelTrie, constrained_greedy, draft_verify_greedy, unconstrained_greedy
from .model.files import read_json, require, write_checksums
from .model.hyperloader import HyperLoaderModel
from .model.training import alignment_mass, guided_alignment_loss, label_smoothed_nll
from .sentt.tokenizer import word_initial_pieces

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


def _word_index(pieces: Sequence[Sequence[int]], *, sentinels: bool = True, words: bool = True) -> list[int]:
    """Word index of each position of ``interleave(pieces)``, -1 for none: ``<extra_id_i>``
    (with ``sentinels``) and the pieces of word i (with ``words``) belong to word i. A word
    without pieces is represented by its sentinel."""
    out: list[int] = []
    for i, ids in enumerate(pieces):
        out.append(i if sentinels or not ids else -1)
        out.extend([i if words else -1] * len(ids))
    out.extend([-1, -1])  # the closing sentinel and </s>
    return out


@dataclass
class TrainingBatch:
    """One padded teacher-forced batch; ``labels`` are token ids with -100 as padding."""

    task_ids: Tensor
    input_ids: Tensor
    attention_mask: Tensor
    decoder_input_ids: Tensor
    labels: Tensor
    source_words: Tensor
    source_sentinels: Tensor
    target_words: Tensor

    def alignment_hops(
        self, encoder_attentions: Sequence[Tensor], cross_attentions: Sequence[Tensor]
    ) -> dict[str, tuple[Sequence[Tensor], Tensor, Tensor]]:
        """The two hops SentT' states exactly, as (attentions, query words, key words): in the
        encoder's first layer ``<extra_id_i>`` reads word i's pieces; in every decoder layer the
        positions writing label i read word i (its sentinel and pieces)."""
        owners = torch.maximum(self.source_words, self.source_sentinels)
        return {
            "encoder": (encoder_attentions[:1], self.source_sentinels, self.source_words),
            "decoder": (cross_attentions, self.target_words, owners),
        }

    def column_labels(self, vocab: Tensor | None) -> Tensor:
        """Labels as columns of the restricted vocabulary ``vocab`` (sorted ids), or as they are."""
        if vocab is None:
            return self.labels
        columns = torch.searchsorted(vocab.to(self.labels.device), self.labels.clamp(min=0))
        return torch.where(self.labels == -100, self.labels, columns)


@dataclass
class _Segment:
    item: int
    task: int
    words: range
    source: list[int]


def _batches(order: Sequence[int], size: int, group: Callable[[int], int] | None) -> Iterator[list[int]]:
    """Consecutive batches of at most ``size``; with ``group``, a batch never mixes groups."""
    batch: list[int] = []
    for s in order:
        if batch and (len(batch) == size or (group is not None and group(s) != group(batch[0]))):
            yield batch
            batch = []
        batch.append(s)
    if batch:
        yield batch


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

    def _segments(self, words: Sequence[str]) -> tuple[list[range], list[list[int]]]:
        """Segment ranges and each word's subword ids. Only the source is budgeted (pieces and
        sentinels, at most 99 words), so training and prediction cut a sentence identically;
        the target may run past the source budget, as T5's relative positions allow. A word
        brings at most ``MAX_WORD_PIECES`` pieces, so time stays linear in a document's length."""
        word_pieces = [pieces[:MAX_WORD_PIECES] for pieces in self.codec.piece_ids(words)]
        return self.plan(word_pieces), word_pieces

    def plan(self, word_pieces: Sequence[Sequence[int]]) -> list[range]:
        """The segment plan of a sentence given its words' subword ids (the same in training and prediction)."""
        return plan_source_segments([len(p) for p in word_pieces], max_source_tokens=self.max_source_tokens)

    def _pad(self, rows: Sequence[Sequence[int]], value: int) -> Tensor:
        """Rows of ids as one (rows, longest) tensor on the model's device, right-padded with ``value``."""
        tensors = [torch.tensor(r, dtype=torch.long) for r in rows]
        return pad_sequence(tensors, batch_first=True, padding_value=value).to(self.device)

    # ------------------------------------------------------------------ training
    def training_batch(self, items: Sequence[tuple[str, Sequence[str], Sequence[str]]], *, restrict_vocabulary: bool = False) -> "TrainingBatch":
        """(task, words, tags) items as one padded, mixed-task, teacher-forced batch."""
        sources, targets, task_ids, source_words, source_sentinels, target_words = [], [], [], [], [], []
        for task_name, words, tags in items:
            t = self.task_index(task_name)
            if len(words) != len(tags):
                raise ValueError(f"{len(words)} words but {len(tags)} tags in an example of task {task_name!r}.")
            spec = self.tasks[t]
            if restrict_vocabulary:
                unknown = sorted(set(spec.to_targets(tags)) - set(self._label_pieces[t]))
                if unknown:
                    raise ValueError(
                        f"Task {task_name!r} has no label(s) {unknown}: the restricted-vocabulary loss "
                        f"cannot score them. Add them to the task's labels before training."
                    )
            ranges, word_pieces = self._segments(words)
            for r in ranges:
                # simplified per segment: a span cut by a boundary restarts as a type label
                seg_targets = spec.to_targets(list(tags)[r.start : r.stop])
                label_pieces = self._target_pieces(t, seg_targets)
                seg_words = word_pieces[r.start : r.stop]
                sources.append(self.codec.interleave(seg_words))
                targets.append(self.codec.interleave(label_pieces))
                source_words.append(_word_index(seg_words, sentinels=False))
                source_sentinels.append(_word_index(seg_words, words=False))
                # the decoder input is the target shifted right by one (after the start token)
                target_words.append([-1, *_word_index(label_pieces)[:-1]])
                task_ids.append(t)
        if not sources:
            raise ValueError("No words to learn from in this batch.")
        input_ids = self._pad(sources, self.codec.pad_id)
        labels = self._pad(targets, -100)
        start = self.model.backbone.config.decoder_start_token_id
        decoder_input = torch.cat([torch.full_like(labels[:, :1], start), labels[:, :-1]], dim=1)
        decoder_input = decoder_input.masked_fill(decoder_input == -100, self.codec.pad_id)
        return TrainingBatch(
            task_ids=torch.tensor(task_ids, device=self.device), input_ids=input_ids,
            attention_mask=(input_ids != self.codec.pad_id).long(), decoder_input_ids=decoder_input,
            labels=labels, source_words=self._pad(source_words, -1),
            source_sentinels=self._pad(source_sentinels, -1), target_words=self._pad(target_words, -1),
        )

    def loss(
        self,
        items: Sequence[tuple[str, Sequence[str], Sequence[str]]],
        *,
        label_smoothing: float = 0.1,
        reduction: Literal["sum", "mean"] = "sum",
        restrict_vocabulary: bool = False,
        alignment_weight: float = 0.0,
        alignment_heads: int = 1,
    ) -> Tensor:
        """Label-smoothed loss of (task, words, tags) items, all segments in one mixed batch.

        ``restrict_vocabulary`` normalises over label tokens, sentinels and ``</s>`` only: the
        same support constrained decoding searches, and far cheaper for small models.
        ``alignment_weight`` adds guided attention (see ``guided_alignment_loss``) on two hops
        that SentT' states exactly: in the encoder, ``<extra_id_i>`` reads word i's pieces, and
        in the decoder, the positions writing word i's label read word i (its sentinel and
        pieces). It is scaled per target token like the main loss, so the two keep their ratio
        under ``sum``.
        """
        if self.model.quantized:
            raise ValueError("This model was quantized to int8 for inference; train the float model instead.")
        if not self.model.training:
            self.model.train()  # a training step: dropout on (predict leaves the model in eval mode)
        batch = self.training_batch(items, restrict_vocabulary=restrict_vocabulary)
        logits, encoder_attn, cross_attn = self._teacher_forced(batch, restrict_vocabulary, alignment_weight > 0)
        loss = label_smoothed_nll(logits, batch.column_labels(self._vocab if restrict_vocabulary else None),
                                  epsilon=label_smoothing, reduction=reduction)
        if alignment_weight > 0:
            aux = sum(
                guided_alignment_loss(*hop, heads=alignment_heads)
                for hop in batch.alignment_hops(encoder_attn, cross_attn).values()
            )
            scale = (batch.labels != -100).sum() if reduction == "sum" else 1
            loss = loss + alignment_weight * scale * aux
        return loss

    def _teacher_forced(self, batch: "TrainingBatch", restrict_vocabulary: bool, attentions: bool) -> tuple:
        """(logits, encoder self-attentions, decoder cross-attentions); no attentions unless asked."""
        vocab = self._vocab.to(self.device) if restrict_vocabulary else None
        out = self.model.sequence_logits(
            batch.task_ids, batch.input_ids, batch.attention_mask, batch.decoder_input_ids,
            vocab_ids=vocab, attentions=attentions,
        )
        return out if attentions else (out, None, None)

    @torch.no_grad()
    def forced_pass(self, items: Sequence[tuple[str, Sequence[str], Sequence[str]]], *, batch_size: int = 64) -> None:
        """One encoder pass plus one teacher-forced decoder pass over the SentT' targets of
        (task, words, tags), longest first in batches of ``batch_size``, as ``predict`` batches:
        the least any exact decoder of this model must spend to produce those labels (the speed
        benchmark's ``limit``)."""
        if self.model.training:
            self.model.eval()
        order = sorted(range(len(items)), key=lambda i: -len(items[i][1]))
        for chunk in _batches(order, batch_size, None):
            self._teacher_forced(self.training_batch([items[i] for i in chunk]), False, False)

    @torch.no_grad()
    def diagnose(self, items: Sequence[tuple[str, Sequence[str], Sequence[str]]]) -> dict[str, float]:
        """Teacher-forced label accuracy (every piece of a word's label right, given the gold
        prefix), the first piece's accuracy and the alignment mass, without dropout. High
        teacher-forced but low decoded accuracy points at decoding; both low, at learning."""
        was_training = self.model.training
        self.model.eval()
        try:
            batch = self.training_batch(items)
            logits, encoder_attn, cross_attn = self._teacher_forced(batch, True, True)
        finally:
            self.model.train(was_training)
        labels = batch.column_labels(self._vocab)
        right = (logits.argmax(dim=-1) == labels) | (labels == -100)
        is_label = (batch.target_words >= 0) & (labels != -100)
        # a decoder position predicts a label piece unless its own target is the next sentinel
        is_sentinel = torch.isin(batch.labels, self.codec.sentinel_ids.to(self.device))
        label_pos = is_label & ~is_sentinel
        first = label_pos & (batch.decoder_input_ids.unsqueeze(-1) == self.codec.sentinel_ids.to(self.device)).any(-1)
        words = batch.target_words.masked_fill(~label_pos, -1)
        word_ok, n_words = 0, 0
        for row in range(words.shape[0]):
            ids = words[row][words[row] >= 0]
            if ids.numel() == 0:
                continue
            ok = right[row][words[row] >= 0]
            per_word = torch.zeros(int(ids.max()) + 1).index_add_(0, ids, (~ok).float())
            present = torch.zeros_like(per_word).index_add_(0, ids, torch.ones_like(per_word[ids]))
            word_ok += int(((per_word == 0) & (present > 0)).sum())
            n_words += int((present > 0).sum())
        hops = batch.alignment_hops(encoder_attn, cross_attn)
        return {
            "teacher_forced_accuracy": word_ok / max(n_words, 1),
            "first_piece_accuracy": float(right[first].float().mean()) if bool(first.any()) else float("nan"),
            "alignment_mass": alignment_mass(*hops["decoder"]),
            "encoder_alignment_mass": alignment_mass(*hops["encoder"]),
        }

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        items: Sequence[tuple[str, Sequence[str]]],
        *,
        batch_size: int = 64,
        constrained: bool = True,
        mixed_tasks: bool = True,
        draft: bool = True,
        stats: DecodingStats | None = None,
    ) -> list[list[str]]:
        """Tags for each (task, words) item, in order: BIO tags for span tasks, plain tags otherwise.

        ``constrained=False`` is the authors' unconstrained greedy decoding; ``mixed_tasks=False``
        batches one task at a time, as the authors do (the results are the same, only slower).
        ``draft`` picks draft-and-verify over word-by-word constrained decoding (same labels);
        ``stats`` collects the constrained decoder's passes."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        segments: list[_Segment] = []
        for i, (task_name, words) in enumerate(items):
            t = self.task_index(task_name)
            if constrained and not self.tasks[t].labels:
                raise ValueError(f"Task {task_name!r} has no labels; initialize it with labels before predicting.")
            ranges, word_pieces = self._segments(words)
            for r in ranges:
                segments.append(_Segment(i, t, r, self.codec.interleave(word_pieces[r.start : r.stop])))
        targets: list[list[str]] = [[] for _ in segments]
        def key(s: int) -> tuple[int, int]:
            return (0 if mixed_tasks else segments[s].task, -len(segments[s].source))

        order = sorted(range(len(segments)), key=key)
        if self.model.training:
            # left in eval mode: threads predicting at once must not switch dropout back on for
            # each other; training (the component's update) sets train mode itself
            self.model.eval()
        for batch in _batches(order, batch_size, None if mixed_tasks else (lambda s: segments[s].task)):
            decoded = self._decode([segments[s] for s in batch], constrained, draft, stats)
            for s, labels in zip(batch, decoded):
                targets[s] = labels
        per_item: list[list[list[str]]] = [[] for _ in items]
        for seg, labels in zip(segments, targets):
            per_item[seg.item].append(self.tasks[seg.task].from_targets(labels))
        return [join_segments(parts) for parts in per_item]

    def _decode(
        self, chunk: list[_Segment], constrained: bool, draft: bool = True, stats: DecodingStats | None = None
    ) -> list[list[str]]:
        input_ids = self._pad([s.source for s in chunk], self.codec.pad_id)
        mask = (input_ids != self.codec.pad_id).long()
        task_ids = torch.tensor([s.task for s in chunk], device=self.device)
        n_words = torch.tensor([len(s.words) for s in chunk], device=self.device)
        if constrained:
            decoder = draft_verify_greedy if draft else constrained_greedy
            indices = decoder(
                self.model, self._trie, task_ids=task_ids, input_ids=input_ids, attention_mask=mask,
                n_words=n_words, sentinel_ids=self.codec.sentinel_ids, pad_id=self.codec.pad_id,
                decoder_start_id=self.model.backbone.config.decoder_start_token_id, stats=stats,
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
        write_checksums(path)  # the tokenizer's model too; checked when the model loads

    @classmethod
    def load(cls, path: str | Path, *, local_only: bool = False) -> "Labeler":
        """What ``save`` wrote; ``local_only`` (a saved pipeline) reads nothing outside ``path``."""
        path = Path(path)
        meta = read_json(path / TASKS_NAME, what="the labeler's tasks and labels")
        model = HyperLoaderModel.from_pretrained(path, local_only=local_only)
        tokenizer_dir = require(path / TOKENIZER_DIR, what="the tokenizer")
        if not any((tokenizer_dir / name).is_file() for name in ("tokenizer.json", "spiece.model")):
            raise FileNotFoundError(
                f"{str(tokenizer_dir)!r} has neither tokenizer.json nor spiece.model: the tokenizer is "
                f"missing. Copy the whole saved folder again."
            )
        tokenizer = word_initial_pieces(AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True))
        return cls(
            model, tokenizer, [TaskLabels(**t) for t in meta["tasks"]],
            max_source_tokens=meta["max_source_tokens"], max_target_tokens=meta["max_target_tokens"],
        )
