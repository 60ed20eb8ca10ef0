"""Context-free mapping of Penn Treebank (PTB) part-of-speech tags to Universal POS tags.

spaCy v3 ships no English tag map (v2's ``TAG_MAP`` moved into the trained pipelines'
attribute rulers), so the corpora whose gold POS is PTB only (CoNLL-2003, CoNLL-2000,
OntoNotes) get ``token.pos_`` from this table.

The table follows spaCy v2's ``spacy/lang/en/tag_map.py`` updated to UD v2 conventions, as
UD English EWT annotates them (majority UPOS per XPOS in the EWT training set): ``MD`` is
``AUX``; possessive and wh- pronouns (``PRP$``, ``WP$``, relative/interrogative ``WDT``) are
``PRON``; ``RP`` is ``ADP``; ``EX`` is ``PRON``.  A context-free table cannot tell auxiliaries
from main verbs (``VBZ`` "is" vs "runs") or ``IN`` prepositions from subordinators, so those
take the open-class reading (``VERB``, ``ADP``), as spaCy v2 did.

Extras beyond the 45 PTB tags: OntoNotes/EWT additions (``-LRB-``, ``-RRB-``, ``HYPH``,
``NFP``, ``ADD``, ``AFX``, ``GW``, ``XX``), spaCy's whitespace tags (``_SP``, ``SP``), the
raw brackets and quote that CoNLL-2003 writes instead of ``-LRB-``/``-RRB-``/``````
(``(``, ``)``, ``"``), and ambiguous tags written ``A|B`` (CoNLL-2003's ``NN|SYM``), which
take the first alternative that maps.  A tag that already is a UPOS tag (OntoNotes has a few
``VERB``) passes through; anything else becomes ``X``.
"""

from __future__ import annotations

__all__ = ["PTB_TO_UD", "UD_POS_TAGS", "ptb_to_ud", "is_known_tag"]

#: The 17 Universal POS tags (plus spaCy's SPACE), i.e. the values ``token.pos_`` accepts.
UD_POS_TAGS = frozenset(
    "ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X SPACE".split()
)

PTB_TO_UD: dict[str, str] = {
    # --- the 45 PTB tags (36 word tags + 9 punctuation/symbol tags) ---
    "CC": "CCONJ",
    "CD": "NUM",
    "DT": "DET",
    "EX": "PRON",
    "FW": "X",
    "IN": "ADP",
    "JJ": "ADJ",
    "JJR": "ADJ",
    "JJS": "ADJ",
    "LS": "X",
    "MD": "AUX",
    "NN": "NOUN",
    "NNS": "NOUN",
    "NNP": "PROPN",
    "NNPS": "PROPN",
    "PDT": "DET",
    "POS": "PART",
    "PRP": "PRON",
    "PRP$": "PRON",
    "RB": "ADV",
    "RBR": "ADV",
    "RBS": "ADV",
    "RP": "ADP",
    "SYM": "SYM",
    "TO": "PART",
    "UH": "INTJ",
    "VB": "VERB",
    "VBD": "VERB",
    "VBG": "VERB",
    "VBN": "VERB",
    "VBP": "VERB",
    "VBZ": "VERB",
    "WDT": "PRON",
    "WP": "PRON",
    "WP$": "PRON",
    "WRB": "ADV",
    "#": "SYM",
    "$": "SYM",
    ".": "PUNCT",
    ",": "PUNCT",
    ":": "PUNCT",
    "``": "PUNCT",
    "''": "PUNCT",
    "-LRB-": "PUNCT",
    "-RRB-": "PUNCT",
    # --- OntoNotes / EWT / spaCy additions ---
    "-LCB-": "PUNCT",
    "-RCB-": "PUNCT",
    "HYPH": "PUNCT",
    "NFP": "PUNCT",
    "ADD": "X",
    "AFX": "ADJ",
    "GW": "X",
    "XX": "X",
    "NIL": "X",
    "-NONE-": "X",
    "BES": "AUX",
    "HVS": "AUX",
    "_SP": "SPACE",
    "SP": "SPACE",
    # --- CoNLL-2003 oddities ---
    '"': "PUNCT",
    "(": "PUNCT",
    ")": "PUNCT",
}


def is_known_tag(tag: str) -> bool:
    """Whether :func:`ptb_to_ud` maps ``tag`` by the table (or as a UPOS / ``A|B`` tag)
    rather than falling back to ``X``."""
    if tag in PTB_TO_UD or tag in UD_POS_TAGS:
        return True
    return "|" in tag and any(alt in PTB_TO_UD or alt in UD_POS_TAGS for alt in tag.split("|"))


def ptb_to_ud(tag: str) -> str:
    """The UPOS tag for a PTB tag; ``X`` for a tag it does not know."""
    found = PTB_TO_UD.get(tag)
    if found is not None:
        return found
    if tag in UD_POS_TAGS:
        return tag
    if "|" in tag:
        for alt in tag.split("|"):
            if alt in PTB_TO_UD:
                return PTB_TO_UD[alt]
            if alt in UD_POS_TAGS:
                return alt
    return "X"
