"""Indexes derived from a snapshot on first use and kept with it: related posts and the dated archive."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any

from blog.content.post import Post, Term
from blog.content.store import Group, Snapshot

TAG_WEIGHT = 2  # a shared tag says more about two posts than a shared (broader) category
CATEGORY_WEIGHT = 1


@dataclass(frozen=True)
class Year:
    """One year of the archive: its months (newest first), each a Group of posts."""

    year: int
    count: int
    months: tuple[Group, ...]


def _memo(snapshot: Snapshot) -> dict[Any, Any]:
    # A snapshot never changes, so what is derived from it stays true for its lifetime and goes with it;
    # keeping it in the instance (as Snapshot's own cached_property does) ties the cache to the generation.
    return snapshot.__dict__.setdefault("_derived", {})


def related(snapshot: Snapshot, post: Post, n: int = 3) -> tuple[Post, ...]:
    """Return up to ``n`` public posts sharing the most tags and categories with ``post``, newest first on ties."""
    memo = _memo(snapshot)
    key = ("related", post.url, n)
    found = memo.get(key)
    if found is None:
        found = memo[key] = _related(snapshot, post, n)
    return found


def _related(snapshot: Snapshot, post: Post, n: int) -> tuple[Post, ...]:
    scores: Counter[str] = Counter()
    by_url: dict[str, Post] = {}
    for weight, groups, terms in ((TAG_WEIGHT, snapshot.tags, post.tags),
                                  (CATEGORY_WEIGHT, snapshot.categories, post.categories)):
        for term in terms:
            group = groups.get(term.slug)
            for other in group.posts if group else ():
                if other.url != post.url:
                    scores[other.url] += weight
                    by_url[other.url] = other
    ranked = sorted(by_url.values(), key=lambda other: (-scores[other.url], -other.date.timestamp(), other.url))
    return tuple(ranked[:n])


def shared_day_and_slug(snapshot: Snapshot) -> frozenset[tuple[dt.date, str]]:
    """Return the (date, slug) pairs that more than one public post has, so feed ids can tell them apart."""
    memo = _memo(snapshot)
    found = memo.get("shared_day_and_slug")
    if found is None:
        seen = Counter((post.date.date(), post.slug) for post in snapshot.posts)
        found = memo["shared_day_and_slug"] = frozenset(key for key, count in seen.items() if count > 1)
    return found


def archive(snapshot: Snapshot, zone: dt.tzinfo) -> tuple[Year, ...]:
    """Return every public post grouped by year and month (in ``zone``), newest first."""
    memo = _memo(snapshot)
    key = ("archive", str(zone))
    found = memo.get(key)
    if found is None:
        found = memo[key] = _archive(snapshot.posts, zone)
    return found


def _archive(posts: tuple[Post, ...], zone: dt.tzinfo) -> tuple[Year, ...]:
    months: dict[tuple[int, int], list[Post]] = {}
    for post in posts:  # already newest first, so each month's list stays in that order
        local = post.date.astimezone(zone)
        months.setdefault((local.year, local.month), []).append(post)
    years: dict[int, list[Group]] = {}
    for (year, month), members in sorted(months.items(), reverse=True):
        name = f"{dt.date(year, month, 1):%B} {year}"
        years.setdefault(year, []).append(Group(Term(name, f"{year:04d}-{month:02d}"), tuple(members)))
    return tuple(Year(year, sum(len(group.posts) for group in groups), tuple(groups))
                 for year, groups in years.items())
