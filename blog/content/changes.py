"""What a change of content touches: the dependency keys of pages that one snapshot shows and the next changes.

A view names what its page shows as keys (``post_page_keys``, ``listing_keys``); ``touched(old, new)`` names
the keys a change between two snapshots makes stale. The response cache drops the pages holding a touched key
and keeps the rest, so one edit re-renders the pages around it, not the whole site.

The keys:
- ``post:URL``: the post at URL as shown anywhere (title, date, summary, its own page);
- ``page:URL``: the page of the post at URL, for what else it shows: its newer and older neighbours and its
  related posts, which posts nearby in date (in a shared tag or category) can change;
- ``order:NAME``: who is in a listing and in what order (``all``, ``tag/SLUG``, ``category/SLUG``,
  ``author/SLUG``, ``year/YYYY``), and the listing's name;
- ``terms:KIND``: the list of a kind's terms (``/tags/``, ``/categories/``) with their counts;
- ``links``: which post a ``post_url``/``link`` tag names (any post added, removed or moved).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping

from blog.content.derived import WINDOW, window
from blog.content.post import Post
from blog.content.store import Group, Snapshot

KINDS = ("tag", "category", "author")


def post_key(post: Post) -> str:
    """Return the key of what pages show of ``post``."""
    return "post:" + post.url


def page_key(post: Post) -> str:
    """Return the key of the rest of ``post``'s own page: its neighbours and related posts."""
    return "page:" + post.url


def order_key(name: str) -> str:
    """Return the key of a listing's membership and order (``all``, ``tag/python``, ``year/2024``...)."""
    return "order:" + name


def year_of(post: Post, zone: dt.tzinfo) -> int:
    """Return the year of the archive page that lists ``post``."""
    return dt.datetime.fromtimestamp(post.sort_key[0], zone).year


def post_page_keys(post: Post, neighbours: Iterable[Post | None], related: Iterable[Post]) -> set[str]:
    """Return the keys of a post's page: the post, its neighbours and related posts, and what links it has."""
    keys = {post_key(post), page_key(post)}
    keys.update(post_key(other) for other in (*neighbours, *related) if other is not None)
    if post.links:
        keys.add("links")
    return keys


def listing_keys(name: str, shown: Iterable[Post]) -> set[str]:
    """Return the keys of one page of a listing: its order and the posts it shows."""
    return {order_key(name), *map(post_key, shown)}


def touched(old: Snapshot, new: Snapshot, zone: dt.tzinfo) -> set[str]:
    """Return the keys of every page that shows something differently in ``new`` than in ``old``."""
    keys: set[str] = set()
    known = new.changes is not None and new.generation == old.generation + 1
    for before, after in new.changes if known else _changed(old.by_url, new.by_url):  # type: ignore[union-attr]
        moved = before is None or after is None or before.sort_key != after.sort_key
        if moved:
            keys.add("links")
        for snapshot, post in ((old, before), (new, after)):
            if post is None:
                continue
            keys.add(post_key(post))
            keys.add(page_key(post))
            keys.update(page_key(other) for other in snapshot.neighbours(post) if other is not None)
            keys.update(page_key(other) for other in _related_to(snapshot, post))
            if moved:
                keys.add(order_key("all"))
                keys.add(order_key(f"year/{year_of(post, zone)}"))
        keys.update(_group_keys(old, new, before, after, moved))
    if old.hidden_by_url.keys() != new.hidden_by_url.keys():  # post_url may name a draft too
        keys.add("links")
    return keys


def _changed(old: Mapping[str, Post], new: Mapping[str, Post]) -> Iterator[tuple[Post | None, Post | None]]:
    """Yield (old version, new version) of each public post that is not the very same object in both."""
    # Posts are immutable and kept while their file is unchanged, so identity tells what changed; a post whose
    # URL changed shows as one removed and one added, which is what it is to every page but its file.
    for url, post in new.items():
        before = old.get(url)
        if before is not post:
            yield before, post
    for url, post in old.items():
        if url not in new:
            yield post, None


def _related_to(snapshot: Snapshot, post: Post) -> Iterator[Post]:
    """Yield the posts whose related posts may include ``post``: those it falls in the candidate window of."""
    # A post's candidates are the WINDOW posts nearest it in each shared tag or category, so only posts at
    # most WINDOW places from ``post`` there can count it among theirs.
    for groups, terms in ((snapshot.tags, post.tags), (snapshot.categories, post.categories)):
        for term in terms:
            group = groups.get(term.slug)
            if group is not None:
                yield from window(group.posts, post, 2 * WINDOW)


def _group_keys(old: Snapshot, new: Snapshot, before: Post | None, after: Post | None, moved: bool) -> set[str]:
    keys: set[str] = set()
    for kind in KINDS:
        old_groups: Mapping[str, Group] = getattr(old, _plural(kind))
        new_groups: Mapping[str, Group] = getattr(new, _plural(kind))
        was, now = _slugs(before, kind), _slugs(after, kind)
        for slug in was | now:
            old_group, new_group = old_groups.get(slug), new_groups.get(slug)
            renamed = (old_group is None) != (new_group is None) or (
                old_group is not None and new_group is not None and old_group.term != new_group.term)
            if moved or slug not in was or slug not in now or renamed:
                keys.add(order_key(f"{kind}/{slug}"))
                keys.add(f"terms:{kind}")
    return keys


def _plural(kind: str) -> str:
    return {"tag": "tags", "category": "categories", "author": "authors"}[kind]


def _slugs(post: Post | None, kind: str) -> set[str]:
    if post is None:
        return set()
    if kind == "author":
        return {post.author.slug} if post.author else set()
    return {term.slug for term in (post.tags if kind == "tag" else post.categories)}
