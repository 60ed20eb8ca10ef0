"""Getting a T5-family backbone: from a local directory, a hub name, or a config (random weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoModelForSeq2SeqLM, PretrainedConfig, PreTrainedModel


def load_backbone_config(source: str | Path | dict[str, Any] | PretrainedConfig) -> PretrainedConfig:
    """A config from a config JSON file, a model directory, a hub name or a dict."""
    if isinstance(source, PretrainedConfig):
        return source
    if isinstance(source, dict):
        data = dict(source)
        model_type = data.pop("model_type", "t5")
        return AutoConfig.for_model(model_type, **data)
    path = check_local_source(source, "Backbone config", "a T5 config JSON file or a local model directory")
    if path.is_file():
        return load_backbone_config(json.loads(path.read_text(encoding="utf8")))
    return AutoConfig.from_pretrained(str(source))


def build_backbone(config: str | Path | dict[str, Any] | PretrainedConfig) -> PreTrainedModel:
    """A backbone with random weights (tests, parameter counts, backbones trained from scratch)."""
    return AutoModelForSeq2SeqLM.from_config(load_backbone_config(config))


def load_backbone(source: str | Path) -> PreTrainedModel:
    """Pretrained weights from a local directory or hub name; safetensors only, never pickle."""
    path = check_local_source(
        source, "Backbone directory", "a local model directory (e.g. made by `python -m spacy_hyperloader init-backbone`)"
    )
    if path.is_dir() and not any(path.glob("*.safetensors")):
        raise ValueError(
            f"Backbone directory {str(source)!r} has no *.safetensors weights. Re-save it with "
            f"`model.save_pretrained(dir, safe_serialization=True)`; pickled weights are not loaded."
        )
    return AutoModelForSeq2SeqLM.from_pretrained(str(source), use_safetensors=True)


def check_local_source(source: str | Path, what: str, expected: str) -> Path:
    """A source that looks like a path must exist; anything else is taken for a hub name."""
    path = Path(source)
    if looks_like_path(source) and not path.exists():
        raise FileNotFoundError(f"{what} {str(source)!r} does not exist. Give {expected}, or a hub name.")
    return path


def looks_like_path(source: str | Path) -> bool:
    text = str(source)
    return isinstance(source, Path) or text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text
