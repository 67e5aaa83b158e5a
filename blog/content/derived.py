"""Indexes derived from a snapshot on first use and kept with it: related posts and the dated archive."""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from blog.content.post import Post, Term
from blog.content.store import Group, Snapshot

TAG_WEIGHT = 2  # a shared tag says more about two posts than a shared (broader) category
CATEGORY_WEIGHT = 1
# Month names as pages show them (the archive's months, the theme's long dates): strftime's %B, without its cost.
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


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
    """Return up to ``n`` public posts sharing the most tags and categories with ``post``, newest first on ties.

    Only the posts nearest ``post`` in date within each of its tags and categories are candidates (``WINDOW``
    of each), so the work per post is bounded however large a tag grows.
    """
    memo = _memo(snapshot)
    key = ("related", post.url, n)
    found = memo.get(key)
    if found is None:
        found = memo[key] = _related(snapshot, post, n)
    return found


WINDOW = 40  # candidates taken from each of a post's tags and categories: the posts nearest it in date


def window(posts: Sequence[Post], post: Post, size: int | None = None) -> Sequence[Post]:
    """Return the ``size`` (``WINDOW``) posts of ``posts`` (newest first) nearest ``post`` in date, and ``post``."""
    size = WINDOW if size is None else size
    if len(posts) <= size + 1:
        return posts
    at = position(posts, post)
    start = max(0, min(at - size // 2, len(posts) - size - 1))
    return posts[start:start + size + 1]


def position(posts: Sequence[Post], post: Post) -> int:
    """Return where ``post`` stands (or would stand) in ``posts``, which are newest first by ``sort_key``."""
    return len(posts) - bisect.bisect_right(_Ascending(posts), post.sort_key)


class _Ascending(Sequence[tuple[float, str]]):
    """The sort keys of a newest-first tuple of posts, oldest first, for bisect (no copy)."""

    def __init__(self, posts: Sequence[Post]):
        self.posts = posts

    def __len__(self) -> int:
        return len(self.posts)

    def __getitem__(self, index: int) -> tuple[float, str]:  # type: ignore[override] - bisect passes ints only
        return self.posts[len(self.posts) - 1 - index].sort_key


def _related(snapshot: Snapshot, post: Post, n: int) -> tuple[Post, ...]:
    by_url: dict[str, Post] = {}
    for groups, terms in ((snapshot.tags, post.tags), (snapshot.categories, post.categories)):
        for term in terms:
            group = groups.get(term.slug)
            if group is not None:
                for other in window(group.posts, post):
                    by_url.setdefault(other.url, other)
    by_url.pop(post.url, None)
    if not by_url:
        return ()
    tags, categories = {term.slug for term in post.tags}, {term.slug for term in post.categories}

    def rank(other: Post) -> tuple[int, float, str]:
        score = 0
        for term in other.tags:
            if term.slug in tags:
                score -= TAG_WEIGHT
        for term in other.categories:
            if term.slug in categories:
                score -= CATEGORY_WEIGHT
        # sort_key[0] is the timestamp worked out once at load: no datetime arithmetic per comparison.
        return score, -other.sort_key[0], other.url

    return tuple(heapq.nsmallest(n, by_url.values(), key=rank))  # sorted(..., key=rank)[:n], without the sort


# Two dates on one calendar day, each in its own UTC offset (less than a day either way), are less than three
# days apart: the posts that may share a post's day are found by bisection within this of its time.
SAME_DAY_SPAN = dt.timedelta(days=4).total_seconds()


def shares_day_and_slug(snapshot: Snapshot, post: Post) -> bool:
    """Tell whether another public post has ``post``'s date (its own calendar day) and slug, so feed ids tell them apart.

    Only the posts dated within days of it are looked at, never every post: a worker that touched them all
    would copy the memory it shares with gunicorn's master (150 MB per worker at 100,000 posts).
    """
    posts, moment = snapshot.posts, post.sort_key[0]
    nearby = posts[_newer_than(posts, moment + SAME_DAY_SPAN):_newer_than(posts, moment - SAME_DAY_SPAN)]
    day = post.date.date()
    return sum(other.slug == post.slug and other.date.date() == day for other in nearby) > 1


@dataclass(frozen=True)
class YearCount:
    """One year of the archive, counted: its posts, and each month's (newest first) as (month, count)."""

    year: int
    count: int
    months: tuple[tuple[Term, int], ...]  # the month named as the year's page names it ("May 2024", "2024-05")


def archive_years(snapshot: Snapshot, zone: dt.tzinfo) -> tuple[YearCount, ...]:
    """Return the years (newest first) that have public posts, with their months' counts, in ``zone``.

    Counted by bisecting the date-sorted posts at each month's start: the work grows with the months the
    site spans, not with its posts.
    """
    memo = _memo(snapshot)
    key = ("archive_years", str(zone))
    found = memo.get(key)
    if found is None:
        found = memo[key] = _archive_years(snapshot.posts, zone)
    return found


def _archive_years(posts: tuple[Post, ...], zone: dt.tzinfo) -> tuple[YearCount, ...]:
    if not posts:
        return ()
    newest, oldest = _local(posts[0], zone), _local(posts[-1], zone)
    years: dict[int, list[tuple[Term, int]]] = {}
    above = 0  # the posts of the months already counted (the newer ones)
    for year in range(newest.year, oldest.year - 1, -1):
        for month in range(12, 0, -1):
            if (newest.year, newest.month) >= (year, month) >= (oldest.year, oldest.month):
                newer = _newer_than(posts, dt.datetime(year, month, 1, tzinfo=zone).timestamp())
                if newer > above:
                    years.setdefault(year, []).append((_month(year, month), newer - above))
                above = newer
    return tuple(YearCount(year, sum(count for _, count in months), tuple(months)) for year, months in years.items())


def archive_year(snapshot: Snapshot, zone: dt.tzinfo, year: int) -> Year | None:
    """Return one year's public posts grouped by month (in ``zone``), newest first, or None if it has none."""
    if not 1 <= year < 9999:  # beyond what a date holds: no post there
        return None
    memo = _memo(snapshot)
    key = ("archive_year", str(zone), year)
    if key not in memo:
        start = _newer_than(snapshot.posts, dt.datetime(year + 1, 1, 1, tzinfo=zone).timestamp())
        end = _newer_than(snapshot.posts, dt.datetime(year, 1, 1, tzinfo=zone).timestamp())
        found = _archive(snapshot.posts[start:end], zone)
        memo[key] = found[0] if found else None
    return memo[key]


def _newer_than(posts: Sequence[Post], timestamp: float) -> int:
    """Return how many of ``posts`` (newest first) are dated at or after ``timestamp``."""
    return len(posts) - bisect.bisect_left(_Ascending(posts), (timestamp, ""))


def _month(year: int, month: int) -> Term:
    return Term(f"{MONTHS[month - 1]} {year}", f"{year:04d}-{month:02d}")


def _local(post: Post, zone: dt.tzinfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(post.sort_key[0], zone)


def archive(snapshot: Snapshot, zone: dt.tzinfo) -> tuple[Year, ...]:
    """Return every public post grouped by year and month (in ``zone``), newest first (the oracle of the above)."""
    memo = _memo(snapshot)
    key = ("archive", str(zone))
    found = memo.get(key)
    if found is None:
        found = memo[key] = _archive(snapshot.posts, zone)
    return found


def _archive(posts: Sequence[Post], zone: dt.tzinfo) -> tuple[Year, ...]:
    months: dict[tuple[int, int], list[Post]] = {}
    for post in posts:  # already newest first, so each month's list stays in that order
        local = post.date.astimezone(zone)
        months.setdefault((local.year, local.month), []).append(post)
    years: dict[int, list[Group]] = {}
    for (year, month), members in sorted(months.items(), reverse=True):
        years.setdefault(year, []).append(Group(_month(year, month), tuple(members)))
    return tuple(Year(year, sum(len(group.posts) for group in groups), tuple(groups))
                 for year, groups in years.items())
