"""Markdown to HTML with Python-Markdown and Pygments, after the common Jekyll Liquid tags."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

import markdown
from markdown.extensions.codehilite import CodeHiliteExtension
from markdown.extensions.toc import TocExtension

EXTENSIONS = (
    "markdown.extensions.extra",  # tables, footnotes, fenced code, attribute and definition lists, abbreviations
    "markdown.extensions.sane_lists",
)
LIQUID_TAG = re.compile(r"\{%-?\s*(\w+)(.*?)-?%\}", re.DOTALL)
LIQUID_OUTPUT = re.compile(r"\{\{-?\s*([\w.]+)\s*-?\}\}")
_RAW = re.compile(r"\{%-?\s*raw\s*-?%\}(.*?)\{%-?\s*endraw\s*-?%\}", re.DOTALL)
_HIGHLIGHT = re.compile(
    r"\{%-?\s*highlight\s+([\w+#.-]+)([^%]*?)-?%\}\n?(.*?)\{%-?\s*endhighlight\s*-?%\}", re.DOTALL
)
_RAW_TOKEN = "\x02raw{}\x03"
KNOWN_LIQUID_TAGS = frozenset({"raw", "endraw", "highlight", "endhighlight", "post_url", "link"})

PostUrlResolver = Callable[[str], "str | None"]


class Renderer:
    """Render post bodies; one Markdown instance per thread, since Markdown objects are not thread-safe."""

    def __init__(self, site_values: Mapping[str, str]):
        self._site_values = dict(site_values)
        self._local = threading.local()

    def render(self, text: str, resolve: PostUrlResolver, page_values: Mapping[str, Any]) -> str:
        """Return the HTML of Markdown ``text`` after replacing the Liquid tags Quire knows."""
        engine = self._engine()
        try:
            return engine.convert(self.liquid(text, resolve, page_values))
        finally:
            engine.reset()

    def liquid(self, text: str, resolve: PostUrlResolver, page_values: Mapping[str, Any]) -> str:
        """Return ``text`` with Jekyll's raw, highlight, post_url, link and site/page variables applied."""
        if "{" not in text:
            return text
        raw_blocks: list[str] = []

        def keep_raw(match: re.Match[str]) -> str:
            raw_blocks.append(match.group(1))
            return _RAW_TOKEN.format(len(raw_blocks) - 1)

        text = _RAW.sub(keep_raw, text)
        text = _HIGHLIGHT.sub(_fenced, text)
        text = LIQUID_TAG.sub(lambda match: self._tag(match, resolve), text)
        text = LIQUID_OUTPUT.sub(lambda match: self._output(match, page_values), text)
        for index, block in enumerate(raw_blocks):
            text = text.replace(_RAW_TOKEN.format(index), block)
        return text

    def _tag(self, match: re.Match[str], resolve: PostUrlResolver) -> str:
        name, argument = match.group(1), match.group(2).strip()
        if name == "post_url":
            return resolve(argument) or match.group(0)
        if name == "link":
            target = argument.split()[0] if argument else ""
            resolved = resolve(target)
            if resolved:
                return resolved
            return self._site_values.get("baseurl", "") + "/" + target.lstrip("/") if target else match.group(0)
        return match.group(0)

    def _output(self, match: re.Match[str], page_values: Mapping[str, Any]) -> str:
        name = match.group(1)
        scope, _, key = name.partition(".")
        if scope == "site" and key in self._site_values:
            return html.escape(self._site_values[key], quote=True)
        if scope == "page" and key in page_values and isinstance(page_values[key], (str, int, float)):
            return html.escape(str(page_values[key]), quote=True)
        return match.group(0)

    def _engine(self) -> markdown.Markdown:
        engine = getattr(self._local, "engine", None)
        if engine is None:
            engine = markdown.Markdown(
                extensions=[
                    *EXTENSIONS,
                    CodeHiliteExtension(css_class="highlight", guess_lang=False),
                    TocExtension(permalink="#", permalink_class="anchor", permalink_title="Link to this section"),
                ],
                output_format="html",
            )
            self._local.engine = engine
        return engine


def unknown_liquid_tags(text: str) -> list[str]:
    """Return the Liquid tags in ``text`` (outside raw blocks) that Quire leaves as they are."""
    if "{%" not in text:
        return []
    text = _RAW.sub("", text)
    return sorted({match.group(1) for match in LIQUID_TAG.finditer(text)} - KNOWN_LIQUID_TAGS)


def _fenced(match: re.Match[str]) -> str:
    language, code = match.group(1), match.group(3)
    fence = "~~~~" if "```" in code else "```"
    return f"\n{fence}{language}\n{code.rstrip()}\n{fence}\n"
