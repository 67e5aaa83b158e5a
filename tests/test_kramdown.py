"""Kramdown's list indentation for Python-Markdown, checked against kramdown itself where Ruby has it."""

from __future__ import annotations

import json
import shutil
import subprocess

import markdown
import pytest
from bs4 import BeautifulSoup

from blog.content.kramdown import reindent

CASES = {
    "two-space nested": "- a\n  - b\n  - c\n- d\n",
    "four-space nested (Python-Markdown's way) unchanged": "- a\n    - b\n- d\n",
    "three levels under an ordered list": "1. one\n   - sub\n     - subsub\n2. two\n",
    "deep, then back up": "* a\n  * b\n    * c\n      * d\n  * e\n* f\n",
    "a second paragraph in an item": "- a\n\n  more text\n- b\n",
    "code in an item": "- a\n\n      code\n- b\n",
    "a lazy line, then a nested list": "- a\ncontinued\n  - b\n",
    "a list right after a paragraph (GFM)": "Para\n- a\n- b\n",
    "text and code after a list": "- a\n  - b\n\nParagraph\n\n    code\n",
    "indented code outside lists": "text\n\n    - not a list\n",
    "a list in fenced code": "```\n- not a list\n  - nope\n```\n",
    "a horizontal rule": "text\n\n* * *\n\nmore\n",
    "emphasis, not a list": "*emphasis* here\n",
}


def render(text: str, kramdown_lists: bool) -> str:
    extensions = ["markdown.extensions.extra", "markdown.extensions.sane_lists"]
    return markdown.markdown(text, extensions=extensions + (["blog.content.kramdown"] if kramdown_lists else []),
                             output_format="html")


def shape(html: str) -> str:
    """Return the nesting of a fragment's block elements: ``ul(li(p pre) li)``."""
    def walk(node) -> str:  # type: ignore[no-untyped-def]
        parts = [child.name + (f"({walk(child)})" if child.find(True) and child.name not in {"p", "code", "em"} else "")
                 for child in node.children if getattr(child, "name", None)]
        return " ".join(parts)

    return walk(BeautifulSoup(html, "html.parser"))


def test_two_space_nested_lists_nest() -> None:
    assert shape(render(CASES["two-space nested"], False)) == "ul(li li li li)"  # what Python-Markdown alone gives
    assert shape(render(CASES["two-space nested"], True)) == "ul(li(ul(li li)) li)"


def test_lines_outside_lists_are_left_as_they_are() -> None:
    text = "# Title\n\nText with a - dash.\n\n    code\n\n```\n- x\n```\n\n| a | b |\n|---|---|\n"
    assert reindent(text.split("\n")) == text.split("\n")


def _kramdown(texts: list[str]) -> list[str]:
    script = ('require "kramdown"; require "json"; puts JSON.generate(JSON.parse(STDIN.read).map { |text| '
              'Kramdown::Document.new(text, input: "GFM", hard_wrap: false).to_html })')
    result = subprocess.run(["ruby", "-e", script], input=json.dumps(texts), capture_output=True, text=True, check=True,
                            timeout=60)
    return json.loads(result.stdout)


def _has_kramdown() -> bool:
    return shutil.which("ruby") is not None and subprocess.run(["ruby", "-rkramdown", "-e", ""], capture_output=True,
                                                               check=False).returncode == 0


@pytest.mark.skipif(not _has_kramdown(), reason="Ruby's kramdown is not installed (Debian's jekyll brings it)")
def test_every_case_nests_as_kramdown_nests_it() -> None:
    expected = _kramdown(list(CASES.values()))
    got = {name: shape(render(text, True)) for name, text in CASES.items()}
    assert got == {name: shape(html) for name, html in zip(CASES, expected)}
