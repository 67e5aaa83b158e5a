"""Markdown for technical authors: task lists, admonitions and callouts, details blocks, math as MathML."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from blog.content.markup import Renderer
from tests.conftest import AppFactory, WritePost

MATHML = "http://www.w3.org/1998/Math/MathML"


def render(text: str, sanitize: bool = False) -> BeautifulSoup:
    return BeautifulSoup(Renderer({}, sanitize=sanitize).render(text, lambda name: None, {}), "html.parser")


def test_task_lists_are_disabled_checkboxes_named_after_their_item() -> None:
    page = render("- [x] Write **the** tests\n- [ ] Ship it\n    - [ ] Tell `users`\n- plain item\n")
    items = page.ul.find_all("li", recursive=False)
    assert [item.get("class") for item in items] == [["task-list-item"], ["task-list-item"], None]
    assert [item.input.has_attr("checked") for item in items[:2]] == [True, False]
    assert all(box.has_attr("disabled") and box["type"] == "checkbox" for box in page.find_all("input"))
    assert [box["aria-label"] for box in page.find_all("input")] == ["Write the tests", "Ship it", "Tell users"]
    assert items[0].strong.get_text() == "the"


@pytest.mark.parametrize(("source", "kind", "title"), [
    ('!!! warning "Mind the gap"\n    Body with *emphasis*.\n', "warning", "Mind the gap"),
    ("!!! note\n    Body with *emphasis*.\n", "note", "Note"),
    ("> [!TIP]\n> Body with *emphasis*.\n", "tip", "Tip"),
    ("> [!caution]\n>\n> Body with *emphasis*.\n", "caution", "Caution"),
])
def test_admonitions_and_github_callouts(source: str, kind: str, title: str) -> None:
    page = render(source)
    box = page.select_one("div.admonition")
    assert box["class"] == ["admonition", kind]
    assert box.select_one(".admonition-title").get_text() == title
    assert box.em.get_text() == "emphasis"
    assert page.blockquote is None


def test_a_plain_quote_stays_a_quote() -> None:
    page = render("> [!NOTE] is how GitHub marks a note.\n")
    assert page.blockquote is not None and page.select("div.admonition") == []


@pytest.mark.parametrize(("source", "opened"), [
    ('??? note "How it works"\n    Hidden *text*.\n', False),
    ('???+ note "How it works"\n    Hidden *text*.\n', True),
    ('<details markdown="1">\n<summary>How it works</summary>\n\nHidden *text*.\n</details>\n', False),
])
def test_details_blocks_fold_markdown(source: str, opened: bool) -> None:
    details = render(source).details
    assert details.summary.get_text() == "How it works"
    assert details.em.get_text() == "text"
    assert details.has_attr("open") is opened


def test_inline_and_display_math_become_mathml() -> None:
    page = render("Energy $E = mc^2$ here.\n\n$$\n\\frac{a}{b} < \\sqrt{x}\n$$\n\nAnd $$\\sum_i i$$ inline.\n")
    inline, display, in_text = page.find_all("math")
    assert inline["display"] == "inline" and inline["xmlns"] == MATHML
    assert inline["alttext"] == "E = mc^2"
    assert [tag.name for tag in inline.mrow.children] == ["mi", "mo", "mi", "msup"]
    assert inline.parent.name == "p"
    assert display["display"] == "block" and display.mfrac is not None and display.msqrt is not None
    assert display.parent.name == "div" and display.parent["class"] == ["math-display"]
    assert display.find("mo").get_text() == "<"
    assert in_text["display"] == "block" and in_text.parent.name == "p"


@pytest.mark.parametrize("source", [
    "It costs $5 to $10, or $20 and $30.",
    "A range of $5-$10 a month.",
    "Write \\$x\\$ for dollars.",
])
def test_dollars_in_prose_are_not_math(source: str) -> None:
    page = render(source)
    assert page.find("math") is None
    assert "$" in page.get_text()


def test_math_leaves_code_alone() -> None:
    page = render("Inline `$x$` code.\n\n```python\nprice = \"$5\"  # $x$ and $$y$$\n```\n\n    $$z$$\n")
    assert page.find("math") is None
    assert [code.get_text() for code in page.find_all("code")][0] == "$x$"
    assert "$x$ and $$y$$" in page.select_one("div.highlight").get_text()
    assert page.find_all("pre")[-1].get_text() == "$$z$$\n"


def test_a_broken_formula_is_shown_as_its_text() -> None:
    page = render("Before $x^$ after, and $\\left( y$ too.\n\n$$\n\\begin{matrix} a\n$$\n")
    errors = page.select("code.math-error")
    assert [error.get_text() for error in errors] == ["$x^$", "$\\left( y$", "$$\n\\begin{matrix} a\n$$"]
    assert page.find("math") is None


def test_liquid_runs_before_math(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2024-01-01-prices.md", "Price: ${{ page.price }} or $x_{i}$.\n\n{% raw %}{{ $y$ }}{% endraw %}\n",
               title="Prices", price=12)
    page = BeautifulSoup(make_app().test_client().get("/posts/prices/").data, "html.parser")
    body = page.select_one(".post-body")
    assert body.p.get_text(strip=True).startswith("Price: $12 or")
    assert [math["alttext"] for math in body.find_all("math")] == ["x_{i}", "y"]


def test_sanitized_sites_keep_the_new_markup() -> None:
    page = render("- [x] Done\n\n!!! note\n    Text.\n\n??? tip \"More\"\n    Folded.\n\n$a^2$\n\n"
                  "<input type=\"text\" onfocus=\"steal()\"><math><mi onclick=\"x()\">y</mi></math>", sanitize=True)
    assert page.select_one("li.task-list-item input")["aria-label"] == "Done"
    assert page.select_one("div.admonition.note") is not None and page.details.summary.get_text() == "More"
    assert page.find("math").msup is not None
    assert not any(attribute.startswith("on") for tag in page.find_all(True) for attribute in tag.attrs)
