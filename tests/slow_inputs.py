"""Post bodies built to be slow or memory-hungry to render, and a test-only Pygments lexer that backtracks."""

from __future__ import annotations

import pygments.lexers
from pygments.lexer import RegexLexer
from pygments.token import Text


class CatastrophicLexer(RegexLexer):
    """A lexer whose first rule backtracks exponentially over a run of ``a`` not followed by ``b``."""

    name = "Catastrophic"
    aliases = ["catastrophic"]
    tokens = {"root": [(r"(a+)+b", Text), (r"[\s\S]", Text)]}


def register_lexer() -> None:
    """Make ```catastrophic code blocks use CatastrophicLexer in this process (and the processes it forks)."""
    pygments.lexers.LEXERS["CatastrophicLexer"] = (__name__, "Catastrophic", ("catastrophic",), (), ())
    pygments.lexers._lexer_cache["Catastrophic"] = CatastrophicLexer  # type: ignore[attr-defined]


# An ordinary-looking code block: one C-level regex match that holds the GIL for hours.
CATASTROPHIC_CODE = "Some code:\n\n```catastrophic\n" + "a" * 40 + "!\n```\n"


def quadratic_raw(openers: int) -> str:
    """Return Liquid raw openers followed by closers the raw pattern does not accept: it rescans from each opener."""
    return "{%raw%}\n" * openers + "{%endraw x%}\n" * openers


# A Liquid loop over 1.8 million items, each writing out a 60 KB front matter value that escaping copies.
MEMORY_HUNGRY = '{% assign a = "' + "," * 1_800_000 + '" | split: "," %}{% for i in a %}{{ page.big }}{% endfor %}\n'
MEMORY_HUNGRY_BIG = "x&" * 30_000
