"""Fixtures: a temporary posts folder, a post-writing factory, and an app, client and runner over it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from blog import create_app
from blog.content.post import Post

# Before any fixture, module-scoped ones too: no test writes a post cache into the home folder (the tests
# of the cache give it a folder of their own), and gunicorn and CLI processes the tests start inherit this.
os.environ["BLOG_CACHE_DIR"] = "off"

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "posts" / "2023-11-20-binance-hkvaex.md"  # the seed post, as the checkout ships it
# The seed as it was first written, before `blog check --fix` repaired its mojibake: the check's own fixture.
SEED_AS_WRITTEN = ROOT / "tests" / "data" / "seed-binance-hkvaex.md"
# Real Jekyll sites beside the checkout, where there are some; the tests that read them skip without them.
CORPUS = ROOT.parent / "shared" / "corpus"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's BLOG_* variables (and the home folder's post cache) out of every test."""
    for name in list(os.environ):
        if name.startswith("BLOG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BLOG_CACHE_DIR", "off")  # tests that want the post cache give it a folder of their own


@pytest.fixture
def posts_dir(tmp_path: Path) -> Path:
    """Return an empty posts folder."""
    folder = tmp_path / "posts"
    folder.mkdir()
    return folder


@pytest.fixture
def pages_dir(tmp_path: Path) -> Path:
    """Return the (not yet created) pages folder beside the posts folder."""
    return tmp_path / "pages"


WritePost = Callable[..., Path]


def _writer(folder: Path) -> WritePost:
    """Return a function that writes a Markdown file with front matter from keyword arguments into ``folder``."""

    def write(name: str, body: str = "Some text.", *, raw: str | bytes | None = None, **meta: Any) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if raw is not None:
            data = raw.encode("utf-8") if isinstance(raw, str) else raw
        else:
            front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) if meta else ""
            data = f"---\n{front}---\n\n{body}\n".encode("utf-8")
        path.write_bytes(data)
        return path

    return write


@pytest.fixture
def write_post(posts_dir: Path) -> WritePost:
    """Return a factory that writes a post file with front matter from keyword arguments."""
    return _writer(posts_dir)


@pytest.fixture
def write_page(pages_dir: Path) -> WritePost:
    """Return a factory that writes a page file (into the pages folder) with front matter from keyword arguments."""
    return _writer(pages_dir)


AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(posts_dir: Path, pages_dir: Path) -> Iterator[AppFactory]:
    """Return a factory for apps over the posts and pages folders; their watchers stop after the test."""
    apps: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        # The site folder is the test's own: pages/, site.yml, theme/ and static/ beside posts/, none of the checkout's.
        settings = {"BLOG_SITE_DIR": str(posts_dir.parent), "BLOG_POSTS_DIR": str(posts_dir),
                    "BLOG_PAGES_DIR": str(pages_dir), "BLOG_WATCH": "off", "BLOG_URL": "https://blog.example.com"}
        settings.update(overrides)
        app = create_app(settings)
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["quire.watchers"].stop()


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    """Return an app over the (initially empty) posts folder."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Return a test client for ``app``."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """Return a CLI runner for ``app``."""
    return app.test_cli_runner()


def eventually(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {check}")
        time.sleep(interval)


class Looked(Sequence[Post]):
    """Posts (a snapshot's, a group's) that remember which of them were looked at.

    A worker that touches them all copies the memory it shares with gunicorn's master.
    """

    def __init__(self, posts: Sequence[Post]):
        self.posts, self.seen = posts, set()

    def __len__(self) -> int:
        return len(self.posts)

    def __getitem__(self, index: Any) -> Any:
        positions = range(len(self.posts))[index]
        self.seen.update(positions if isinstance(positions, range) else [positions])
        return self.posts[index]

    def __iter__(self) -> Iterator[Post]:
        self.seen.update(range(len(self.posts)))
        return iter(self.posts)
