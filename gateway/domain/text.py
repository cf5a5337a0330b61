"""Characters that text from outside may not carry where it is shown: one shared definition.

Status text, errors and ``extra`` values are shown as one line in terminals and pages, so every
control character goes: C0 and C1 (ESC sequences included), the line and paragraph separators
(U+2028, U+2029) and the bidirectional controls that reorder what a reader sees (U+202A-U+202E,
U+2066-U+2069, U+200E, U+200F, U+061C). Multi-line text (a finding's description or code) keeps
its tabs and line breaks and loses the rest.
"""

from __future__ import annotations

import re

__all__ = ["CONTROLS", "MULTILINE_CONTROLS", "has_controls"]

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
CONTROLS = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f\u2028\u2029{_BIDI}]+")
MULTILINE_CONTROLS = re.compile(f"[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f{_BIDI}]+")


def has_controls(text: str) -> bool:
    return CONTROLS.search(text) is not None
