"""The README is the front door: every guide it links to exists, and every guide links back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(((?:docs/)?[\w-]+\.md)(?:#[\w-]+)?\)")


def test_every_guide_the_readme_links_to_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {match for match in LINK.findall(readme) if match.startswith("docs/")}
    assert linked, "the README links to no guide"
    assert sorted(name for name in linked if not (ROOT / name).is_file()) == []


@pytest.mark.parametrize("guide", sorted(path.name for path in (ROOT / "docs").glob("*.md")))
def test_every_guide_is_linked_from_the_readme_and_links_back(guide: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"](docs/{guide}" in readme
    assert "](../README.md)" in (ROOT / "docs" / guide).read_text(encoding="utf-8")
