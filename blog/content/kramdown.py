"""Kramdown's list indentation for Python-Markdown: nested lists indented as kramdown (and Jekyll) read them.

kramdown, Jekyll's Markdown, nests a list under an item when it is indented to the item's text (two
spaces after ``- ``, three after ``1. ``); Python-Markdown needs four, so a Jekyll post's two-space nested
list came out flat. This preprocessor re-indents the lines of each list to Python-Markdown's four spaces a
level, keeping what they hold (paragraphs, indented code) at the same place in its item. A list written for
Python-Markdown (four spaces) is left as it is. Like GFM, which Jekyll's kramdown reads, a bullet list (or
one starting at 1.) may also begin right after a paragraph line. Lines inside fenced code are never touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor

_MARKER = re.compile(r"^( *)([-*+]|\d{1,9}[.)])( +|$)(.*)$")
_RULE = re.compile(r"^ {0,3}([-*_])(?: *\1){2,} *$")  # "* * *" is a horizontal rule, not a list
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_TAB = 4  # Python-Markdown's tab_length: the indent of each nesting level


@dataclass
class _Item:
    content: int  # the column the item's text starts at in the source
    out: int  # the column its content goes to in the output
    loose: bool = False  # it holds a block after a blank line (a second paragraph, code)


class KramdownListsPreprocessor(Preprocessor):
    """Re-indent list items and their content from kramdown's alignment to Python-Markdown's four spaces."""

    def run(self, lines: list[str]) -> list[str]:
        """Return ``lines`` with every list re-indented; other lines unchanged."""
        if not any(_MARKER.match(line) for line in lines):
            return lines
        return reindent(lines)


def reindent(lines: list[str]) -> list[str]:
    """Return Markdown lines whose lists use four spaces a nesting level, as kramdown would have read them."""
    out: list[str] = []
    stack: list[_Item] = []
    fence: str | None = None
    previous_blank = True
    previous_marker = False
    in_paragraph = False  # the previous line is text outside any list
    for line in lines:
        if fence is not None:  # inside fenced code: copied, shifted with its item
            out.append(_shift(line, stack))
            if line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                fence = None
            continue
        expanded = line.expandtabs(_TAB)
        stripped = expanded.strip()
        if not stripped:
            out.append(line)
            previous_blank = True
            in_paragraph = False
            continue
        indent = len(expanded) - len(expanded.lstrip(" "))
        marker = None if _RULE.match(expanded) else _MARKER.match(expanded)
        if marker and stack and previous_blank and indent >= stack[-1].content + _TAB:
            marker = None  # indented code inside the item
        if marker and not stack and indent >= _TAB:
            marker = None  # indented code outside any list
        if marker:
            if stack and stack[-1].loose and not previous_blank and not previous_marker:
                out.append("")  # Python-Markdown reads the next item as more of the block before it otherwise
            while stack and indent < stack[-1].content:
                stack.pop()
            if not stack and in_paragraph and _interrupts(marker):
                out.append("")  # GFM: a list may start right after a paragraph line
            width = len(marker.group(2)) + max(1, len(marker.group(3)))
            at = stack[-1].out if stack else indent
            out.append(" " * at + marker.group(2) + " " + marker.group(4) if marker.group(4) else " " * at + marker.group(2))
            stack.append(_Item(indent + width, at + _TAB))
            previous_blank = in_paragraph = False
            previous_marker = True
            continue
        previous_marker = False
        if stack and previous_blank:
            while stack and indent < stack[-1].content:
                stack.pop()
            if stack:
                stack[-1].loose = True
        if stack:
            out.append(_shift(expanded, stack) if indent >= stack[-1].content else line)  # else a lazy continuation
        else:
            out.append(line)
            in_paragraph = not stripped.startswith(("#", "|", "<", ">", "```", "~~~"))
        fenced = _FENCE.match(expanded.lstrip(" ")) if stack else _FENCE.match(expanded)
        if fenced:
            fence = fenced.group(1)
        previous_blank = False
    return out


def _shift(line: str, stack: list[_Item]) -> str:
    """Return a content line of the innermost item moved from its source column to its output column."""
    if not stack:
        return line
    expanded = line.expandtabs(_TAB)
    indent = len(expanded) - len(expanded.lstrip(" "))
    item = stack[-1]
    if indent < item.content:
        return line
    return " " * (item.out + indent - item.content) + expanded.lstrip(" ")


def _interrupts(marker: re.Match[str]) -> bool:
    """Tell whether a list marker may interrupt a paragraph (GFM: bullets, and ordered lists starting at 1)."""
    kind = marker.group(2)
    return bool(marker.group(4)) and (kind in {"-", "*", "+"} or kind[:-1] == "1")


class KramdownListsExtension(Extension):
    """Python-Markdown extension: kramdown's nested-list indentation."""

    def extendMarkdown(self, md: Markdown) -> None:  # noqa: N802 - Python-Markdown's name
        """Run the re-indenting before Python-Markdown's own preprocessors (fenced code among them)."""
        md.preprocessors.register(KramdownListsPreprocessor(md), "kramdown_lists", 40)


def makeExtension(**kwargs: object) -> KramdownListsExtension:  # noqa: N802 - Python-Markdown's entry point
    """Return the extension, for ``markdown.Markdown(extensions=["blog.content.kramdown"])``."""
    return KramdownListsExtension(**kwargs)
