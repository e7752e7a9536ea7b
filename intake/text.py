"""Text that people type and staff read back (names): one Unicode form, and nothing hidden in it."""

from __future__ import annotations

import unicodedata

# Bidirectional embeddings, overrides and isolates: they make "Ana" display as something else.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Control, line and paragraph separators, surrogates, private use, unassigned.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn", "Zl", "Zp"})


def name_problem(value: str) -> str | None:
    """Why a name cannot be stored, or None. Checks the NFC form with its outer spaces removed."""
    if any(unicodedata.category(ch) in _REFUSED_CATEGORIES or ch in _BIDI_CONTROLS for ch in value):
        return "A name cannot hold control characters (line breaks, tabs, NUL, direction overrides)."
    if not any(unicodedata.category(ch)[0] in "LN" for ch in value):
        # Zero-width and other invisible characters alone would show as an empty name.
        return "A name needs at least one letter."
    return None


def clean_name(value: str) -> str:
    """The stored form of a name: NFC (one code point sequence per visible text), outer spaces removed."""
    return unicodedata.normalize("NFC", value).strip()
