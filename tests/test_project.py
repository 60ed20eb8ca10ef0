"""The project's `all` workflow end to end, on a few documents (needs the shared corpora)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

TINY_VARS = {
    "demo_train_fraction": 0.003,
    "demo_dev_fraction": 0.005,
    "demo_test_fraction": 0.005,
    "demo_max_steps": 4,
    "demo_eval_frequency": 2,
    "demo_annotate_texts": 3,
    "vocab_size": 400,
}


@pytest.mark.slow
def test_all_workflow_end_to_end(tmp_path):
    if not (SHARED / "conll2003" / "train.txt").is_file():
        pytest.skip("../shared/data not found: the workflow test needs the shared corpora")
    project = tmp_path / "project"
    project.mkdir()
    for name in ("project.yml", "configs", "scripts"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, project / name)
    overrides = [f"--vars.{k}={v}" for k, v in {**TINY_VARS, "shared_data": str(SHARED)}.items()]
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "project", "run", "all", str(project), *overrides],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((project / "metrics" / "demo.json").read_text())
    for key in ("ents_f", "tag_acc", "pos_acc", "spans_chunks_f"):
        assert key in metrics and metrics[key] is not None, key
    assert (project / "training" / "model-best" / "hyperloader" / "model" / "hyperloader.safetensors").is_file()
    assert json.loads((project / "labels" / "hyperloader.json").read_text())["ner"] == ["LOC", "MISC", "ORG", "PER"]
    html = (project / "metrics" / "annotate.html").read_text()
    assert "<html" in html.lower()
    assert list((project / "packages").glob("*/dist/*.tar.gz"))

    # the optional random backbone and its pretraining, which the demo can train on (--vars.demo_backbone)
    pretrain = {"demo_pretrain_steps": 2, "demo_pretrain_fraction": 0.01}
    for command in ("init-backbone", "pretrain"):
        result = subprocess.run(
            [sys.executable, "-m", "spacy", "project", "run", command, str(project), *overrides,
             *(f"--vars.{k}={v}" for k, v in pretrain.items())],
            capture_output=True, text=True, timeout=600,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert json.loads((project / "backbone_pretrained" / "pretrain.json").read_text())["step"] == 2
