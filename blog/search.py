"""Full-text search: an in-memory SQLite FTS5 index per process, kept in step with the store, and /search."""

from __future__ import annotations

import math
import os
import re
import sqlite3
import threading
from dataclasses import dataclass

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, url_for
from flask.blueprints import BlueprintSetupState
from markupsafe import Markup, escape

from blog.content import Post, Snapshot
from blog.content.site import Searchable, Site
from blog.content.post import plain_text
from blog.views import PageNumbers, cacheable

bp = Blueprint("search", __name__)

MAX_QUERY_CHARS = 200  # longer input is cut, not refused: a pasted paragraph still gets a results page
# What bounds a query's cost (figures in docs/benchmarks.md): every term, and a prefix most of all, merges the
# lists of posts of every indexed word it matches. The prefix indexes hold 2- and 3-letter prefixes, so a
# one-letter prefix (t*) would scan every word starting with that letter: it is searched as the whole word.
MAX_QUERY_TERMS = 8
MAX_PREFIX_TERMS = 3  # later words ending in * are searched as whole words
MIN_PREFIX_CHARS = 2
TITLE_WEIGHT, EXCERPT_WEIGHT, BODY_WEIGHT = 10.0, 3.0, 1.0
SNIPPET_TOKENS = 24
# Private-use characters mark the highlights inside SQLite, so that the text around them can be escaped
# before they become <mark> tags; they are removed from indexed text so a post cannot forge one.
_OPEN, _CLOSE = "\ue000", "\ue001"
_MARKERS = re.compile(f"[{_OPEN}{_CLOSE}]")
_WORD = re.compile(r"[^\W_]+")  # what FTS5's unicode61 tokenizer keeps as a token: letters and digits


@dataclass(frozen=True)
class Hit:
    """One search result: the post, its highlighted title and a snippet, both safe HTML."""

    post: Post
    title: Markup
    snippet: Markup


@dataclass(frozen=True)
class Results(PageNumbers):
    """One page of results for a query."""

    query: str
    hits: tuple[Hit, ...]
    number: int
    pages: int
    total: int
    per_page: int
    partial: bool = False  # no post has every term: these have some of them

    @property
    def start(self) -> int:
        """Return the position of this page's first result in the whole ranking, from 1."""
        return (self.number - 1) * self.per_page + 1


def fts_query(text: str, any_term: bool = False) -> str | None:
    """Return a safe FTS5 query for what a reader typed, or None when nothing in it can be searched.

    Every word becomes a quoted string, so FTS5 operators, column filters and stray punctuation are
    just text; a pair of double quotes makes a phrase, an unpaired quote is ignored, and a word
    ending in ``*`` matches as a prefix. All terms must match, or any of them with ``any_term``.
    """
    pieces = text[:MAX_QUERY_CHARS].split('"')
    if len(pieces) % 2 == 0:  # an odd number of quotes: the last one opens nothing
        pieces[-2:] = [pieces[-2] + " " + pieces[-1]]
    terms: list[str] = []
    prefixes = 0
    for index, piece in enumerate(pieces):
        chunks = [piece] if index % 2 else piece.split()  # inside quotes the whole piece is one phrase
        for chunk in chunks:
            words = _WORD.findall(chunk)
            if words and len(terms) < MAX_QUERY_TERMS:
                prefix = (chunk.rstrip().endswith("*") and len(words[-1]) >= MIN_PREFIX_CHARS
                          and prefixes < MAX_PREFIX_TERMS)
                prefixes += prefix
                terms.append('"' + " ".join(words) + '"' + (" *" if prefix else ""))
    return (" OR " if any_term else " ").join(terms) or None


def _safe(text: str) -> Markup:
    """Return SQLite's marked-up text as HTML: everything escaped, then the markers turned into <mark>."""
    return Markup(str(escape(text)).replace(_OPEN, "<mark>").replace(_CLOSE, "</mark>"))


def _indexed(text: str) -> str:
    return _MARKERS.sub("", text)


class SearchIndex:
    """An FTS5 index of the public posts and pages, brought up to date with the site before each query."""

    def __init__(self, site: Site):
        self.store = site
        self._lock = threading.Lock()
        self._pid = -1
        self._reset()

    def _reset(self) -> None:
        self._db: sqlite3.Connection | None = None
        self._generation = -1
        self._indexed: dict[str, tuple[int, Post]] = {}  # URL -> (rowid, the post version indexed)
        self._posts: dict[int, Post] = {}
        self._next_rowid = 1

    def _connection(self) -> sqlite3.Connection:
        # Made on first use in the process that searches: gunicorn's master loads the app and forks the
        # workers, and an SQLite connection must not cross a fork.
        if self._db is None or self._pid != os.getpid():
            self._reset()
            self._db = sqlite3.connect(":memory:", check_same_thread=False)
            # Porter stemming lets "generator" find "generators"; the 2- and 3-letter prefix indexes keep
            # short prefix queries (gen*) from scanning every matching term: p99 171 ms -> 22 ms for 11 MB.
            self._db.execute("CREATE VIRTUAL TABLE posts USING fts5(title, excerpt, body, "
                             "tokenize = 'porter unicode61 remove_diacritics 2', prefix = '2 3')")
            self._pid = os.getpid()
        return self._db

    def sync(self, snapshot: Snapshot | Searchable) -> set[str]:
        """Index the posts added or changed since the last snapshot seen, drop the gone; return their URLs."""
        with self._lock:
            return self._sync(snapshot)

    def _sync(self, snapshot: Snapshot | Searchable) -> set[str]:
        db = self._connection()
        if snapshot.generation <= self._generation:
            return set()
        current = snapshot.by_url
        # Posts are rebuilt only when their file changes, so an unchanged post is the very same object.
        stale = {url for url, (_, post) in self._indexed.items() if current.get(url) is not post}
        fresh = [post for url, post in current.items() if url not in self._indexed or url in stale]
        with db:
            db.executemany("DELETE FROM posts WHERE rowid = ?", [(self._indexed[url][0],) for url in stale])
            for url in stale:
                self._posts.pop(self._indexed.pop(url)[0])
            db.executemany("INSERT INTO posts (rowid, title, excerpt, body) VALUES (?, ?, ?, ?)",
                           (self._row(post) for post in fresh))  # one post's text in memory at a time
        self._generation = snapshot.generation
        return stale | {post.url for post in fresh}

    def _row(self, post: Post) -> tuple[int, str, str, str]:
        rowid, self._next_rowid = self._next_rowid, self._next_rowid + 1
        self._indexed[post.url] = (rowid, post)
        self._posts[rowid] = post
        return rowid, _indexed(post.title), _indexed(post.description), _indexed(plain_text(post.body, len(post.body)))

    def search(self, text: str, page_number: int, per_page: int) -> Results:
        """Return one page of the posts matching ``text``, best match first; 404 past the last page.

        When no post has every term, the posts with any of them are shown instead (marked partial),
        so a query with one stray word still finds something.
        """
        query = fts_query(text)
        if query is None:
            return Results(text, (), 1, 1, 0, per_page)
        with self._lock:
            self._sync(self.store.searchable())
            ranked = self._ranked(query)
            partial = False
            if not ranked:
                fallback = fts_query(text, any_term=True)
                if fallback != query:
                    query, ranked, partial = fallback, self._ranked(fallback), True
            pages = max(1, math.ceil(len(ranked) / per_page))
            if page_number > pages:
                abort(404)
            shown = ranked[(page_number - 1) * per_page:page_number * per_page]
            hits = self._hits(query, shown)
        return Results(text, hits, page_number, pages, len(ranked), per_page, partial and bool(ranked))

    def _ranked(self, query: str) -> list[int]:
        return [rowid for (rowid,) in self._connection().execute(
            "SELECT rowid FROM posts WHERE posts MATCH ? ORDER BY bm25(posts, ?, ?, ?)",
            (query, TITLE_WEIGHT, EXCERPT_WEIGHT, BODY_WEIGHT))]

    def _hits(self, query: str, shown: list[int]) -> tuple[Hit, ...]:
        if not shown:
            return ()
        # Snippets only for this page's rows; the bare "?"s of the IN list number on from ?4.
        marks = ", ".join("?" * len(shown))
        marked = {rowid: (title, body, excerpt) for rowid, title, body, excerpt in self._connection().execute(
            f"SELECT rowid, highlight(posts, 0, ?1, ?2), snippet(posts, 2, ?1, ?2, '…', ?3), "
            f"snippet(posts, 1, ?1, ?2, '…', ?3) FROM posts WHERE posts MATCH ?4 AND rowid IN ({marks})",
            (_OPEN, _CLOSE, SNIPPET_TOKENS, query, *shown))}
        return tuple(self._hit(rowid, *marked[rowid]) for rowid in shown)

    def _hit(self, rowid: int, title: str, body: str, excerpt: str) -> Hit:
        post = self._posts[rowid]
        # Show where the words are: in the body, else in the excerpt, else (a title match) the excerpt as is.
        snippet = body if _OPEN in body else excerpt if _OPEN in excerpt else post.description
        return Hit(post, _safe(title), _safe(snippet))


def index() -> SearchIndex:
    """Return this app's search index."""
    return current_app.extensions["quire.search"]


@bp.record_once
def _create_index(state: BlueprintSetupState) -> None:
    # One index per app (and so per worker process), made when the app registers this blueprint.
    state.app.extensions["quire.search"] = SearchIndex(state.app.extensions["quire.site"])


@bp.route("/search")
def results() -> Response:
    """Show the posts matching ?q=, best first, a page at a time; any input gives a normal page."""
    typed = request.args.get("q", "")
    text = typed[:MAX_QUERY_CHARS]
    page_number = max(1, request.args.get("page", 1, type=int) or 1)
    canonical = {"q": typed} if "q" in request.args else {}  # ?q= is the form sent empty
    if page_number > 1:
        canonical["page"] = str(page_number)
    if request.args.to_dict(flat=False) != {name: [value] for name, value in canonical.items()}:
        # One URL per results page, so the response cache keeps each once: any other parameter, a repeated
        # one or page=1 is sent there (a cheap redirect) instead of running the search under a new key.
        return redirect(url_for("search.results", **canonical), 301)
    found = index().search(text, page_number, current_app.config["BLOG_PER_PAGE"]) if text.strip() else None
    return cacheable(render_template("search.html", query=text, results=found))
