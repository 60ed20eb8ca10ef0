"""Offline T5 span-corruption pretraining of a backbone made by ``init-backbone``."""

from .data import PackedExamples
from .trainer import PretrainConfig, pretrain

__all__ = ["PackedExamples", "PretrainConfig", "pretrain"]
