"""The render cache: bodies rendered once per content version, shared, kept across restarts, refused when unsafe."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from flask import Flask

from blog.content.markup import Renderer
from blog.content.render_cache import EXCERPT
from blog.page_cache import PageCache
from tests.conftest import AppFactory, WritePost, eventually


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def no_page_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the page cache out: these tests are of the bodies, so every post's page must come from the app."""
    monkeypatch.setattr(PageCache, "get", lambda self, url: None)
    monkeypatch.setattr(PageCache, "fill", lambda self, server, cached, lock_folder: None)


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the start of every Markdown text handed to the renderer."""
    found: list[str] = []
    original = Renderer.render

    def render(self: Renderer, text: str, *arguments: object, **options: object) -> str:
        found.append(text[:40])
        return original(self, text, *arguments, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(Renderer, "render", render)
    return found


def write_site(write_post: WritePost) -> None:
    for day in range(1, 6):
        write_post(f"2021-05-{day:02d}-day-{day}.md", f"Text of day {day}.\n\n## More\n\n*And more.*",
                   title=f"Day {day}", tags=["x"])
    write_post("2021-06-01-links.md", "See {% post_url 2021-05-01-day-1 %}.", title="Links")


def start(make_app: AppFactory, cache_dir: Path, **settings: str) -> Flask:
    return make_app(BLOG_CACHE_DIR=str(cache_dir), **settings)


def article(app: Flask, url: str) -> str:
    response = app.test_client().get(url)
    assert response.status_code == 200
    return str(BeautifulSoup(response.data, "html.parser").select_one("article .post-body") or
               BeautifulSoup(response.data, "html.parser").select_one("article"))


def filled(app: Flask) -> Flask:
    """Wait until the background filler has rendered every post of ``app`` into the cache."""
    store = app.extensions["quire"]
    eventually(lambda: all(store.rendered.has(post) for post in store.snapshot.posts), timeout=20)
    return app


def entries(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.glob("rendered-*/*/*.html"))


def test_a_restart_serves_bodies_without_rendering_them(make_app: AppFactory, write_post: WritePost,
                                                        cache_dir: Path, renders: list[str]) -> None:
    write_site(write_post)
    first = filled(start(make_app, cache_dir))
    urls = [post.url for post in first.extensions["quire"].snapshot.posts]
    expected = {url: article(first, url) for url in urls}
    renders.clear()
    second = start(make_app, cache_dir)
    assert {url: article(second, url) for url in urls} == expected
    assert "day-1/" in expected["/posts/links/"]  # the post_url tag was resolved before it was cached
    assert renders == []


def test_the_background_filler_renders_every_post_and_excerpt(make_app: AppFactory, write_post: WritePost,
                                                              cache_dir: Path) -> None:
    write_site(write_post)
    app = filled(start(make_app, cache_dir))
    store = app.extensions["quire"]
    for post in store.snapshot.posts:
        assert store.rendered.get(post) == store.render_body(post)
        eventually(lambda post=post: store.rendered.has(post, EXCERPT))
    assert all(oct(path.stat().st_mode & 0o777) == "0o600" for path in entries(cache_dir))


@pytest.mark.parametrize("damage", ["torn", "foreign-writable", "folder-writable", "other-fingerprint"])
def test_an_unsafe_or_foreign_entry_is_never_served(make_app: AppFactory, write_post: WritePost, cache_dir: Path,
                                                    renders: list[str], caplog: pytest.LogCaptureFixture,
                                                    damage: str) -> None:
    write_site(write_post)
    first = filled(start(make_app, cache_dir))
    post = first.extensions["quire"].post_at("/posts/day-3/")
    expected = article(first, post.url)
    path = Path(first.extensions["quire"].rendered.path(first.extensions["quire"].rendered.key(post)))
    data = path.read_bytes()
    if damage == "torn":
        path.write_bytes(data[:len(data) - 10])
    elif damage == "foreign-writable":
        path.write_bytes(data.replace(b"Text of day 3", b"Forged text!!"))
        path.chmod(0o666)
    elif damage == "folder-writable":
        path.write_bytes(data.replace(b"Text of day 3", b"Forged text!!"))
        path.parent.parent.chmod(0o777)
    else:  # a whole entry as other code or settings would write it, with the HTML's hash right
        header, _, html = data.partition(b"\n")
        forged = html.replace(b"Text of day 3", b"Forged text!!")
        parts = header.split(b" ")
        parts[2] = b"0" * 64
        parts[4] = hashlib.blake2b(forged, digest_size=16).hexdigest().encode()
        path.write_bytes(b" ".join(parts) + b"\n" + forged)
    renders.clear()
    with caplog.at_level(logging.WARNING, logger="quire"):
        second = start(make_app, cache_dir)
        assert article(second, post.url) == expected
    assert renders  # rendered afresh
    assert any("not using the render cache" in record.getMessage() for record in caplog.records)


def test_other_settings_use_another_folder(make_app: AppFactory, write_post: WritePost, cache_dir: Path) -> None:
    write_site(write_post)
    first = filled(start(make_app, cache_dir)).extensions["quire"].rendered
    app = start(make_app, cache_dir, BLOG_SANITIZE="1")
    article(app, "/posts/day-2/")
    # Rendered afresh for these settings, by the request or by the new filler (a forked child, whose renders
    # the fixture cannot see, which is why this does not count them): the first folder's entries are not used.
    second = app.extensions["quire"].rendered
    assert second.folder != first.folder
    assert second.has(app.extensions["quire"].post_at("/posts/day-2/"))
    assert len({path.parent.parent for path in entries(cache_dir)}) == 2


def test_a_body_changed_on_disk_is_never_served_stale(make_app: AppFactory, write_post: WritePost,
                                                      cache_dir: Path) -> None:
    write_site(write_post)
    first = filled(start(make_app, cache_dir))
    store = first.extensions["quire"]
    assert "Text of day 4" in article(first, "/posts/day-4/")
    path = Path(store.pages.root) / "2021-05-04-day-4.md"
    status = path.stat()
    path.write_text(path.read_text(encoding="utf-8").replace("Text of day 4", "Edit of day 4"), encoding="utf-8")
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))  # same size and mtime: only ctime tells

    old = store.post_at("/posts/day-4/")  # the store has not looked at the file again (no watcher here)
    assert "Text of day 4" in store.rendered.get(old)  # what is cached for a version is that version's
    Path(store.rendered.path(store.rendered.key(old))).unlink()
    store._bodies.cache_clear()
    assert old.body.strip().startswith("Edit of day 4")  # read from the file: what it says now
    assert "Edit of day 4" in old.html
    assert store.rendered.get(old) is None  # the new text is never kept as the old version's HTML

    second = start(make_app, cache_dir)  # a restart: the post cache sees the new ctime and parses it again
    assert "Edit of day 4" in article(second, "/posts/day-4/")
    new = second.extensions["quire"].post_at("/posts/day-4/")
    assert new.digest != old.digest and "Edit of day 4" in second.extensions["quire"].rendered.get(new)

    store.refresh(["2021-05-04-day-4.md"])  # the running store, told of the change, moves on too
    assert "Edit of day 4" in article(first, "/posts/day-4/")


def test_a_moved_link_target_is_rendered_again(make_app: AppFactory, write_post: WritePost, cache_dir: Path) -> None:
    write_site(write_post)
    assert "See /posts/day-1/." in article(filled(start(make_app, cache_dir)), "/posts/links/")
    write_post("2021-05-01-day-1.md", "Moved.", title="Day 1", permalink="/elsewhere/")
    app = start(make_app, cache_dir)
    assert "See /elsewhere/." in article(app, "/posts/links/")  # the links post's own file is unchanged


def test_without_a_cache_folder_nothing_is_written(make_app: AppFactory, write_post: WritePost,
                                                   tmp_path: Path) -> None:
    write_site(write_post)
    app = make_app(BLOG_CACHE_DIR="off")
    assert app.extensions["quire"].rendered is None
    assert "Text of day 1" in article(app, "/posts/day-1/")
    assert not list(tmp_path.rglob("rendered-*"))
