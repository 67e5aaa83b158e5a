"""`python -m blog serve --dev` in a real Chromium: the open page reloads by itself when its post is edited."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from blog.config import PROJECT_ROOT
from tests.conftest import eventually
from tests.test_browser import CHROMIUM, FLAGS

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def dev_server(posts_dir: Path, tmp_path: Path) -> Iterator[str]:
    (posts_dir / "2024-01-01-live.md").write_text("---\ntitle: Before the edit\n---\n\nFirst version.\n",
                                                  encoding="utf-8")
    port = _free_port()
    env = {**os.environ, "BLOG_SITE_DIR": str(tmp_path), "BLOG_POSTS_DIR": str(posts_dir),
           "BLOG_URL": f"http://127.0.0.1:{port}"}
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "blog", "serve", "--dev", "--port", str(port)],
                              cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _answers(base + "/"), timeout=20)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def _evaluate(page, expression: str) -> object:  # type: ignore[no-untyped-def]
    from playwright.sync_api import Error

    try:
        return page.evaluate(expression)
    except Error:  # the page was between two documents: reloading
        return None


def _reloaded(page, expression: str, expected: object) -> None:  # type: ignore[no-untyped-def]
    """Wait until ``expression`` gives ``expected`` in a new document (the old one set a flag the new lacks)."""
    # Polled from here: wait_for_function evaluates strings in the page, which the CSP rightly forbids. One change
    # can reach the page as two events (a folder made, then a file written in it), so another reload may follow
    # the one awaited: each look at the page is retried past a navigation.
    eventually(lambda: _evaluate(page, f"() => [window.quireNotReloaded === undefined, ({expression})()]")
               == [True, expected], timeout=15)
    eventually(lambda: _evaluate(page, "() => { window.quireNotReloaded = true; return true; }") is True)


def test_the_open_page_reloads_by_itself_after_its_post_is_edited(dev_server: str, posts_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            problems: list[str] = []
            page.on("console", lambda message: problems.append(message.text) if message.type == "error"
                    and "404" not in message.text else None)  # the favicon's 404 is counted below, if any
            page.on("response", lambda response: problems.append(f"{response.status}: {response.url}")
                    if response.status >= 400 and not response.url.endswith("/favicon.ico") else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(dev_server + "/posts/live/")
            assert page.locator("h1").inner_text() == "Before the edit"
            # No need to wait for the event stream to open: it carries the version the page was made from, so
            # an edit made before it connects still reloads the page.
            page.evaluate("() => { window.quireNotReloaded = true; }")  # gone once the page is really reloaded
            (posts_dir / "2024-01-01-live.md").write_text("---\ntitle: After the edit\n---\n\nSecond version.\n",
                                                          encoding="utf-8")
            _reloaded(page, "() => document.querySelector('h1')?.textContent", "After the edit")
            assert "Second version." in page.locator(".post-body").inner_text()
            site = posts_dir.parent  # and so it does after a change to the site file, a template, a stylesheet
            (site / "site.yml").write_text("title: Otter Notes\n", encoding="utf-8")
            _reloaded(page, "() => document.querySelector('.site-title')?.textContent", "Otter Notes")
            (site / "theme" / "templates").mkdir(parents=True)
            (site / "theme" / "templates" / "_footer.html").write_text("<footer>My footer</footer>\n", encoding="utf-8")
            _reloaded(page, "() => document.querySelector('footer')?.textContent", "My footer")
            (site / "theme" / "static" / "css").mkdir(parents=True)
            (site / "theme" / "static" / "css" / "site.css").write_text("h1 { color: rgb(1, 2, 3); }\n",
                                                                       encoding="utf-8")
            _reloaded(page, "() => getComputedStyle(document.querySelector('h1')).color", "rgb(1, 2, 3)")
            assert problems == []  # the script and its event stream pass the Content-Security-Policy
        finally:
            browser.close()
