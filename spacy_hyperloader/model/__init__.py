"""Pure PyTorch + transformers: the HyperLoader model, its decoding and training pieces. No spaCy."""

from .config import VARIANTS, HyperLoaderConfig
from .hyperloader import HyperLoaderModel

__all__ = ["HyperLoaderConfig", "HyperLoaderModel", "VARIANTS"]
