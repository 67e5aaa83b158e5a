"""The theme's generated files stay what their generators make."""

from __future__ import annotations

from pathlib import Path

import pytest
from pygments.formatters import HtmlFormatter

CSS = Path(__file__).resolve().parent.parent / "static" / "css"
STYLES = {"pygments-light.css": "friendly", "pygments-dark.css": "monokai"}


@pytest.mark.parametrize(("name", "style"), STYLES.items())
def test_pygments_stylesheets_match_pygments(name: str, style: str) -> None:
    expected = HtmlFormatter(style=style).get_style_defs(".highlight") + "\n"
    assert (CSS / name).read_text(encoding="utf-8") == expected, (
        f"regenerate with: python -c \"from pygments.formatters import HtmlFormatter; "
        f"print(HtmlFormatter(style='{style}').get_style_defs('.highlight'))\" > static/css/{name}")
