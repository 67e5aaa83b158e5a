"""The theme's generated files stay what their generators make, and its templates are compiled once for every process."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from flask import Flask
from jinja2 import Environment
from jinja2.bccache import bc_magic
from pygments.formatters import HtmlFormatter

from blog.page_cache import PageCache
from tests.conftest import AppFactory, WritePost

CSS = Path(__file__).resolve().parent.parent / "static" / "css"
STYLES = {"pygments-light.css": "friendly", "pygments-dark.css": "monokai"}


@pytest.mark.parametrize(("name", "style"), STYLES.items())
def test_pygments_stylesheets_match_pygments(name: str, style: str) -> None:
    expected = HtmlFormatter(style=style).get_style_defs(".highlight") + "\n"
    assert (CSS / name).read_text(encoding="utf-8") == expected, (
        f"regenerate with: python -c \"from pygments.formatters import HtmlFormatter; "
        f"print(HtmlFormatter(style='{style}').get_style_defs('.highlight'))\" > static/css/{name}")


def compiled_from_source(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of every template Jinja compiles from its source, and render every page in this process.

    Without the page cache and its filler, which could compile a template in a process of its own first.
    """
    monkeypatch.setattr(PageCache, "get", lambda self, url: None)
    monkeypatch.setattr(PageCache, "fill", lambda self, server, cached, lock_folder: None)
    compiled: list[str] = []
    original = Environment._compile

    def compile_(self: Environment, source: str, filename: str) -> object:
        compiled.append(os.path.basename(filename))
        return original(self, source, filename)

    monkeypatch.setattr(Environment, "_compile", compile_)
    return compiled


def test_templates_are_compiled_once_for_every_later_process(make_app: AppFactory, write_post: WritePost,
                                                             posts_dir: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    write_post("2024-01-02-hello.md", "Hello *there*.", title="Hello", tags=["a"])
    cache = tmp_path / "cache"
    compiled = compiled_from_source(monkeypatch)
    first = make_app(BLOG_CACHE_DIR=str(cache)).test_client().get("/posts/hello/")
    assert first.status_code == 200 and "post.html" in compiled and "base.html" in compiled
    assert list(cache.glob("templates-*/*.code"))  # kept for the next process

    compiled.clear()  # a restart: a new app, as a new worker or a freeze has
    again = make_app(BLOG_CACHE_DIR=str(cache)).test_client().get("/posts/hello/")
    assert again.status_code == 200 and compiled == []
    assert BeautifulSoup(again.data, "html.parser").h1.text == BeautifulSoup(first.data, "html.parser").h1.text

    theme = posts_dir.parent / "theme" / "templates"  # a template of one's own: compiled from its source, once
    theme.mkdir(parents=True)
    (theme / "_footer.html").write_text("<footer><p>My own footer</p></footer>\n", encoding="utf-8")
    edited = make_app(BLOG_CACHE_DIR=str(cache)).test_client().get("/posts/hello/")
    assert compiled == ["_footer.html"] and "My own footer" in edited.get_data(as_text=True)
    compiled.clear()
    (theme / "_footer.html").write_text("<footer><p>Edited footer</p></footer>\n", encoding="utf-8")
    edited = make_app(BLOG_CACHE_DIR=str(cache)).test_client().get("/posts/hello/")
    assert compiled == ["_footer.html"] and "Edited footer" in edited.get_data(as_text=True)


@pytest.mark.parametrize("spoil", ["entry writable by others", "folder writable by others"])
def test_compiled_templates_are_refused_when_others_could_write_them(
        make_app: AppFactory, write_post: WritePost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, spoil: str) -> None:
    write_post("2024-01-02-hello.md", "Hello.", title="Hello")
    cache = tmp_path / "cache"
    compiled = compiled_from_source(monkeypatch)
    assert make_app(BLOG_CACHE_DIR=str(cache)).test_client().get("/").status_code == 200
    entries = list(cache.glob("templates-*/*.code"))
    assert entries
    if spoil == "entry writable by others":
        for entry in entries:
            entry.chmod(0o666)
    else:
        entries[0].parent.chmod(0o777)
    compiled.clear()
    with caplog.at_level(logging.WARNING, logger="quire"):
        response = make_app(BLOG_CACHE_DIR=str(cache)).test_client().get("/")
    assert response.status_code == 200 and "base.html" in compiled  # compiled afresh, never loaded
    assert "not using compiled templates" in caplog.text


def test_without_a_cache_folder_templates_are_compiled_in_memory(make_app: AppFactory, write_post: WritePost,
                                                                 tmp_path: Path) -> None:
    write_post("2024-01-02-hello.md", "Hello.", title="Hello")
    app = make_app(BLOG_CACHE_DIR="off")
    assert app.jinja_env.bytecode_cache is None
    assert app.test_client().get("/").status_code == 200


def test_other_codes_compiled_templates_are_removed_once_a_month_old(make_app: AppFactory, write_post: WritePost,
                                                                      tmp_path: Path) -> None:
    write_post("2024-01-02-hello.md", "Hello.", title="Hello")
    cache = tmp_path / "cache"
    old, recent = cache / "templates-0123456789abcdef", cache / "templates-fedcba9876543210"
    for folder in (old, recent):
        folder.mkdir(parents=True, mode=0o700)
        (folder / "x.code").write_bytes(b"compiled by another version")
    month_ago = time.time() - 31 * 24 * 3600
    os.utime(old, (month_ago, month_ago))
    cache.chmod(0o700)
    make_app(BLOG_CACHE_DIR=str(cache))
    assert not old.exists() and recent.exists()


def test_a_torn_compiled_template_is_compiled_again(make_app: AppFactory, write_post: WritePost, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    write_post("2024-01-02-hello.md", "Hello.", title="Hello")
    cache = tmp_path / "cache"
    compiled = compiled_from_source(monkeypatch)
    first = make_app(BLOG_CACHE_DIR=str(cache)).test_client().get("/")
    for entry in cache.glob("templates-*/*.code"):
        entry.write_bytes(entry.read_bytes()[:len(bc_magic) + 3])  # past Jinja's magic, into the pickled checksum
    compiled.clear()
    again = make_app(BLOG_CACHE_DIR=str(cache)).test_client().get("/")
    assert again.status_code == 200 and "base.html" in compiled and again.data == first.data


def test_url_for_keeps_paths_but_builds_what_flask_builds(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-hello.md", "Hello.", title="Hello", tags=["Café Crème"], categories=["News"])
    app = make_app(BLOG_URL="https://example.com/blog")
    calls = [("posts.tag", {"slug": "cafe-creme"}), ("posts.tag", {"slug": "café crème"}),
             ("posts.category", {"slug": "news", "page_number": 2}), ("posts.detail", {"url": "2020/01/01/hello/"}),
             ("posts.index", {}), ("feeds.atom", {}), ("posts.tag", {"slug": "x", "_anchor": "top"}),
             ("posts.tag", {"slug": "x", "_external": True}), ("posts.tag", {"slug": "x", "q": "a b"}),
             ("posts.tag", {"slug": "x", "_external": True, "_scheme": "http"})]
    environs = [{}, {"SCRIPT_NAME": "/blog"}, {"HTTP_HOST": "other.example"}, {"SCRIPT_NAME": "//evil.example"}]
    for _ in range(2):  # the second round from what the first kept
        for environ in environs:
            with app.test_request_context("/", environ_overrides=environ):
                for endpoint, values in calls:
                    assert app.url_for(endpoint, **values) == Flask.url_for(app, endpoint, **values), (environ, endpoint)
    assert app._built  # paths were kept: from string values, in a request
    assert not any("#" in path or "://" in path for path in app._built.values())  # anchored, external: built each time


def test_dates_are_written_out_in_english(make_app: AppFactory) -> None:
    import datetime as dt

    long_date = make_app().jinja_env.filters["long_date"]
    assert [long_date(dt.date(2024, month, 9)) for month in (1, 5, 12)] == [
        "January 9, 2024", "May 9, 2024", "December 9, 2024"]
    assert long_date(dt.datetime(1999, 2, 28, 23, 59, tzinfo=dt.timezone.utc)) == "February 28, 1999"
