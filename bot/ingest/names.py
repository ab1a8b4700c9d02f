"""File names as shown to people: a name is data from whoever made the file, never markup.

Kept apart from the loaders so the CLI and Discord can use it without importing parsers.
"""

from __future__ import annotations

import re

# Whitespace other than a plain space, C0/C1 controls (ANSI escapes start with \x1b),
# zero-width and bidirectional-override characters.
_UNPRINTABLE = re.compile(r"[^\S ]|[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def display_name(name: str) -> str:
    """A file name safe to print or post: control characters (ANSI escapes, newlines, bidi
    overrides) are shown as escapes ("\\x1b[31m"), never sent raw to a terminal or a chat."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(name))
