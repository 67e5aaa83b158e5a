"""The real deployment: gunicorn with gunicorn.conf.py and several workers, each seeing new posts."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import eventually

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, ""


# The shipped config (preload, watcher started in post_worker_init), and bare gunicorn flags (each worker
# loads after the fork and starts watching on its first request), as another WSGI server would.
COMMANDS = {
    "shipped-config": ["-c", "gunicorn.conf.py", "wsgi:app"],
    "no-preload": ["-w", "3", "--bind", "127.0.0.1:{port}", "wsgi:app"],
}


@pytest.fixture(params=list(COMMANDS))
def server(request: pytest.FixtureRequest, posts_dir: Path, pages_dir: Path) -> Iterator[str]:
    port = free_port()
    (posts_dir / "2020-01-01-first.md").write_text("---\ntitle: First\n---\nHello.\n", encoding="utf-8")
    pages_dir.mkdir()
    env = {**os.environ, "BLOG_SITE_DIR": str(posts_dir.parent), "BLOG_POSTS_DIR": str(posts_dir),
           "BLOG_PAGES_DIR": str(pages_dir), "PORT": str(port), "WEB_CONCURRENCY": "3"}
    arguments = [argument.format(port=port) for argument in COMMANDS[request.param]]
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", *arguments], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: fetch(base + "/")[0] == 200, timeout=20)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        _, errors = process.communicate(timeout=20)
        assert b"Traceback" not in errors, errors.decode()


def test_gunicorn_serves_and_every_worker_sees_a_new_post(server: str, posts_dir: Path) -> None:
    status, body = fetch(server + "/posts/first/")
    assert status == 200 and "Hello." in body
    for _ in range(30):  # warm every worker: each starts its watcher on its first request
        fetch(server + "/")
    (posts_dir / "2020-01-02-second.md").write_text("---\ntitle: Second post\n---\nNew.\n", encoding="utf-8")
    written = time.monotonic()
    # Each worker applies the change on its own, a few hundred milliseconds after the file goes quiet. A run
    # of 200s can come from the workers that already have it while another, which accepted none of those
    # requests, still waits out its quiet period; so past the first 200s, also let twice the promised second
    # go by before every answer must be 200.
    eventually(lambda: all(fetch(server + "/posts/second/")[0] == 200 for _ in range(15)), timeout=5)
    time.sleep(max(0.0, written + 2.0 - time.monotonic()))
    results = [fetch(server + "/posts/second/")[0] for _ in range(30)]
    assert results == [200] * 30
    assert fetch(server + "/missing/")[0] == 404


def test_gunicorn_serves_pages_and_every_worker_sees_a_new_one(server: str, pages_dir: Path) -> None:
    for _ in range(30):  # warm every worker: each starts its watchers on its first request
        fetch(server + "/")
    (pages_dir / "about.md").write_text("---\ntitle: About me\nnav: 1\n---\nWho I am.\n", encoding="utf-8")
    written = time.monotonic()
    eventually(lambda: all(fetch(server + "/about/")[0] == 200 for _ in range(15)), timeout=5)
    time.sleep(max(0.0, written + 2.0 - time.monotonic()))  # see the post test above: let the promised second pass
    pages = [fetch(server + "/about/") for _ in range(30)]
    assert all(status == 200 and "Who I am." in body for status, body in pages)
    homes = [fetch(server + "/")[1] for _ in range(15)]
    assert all('<a href="/about/">About me</a>' in body for body in homes)  # in every worker's menu
    assert "/about/</loc>" in fetch(server + "/sitemap.xml")[1]
    assert 'href="/about/">About me</a></h2>' in fetch(server + "/search?q=who")[1]
    assert "About me" not in fetch(server + "/feed.xml")[1]
    assert [fetch(server + path)[1].count(">About me<") for path in ("/", "/archive/")] == [1, 1]  # the menu only


def test_gunicorn_workers_follow_the_site_file_and_the_theme(server: str, posts_dir: Path) -> None:
    site = posts_dir.parent
    for _ in range(30):
        fetch(server + "/")
    (site / "site.yml").write_text("title: Otter Notes\nnav: [home, archive]\n", encoding="utf-8")
    (site / "theme" / "templates").mkdir(parents=True)
    (site / "theme" / "templates" / "_footer.html").write_text("<footer>Theme footer</footer>\n", encoding="utf-8")
    (site / "theme" / "static" / "css").mkdir(parents=True)
    (site / "theme" / "static" / "css" / "site.css").write_text("body { margin: 3px; }\n", encoding="utf-8")
    written = time.monotonic()

    def themed(body: str) -> bool:
        return ("Otter Notes</a>" in body and "Theme footer" in body and "/categories/" not in body
                and fetch(server + re.search(r'href="(/static/css/site\.css[^"]*)"', body)[1])[1] == "body { margin: 3px; }\n")

    eventually(lambda: all(themed(fetch(server + "/")[1]) for _ in range(15)), timeout=5)
    time.sleep(max(0.0, written + 2.0 - time.monotonic()))  # as above: let the promised second pass
    assert all(themed(fetch(server + "/posts/first/")[1]) for _ in range(30))
    assert "<title type=\"text\">Otter Notes</title>" in fetch(server + "/feed.xml")[1]


def workers_of(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def test_recycled_worker_catches_up_before_serving(posts_dir: Path) -> None:
    port = free_port()
    for name in ("keep", "drop"):
        (posts_dir / f"2020-01-01-{name}.md").write_text(f"---\ntitle: {name}\n---\nText.\n", encoding="utf-8")
    env = {**os.environ, "BLOG_POSTS_DIR": str(posts_dir), "PORT": str(port), "WEB_CONCURRENCY": "2"}
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: fetch(base + "/posts/drop/")[0] == 200, timeout=20)
        (posts_dir / "2020-01-01-drop.md").unlink()
        eventually(lambda: all(fetch(base + "/posts/drop/")[0] == 404 for _ in range(10)), timeout=5)
        before = eventually(lambda: workers_of(process.pid) if len(workers_of(process.pid)) == 2 else None)
        for pid in before:  # the master re-forks them from its preloaded (now stale) posts
            os.kill(pid, signal.SIGKILL)
        eventually(lambda: len(workers_of(process.pid) - before) == 2, timeout=20)
        eventually(lambda: fetch(base + "/")[0] == 200, timeout=20)
        assert [fetch(base + "/posts/drop/")[0] for _ in range(20)] == [404] * 20
        assert fetch(base + "/posts/keep/")[0] == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
