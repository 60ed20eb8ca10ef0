"""The spaCy layer: the ``hyperloader`` component, its tasks, model settings, reader and scorer."""

from .architecture import build_hyperloader_model
from .component import HyperLoaderComponent, make_hyperloader
from .readers import create_multi_corpus, create_multi_corpus_stream
from .scorer import make_hyperloader_scorer, score_tasks
from .tasks import TaskSpec

__all__ = [
    "HyperLoaderComponent", "TaskSpec", "build_hyperloader_model", "create_multi_corpus",
    "make_hyperloader", "make_hyperloader_scorer", "score_tasks",
]
