"""Tag schemes both the corpus converters and the runtime component use: IOB spans and the
PTB -> Universal POS map."""

from .iob import iob_spans
from .ptb_to_ud import PTB_TO_UD, UD_POS_TAGS, ptb_to_ud

__all__ = ["PTB_TO_UD", "UD_POS_TAGS", "iob_spans", "ptb_to_ud"]
