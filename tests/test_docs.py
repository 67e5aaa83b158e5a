"""The README is the front door: every guide it links to exists, and every guide links back."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from blog import create_app

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


def quick_start() -> list[str]:
    """Return the commands of the README's "Make it yours in five minutes", one a line, comments dropped."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Make it yours in five minutes"):]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_quick_start_makes_a_site_of_ones_own(tmp_path: Path) -> None:
    commands = quick_start()
    assert commands[-1] == "make dev"  # a server: the rest of the block is run here, and its site served below
    script = "\n".join(["set -e", *commands[:-1]]).replace(".venv/bin/python", sys.executable)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("BLOG_")}
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, env={**environment, "HOME": str(tmp_path)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[draft]" in result.stdout and "0 errors, 0 warnings" in result.stderr  # check found nothing wrong
    site = tmp_path / "my-blog"
    assert (site / ".git").is_dir()
    post = next((site / "posts").glob("*-hello-world.md"))
    client = create_app({"BLOG_SITE_DIR": str(site), "BLOG_WATCH": "off"}).test_client()
    home = BeautifulSoup(client.get("/").data, "html.parser")
    assert home.select_one(".site-title").text == "Otter Notes"  # the example site file's title
    assert home.select(".card-title") == []  # no demo post, and the draft is not published
    assert "About" in [link.text for link in home.select(".site-nav a")]
    for image in home.select("img"):
        assert client.get(image["src"]).status_code == 200, image["src"]
    post.write_text(post.read_text(encoding="utf-8").replace("published: false\n", ""), encoding="utf-8")
    client = create_app({"BLOG_SITE_DIR": str(site), "BLOG_WATCH": "off"}).test_client()
    home = BeautifulSoup(client.get("/").data, "html.parser")
    assert [card.text.strip() for card in home.select(".card-title")] == ["Hello, world"]
