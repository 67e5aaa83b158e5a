"""Python-Markdown extension for technical writing: math as MathML, GitHub callouts, labelled task boxes."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as etree
from typing import Any

from markdown import Markdown
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor
from markdown.util import HTML_PLACEHOLDER_RE
from pymdownx.arithmatex import (RE_DOLLAR_BLOCK, RE_SMART_DOLLAR_INLINE, RE_TEX_BLOCK, BlockArithmatexProcessor,
                                 InlineArithmatexPattern)
from pymdownx import util as pymdownx_util

# $$…$$ inside a paragraph: display math in the middle of text, which arithmatex only knows as a block.
_INLINE_DISPLAY = r"(?<!\\)\$\$(?!\s)((?:\\.|[^\\$\x02\x03])+?)(?<!\s)\$\$"
CALLOUTS = {"NOTE": "Note", "TIP": "Tip", "IMPORTANT": "Important", "WARNING": "Warning", "CAUTION": "Caution"}
_CALLOUT = re.compile(r"\[!(" + "|".join(CALLOUTS) + r")\][ \t]*(?:\n|$)", re.IGNORECASE)


def mathml(tex: str, display: bool, boxed: bool = True) -> str:
    """Return ``tex`` as MathML, or as escaped text marked ``math-error`` if it is not a formula.

    Display math is ``boxed`` in a scrolling ``div`` unless it stands inside a paragraph, where no div may go.
    """
    from latex2mathml.converter import convert

    try:
        markup = convert(tex, display="block" if display else "inline")
    # latex2mathml raises a dozen unrelated exception classes (and RecursionError for deep nesting) for a
    # formula it cannot read; whichever it is, that formula shows as its source text and the post renders.
    except Exception:  # noqa: BLE001
        delimiter = "$$" if display else "$"
        return f'<code class="math-error" title="not a formula Quire can render">{html.escape(delimiter + tex + delimiter)}</code>'
    # alttext: the source for screen readers without MathML support and for copying.
    markup = markup.replace("<math ", f'<math alttext="{html.escape(" ".join(tex.split()), quote=True)}" ', 1)
    if display and boxed:
        # Wide formulas scroll inside their box; tabindex lets keyboard users scroll it too.
        return f'<div class="math-display" tabindex="0">{markup}</div>'
    return markup


class _InlineMath(InlineArithmatexPattern):
    def __init__(self, pattern: str, md: Markdown, display: bool = False):
        super().__init__(pattern, {"generic": True})
        self.md = md
        self.display = display

    def handleMatch(self, m: re.Match[str], data: str) -> tuple[Any, int | None, int | None]:  # noqa: N802
        if not self.display:
            if m.group(1):  # escaped backslashes before a '$': arithmatex's own handling
                return super().handleMatch(m, data)
            tex = m.group(3)
            # Pandoc's rule, so prices read as prices: "$5 to $10" is no formula, nor is "$5-$10".
            if m.end(0) < len(data) and data[m.end(0)].isdigit():
                return None, None, None
        else:
            tex = m.group(1)
        return self.md.htmlStash.store(mathml(tex, self.display, boxed=False)), m.start(0), m.end(0)


class _BlockMath(BlockArithmatexProcessor):
    def generic_output(self, parent: etree.Element, math: str) -> None:
        holder = etree.SubElement(parent, "p")
        holder.text = self.parser.md.htmlStash.store(mathml(math, display=True))


class _Callouts(Treeprocessor):
    """Turn GitHub's ``> [!NOTE]`` block quotes into admonitions like ``!!! note``."""

    def run(self, root: etree.Element) -> None:
        for quote in root.iter("blockquote"):
            first = quote[0] if len(quote) else None
            if first is None or first.tag != "p" or not first.text:
                continue
            found = _CALLOUT.match(first.text)
            if found is None:
                continue
            kind = found.group(1).upper()
            first.text = first.text[found.end():]
            if not first.text and not len(first):
                quote.remove(first)
            quote.tag = "div"
            quote.set("class", f"admonition {kind.lower()}")
            title = etree.Element("p", {"class": "admonition-title"})
            title.text = CALLOUTS[kind]
            quote.insert(0, title)


class _TaskLabels(Treeprocessor):
    """Name each task list checkbox after its item, so screen readers say what is done (axe's label rule)."""

    def run(self, root: etree.Element) -> None:
        stash = self.md.htmlStash.rawHtmlBlocks
        for item in root.iter("li"):
            if "task-list-item" not in item.get("class", "").split():
                continue
            holder = item[0] if not (item.text or "").strip() and len(item) and item[0].tag == "p" else item
            found = HTML_PLACEHOLDER_RE.match(holder.text or "")
            if found is None:
                continue
            index = int(found.group(1))
            label = " ".join(_text_of(holder).split())
            checkbox = str(stash[index])
            if label and "aria-label" not in checkbox:
                stash[index] = checkbox.replace("<input ", f'<input aria-label="{html.escape(label, quote=True)}" ', 1)


def _text_of(element: etree.Element) -> str:
    """Return the text of ``element`` without placeholders or nested lists."""
    parts = [HTML_PLACEHOLDER_RE.sub("", element.text or "")]
    for child in element:
        if child.tag not in {"ul", "ol"}:
            parts.append(_text_of(child))
        parts.append(HTML_PLACEHOLDER_RE.sub("", child.tail or ""))
    return "".join(parts)


class AuthoringExtension(Extension):
    """Math ($…$, $$…$$, \\begin{…}…\\end{…}) as server-side MathML, callouts and task list labels.

    Not \\(…\\) nor \\[…\\]: in Markdown those are escaped brackets, which existing posts use as such.
    """

    def extendMarkdown(self, md: Markdown) -> None:  # noqa: N802
        """Register the math patterns, callouts and task labels on ``md``."""
        md.registerExtension(self)
        pymdownx_util.escape_chars(md, ["$"])  # \$ is a plain dollar sign
        md.inlinePatterns.register(_InlineMath(_INLINE_DISPLAY, md, display=True), "quire-math-display", 189.95)
        md.inlinePatterns.register(
            _InlineMath(f"(?:{RE_SMART_DOLLAR_INLINE})", md), "quire-math", 189.9)
        md.parser.blockprocessors.register(
            _BlockMath(rf"(?s)^(?:{RE_DOLLAR_BLOCK}|{RE_TEX_BLOCK})[ ]*$", {"generic": True}, md),
            "quire-math-block", 79.9)
        md.treeprocessors.register(_Callouts(md), "quire-callouts", 26)  # before inline Markdown and task lists
        md.treeprocessors.register(_TaskLabels(md), "quire-task-labels", 1)  # after inline Markdown


def makeExtension(**kwargs: Any) -> AuthoringExtension:  # noqa: N802
    """Return the extension (Python-Markdown's entry point for ``extensions=["blog.content.authoring"]``)."""
    return AuthoringExtension(**kwargs)
