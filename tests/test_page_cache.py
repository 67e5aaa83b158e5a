"""The page cache: posts' finished pages on disk, reused across workers and restarts while they hold, else rendered."""

from __future__ import annotations

import dataclasses
import gzip
import os
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings, strategies as st

import blog.content.derived
import blog.views
from blog.content import Group
from blog.content.render_cache import RenderCache
from blog.page_cache import PageCache
from tests.conftest import AppFactory, Looked, WritePost, eventually

GZIP = {"Accept-Encoding": "gzip"}
Answer = tuple[int, list[tuple[str, str]], bytes]


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def filler() -> None:
    """Let the background filler run (other tests keep it off, so what they find on disk is their own doing)."""


@pytest.fixture(autouse=True)
def quiet_filler(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if "filler" not in request.fixturenames:
        monkeypatch.setattr(PageCache, "fill", lambda self, server, cached, lock_folder: None)


@pytest.fixture
def templates(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of every template the views render."""
    rendered: list[str] = []
    original = blog.views.render_template

    def render(name: str, **context: object) -> str:
        rendered.append(name)
        return original(name, **context)

    monkeypatch.setattr(blog.views, "render_template", render)
    return rendered


@pytest.fixture
def start(make_app: AppFactory, cache_dir: Path) -> Callable[..., Flask]:
    """Return a factory of apps over the test's folders and one cache folder: each a (re)start of the site."""
    return lambda **settings: make_app(BLOG_CACHE_DIR=str(cache_dir), **settings)


def write_site(write_post: WritePost) -> None:
    for day in range(1, 6):
        write_post(f"2021-05-{day:02d}-day-{day}.md", f"Text of day {day}.", title=f"Day {day}",
                   tags=["x"] if day % 2 else ["y"], categories=["notes"])


def get(app: Flask, url: str, headers: dict[str, str] | None = None, method: str = "GET") -> Answer:
    response = app.test_client().open(url, method=method, headers=GZIP if headers is None else headers)
    return response.status_code, sorted(response.headers.items()), response.get_data()


def without_last_modified(answer: Answer) -> Answer:
    """Return an answer without its Last-Modified: each process sends its own load's time, a second apart or not."""
    status, headers, body = answer
    return status, [header for header in headers if header[0] != "Last-Modified"], body


def text(app: Flask, url: str) -> str:
    return app.test_client().get(url).get_data(as_text=True)


def fresh(app: Flask, url: str, headers: dict[str, str] | None = None, method: str = "GET") -> Answer:
    """Return ``app``'s answer rendered now, by neither cache (the same moment's Last-Modified as a cached one)."""
    cached = app.extensions["quire.cache"]
    pages, entries = cached.pages, cached.max_entries
    cached.pages, cached.max_entries = None, 0
    cached._clear()
    try:
        return get(app, url, headers, method)
    finally:
        cached.pages, cached.max_entries = pages, entries


def entries(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "pages").glob("*/*.page"))


URL = "/posts/day-3/"


@pytest.mark.parametrize("headers", [GZIP, {}, {"Accept-Encoding": "identity"}])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_restart_answers_from_the_entry_exactly_as_a_fresh_render(start: Callable[..., Flask], write_post: WritePost,
                                                                   templates: list[str], headers: dict[str, str],
                                                                   method: str) -> None:
    write_site(write_post)
    first = start()
    status, _, body = get(first, URL, headers, method)
    assert status == 200 and templates == ["post.html"]
    again = start()  # a restart (or another worker) over the same cache folder
    templates.clear()
    from_disk = get(again, URL, headers, method)
    assert templates == []
    assert from_disk == fresh(again, URL, headers, method)
    assert from_disk[2] == body


def test_a_restart_answers_conditional_requests_from_the_entry(start: Callable[..., Flask], write_post: WritePost,
                                                              templates: list[str]) -> None:
    write_site(write_post)
    etag = start().test_client().get(URL, headers=GZIP).headers["ETag"]
    templates.clear()
    response = start().test_client().get(URL, headers={**GZIP, "If-None-Match": etag})
    assert response.status_code == 304 and templates == []


def test_an_entry_keeps_both_bodies_and_a_hit_decompresses_nothing(start: Callable[..., Flask],
                                                                    write_post: WritePost, cache_dir: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    write_site(write_post)
    _, headers, packed = get(start(), URL)
    assert ("Content-Encoding", "gzip") in headers
    [entry] = entries(cache_dir)
    body = gzip.decompress(packed)
    assert entry.read_bytes().endswith(body + packed)
    assert entry.stat().st_size < len(body) + len(packed) + 2048
    again = start()
    with monkeypatch.context() as patched:
        for name in ("decompress", "decompressobj"):
            patched.setattr(zlib, name, lambda *args, **kwargs: pytest.fail("a page from disk decompressed"))
        plain, packed_again = get(again, URL, {}), get(again, URL, GZIP)
    assert plain[2] == body and packed_again[2] == packed
    assert without_last_modified(plain) == without_last_modified(fresh(again, URL, {}))


def change_post(posts_dir: Path, write_post: WritePost) -> None:
    write_post("2021-05-03-day-3.md", "Text of day 3, edited.", title="Day 3", tags=["x"], categories=["notes"])


def change_neighbour(posts_dir: Path, write_post: WritePost) -> None:
    write_post("2021-05-04-day-4.md", "Text of day 4.", title="Day 4, renamed", tags=["y"], categories=["notes"])


def add_related(posts_dir: Path, write_post: WritePost) -> None:
    write_post("2020-01-01-old.md", "Old.", title="An old post sharing both", tags=["x", "y"], categories=["notes"])


def add_neighbour(posts_dir: Path, write_post: WritePost) -> None:
    write_post("2021-05-03-day-3b.md", "Later that day.", title="Day 3, later", date="2021-05-03 18:00:00")


def change_template(posts_dir: Path, write_post: WritePost) -> None:
    folder = posts_dir.parent / "theme" / "templates"
    folder.mkdir(parents=True)
    (folder / "_footer.html").write_text("<footer>A new footer</footer>", encoding="utf-8")


def change_site_file(posts_dir: Path, write_post: WritePost) -> None:
    (posts_dir.parent / "site.yml").write_text("title: Another name\n", encoding="utf-8")


def change_menu(posts_dir: Path, write_post: WritePost) -> None:
    pages = posts_dir.parent / "pages"
    pages.mkdir(exist_ok=True)
    (pages / "about.md").write_text("---\ntitle: About me\nnav: 1\n---\n\nHello.\n", encoding="utf-8")


CHANGES = [change_post, change_neighbour, add_related, add_neighbour, change_template, change_site_file, change_menu]


@pytest.mark.parametrize("change", CHANGES, ids=lambda change: change.__name__)
def test_a_change_the_page_shows_is_never_answered_from_the_old_entry(
        start: Callable[..., Flask], write_post: WritePost, posts_dir: Path,
        change: Callable[[Path, WritePost], None]) -> None:
    write_site(write_post)
    (posts_dir.parent / "site.yml").write_text("title: A name\n", encoding="utf-8")
    before = get(start(), URL)
    change(posts_dir, write_post)
    app = start()
    after = get(app, URL)
    assert after == fresh(app, URL)
    assert after[2] != before[2]


def test_checking_an_entry_reads_none_of_its_tags_posts(start: Callable[..., Flask], write_post: WritePost) -> None:
    """A worker that read every post of a tag would copy the memory it shares with gunicorn's master."""
    write_site(write_post)
    get(start(), URL)
    app = start()  # another worker, which has checked nothing yet
    store = app.extensions["quire"]
    looked: list[Looked] = []

    def watched(groups: Mapping[str, Group]) -> dict[str, Group]:
        found = {slug: dataclasses.replace(group, posts=Looked(group.posts)) for slug, group in groups.items()}
        looked.extend(group.posts for group in found.values())  # type: ignore[misc]
        return found

    snapshot = store.snapshot
    store._snapshot = dataclasses.replace(snapshot, tags=watched(snapshot.tags), categories=watched(snapshot.categories))
    assert app.extensions["quire.cache"].pages.get(URL) is not None
    assert [group.seen for group in looked] == [set()] * len(looked)


def test_a_setting_change_is_never_answered_from_the_old_entry(start: Callable[..., Flask], write_post: WritePost,
                                                               templates: list[str]) -> None:
    write_site(write_post)
    get(start(), URL)
    app = start(BLOG_TITLE="Renamed by a setting")
    templates.clear()
    assert "Renamed by a setting" in text(app, URL)
    assert templates == ["post.html"]


POST_CHANGES = [change_post, change_neighbour, add_related, add_neighbour]


@pytest.mark.parametrize("change", POST_CHANGES, ids=lambda change: change.__name__)
def test_a_running_site_stops_using_an_entry_once_what_it_shows_changes(
        start: Callable[..., Flask], write_post: WritePost, posts_dir: Path,
        change: Callable[[Path, WritePost], None]) -> None:
    write_site(write_post)
    app = start()
    before = get(app, URL)
    other = start()  # another worker: it holds the page in memory once asked twice, both answers from the disk
    for _ in range(2):
        assert without_last_modified(get(other, URL)) == without_last_modified(before)
    assert (URL, "", True) in other.extensions["quire.cache"].cached_keys()
    change(posts_dir, write_post)
    for each in (app, other):
        each.extensions["quire"].refresh(None)
    after = get(other, URL)
    assert after == fresh(other, URL)
    assert after[2] != before[2]
    assert get(app, URL) == fresh(app, URL)


def test_memory_keeps_a_page_from_disk_from_its_second_request(start: Callable[..., Flask], write_post: WritePost,
                                                               templates: list[str]) -> None:
    write_site(write_post)
    get(start(), URL)
    app = start()
    cached = app.extensions["quire.cache"]
    templates.clear()
    get(app, URL)
    assert (URL, "", True) not in cached.cached_keys()
    get(app, URL)
    assert (URL, "", True) in cached.cached_keys()
    assert templates == []


def test_a_crawl_from_disk_leaves_the_pages_readers_come_back_to_in_memory(start: Callable[..., Flask],
                                                                           write_post: WritePost,
                                                                           templates: list[str]) -> None:
    write_site(write_post)
    urls = [f"/posts/day-{day}/" for day in range(1, 6)]
    first = start(BLOG_RESPONSE_CACHE_ENTRIES="2")  # every BLOG_ setting is in the entries' fingerprint
    for url in urls:
        get(first, url)
    app = start(BLOG_RESPONSE_CACHE_ENTRIES="2")
    for _ in range(2):
        get(app, URL)
    templates.clear()
    for url in urls:  # every post once, from disk
        get(app, url)
    assert templates == []
    assert (URL, "", True) in app.extensions["quire.cache"].cached_keys()


def test_only_posts_pages_without_a_query_are_kept(start: Callable[..., Flask], write_post: WritePost,
                                                   cache_dir: Path) -> None:
    write_site(write_post)
    app = start()
    for url in ("/", "/tag/x/", "/archive/", f"{URL}?utm=1", "/posts/nothing/", "/feed.xml"):
        get(app, url)
    assert entries(cache_dir) == []


def test_a_preview_is_never_kept(start: Callable[..., Flask], write_post: WritePost, cache_dir: Path) -> None:
    write_post("2021-05-01-secret.md", "Not yet.", title="Secret", draft=True)
    app = start(BLOG_PREVIEW_TOKEN="letmein-letmein-letmein")
    assert get(app, "/posts/secret/?preview=letmein-letmein-letmein")[0] == 200
    assert entries(cache_dir) == []


def test_a_render_fallback_is_never_kept(start: Callable[..., Flask], write_post: WritePost, cache_dir: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    write_site(write_post)
    monkeypatch.setattr(blog.views, "render_cut_short", lambda: True)
    app = start()
    assert get(app, URL)[0] == 200
    assert entries(cache_dir) == []


def test_a_body_that_fails_to_render_is_never_kept(start: Callable[..., Flask], write_post: WritePost,
                                                   cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_site(write_post)
    monkeypatch.setattr(RenderCache, "failure", lambda self, post: "rendering took too long")
    app = start()
    assert get(app, URL)[0] == 200
    assert entries(cache_dir) == []  # each process finds the failure itself, for `check` to list


def test_the_dev_server_keeps_no_page(make_app: AppFactory, write_post: WritePost, cache_dir: Path) -> None:
    write_site(write_post)
    app = make_app(BLOG_CACHE_DIR=str(cache_dir), BLOG_DEV="1")
    assert app.test_client().get(URL).status_code == 200
    assert entries(cache_dir) == []


def test_a_torn_entry_is_ignored_and_replaced(start: Callable[..., Flask], write_post: WritePost, cache_dir: Path,
                                              templates: list[str], caplog: pytest.LogCaptureFixture) -> None:
    write_site(write_post)
    good = get(start(), URL)
    [entry] = entries(cache_dir)
    entry.write_bytes(entry.read_bytes()[:-100])
    app = start()
    templates.clear()
    assert get(app, URL)[2] == good[2]
    assert templates == ["post.html"] and "torn" in caplog.text
    templates.clear()
    get(start(), URL)
    assert templates == []  # the render wrote a whole entry again


def test_an_entry_for_another_url_is_ignored(start: Callable[..., Flask], write_post: WritePost, cache_dir: Path,
                                             templates: list[str]) -> None:
    write_site(write_post)
    app = start()
    get(app, "/posts/day-2/")
    [other] = entries(cache_dir)
    target = Path(app.extensions["quire.cache"].pages.path(URL))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(other.read_bytes())
    templates.clear()
    assert "Day 3" in text(start(), URL)
    assert templates == ["post.html"]


@pytest.mark.parametrize("unsafe", ["folder", "entry"])
def test_an_unsafe_cache_is_refused(start: Callable[..., Flask], write_post: WritePost, cache_dir: Path,
                                    templates: list[str], caplog: pytest.LogCaptureFixture, unsafe: str) -> None:
    write_site(write_post)
    get(start(), URL)
    [entry] = entries(cache_dir)
    os.chmod(cache_dir / "pages" if unsafe == "folder" else entry, 0o777 if unsafe == "folder" else 0o666)
    templates.clear()
    app = start()
    answer = get(app, URL)
    assert templates == ["post.html"] and "writable by other users" in caplog.text
    assert answer == fresh(app, URL)


def test_the_filler_produces_every_post_page_after_start(start: Callable[..., Flask], write_post: WritePost,
                                                         cache_dir: Path, templates: list[str], filler: None) -> None:
    write_site(write_post)
    app = start()
    store = app.extensions["quire"]
    eventually(lambda: len(entries(cache_dir)) == len(store.snapshot.posts), timeout=30)
    again = start()
    templates.clear()
    for post in store.snapshot.posts:
        assert get(again, post.url) == fresh(again, post.url)
    assert templates.count("post.html") == len(store.snapshot.posts)  # the fresh renders only


@pytest.mark.skipif(not hasattr(os, "posix_fadvise") or not os.path.isdir("/proc/self/fd"),
                    reason="needs posix_fadvise and /proc to see which file each call names")
def test_the_filler_asks_the_kernel_to_read_every_entry_ahead(start: Callable[..., Flask], write_post: WritePost,
                                                              cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_site(write_post)
    app = start()
    for post in app.extensions["quire"].snapshot.posts:
        get(app, post.url)
    advised: list[tuple[str, int]] = []
    monkeypatch.setattr(os, "posix_fadvise", lambda descriptor, offset, length, advice:
                        advised.append((os.readlink(f"/proc/self/fd/{descriptor}"), advice)))
    app.extensions["quire.cache"].pages.read_ahead()
    assert sorted(advised) == [(os.path.realpath(path), os.POSIX_FADV_WILLNEED) for path in entries(cache_dir)]


EDITS = st.lists(st.tuples(st.integers(1, 6), st.sampled_from(["title", "tags", "date", "body", "remove"]),
                           st.integers(0, 3)), min_size=1, max_size=4)


# A narrow window: related posts drawn from fewer posts than a tag holds, as at any real size (WINDOW is 40).
@pytest.mark.parametrize("window", [None, 1], ids=["whole-tags", "narrow-window"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=EDITS)
def test_after_any_edits_an_answer_from_disk_is_a_fresh_render(start: Callable[..., Flask], posts_dir: Path,
                                                               write_post: WritePost, edits: list[tuple[int, str, int]],
                                                               window: int | None, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    if window is not None:
        monkeypatch.setattr(blog.content.derived, "WINDOW", window)
    for path in posts_dir.glob("*.md"):
        path.unlink()
    tag_sets = [["a"], ["b"], ["a", "b"], []]
    posts = {day: {"title": f"Post {day}", "tags": tag_sets[day % 4], "date": f"2021-05-{day:02d}", "body": "Text."}
             for day in range(1, 7)}

    def write_all() -> None:
        for path in posts_dir.glob("*.md"):
            path.unlink()
        for day, meta in posts.items():
            write_post(f"post-{day}.md", meta["body"], title=meta["title"], tags=meta["tags"], date=meta["date"])

    write_all()
    app = start()
    for post in app.extensions["quire"].snapshot.posts:
        get(app, post.url)
    for day, field, value in edits:
        if field == "remove":
            posts.pop(day, None)
        elif day in posts:
            posts[day][field] = {"title": f"Title {value}", "tags": tag_sets[value], "date": f"2021-06-{value + 1:02d}",
                                 "body": f"Body {value}."}[field]
    write_all()
    again = start()
    for post in again.extensions["quire"].snapshot.posts:
        assert get(again, post.url) == fresh(again, post.url)
