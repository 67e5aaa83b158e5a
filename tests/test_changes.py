"""Incremental changes against a full rebuild: related posts, neighbours, the archive and every cached page."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from bs4 import BeautifulSoup
from flask import Flask
from hypothesis import HealthCheck, given, settings, strategies as st

from blog import create_app
from blog.content import derived, store as store_module
from blog.content.store import Snapshot

TAGS = ("otters", "rivers", "tea", "maps")
CATEGORIES = ("Field notes", "Kitchen")
START = dt.datetime(2023, 11, 20, 9, tzinfo=dt.timezone.utc)
# sub/p1.md has p1.md's stem and URL: two posts contesting one, which every change then rebuilds in full.
NAMES = (*(f"p{number}.md" for number in range(10)), "sub/p1.md")
YEARS = range(2023, 2028)

meta = st.fixed_dictionaries({
    "title": st.sampled_from(("Otter", "River", "Tea", "Map", "Dusk")),
    "day": st.sampled_from((0, 3, 40, 41, 200, 400, 401, 500, 1300)),  # late 2023 to 2025, and a future post
    "tags": st.lists(st.sampled_from(TAGS), max_size=3, unique=True),
    "category": st.sampled_from((None, *CATEGORIES)),
    "draft": st.sampled_from((False, False, False, True)),
})
change = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(NAMES), meta),  # a new post, or an edit (title, retag, redate)
    st.tuples(st.just("delete"), st.sampled_from(NAMES), st.none()),
    st.tuples(st.just("redate"), st.sampled_from(NAMES), st.integers(0, 500)),
    st.tuples(st.just("publish"), st.sampled_from(NAMES), st.booleans()),
    st.tuples(st.just("retag"), st.sampled_from(NAMES), st.lists(st.sampled_from(TAGS), max_size=3, unique=True)),
    st.tuples(st.just("retitle"), st.sampled_from(NAMES), st.sampled_from(("Heron", "Otter", "Kettle"))),
)


@contextmanager
def small_windows() -> Iterator[None]:
    """Make related posts' candidate windows tiny, and patched mappings flatten soon, as thousands of posts would."""
    kept = derived.WINDOW, store_module.LAYERED_CHANGES
    derived.WINDOW, store_module.LAYERED_CHANGES = 2, 3
    try:
        yield
    finally:
        derived.WINDOW, store_module.LAYERED_CHANGES = kept


class Site:
    """A posts folder with the front matter of each post kept, to edit one field at a time."""

    def __init__(self, root: Path):
        self.posts = root / "posts"
        self.posts.mkdir()
        self.root = root
        self.meta: dict[str, dict[str, Any]] = {}

    def apply(self, kind: str, name: str, value: Any) -> bool:
        """Make one change to the files; tell whether it did anything."""
        if kind == "write":
            self.meta[name] = dict(value)
        elif name not in self.meta:
            return False
        elif kind == "delete":
            del self.meta[name]
            (self.posts / name).unlink()
            return True
        else:
            field = {"redate": "day", "retag": "tags", "retitle": "title", "publish": "draft"}[kind]
            self.meta[name][field] = not value if kind == "publish" else value
        self._write(name)
        return True

    def _write(self, name: str) -> None:
        post = self.meta[name]
        front = {"title": post["title"], "date": (START + dt.timedelta(days=post["day"], hours=post["day"] % 5)).isoformat(),
                 "tags": post["tags"]}
        if post["category"]:
            front["categories"] = post["category"]
        if post.get("draft"):
            front["published"] = False
        path = self.posts / name
        path.parent.mkdir(exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(f"---\n{yaml.safe_dump(front)}---\n\nAbout {post['title']}.\n", encoding="utf-8")
        os.replace(temporary, path)  # a new inode: the store sees the change whatever the clock's resolution

    def app(self, **overrides: Any) -> Flask:
        """Return an app over this folder, loaded in full."""
        app = create_app({"BLOG_SITE_DIR": str(self.root), "BLOG_POSTS_DIR": str(self.posts), "BLOG_WATCH": "off",
                          "BLOG_URL": "https://blog.example.com", "BLOG_PER_PAGE": "2", **overrides})
        app.config["TESTING"] = True
        return app


def urls(snapshot: Snapshot) -> set[str]:
    """Return every page a reader can reach from the listings, of one snapshot."""
    found = {"/", "/archive/", "/tags/", "/categories/", *(post.url for post in snapshot.posts)}
    pages = max(1, -(-len(snapshot.posts) // 2))
    found.update(f"/page/{number}/" for number in range(2, pages + 1))
    for kind, groups in (("tag", snapshot.tags), ("category", snapshot.categories)):
        for slug, group in groups.items():
            found.add(f"/{kind}/{slug}/")
            found.update(f"/{kind}/{slug}/page/{number}/" for number in range(2, -(-len(group.posts) // 2) + 1))
    found.update(f"/archive/{year}/" for year in YEARS)
    return found


def derived_state(snapshot: Snapshot, zone: dt.tzinfo) -> dict[str, Any]:
    """Return what the derived indexes say about a snapshot, by URL, to compare two of them."""
    full = derived.archive(snapshot, zone)
    return {
        "related": {post.url: [other.url for other in derived.related(snapshot, post, 3)] for post in snapshot.posts},
        "neighbours": {post.url: [other.url if other else None for other in snapshot.neighbours(post)]
                       for post in snapshot.posts},
        "years": [(year.year, year.count, [(month.name, count) for month, count in year.months])
                  for year in derived.archive_years(snapshot, zone)],
        "year pages": {year: [(month.term.name, [post.url for post in month.posts]) for month in found.months]
                       for year in YEARS if (found := derived.archive_year(snapshot, zone, year))},
        # The whole archive in one pass, grouped month by month: the oracle of the two above.
        "archive": [(year.year, year.count, [(month.term.name, [post.url for post in month.posts]) for month in year.months])
                    for year in full],
    }


def indexes(snapshot: Snapshot) -> dict[str, Any]:
    """Return a snapshot's own indexes, by URL and slug in their order, to compare a patched one with a rebuilt one."""
    return {
        "posts": [post.url for post in snapshot.posts],
        **{name: sorted((key, post.source) for key, post in mapping.items()) for name, mapping in (("by_url", snapshot.by_url),
                                                               ("hidden", snapshot.hidden_by_url),
                                                               ("by_stem", snapshot.by_stem))},
        "sizes": [len(snapshot.by_url), len(snapshot.hidden_by_url), len(snapshot.by_stem)],
        **{kind: [(slug, group.term, group.membership, [post.url for post in group.posts]) for slug, group in groups.items()]
           for kind, groups in (("categories", snapshot.categories), ("tags", snapshot.tags),
                                ("authors", snapshot.authors))},
        "problems": {source: found for source, found in snapshot.problems.items()},
        "publish_at": snapshot.publish_at, "redirects": snapshot.redirects,
    }


def shown(body: bytes) -> str:
    """Return a page's main content, as a reader sees it."""
    return str(BeautifulSoup(body, "html.parser").find("main") or body)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.lists(st.tuples(st.sampled_from(NAMES), meta), min_size=2, max_size=7),
       changes=st.lists(change, min_size=1, max_size=8))
def test_incremental_changes_match_a_full_rebuild(first: list[tuple[str, dict[str, Any]]],
                                                  changes: list[tuple[str, str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as folder, small_windows():
        site = Site(Path(folder))
        for name, value in first:
            site.apply("write", name, value)
        live = site.app()
        store = live.extensions["quire"]
        client = live.test_client()
        seen = urls(store.snapshot)
        for url in seen:  # every page cached before the changes
            client.get(url)
        for kind, name, value in changes:
            if not site.apply(kind, name, value):
                continue
            store.refresh([name])  # only the changed file, as the watcher does
            rebuilt = site.app(BLOG_RESPONSE_CACHE_ENTRIES="0")
            oracle = rebuilt.extensions["quire"].snapshot
            zone = store.zone
            assert indexes(store.snapshot) == indexes(oracle)
            state = derived_state(store.snapshot, zone)
            assert state == derived_state(oracle, zone)
            assert [(year, count, [name for name, _ in months]) for year, count, months in state["archive"]] == \
                [(year, count, [name for name, _ in months]) for year, count, months in state["years"]]
            assert {year: months for year, _, months in state["archive"]} == state["year pages"]
            seen |= urls(oracle)
            fresh = rebuilt.test_client()
            for url in sorted(seen):
                cached, expected = client.get(url), fresh.get(url)
                assert cached.status_code == expected.status_code, url
                assert shown(cached.data) == shown(expected.data), (kind, name, url)


@pytest.mark.parametrize("kind, value", [("retitle", "Heron"), ("redate", 1), ("retag", ["tea"]), ("delete", None)])
def test_a_change_shows_on_every_page_that_shows_the_post(kind: str, value: Any, tmp_path: Path) -> None:
    site = Site(tmp_path)
    for number, day in enumerate((10, 20, 30, 40)):
        site.apply("write", f"p{number}.md", {"title": f"Post {number}", "day": day, "tags": ["otters"],
                                               "category": "Kitchen"})
    app = site.app()
    client = app.test_client()
    pages = ["/", "/page/2/", "/posts/p1/", "/posts/p2/", "/posts/p3/", "/tag/otters/", "/category/kitchen/",
             "/archive/", "/archive/2023/", "/tags/"]
    before = {url: client.get(url).data for url in pages}
    site.apply(kind, "p2.md", value)
    app.extensions["quire"].refresh(["p2.md"])
    expected = site.app(BLOG_RESPONSE_CACHE_ENTRIES="0").test_client()
    changed = [url for url in pages if shown(client.get(url).data) != shown(before[url])]
    for url in pages:
        assert shown(client.get(url).data) == shown(expected.get(url).data), url
    # The neighbours' links (unless only the tags changed) and the tag page that held the post changed.
    assert ({"/tag/otters/"} if kind == "retag" else {"/posts/p1/", "/posts/p3/", "/tag/otters/"}) <= set(changed)


def test_a_change_keeps_the_pages_that_do_not_show_it(tmp_path: Path) -> None:
    site = Site(tmp_path)
    for number in range(12):
        site.apply("write", f"p{number}.md", {"title": f"Post {number}", "day": 40 * number,
                                               "tags": ["otters" if number % 2 else "tea"], "category": None})
    app = site.app()
    cache = app.extensions["quire.cache"]
    client = app.test_client()
    far = ["/posts/p0/", "/posts/p2/", "/tag/tea/", "/archive/2023/"]
    for url in far:
        client.get(url)
    site.apply("retitle", "p11.md", "Heron")  # the newest post: shown on the home page, not on those
    app.extensions["quire"].refresh(["p11.md"])
    client.get("/")  # the cache catches up with the change
    assert {key[0] for key in cache.cached_keys()} >= set(far)
