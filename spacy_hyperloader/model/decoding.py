"""Greedy decoding of SentT' targets: constrained (always well-formed) and the authors' unconstrained.

Constrained decoding walks a trie of each task's label token sequences. Sentinels are forced,
so they cost no logits; at a label position only the allowed label tokens are scored (a few
hundred columns instead of the 32k vocabulary). A sentinel that directly follows a finished
label is fed in the same decoder call as that label's last token, which halves the number of
decoder calls when labels are single tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from .hyperloader import HyperLoaderModel

_NO_CHILD = -1
_FINISHED = 1 << 20  # pending length of finished rows: never the batch minimum


@dataclass
class LabelTrie:
    """All tasks' label token sequences as one table of trie nodes (tensors, batch-friendly).

    ``vocab``: the distinct label token ids (the scored columns); ``roots[t]``: task t's root;
    ``child[node, column]``: next node or -1; ``label[node]``: label index ending here or -1;
    ``leaf[node]``: a label ends here and nothing continues it.
    """

    vocab: Tensor
    roots: Tensor
    child: Tensor
    label: Tensor
    leaf: Tensor

    @classmethod
    def build(
        cls, task_labels: Sequence[Sequence[Sequence[int]]], *, task_names: Sequence[str] | None = None
    ) -> "LabelTrie":
        """``task_labels[t][i]`` is the token id sequence of label i of task t."""
        vocab = sorted({tok for labels in task_labels for seq in labels for tok in seq})
        column = {tok: c for c, tok in enumerate(vocab)}
        children: list[dict[int, int]] = []
        label_at: list[int] = []
        roots: list[int] = []

        def new_node() -> int:
            children.append({})
            label_at.append(-1)
            return len(children) - 1

        for t, labels in enumerate(task_labels):
            name = task_names[t] if task_names else str(t)
            if not labels:
                raise ValueError(f"Task {name!r} has no labels to decode into; add its labels first.")
            root = new_node()
            roots.append(root)
            for i, seq in enumerate(labels):
                if not seq:
                    raise ValueError(f"Label {i} of task {name!r} tokenizes to nothing; labels need text.")
                node = root
                for tok in seq:
                    c = column[tok]
                    if c not in children[node]:
                        children[node][c] = new_node()
                    node = children[node][c]
                if label_at[node] != -1:
                    raise ValueError(
                        f"Labels {label_at[node]} and {i} of task {name!r} tokenize identically "
                        f"({list(seq)}), so they could never be told apart; rename one."
                    )
                label_at[node] = i
        child = torch.full((len(children), max(1, len(vocab))), _NO_CHILD, dtype=torch.long)
        for node, links in enumerate(children):
            for c, nxt in links.items():
                child[node, c] = nxt
        label = torch.tensor(label_at, dtype=torch.long)
        leaf = (label >= 0) & (child == _NO_CHILD).all(dim=1)
        return cls(torch.tensor(vocab, dtype=torch.long), torch.tensor(roots, dtype=torch.long), child, label, leaf)

    def to(self, device: torch.device | str) -> "LabelTrie":
        return LabelTrie(*(t.to(device) for t in (self.vocab, self.roots, self.child, self.label, self.leaf)))


@torch.no_grad()
def constrained_greedy(
    model: HyperLoaderModel,
    trie: LabelTrie,
    *,
    task_ids: Tensor,
    input_ids: Tensor,
    attention_mask: Tensor,
    n_words: Tensor,
    sentinel_ids: Tensor,
    decoder_start_id: int,
    pad_id: int,
) -> Tensor:
    """Label index per (row, word), shape (batch, max words), -1 past each row's length.

    Every row gets exactly ``n_words[row]`` labels, each one of its task's labels, whatever the
    weights. ``sentinel_ids[i]`` is ``<extra_id_i>``; rows hold at most ``len(sentinel_ids) - 1`` words.
    """
    device = input_ids.device
    trie = trie.to(device)
    batch = input_ids.shape[0]
    n_words = n_words.to(device)
    sentinels = sentinel_ids.to(device)
    if int(n_words.max()) >= len(sentinels):
        raise ValueError(f"A row has {int(n_words.max())} words; at most {len(sentinels) - 1} fit one segment.")
    result = torch.full((batch, max(1, int(n_words.max()))), -1, dtype=torch.long, device=device)
    if int(n_words.max()) == 0:
        return result[:, :0]
    rows = torch.arange(batch, device=device)
    roots = trie.roots[task_ids.to(device)]
    node = roots.clone()
    word = torch.zeros(batch, dtype=torch.long, device=device)
    pending = torch.stack([torch.full_like(word, decoder_start_id), sentinels[word]], dim=1)
    pending_len = torch.where(n_words > 0, 2, _FINISHED)
    output_weight = model.backbone.get_output_embeddings().weight
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    decoder = model.backbone.get_decoder()

    with model.task_context(task_ids):
        encoded = model.encode(input_ids, attention_mask)
        while True:
            active = pending_len < _FINISHED
            if not bool(active.any()):
                break
            k = int(pending_len[active].min())
            hidden = decoder(
                input_ids=pending[:, :k],
                encoder_hidden_states=encoded,
                encoder_attention_mask=attention_mask,
                past_key_values=cache,
                use_cache=True,
            ).last_hidden_state[:, -1]
            choosing = active & (pending_len == k)
            waiting = active & (pending_len > k)
            # Rows with a forced token left over feed it next time, without choosing.
            pending = torch.where(waiting[:, None], pending.roll(-k, dims=1), pending)
            pending_len = torch.where(waiting, pending_len - k, pending_len)

            label_logits = model.project(hidden, trie.vocab)
            label_logits = label_logits.masked_fill(trie.child[node] == _NO_CHILD, float("-inf"))
            next_sentinel = sentinels[(word + 1).clamp(max=len(sentinels) - 1)]
            end_logit = _row_logits(model, hidden, output_weight, next_sentinel)
            can_end = trie.label[node] >= 0
            end_logit = end_logit.masked_fill(~can_end, float("-inf"))
            best_column = label_logits.argmax(dim=1)
            ends = can_end & (end_logit >= label_logits.max(dim=1).values)
            stepped = trie.child[node, best_column]
            token = trie.vocab[best_column]
            # A label is finished when the model ends it, or its token reaches a leaf.
            reached_leaf = ~ends & trie.leaf[stepped.clamp(min=0)]
            finished = choosing & (ends | reached_leaf)
            finished_label = torch.where(ends, trie.label[node], trie.label[stepped.clamp(min=0)])
            result[rows[finished], word[finished]] = finished_label[finished]

            continuing = choosing & ~finished
            node = torch.where(continuing, stepped, node)
            node = torch.where(finished, roots, node)
            word = word + finished.long()
            done = finished & (word >= n_words)
            # Next feed: the token alone (label continues), token + sentinel (leaf), or sentinel (ended).
            sentinel_now = sentinels[word.clamp(max=len(sentinels) - 1)]
            first = torch.where(ends, sentinel_now, token)
            second = torch.where(reached_leaf, sentinel_now, torch.full_like(token, pad_id))
            new_len = torch.where(reached_leaf, 2, 1)
            pending = torch.where(choosing[:, None], torch.stack([first, second], dim=1), pending)
            pending_len = torch.where(choosing, new_len, pending_len)
            pending_len = torch.where(done, _FINISHED, pending_len)
            pending = torch.where((pending_len >= _FINISHED)[:, None], torch.full_like(pending, pad_id), pending)
    return result


def _row_logits(model: HyperLoaderModel, hidden: Tensor, output_weight: Tensor, token_ids: Tensor) -> Tensor:
    """The logit of one token per row (the sentinel that would end the current label)."""
    bc = model.backbone.config
    if getattr(bc, "tie_word_embeddings", False):
        hidden = hidden * (bc.d_model**-0.5)
    return (hidden * output_weight.index_select(0, token_ids)).sum(dim=-1)


@torch.no_grad()
def unconstrained_greedy(
    model: HyperLoaderModel,
    *,
    task_ids: Tensor,
    input_ids: Tensor,
    attention_mask: Tensor,
    max_new_tokens: int,
) -> Tensor:
    """The authors' decoding: plain greedy ``generate`` over the whole vocabulary."""
    with model.task_context(task_ids):
        return model.backbone.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
        )
