"""spacy-hyperloader: one multi-task T5 adapted per task by hypernetwork-generated modules."""

__version__ = "0.1.0"
