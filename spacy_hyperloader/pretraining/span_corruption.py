"""T5's span-corruption objective (Raffel et al. 2020, section 3.1.4), on plain token id lists.

Spans of the text are replaced in the input by one sentinel each; the target lists every
sentinel followed by the tokens it hid.  HyperLoader's SentT' format uses the same sentinels as
word markers, so a backbone pretrained this way already pairs ``<extra_id_k>`` in the decoder
with ``<extra_id_k>`` in the encoder.  This mirrors ``t5.data.preprocessors.span_corruption``
(noise density 0.15, mean noise span length 3, spans alternating non-noise/noise).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["SpanCorruption", "random_spans_noise_mask"]


def _random_segmentation(n_items: int, n_segments: int, rng: random.Random) -> list[int]:
    """``n_items`` split into ``n_segments`` positive lengths, uniformly over all such splits."""
    cuts = sorted(rng.sample(range(1, n_items), n_segments - 1))
    bounds = [0, *cuts, n_items]
    return [b - a for a, b in zip(bounds, bounds[1:])]


def _noise_counts(length: int, noise_density: float, mean_noise_span_length: float) -> tuple[int, int]:
    """(noise tokens, noise spans) for ``length`` tokens; every span, kept or hidden, is non-empty."""
    n_noise = min(max(round(length * noise_density), 1), length - 1)
    n_spans = max(round(n_noise / mean_noise_span_length), 1)
    return n_noise, min(n_spans, n_noise, length - n_noise)


def random_spans_noise_mask(
    length: int, noise_density: float, mean_noise_span_length: float, rng: random.Random
) -> list[bool]:
    """Which of ``length`` tokens are noise: ``round(length * density)`` of them, in about
    ``n_noise / mean_span`` spans; the sequence always starts with a non-noise span."""
    if length < 2:
        raise ValueError(f"span corruption needs at least 2 tokens, got {length}")
    n_noise, n_spans = _noise_counts(length, noise_density, mean_noise_span_length)
    noise_lengths = _random_segmentation(n_noise, n_spans, rng)
    keep_lengths = _random_segmentation(length - n_noise, n_spans, rng)
    mask: list[bool] = []
    for keep, noise in zip(keep_lengths, noise_lengths):
        mask.extend([False] * keep)
        mask.extend([True] * noise)
    return mask


@dataclass(frozen=True)
class SpanCorruption:
    """Turns raw token ids into (input ids, target ids); see the module docstring."""

    sentinel_ids: Sequence[int]
    eos_id: int
    noise_density: float = 0.15
    mean_noise_span_length: float = 3.0

    def __post_init__(self) -> None:
        if not 0 < self.noise_density < 1:
            raise ValueError(f"noise_density must be in (0, 1), got {self.noise_density}")
        if self.mean_noise_span_length < 1:
            raise ValueError(f"mean_noise_span_length must be at least 1, got {self.mean_noise_span_length}")
        if not self.sentinel_ids:
            raise ValueError("span corruption needs sentinel token ids (<extra_id_0>, <extra_id_1>, ...)")

    def lengths(self, raw_length: int) -> tuple[int, int]:
        """(input length, target length), both with ``</s>``, for ``raw_length`` text tokens."""
        n_noise, n_spans = _noise_counts(raw_length, self.noise_density, self.mean_noise_span_length)
        return raw_length - n_noise + n_spans + 1, n_noise + n_spans + 1

    def raw_length_for(self, input_length: int) -> int:
        """The most text tokens whose corrupted input (with ``</s>``) fits ``input_length``, as
        T5's ``compute_input_and_target_lengths``: packing then wastes no input position."""
        if input_length < 3:
            raise ValueError(f"input_length must be at least 3, got {input_length}")
        raw = 2
        while self.lengths(raw + 1)[0] <= input_length:
            raw += 1
        n_spans = _noise_counts(raw, self.noise_density, self.mean_noise_span_length)[1]
        if n_spans > len(self.sentinel_ids):
            raise ValueError(
                f"input_length {input_length} needs {n_spans} sentinels but the vocabulary has "
                f"{len(self.sentinel_ids)}; use a shorter input length"
            )
        return raw

    def __call__(self, tokens: Sequence[int], rng: random.Random) -> tuple[list[int], list[int]]:
        """Input: the kept text with each hidden span replaced by the next sentinel; target: each
        sentinel followed by the span it hid.  Both end with ``</s>``."""
        mask = random_spans_noise_mask(len(tokens), self.noise_density, self.mean_noise_span_length, rng)
        inputs: list[int] = []
        targets: list[int] = []
        span = -1
        for i, (token, noise) in enumerate(zip(tokens, mask)):
            if not noise:
                inputs.append(token)
                continue
            if i == 0 or not mask[i - 1]:
                span += 1
                inputs.append(self.sentinel_ids[span])
                targets.append(self.sentinel_ids[span])
            targets.append(token)
        return inputs + [self.eos_id], targets + [self.eos_id]
