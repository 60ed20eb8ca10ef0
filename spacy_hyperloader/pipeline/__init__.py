"""The spaCy layer: the component, its tasks, the readers, the scorer and the architecture."""

from .architecture import build_hyperloader_model
from .component import HyperLoaderComponent, make_hyperloader
from .readers import create_multi_corpus, create_multi_corpus_stream
from .scorer import make_hyperloader_scorer, score_tasks
from .tasks import Task

__all__ = [
    "HyperLoaderComponent", "Task", "build_hyperloader_model", "create_multi_corpus",
    "create_multi_corpus_stream", "make_hyperloader", "make_hyperloader_scorer", "score_tasks",
]
