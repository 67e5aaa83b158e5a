"""The post store: reads changed files only, keeps the last good version, and indexes immutable snapshots."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import gc
import hashlib
import html
import logging
import marshal
import os
import posixpath
import re
import stat as stat_module
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal, NamedTuple
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from blog.content import isolation, jekyll, post as rules
from blog.content.markup import (
    RENDER_SECONDS, Renderer, RenderError, RenderPending, balanced, is_html, jekyll_site_values, linked_posts, pathological,
    unknown_liquid_tags,
)
from blog.content.pages import FileChanging, PostPages, is_post_file
from blog.content.cache import PostCache, folder_for, key_of, pickled_by_constructor
from blog.content.parallel import forked_call, forked_map
from blog.content.render_cache import BODY, EXCERPT, RenderCache
from blog.content.post import Post, PostError, Term
from blog.content.source import Source, SourceError
from blog.logs import printable

log = logging.getLogger("quire.content")

FileKey = bytes  # mtime, size, inode, ctime, packed: see cache.key_of
RENDERED_POSTS_KEPT = 256
RENDERED_EXCERPTS_KEPT = 2048  # a listing page shows ten; the response cache keeps the pages themselves
LATE_RENDERS_KEPT = 64
_budget = threading.local()


def start_render_budget(seconds: float | None) -> None:
    """Bound the total time renders may take on this thread (one response) until end_render_budget; None: no bound."""
    _budget.deadline = None if seconds is None else time.monotonic() + seconds
    _budget.cut_short = False


def end_render_budget() -> None:
    """Lift this thread's render budget."""
    _budget.deadline = None
    _budget.cut_short = False


def render_budget_left() -> float | None:
    """Return the seconds this thread's render budget has left, or None when there is none."""
    deadline = getattr(_budget, "deadline", None)
    return None if deadline is None else deadline - time.monotonic()


def render_cut_short() -> bool:
    """Tell whether this thread's budget left a render unfinished: the response shows a fallback, not to be kept."""
    return getattr(_budget, "cut_short", False)


def _cut_short() -> None:
    _budget.cut_short = True


class _Pending(Exception):
    """A render still unfinished when the response's budget ran out: ``html`` is its fallback, for now only."""

    def __init__(self, html: str):
        super().__init__("render pending")
        self.html = html


@dataclass(frozen=True)
class Problem:
    """One finding about a post file, for logs and ``blog check``."""

    source: str
    severity: str  # "error" keeps the file out of the site; "warning" is shown but served
    code: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return printable(f"{where}: {self.severity}: {self.message} [{self.code}]")


@dataclass(frozen=True)
class Group:
    """The public posts of one category, tag, author or month, newest first."""

    term: Term
    posts: tuple[Post, ...]
    # Of a category, tag or author (0 for a month): the XOR of its posts' member_print()s, kept as posts come
    # and go, so that the page cache sees its membership change without reading its posts. A worker reading
    # every post of a group copies the memory it shares with gunicorn's master (200 MB at 100,000 posts).
    membership: int = 0


@dataclass(frozen=True)
class Snapshot:
    """Every index readers need, for one generation of content; never changed once built."""

    generation: int
    posts: tuple[Post, ...]
    by_url: Mapping[str, Post]
    hidden_by_url: Mapping[str, Post]
    by_stem: Mapping[str, Post]
    categories: Mapping[str, Group]
    tags: Mapping[str, Group]
    authors: Mapping[str, Group]
    problems: Mapping[str, tuple[Problem, ...]]
    changed_at: float
    publish_at: float | None  # when the next future post goes live and the snapshot must be rebuilt
    redirects: Mapping[str, str] = field(default_factory=dict)  # path -> where it moved (redirect_from, redirect_to)
    # When patched from the snapshot before it (generation - 1): the public posts it changed, as (old version,
    # new version) by URL, so what a change touches is known without comparing every post. None: not known.
    changes: tuple[tuple[Post | None, Post | None], ...] | None = None

    def neighbours(self, post: Post) -> tuple[Post | None, Post | None]:
        """Return the (newer, older) public posts around ``post``."""
        position = _place(self.posts, post)  # a bisection: no index of every post to build per snapshot
        if position == len(self.posts) or self.posts[position] is not post:
            return None, None
        newer = self.posts[position - 1] if position > 0 else None
        older = self.posts[position + 1] if position + 1 < len(self.posts) else None
        return newer, older


# The Post fields a description gives, in the order of _Description.fields; the store adds the rest.
_FIELDS = ("source", "url", "slug", "title", "date", "updated", "dated", "author", "categories", "tags", "cover",
           "layout", "published", "draft", "words", "sort_key", "stem", "digest", "links", "kind", "nav")
_FIELD_DEFAULTS = {"kind": "post", "nav": None}


class _Description(NamedTuple):
    """What reading one file gave: the parts of its Post that are plain data (picklable), and its problems.

    No body: it is read again from the file when rendered, so the forked loaders' pipes carry no 100,000
    bodies. Tuples rather than objects and dictionaries: 100,000 of them are unpickled at a first start, and
    every container unpickled and dropped leaves a hole in the memory that gunicorn's workers share with the
    master, which their first allocations then copy.
    """

    meta: dict[str, Any] | None = None  # the front matter (over the site's defaults); None: the file gave no post
    fields: tuple[Any, ...] = ()  # the values of _FIELDS, in that order
    problems: tuple[Problem, ...] = ()
    refused: bool = False  # the body is never handed to Markdown (see markup.pathological)
    lasting: bool = True  # follows from the file's content alone, so it may be cached (a read error may not)
    cover_line: int | None = None  # where the cover is set, should its file be missing
    body: tuple[str, int] | None = None  # (body, first line), kept only when there is no render cache


@pickled_by_constructor  # kept in the post cache, one per file
@dataclass(slots=True)  # one per file: no __dict__ each
class _FileState:
    key: FileKey
    post: Post | None
    problems: tuple[Problem, ...]
    last_good: Post | None = None


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class PostStore:
    """Owns the posts: what is on disk, what is public, and every index and cache built from them."""

    def __init__(self, pages: PostPages, settings: Mapping[str, Any], static_root: str | Sequence[str],
                 clock: Callable[[], dt.datetime] = _utc_now, kind: str = "post", jekyll_pages: bool = False,
                 speaks: Callable[[], bool] = lambda: True):
        """Make a store of posts, or with ``kind="page"`` of pages (``jekyll_pages``: a Jekyll site's root).

        ``speaks`` tells whether this process logs the problems files have (blog.logs.SiteVoice: one per site).
        """
        self.kind = kind
        self.speaks = speaks
        self.jekyll_pages = jekyll_pages
        self.pages = pages
        self.settings = settings
        # Where covers are looked for: the static folders in the order they are served (the theme's first).
        self.static_roots = (static_root,) if isinstance(static_root, str) else tuple(static_root)
        self.zone = ZoneInfo(settings["BLOG_TIMEZONE"])
        self.jekyll: jekyll.JekyllSite = (settings.get("JEKYLL_SITE") if kind == "post" or jekyll_pages else None) or jekyll.NO_SITE
        if kind == "page" and self.jekyll.is_site:  # the site's own pages, found by Jekyll's rules for them
            pages.reads_folder, pages.reads_post = self.jekyll.reads_page_folder, self.jekyll.reads_page
        else:
            pages.reads_folder, pages.reads_post = self.jekyll.reads_folder, self.jekyll.reads_post
        self.clock = clock
        self._files: dict[str, _FileState] = {}
        # What a rescan would list if nothing changed: the XOR of every file's _listed(relative, key). A
        # rescan that finds the same answers at once, without visiting any file's state (see refresh).
        self._listing = 0
        self._lock = threading.RLock()
        self._generation = 0
        self.listeners: list[Any] = []
        site_values = {**jekyll_site_values(settings.get("BLOG_JEKYLL_CONFIG", "")), "baseurl": "",
                       "url": settings["BLOG_URL"], "title": settings["BLOG_TITLE"],
                       "description": settings["BLOG_DESCRIPTION"]}
        pages.renderer = Renderer(site_values, sanitize=settings.get("BLOG_SANITIZE", False),
                                  extensions=jekyll.markdown_dialect(settings),
                                  budget=settings.get("BLOG_RENDER_SECONDS", RENDER_SECONDS),
                                  memory_mb=settings.get("BLOG_RENDER_MEMORY_MB", isolation.RENDER_MEMORY_MB))
        self._quiet = 0.0
        self._unsettled: set[str] = set()
        self._render_failed: dict[str, Post] = {}  # source -> the version that failed, never rendered again
        self._unlasting: set[str] = set()  # files whose reading gave what may differ next time: never cached
        self._fresh: list[Post] = []  # posts changed by this refresh, after the first load
        # Whether the last full build met a rule that looks at other posts than the one changing (two posts
        # on one URL or file stem, redirects): then a change rebuilds everything instead of patching.
        self._entangled = True
        self._loaded = False
        pages.resolve_post_url = self.resolve_post_url
        # Rendered bodies are kept for the most visited posts only, so memory stays flat however many
        # posts a crawler walks through; the response cache holds the finished pages in front of this, and
        # the render cache on disk (shared by the workers, kept across restarts) behind it.
        self._bodies = functools.lru_cache(maxsize=RENDERED_POSTS_KEPT)(self._render_body)
        self._excerpts = functools.lru_cache(maxsize=RENDERED_EXCERPTS_KEPT)(self._render_excerpt)
        self._running: dict[tuple[str, str], Post] = {}  # renders left running by a response out of budget
        self._late: dict[tuple[str, str], tuple[Post, str]] = {}  # what they gave, when there is no render cache
        # Pages are a handful of files: reading them is quicker than keeping a cache of them.
        cache_folder = folder_for(settings.get("BLOG_CACHE_DIR", "off")) if kind == "post" else None
        self.cache = PostCache(cache_folder, pages.root, settings) if cache_folder else None
        self.rendered = RenderCache(cache_folder, site_values, settings, self.resolve_post_url) if cache_folder else None
        self._snapshot = self._build_snapshot()

    # Reading -------------------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        """Return the current snapshot, rebuilt first if a future post's time has come."""
        current = self._snapshot
        if current.publish_at is not None and time.time() >= current.publish_at:
            with self._lock:
                if self._snapshot is current:
                    self._publish(self._build_snapshot())
            current = self._snapshot
        return current

    @property
    def generation(self) -> int:
        """Return a number that changes whenever anything readers can see changes."""
        return self.snapshot.generation

    def post_at(self, url: str, include_hidden: bool = False) -> Post | None:
        """Return the post at a URL path, or None."""
        snapshot = self.snapshot
        found = snapshot.by_url.get(url)
        if found is None and include_hidden:
            found = snapshot.hidden_by_url.get(url)
        return found

    def resolve_post_url(self, name: str) -> str | None:
        """Return the URL of the post a Jekyll ``post_url``/``link`` tag names, or None."""
        name = name.strip().strip("'\"")
        stem = posixpath.basename(name).rsplit(".", 1)[0] if name.endswith(tuple(self.pages.config("extension"))) else posixpath.basename(name)
        found = self._snapshot.by_stem.get(stem)
        return found.url if found else None

    def file_key(self, post: Post) -> FileKey | None:
        """Return the key (stat) of the file ``post`` was made from; None if that file changed since (or is gone).

        A file that fails to parse keeps its last good post with the new file's key: that post is not what
        the key's file gives, so it has none.
        """
        state = self._files.get(post.source)
        if state is None or state.post is not post or any(problem.code == "stale" for problem in state.problems):
            return None
        return state.key

    def read_body(self, post: Post) -> str:
        """Return a post's Markdown body, read from its file: the text there now, if the file changed since."""
        return self.read_source(post)[0]

    def read_source(self, post: Post) -> tuple[str, int, bool]:
        """Return the body on disk, its first line, and whether it is still the version ``post`` was made from."""
        if post.kept is not None:
            return (*post.kept, True)
        try:
            body, line, digest = self.pages.read_body(post.source, self.settings["BLOG_MAX_POST_SIZE"])
        except (OSError, SourceError):  # gone or broken since: the watcher drops or reports it
            return "", 1, False
        # A different digest means the file changed and the watcher has not reloaded it yet (or cannot: a
        # broken file keeps its last good post). The text on disk is used, never an older one from a cache.
        return body, line, digest == post.digest

    def render_body(self, post: Post) -> str:
        """Return a post's body as HTML: from the caches, else rendered (within this response's render budget)."""
        try:
            return self._bodies(post)
        except _Pending as pending:  # not kept: the next response gets the render, finished by then
            return pending.html

    def render_excerpt(self, post: Post) -> str:
        """Return a post's excerpt as HTML, as render_body does its body."""
        try:
            return self._excerpts(post)
        except _Pending as pending:
            return pending.html

    def _render_body(self, post: Post) -> str:
        rendered = self._known(post, BODY)
        if rendered is not None:
            return rendered
        body, _, current = self.read_source(post)
        return self._bounded(post, body, BODY, current)

    def _render_excerpt(self, post: Post) -> str:
        # Cut from the body at a blank line, which may fall inside the author's raw HTML: closed here, so that
        # it cannot take in the rest of a listing (the render cache keeps the excerpt as rendered).
        return balanced(self._excerpt_html(post))

    def _excerpt_html(self, post: Post) -> str:
        rendered = self._known(post, EXCERPT)
        if rendered is not None:
            return rendered
        text, current = rules.first_text(post.meta, "excerpt"), True
        if text is None:
            body, _, current = self.read_source(post)
            text = rules.excerpt_of(body, post.meta)
            if text == body:  # an excerpt that is the whole post: render it once
                return self._bodies(post)
        if not text:
            return ""
        return self._bounded(post, text, EXCERPT, current)

    def _known(self, post: Post, kind: str) -> str | None:
        """Return HTML rendered before, by any process (the render cache) or by a render this one left running."""
        late = self._late.pop((post.source, kind), None)
        if late is not None and late[0] is post:
            return late[1]
        return self.rendered.get(post, kind) if self.rendered else None

    def _render_into_cache(self, post: Post) -> None:
        """Render a post's body and excerpt, which puts them into the render cache (the background filler's job)."""
        self.render_body(post)
        self.render_excerpt(post)

    def _bounded(self, post: Post, text: str, kind: str, current: bool) -> str:
        """Return ``text`` rendered, or escaped if this version of the post fails to render (now or before).

        Raise _Pending, with that fallback, when this response's render budget runs out first.
        """
        fallback = '<pre class="render-fallback">' + html.escape(text) + "</pre>"
        if self._render_failed.get(post.source) is post:
            return fallback
        known = self.rendered.failure(post) if self.rendered else None
        if known is not None:  # another process of the site found it, and said so
            self._report_render_failure(post, known, found_here=False)
            return fallback
        remaining = render_budget_left()
        if self._running.get((post.source, kind)) is post or (remaining is not None and remaining <= 0):
            _cut_short()
            raise _Pending(fallback)
        renderer = self.pages.renderer
        keep = self.rendered.target(post, kind) if self.rendered and current else None
        try:
            rendered = self.pages.render_text(text, post.meta, raw_html=is_html(post.source), wait=remaining, keep=keep,
                                                  late=functools.partial(self._finished_late, post, kind))
        except RenderPending:
            self._running[(post.source, kind)] = post
            _cut_short()
            raise _Pending(fallback) from None
        except RenderError as error:
            if not error.lasting:  # the machine, not the post: shown as text this once, never kept
                log.warning("%s: %s; rendered again when next asked for", post.source, error.message)
                _cut_short()
                raise _Pending(fallback) from None
            self._report_render_failure(post, error.message)
            return fallback
        if keep is not None and not renderer.isolated:  # a render child writes its entry itself
            self.rendered.put(post, rendered, kind)
        return rendered

    def _finished_late(self, post: Post, kind: str, outcome: str | RenderError) -> None:
        """Take the outcome of a render whose response stopped waiting for it."""
        self._running.pop((post.source, kind), None)
        if isinstance(outcome, RenderError):
            if outcome.lasting:
                self._report_render_failure(post, outcome.message)
        elif not self.rendered:  # with a render cache, the child has written it there
            self._late[(post.source, kind)] = (post, outcome)
            while len(self._late) > LATE_RENDERS_KEPT:
                del self._late[next(iter(self._late))]

    def _report_render_failure(self, post: Post, message: str, found_here: bool = True) -> None:
        with self._lock:
            if self._render_failed.get(post.source) is post:
                return
            self._render_failed[post.source] = post
            # Logged once per site: by the first process to mark it in the shared render cache, or else
            # by the process that speaks for the site (blog.logs.SiteVoice).
            if found_here:
                first = self.rendered.mark_failed(post, message) if self.rendered else self.speaks()
            state = self._files.get(post.source)
            if state is None or state.post is not post:
                return
            if found_here and first:
                log.error("%s", Problem(post.source, "error", "render", message))
            state.problems = (*state.problems, Problem(post.source, "error", "render", message))
            self._publish(self._build_snapshot())

    def recall_render_failures(self) -> None:
        """Learn which posts other processes of the site found failing to render (``blog check`` reports them)."""
        if self.rendered is None:
            return
        for post in self.snapshot.posts:
            if self._render_failed.get(post.source) is not post:
                known = self.rendered.failure(post)
                if known is not None:
                    self._report_render_failure(post, known, found_here=False)

    def problems(self) -> list[Problem]:
        """Return every current problem, by file."""
        return [problem for problems in self._snapshot.problems.values() for problem in problems]

    # Loading -------------------------------------------------------------------------------------

    def load(self) -> None:
        """Read every post file (the first time) or every changed one (later): a full rescan.

        The first time, the post cache gives what the last run built: all of it when the folder still lists
        the files it was built from, else the posts of unchanged files. The cache is saved again after a first
        load that changed anything.
        """
        # Loading allocates a few objects per post and keeps them all; the cyclic collector would rescan the
        # growing heap again and again for nothing. Freezing afterwards also keeps forked workers' pages shared.
        first = not self._files
        gc.disable()
        try:
            restored = self._restore() if first and self.cache else None
            if restored is not True:
                self._refresh(None, 0.0, listing_differs=restored is not None, listed_keys=restored or None)
                if first and self.cache:
                    self.cache.save(self._state, self)
        finally:
            gc.enable()
            gc.freeze()
        self._loaded = True

    def fill_render_cache(self, server: int) -> None:
        """Render every post the render cache lacks, here, while process ``server`` runs (nothing without a cache).

        The server's background filler (blog._fillers) calls it, in a process detached from the server.
        """
        if self.rendered:
            self.rendered.fill(server, lambda: self._snapshot.posts, self._render_into_cache)

    def _restore(self) -> Literal[True] | list[tuple[str, FileKey]] | None:
        """Take the files, posts and indexes the post cache holds; publish them if the folder lists just those files.

        Return True if it did; if the files and indexes were taken but some files changed, the folder's listing
        ((path, key) of every file) for the rescan to find them; None if the cache gave nothing. The folder is
        listed by a forked child meanwhile, on the other core, so the check costs this process only the hash of
        the cache's own listing, and a few changed files cost no second listing here (a tenth of a second at
        10,000 posts).
        """
        assert self.cache is not None
        if not self.cache.exists():
            return None
        listing = forked_call(lambda: _keyed_listing(self.pages.walk(ordered=False)))
        state = self.cache.load(self)
        if state is None:
            listing()
            return None
        files: dict[str, _FileState] = state["files"]
        for file in files.values():
            post = file.post
            # static/ may have changed while the server was down: a post whose cover came or went is read again.
            if post is not None and post.cover and self._cover_missing(post.cover) != post.cover_missing:
                file.key = b""
            if file.problems and self.speaks():
                for problem in file.problems:
                    (log.error if problem.severity == "error" else log.warning)("%s", problem)
        self._files = files
        self._render_failed = state["render_failed"]
        self._listing = 0
        for relative, file in files.items():
            self._listing ^= _listed(relative, file.key)
        # Published even when some files changed: the indexes are those of the files taken, to be patched.
        self._entangled = state["entangled"]
        self._generation += 1
        self._publish(dataclasses.replace(state["snapshot"], generation=self._generation, changed_at=time.time()))
        count, found, listed = listing()
        if (count, found) == (len(files), self._listing):
            return True
        return marshal.loads(listed)  # noqa: S302 - written by our own forked child, through a private pipe

    def _state(self) -> dict[str, Any]:
        """Return what the post cache keeps of this store; a file whose reading may go otherwise next time is marked
        to be read again."""
        files = {relative: file if relative not in self._unlasting else _FileState(b"", file.post, file.problems,
                                                                                 file.last_good)
                 for relative, file in self._files.items()}
        return {"files": files, "snapshot": self._snapshot, "render_failed": dict(self._render_failed),
                "entangled": self._entangled}

    def refresh(self, relatives: Iterable[str] | None = None, quiet: float = 0.0) -> bool:
        """Re-read the given files (or rescan all), and publish a new snapshot if anything changed.

        With ``quiet``, a file modified less than that many seconds ago is left as it was (its last good
        version keeps serving) and listed in ``take_unsettled()`` for the caller to try again: a writer that
        pauses mid-file for less than ``quiet`` is never read half-done.
        """
        return self._refresh(relatives, quiet)

    def _refresh(self, relatives: Iterable[str] | None, quiet: float, listing_differs: bool = False,
                 listed_keys: list[tuple[str, FileKey]] | None = None) -> bool:
        with self._lock:
            changed = False
            self._quiet = quiet
            versions: dict[str, tuple[Post | None, Post | None]] | None = None  # a few files: before and after
            if relatives is None and listing_differs:
                # After a restore: a deploy that brought a few posts patches them into the cache's indexes
                # rather than building every index again.
                if listed_keys is None:
                    listed_keys = list(_keyed(self.pages.walk()))
                stale = [relative for relative, key in listed_keys
                         if (file := self._files.get(relative)) is None or file.key != key]
                stale += set(self._files) - {relative for relative, _ in listed_keys}
                if len(stale) <= LAYERED_CHANGES:
                    relatives = sorted(stale)
            if relatives is None:
                changed = self._rescan(listing_differs)
            else:
                extensions = tuple(self.pages.config("extension"))
                versions = {}
                for relative in relatives:
                    state = self._files.get(relative)
                    before = state.post if state is not None else None
                    if self._refresh_one(relative, extensions):
                        changed = True
                        state = self._files.get(relative)
                        versions[relative] = (versions.get(relative, (before,))[0],
                                              state.post if state is not None else None)
            if changed:
                patched = self._patched_snapshot(versions) if versions is not None else None
                self._publish(patched if patched is not None else self._build_snapshot())
            fresh, self._fresh = self._fresh, []
        for post in fresh:  # after publishing, so the render never delays a change showing
            if self.rendered is not None and not self.rendered.has(post):
                # Rendered now, while its file is as it was read: should the next edit break the file, the
                # render cache still holds this version for the last good post to show.
                self._render_into_cache(post)
        return changed

    def _rescan(self, listing_differs: bool) -> bool:
        """Compare every file of a new listing with its state and update those that changed.

        Tell whether any did.
        """
        # Nothing changed is the usual answer of a worker's catch-up and of every safety rescan, and is known
        # without visiting each file's state: that would touch every post's objects (their reference counts),
        # and with them every memory page a forked worker shares with gunicorn's master. Nor is the listing
        # held (100,000 stat results): it is walked again if it differs.
        if (self._files and not listing_differs
                and _listing(_keyed(self.pages.walk(ordered=False))) == (len(self._files), self._listing)):
            return False
        changed = False
        listed = list(self.pages.walk())
        if not self._loaded and not self._quiet:  # the first load: the files the cache did not give, on all cores
            stale = [index for index, (relative, status) in enumerate(listed)
                     if (file := self._files.get(relative)) is None or file.key != key_of(status)]
            for index, description in zip(stale, forked_map(self._describe, [listed[index][0] for index in stale])):
                relative, status = listed[index]
                # Keyed by the post's own copy of its path (equal to the listing's, which is dropped), so that
                # memory and the post cache hold each path once.
                changed |= self._update(description.fields[0] if description.fields else relative, status,
                                        description)
        else:
            for relative, status in listed:
                changed |= self._update(relative, status)
        for gone in set(self._files) - {relative for relative, _ in listed}:
            changed |= self._forget(gone)
        return changed

    def _refresh_one(self, relative: str, extensions: tuple[str, ...]) -> bool:
        parts = relative.split("/")
        if (any(map(self.pages.skips_folder, parts[:-1])) or not is_post_file(parts[-1], extensions)
                or not self.pages.reads_post(relative)):
            return self._forget(relative)
        try:
            status = os.stat(os.path.join(self.pages.root, relative), follow_symlinks=False)
        except OSError:
            return self._forget(relative)
        if not stat_module.S_ISREG(status.st_mode):
            return self._forget(relative)
        return self._update(relative, status)

    def _forget(self, relative: str) -> bool:
        self._render_failed.pop(relative, None)
        self._unlasting.discard(relative)
        state = self._files.pop(relative, None)
        if state is None:
            return False
        self._listing ^= _listed(relative, state.key)
        if self.speaks():
            log.info("%s: removed", relative)
        return True

    def take_unsettled(self) -> set[str]:
        """Return (and forget) the files the last quiet refresh left unread because they were just modified."""
        with self._lock:
            unsettled, self._unsettled = self._unsettled, set()
            return unsettled

    def _update(self, relative: str, status: os.stat_result, description: _Description | None = None) -> bool:
        key = key_of(status)  # ctime too: an edit that keeps size and mtime is still noticed
        previous = self._files.get(relative)
        if previous is not None and previous.key == key:
            return False
        if self._quiet and 0 <= time.time() - status.st_mtime < self._quiet:
            self._unsettled.add(relative)
            return False
        description = description or self._describe(relative)
        if description.lasting:
            self._unlasting.discard(relative)
        else:
            self._unlasting.add(relative)
        post, problems = self._attach(relative, description)
        if post is not None and self._loaded:
            self._fresh.append(post)
        last_good = post or (previous.post or previous.last_good if previous else None)
        if post is None and last_good is not None:
            problems = (*problems, Problem(relative, "warning", "stale",
                                           "serving the last good version until the file is fixed"))
        state = _FileState(key, post if post is not None else last_good, problems, last_good)
        if (previous is None or previous.problems != problems) and self.speaks():
            for problem in problems:
                (log.error if problem.severity == "error" else log.warning)("%s", problem)
        self._files[relative] = state
        self._listing ^= _listed(relative, key) ^ (_listed(relative, previous.key) if previous is not None else 0)
        return True

    def _describe(self, relative: str) -> _Description:
        """Read one file and work out its post, as plain data: it may be computed in a forked loader process."""
        try:
            source, status, digest = self.pages.read(relative, self.settings["BLOG_MAX_POST_SIZE"])
            return self._describe_post(relative, source, status, digest)
        except FileChanging as error:
            return _Description(problems=(Problem(relative, "warning", "changing", error.message),), lasting=False)
        except SourceError as error:
            return _Description(problems=(Problem(relative, "error", "unreadable", error.message, error.line, error.column),))
        except PostError as error:
            return _Description(problems=(Problem(relative, "error", "invalid", str(error), error.line),))
        except FileNotFoundError:
            return _Description(lasting=False)
        except OSError as error:
            return _Description(problems=(Problem(relative, "error", "unreadable", f"cannot read the file: {error.strerror}"),),
                                lasting=False)

    def _attach(self, relative: str, description: _Description) -> tuple[Post | None, tuple[Problem, ...]]:
        """Make the Post a description gives, bound to this store's reader, renderer and caches."""
        if description.meta is None:
            return None, description.problems
        problems = description.problems
        values = dict(zip(_FIELDS, description.fields))
        cover = values["cover"]
        cover_missing = bool(cover) and self._cover_missing(cover)  # looked at each time: static/ changes on its own
        if cover_missing:
            problems += (Problem(relative, "warning", "missing-cover", f"cover {cover!r} does not exist under static/",
                                 description.cover_line),)
        post = Post(**values, cover_missing=cover_missing, meta=description.meta, store=self,
                    kept=description.body)
        if description.refused:
            self._render_failed[relative] = post  # never handed to Markdown
        return post, problems

    def _describe_post(self, relative: str, source: Source, status: os.stat_result, digest: str) -> _Description:
        if self.kind == "page":
            return self._describe_page(relative, source, status, digest)
        separator = self.settings.get("BLOG_EXCERPT_SEPARATOR", rules.DEFAULT_EXCERPT_SEPARATOR)
        meta = self.jekyll.post_meta(relative, source.meta,
                                     "" if separator == rules.DEFAULT_EXCERPT_SEPARATOR else separator)
        problems: list[Problem] = []
        name = posixpath.basename(relative)
        file_date, stem = rules.split_file_name(name)
        if not source.has_front_matter:
            problems.append(Problem(relative, "warning", "no-front-matter", "no front matter: title and date are guessed", 1))
        dated = True
        if meta.get("date") not in (None, ""):
            try:
                date = rules.parse_date(meta["date"], self.zone)
            except PostError as error:
                error.line = source.line_of("date")
                raise
        elif file_date is not None:
            date = dt.datetime(file_date.year, file_date.month, file_date.day, tzinfo=self.zone)
        else:
            dated = False
            date = dt.datetime.fromtimestamp(status.st_mtime, self.zone).replace(microsecond=0)
            problems.append(Problem(relative, "warning", "undated",
                                    "no date in the front matter or the file name (YYYY-MM-DD-); using the file's modification time"))
        updated_value = meta.get("last_modified_at") or meta.get("updated") or meta.get("modified")
        try:
            updated = max(date, rules.parse_date(updated_value, self.zone)) if updated_value else date
        except PostError:
            updated = date
            problems.append(Problem(relative, "warning", "invalid-updated",
                                    f"ignoring last_modified_at {updated_value!r}: not a date",
                                    _key_line(source, "last_modified_at", "updated", "modified")))
        slug = rules.slugify(rules.first_text(meta, "slug") or stem) or rules.slugify(relative) or "post"
        draft = relative.split("/")[0] == "_drafts" or "/_drafts/" in f"/{relative}"
        category_names = self.jekyll.categories(relative, meta, draft)
        categories = rules.terms(category_names)
        tags = rules.terms(jekyll.jekyll_tags(meta))
        custom = rules.first_text(meta, "permalink")
        parts = jekyll.url_parts(self.jekyll.site_path(relative), meta, category_names,
                                 jekyll.url_date(meta.get("date"), date, self.zone) if meta.get("date") not in (None, "")
                                 else date.astimezone(self.zone),
                                 self.jekyll.output_ext(posixpath.splitext(name)[1]))
        expanded, unknown_placeholders = jekyll.expand(custom or self.settings["BLOG_PERMALINK"], parts)
        url = rules.normalize_url(expanded)
        if unknown_placeholders:
            listed = ", ".join(":" + placeholder for placeholder in dict.fromkeys(unknown_placeholders))
            problems.append(Problem(relative, "warning", "permalink",
                                    f"permalink {custom or self.settings['BLOG_PERMALINK']!r} uses {listed}, which Jekyll "
                                    "does not know (jekyll build stops on it); left as written",
                                    _key_line(source, "permalink") if custom else None))
        elif custom and ":" not in custom and url != "/" + unquote(custom).lstrip("/"):
            problems.append(Problem(relative, "warning", "permalink", f"permalink {custom!r} was normalised to {url!r}",
                                    _key_line(source, "permalink")))
        cover = rules.first_text(meta, "cover", "image")
        if cover and not rules.is_safe_url(cover):
            problems.append(Problem(relative, "warning", "unsafe-cover",
                                    f"cover {cover[:80]!r} is not an http(s) or site URL; dropped", source.line_of("cover")))
            cover = None
        layout = rules.first_text(meta, "layout")
        if layout and layout not in rules.KNOWN_LAYOUTS:
            problems.append(Problem(relative, "warning", "unknown-layout",
                                    f"layout {layout!r} is unknown; using 'post'", _key_line(source, "layout")))
        refused = _body_problems(relative, source, problems)
        published = meta.get("published", True) is not False and (not draft or self.settings.get("BLOG_SHOW_DRAFTS", False))
        fields = {
            "source": relative, "url": url, "slug": slug,
            "title": rules.first_text(meta, "title") or rules.title_from_slug(slug),
            "date": date, "updated": updated, "dated": dated,
            "author": rules.term(rules.first_text(meta, "author")),
            "categories": categories, "tags": tags, "cover": cover, "layout": layout,
            "published": published, "draft": not published,
            "sort_key": (date.timestamp(), relative), "stem": name.rsplit(".", 1)[0],
        }
        return self._description(source, meta if meta is source.meta else dict(meta), fields, problems, refused,
                                 digest)

    def _description(self, source: Source, meta: dict[str, Any], fields: dict[str, Any], problems: list[Problem],
                     refused: str | None, digest: str) -> _Description:
        """Return what a file gave, with the little a post keeps of its body: word count, digest, links."""
        fields.update(words=rules.word_count(source.body), digest=digest, links=linked_posts(source.body))
        # Without a render cache, a broken edit could only show the last good version from a body kept here.
        kept = None if self.rendered else (source.body, source.body_line)
        cover_line = _key_line(source, "cover", "image") if fields["cover"] else None
        values = tuple(fields[name] if name in fields else _FIELD_DEFAULTS[name] for name in _FIELDS)
        return _Description(meta, values, tuple(problems), refused is not None, cover_line=cover_line, body=kept)

    def _describe_page(self, relative: str, source: Source, status: os.stat_result, digest: str) -> _Description:
        """Work out a page: served at its path or ``permalink``, undated, and never in listings or feeds."""
        meta = source.meta
        if self.jekyll_pages and not source.has_front_matter:
            return _Description()  # Jekyll copies such a file as it is: it is no page
        problems: list[Problem] = []
        if self.jekyll.is_site:
            meta = self.jekyll.page_meta(relative, meta)
            url = self.jekyll.page_url(relative, meta)
            if url == "/":
                return _Description(problems=(Problem(
                    relative, "warning", "home-page", "Jekyll's home page: Quire's own home page (the newest posts) "
                    "stays at /, so this page is not served", _key_line(source, "permalink")),))
            lists = jekyll.POST_LISTINGS.search(source.body)
            listing = lists.group(1) if lists else self.jekyll.layout_lists_posts(rules.first_text(meta, "layout"))
            if listing:
                where = _body_position(source, jekyll.POST_LISTINGS) if lists else (_key_line(source, "layout"), None)
                problems.append(Problem(relative, "warning", "post-listing",
                                        f"lists posts with {listing} ({'in the page' if lists else 'in its layout'}), "
                                        "which Quire does not render: the page is served without that list", *where))
        modified = dt.datetime.fromtimestamp(status.st_mtime, self.zone).replace(microsecond=0)
        updated = modified
        for keys in (("last_modified_at", "updated", "modified"), ("date",)):
            value = next((meta[key] for key in keys if meta.get(key) not in (None, "")), None)
            if value is None:
                continue
            try:
                updated = rules.parse_date(value, self.zone)
                break
            except PostError:
                problems.append(Problem(relative, "warning", "invalid-updated", f"ignoring {value!r}: not a date",
                                        _key_line(source, *keys)))
        custom = rules.first_text(meta, "permalink")
        if self.jekyll.is_site:
            if rules.normalize_url(url) != url:
                problems.append(Problem(relative, "warning", "permalink",
                                        f"Jekyll's URL {url!r} was normalised to {rules.normalize_url(url)!r}",
                                        _key_line(source, "permalink")))
            url = rules.normalize_url(url)
        else:
            url = rules.normalize_url(unquote(custom)) if custom else rules.page_url(relative, self.jekyll_pages)
        if custom and url != custom and not self.jekyll.is_site:
            problems.append(Problem(relative, "warning", "permalink", f"permalink {custom!r} was normalised to {url!r}",
                                    _key_line(source, "permalink")))
        nav = meta.get("nav")
        if nav is not None and (isinstance(nav, bool) or not isinstance(nav, (int, float))):
            problems.append(Problem(relative, "warning", "invalid-nav",
                                    f"nav {nav!r} is not a number such as 1 or 2.5; the page is left out of the navigation",
                                    _key_line(source, "nav")))
            nav = None
        refused = _body_problems(relative, source, problems)
        name = posixpath.basename(relative).rsplit(".", 1)[0]
        slug = rules.slugify(rules.first_text(meta, "slug") or url.strip("/").replace("/", "-") or "index") or "page"
        cover = rules.first_text(meta, "cover", "image")
        if cover and not rules.is_safe_url(cover):
            problems.append(Problem(relative, "warning", "unsafe-cover",
                                    f"cover {cover[:80]!r} is not an http(s) or site URL; dropped", source.line_of("cover")))
            cover = None
        published = meta.get("published", True) is not False
        fields = {
            "source": relative, "url": url, "slug": slug,
            "title": rules.first_text(meta, "title") or rules.title_from_slug(slug if name == "index" else name),
            "date": updated, "updated": updated, "dated": False, "author": None, "categories": (), "tags": (),
            "cover": cover, "layout": rules.first_text(meta, "layout"), "published": published, "draft": not published,
            # Never "in the future": a page's date says when it changed, not when to show it.
            "sort_key": (0.0, relative), "stem": name, "kind": "page", "nav": nav,
        }
        return self._description(source, meta, fields, problems, refused, digest)

    def _cover_missing(self, cover: str) -> bool:
        if "://" in cover or cover.startswith("//") or cover.startswith("data:"):
            return False
        path = rules.normalize_url(unquote(cover.split("?", 1)[0].split("#", 1)[0]))
        if self.jekyll.site_file(path) is not None:  # a Jekyll site's own /assets/... are served at their path
            return False
        relative = path[len("/static/"):] if path.startswith("/static/") else path.lstrip("/")
        return not any(os.path.isfile(os.path.join(root, relative)) for root in self.static_roots)

    # Indexing ------------------------------------------------------------------------------------

    def _build_snapshot(self) -> Snapshot:
        # Runs on every change: at 10,000 posts each pass here costs milliseconds, so keys are precomputed
        # on the posts and everything is one or two passes over them.
        now = self.clock().timestamp()
        show_future = self.settings["BLOG_SHOW_FUTURE"]
        problems: dict[str, list[Problem]] = {
            relative: list(state.problems) for relative, state in self._files.items() if state.problems}
        candidates = sorted((state.post for state in self._files.values() if state.post is not None),
                            key=attrgetter("sort_key"))
        by_url: dict[str, Post] = {}
        hidden: dict[str, Post] = {}
        by_stem: dict[str, Post] = {}
        publish_at: float | None = None
        entangled = False
        for post in candidates:  # oldest first, so the older post keeps a contested URL
            entangled |= by_stem.setdefault(post.stem, post) is not post or _redirecting(post)
            owner = by_url.get(post.url) or hidden.get(post.url)
            if owner is not None:
                entangled = True
                message = f"URL {post.url} is also used by {owner.source}, which is older and wins"
                problems.setdefault(post.source, []).append(Problem(post.source, "error", "duplicate-url", message))
                problems.setdefault(owner.source, []).append(Problem(
                    owner.source, "warning", "duplicate-url", f"URL {post.url} is also claimed by {post.source}"))
                continue
            future = not show_future and post.is_future(now)
            if future:
                problems.setdefault(post.source, []).append(Problem(
                    post.source, "info", "future", f"dated {post.date.isoformat()}, in the future: hidden until then"))
                publish_at = post.sort_key[0] if publish_at is None else min(publish_at, post.sort_key[0])
            if not post.published:
                problems.setdefault(post.source, []).append(Problem(post.source, "info", "draft", "draft: not published"))
            # The author's preview server (BLOG_DEV) shows drafts and future posts among the rest, marked.
            hides = (future or not post.published) and not self.settings.get("BLOG_DEV")
            (hidden if hides else by_url)[post.url] = post
        posts = tuple(post for post in reversed(candidates) if by_url.get(post.url) is post)
        categories, tags, authors = _groups(posts)
        redirects = _redirects(by_url, problems)
        self._entangled = entangled
        self._generation += 1
        return Snapshot(
            generation=self._generation,
            posts=posts,
            by_url=by_url,
            hidden_by_url=hidden,
            by_stem=by_stem,
            categories=categories,
            tags=tags,
            authors=authors,
            problems={relative: tuple(found) for relative, found in problems.items()},
            changed_at=time.time(),
            publish_at=publish_at,
            redirects=redirects,
        )

    def _patched_snapshot(self, versions: Mapping[str, tuple[Post | None, Post | None]]) -> Snapshot | None:
        """Return the current snapshot with a few files' posts changed, or None where only a full build is right.

        The work is the changed posts' share of the indexes (a bisect and a copy of each list they are in),
        not a pass over every post: with one post changing every second, the site's size stays out of it.
        """
        old = self._snapshot
        now = self.clock().timestamp()
        if self._entangled or (old.publish_at is not None and now >= old.publish_at):
            return None
        show_future = self.settings["BLOG_SHOW_FUTURE"]
        posts = list(old.posts)
        # Copying a dictionary of 100,000 posts takes milliseconds; a patch over the old one takes none.
        by_url, hidden, by_stem = _Patch(old.by_url), _Patch(old.hidden_by_url), _Patch(old.by_stem)
        problems = dict(old.problems)
        groups = {"categories": dict(old.categories), "tags": dict(old.tags), "authors": dict(old.authors)}
        publish_at = old.publish_at
        gone: dict[str, Post] = {}  # URL -> the public post that left it
        for before, _ in versions.values():  # out first, so posts that trade URLs or stems find them free
            if before is None:
                continue
            if before.is_future(now) and not show_future:
                return None  # the next publication time may be a later one: worked out over every post
            if by_url.get(before.url) is before:
                del by_url[before.url]
                gone[before.url] = before
                if not _unlist(posts, groups, before):
                    return None
            elif hidden.get(before.url) is before:
                del hidden[before.url]
            if by_stem.get(before.stem) is before:
                del by_stem[before.stem]
        came: dict[str, Post] = {}
        for relative, (_, after) in versions.items():
            state = self._files.get(relative)
            found = list(state.problems) if state is not None else []
            if after is not None:
                if (_redirecting(after) or after.url in old.redirects or after.url in by_url or after.url in hidden
                        or after.stem in by_stem):
                    return None
                by_stem[after.stem] = after
                future = not show_future and after.is_future(now)
                if future:
                    found.append(Problem(relative, "info", "future",
                                         f"dated {after.date.isoformat()}, in the future: hidden until then"))
                    publish_at = after.sort_key[0] if publish_at is None else min(publish_at, after.sort_key[0])
                if not after.published:
                    found.append(Problem(relative, "info", "draft", "draft: not published"))
                if (future or not after.published) and not self.settings.get("BLOG_DEV"):
                    hidden[after.url] = after
                else:
                    by_url[after.url] = after
                    came[after.url] = after
                    _enlist(posts, groups, after)
            if found:
                problems[relative] = tuple(found)
            else:
                problems.pop(relative, None)
        changes = tuple((gone.get(url), came.get(url)) for url in {**gone, **came} if gone.get(url) is not came.get(url))
        self._generation += 1
        return Snapshot(
            generation=self._generation, posts=tuple(posts), by_url=by_url.done(), hidden_by_url=hidden.done(),
            by_stem=by_stem.done(),
            categories=groups["categories"], tags=groups["tags"], authors=groups["authors"], problems=problems,
            changed_at=time.time(), publish_at=publish_at, redirects=old.redirects, changes=changes,
        )

    def _publish(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        for listener in self.listeners:
            listener(snapshot)


LAYERED_CHANGES = 512  # past this many changes over its base, a layered mapping is made one dictionary again
_ABSENT = object()


class Layered(Mapping[str, Post]):
    """A read-only mapping of a few changes over a larger one, so that a patched snapshot copies only its changes."""

    __slots__ = ("base", "changes", "_length")

    def __init__(self, base: Mapping[str, Post], changes: dict[str, Post | None]):
        self.base = base
        self.changes = changes  # key -> new value, or None where the key was removed
        self._length = len(base) + sum((value is not None) - (key in base) for key, value in changes.items())

    def __getitem__(self, key: str) -> Post:
        value = self.changes.get(key, _ABSENT)
        if value is _ABSENT:
            return self.base[key]
        if value is None:
            raise KeyError(key)
        return value  # type: ignore[return-value]

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value at ``key``, or ``default``: one or two dictionary looks (the path of every request)."""
        value = self.changes.get(key, _ABSENT)
        if value is _ABSENT:
            return self.base.get(key, default)
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        value = self.changes.get(key, _ABSENT)  # type: ignore[call-overload]
        return key in self.base if value is _ABSENT else value is not None

    def __iter__(self) -> Iterator[str]:
        changes = self.changes
        yield from (key for key in self.base if key not in changes)
        yield from (key for key, value in changes.items() if value is not None)

    def __len__(self) -> int:
        return self._length


class _Patch:
    """The changes a patched snapshot makes to one of its mappings, kept apart from the old mapping."""

    def __init__(self, old: Mapping[str, Post]):
        if isinstance(old, Layered):
            self.base, self.changes = old.base, dict(old.changes)
        else:
            self.base, self.changes = old, {}

    def get(self, key: str) -> Post | None:
        value = self.changes.get(key, _ABSENT)
        return self.base.get(key) if value is _ABSENT else value  # type: ignore[return-value]

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __setitem__(self, key: str, value: Post) -> None:
        self.changes[key] = value

    def __delitem__(self, key: str) -> None:
        self.changes[key] = None

    def done(self) -> Mapping[str, Post]:
        """Return the new mapping: layered over the old one, or one dictionary once the changes pile up."""
        layered = Layered(self.base, self.changes)
        return dict(layered) if len(self.changes) > LAYERED_CHANGES else layered


def _listed(relative: str, key: FileKey) -> int:
    """Return one file's share of PostStore._listing: a hash of its path and (mtime, size, inode, ctime)."""
    return hash((relative, key))


def _keyed(listed: Iterable[tuple[str, os.stat_result]]) -> Iterator[tuple[str, FileKey]]:
    """Yield (path, key) of each file of a listing (``PostPages.walk``)."""
    return ((relative, key_of(status)) for relative, status in listed)


def _keyed_listing(listed: Iterable[tuple[str, os.stat_result]]) -> tuple[int, int, bytes]:
    """Return ``_listing``'s count and hash of the files, and their (path, key) list, marshalled."""
    keyed = list(_keyed(listed))
    return (*_listing(keyed), marshal.dumps(keyed))


def _listing(keyed: Iterable[tuple[str, FileKey]]) -> tuple[int, int]:
    """Return how many files there are and the PostStore._listing a store holding exactly them would have."""
    count = found = 0
    for relative, key in keyed:
        found ^= _listed(relative, key)
        count += 1
    return count, found


def _redirecting(post: Post) -> bool:
    return "redirect_from" in post.meta or "redirect_to" in post.meta


_KINDS = (("categories", attrgetter("categories")), ("tags", attrgetter("tags")),
          ("authors", lambda post: (post.author,) if post.author else ()))


def _place(posts: Sequence[Post], post: Post) -> int:
    """Return where ``post`` goes in ``posts`` (newest first by ``sort_key``), by bisection."""
    low, high = 0, len(posts)
    while low < high:
        middle = (low + high) // 2
        if posts[middle].sort_key > post.sort_key:
            low = middle + 1
        else:
            high = middle
    return low


def _unlist(posts: list[Post], groups: dict[str, dict[str, Group]], post: Post) -> bool:
    """Take a public post out of the posts and its groups (the groups' tuples copied, never changed).

    Return False, having changed nothing that matters, if the post is not where its sort key says.
    """
    at = _place(posts, post)
    if at == len(posts) or posts[at] is not post:
        return False
    del posts[at]
    for kind, terms_of in _KINDS:
        found = groups[kind]
        for term in terms_of(post):
            group = found.get(term.slug)
            members = group.posts if group is not None else ()
            at = _place(members, post)
            if at == len(members) or members[at] is not post:
                return False
            rest = members[:at] + members[at + 1:]
            if rest:
                found[term.slug] = Group(_named(rest[0], kind, term.slug), rest, group.membership ^ member_print(post))
            else:
                del found[term.slug]
    return True


def _enlist(posts: list[Post], groups: dict[str, dict[str, Group]], post: Post) -> None:
    """Put a public post into the posts and its groups, in date order; a new group keeps the slugs sorted."""
    posts.insert(_place(posts, post), post)
    for kind, terms_of in _KINDS:
        found = groups[kind]
        for term in terms_of(post):
            group = found.get(term.slug)
            if group is None:
                found[term.slug] = Group(term, (post,), member_print(post))
                groups[kind] = found = dict(sorted(found.items()))
                continue
            at = _place(group.posts, post)
            members = group.posts[:at] + (post,) + group.posts[at:]
            found[term.slug] = Group(_named(members[0], kind, term.slug), members, group.membership ^ member_print(post))


def _named(post: Post, kind: str, slug: str) -> Term:
    """Return the term a group is named by: as its newest post writes it (what a full build keeps too)."""
    terms_of = dict(_KINDS)[kind]
    return next(term for term in terms_of(post) if term.slug == slug)


def _groups(posts: tuple[Post, ...]) -> tuple[dict[str, Group], dict[str, Group], dict[str, Group]]:
    """Return the categories, tags and authors of ``posts``, each slug with its posts in the same order."""
    kinds: tuple[dict[str, list[Post]], ...] = ({}, {}, {})
    names: dict[tuple[int, str], Term] = {}
    memberships: dict[tuple[int, str], int] = {}
    for post in posts:
        mine = member_print(post)
        for kind, terms in enumerate((post.categories, post.tags, (post.author,) if post.author else ())):
            groups = kinds[kind]
            for term in terms:
                members = groups.get(term.slug)
                if members is None:
                    members = groups[term.slug] = []
                    names[kind, term.slug] = term
                    memberships[kind, term.slug] = 0
                members.append(post)
                memberships[kind, term.slug] ^= mine
    return tuple(  # type: ignore[return-value]
        {slug: Group(names[kind, slug], tuple(found), memberships[kind, slug]) for slug, found in sorted(groups.items())}
        for kind, groups in enumerate(kinds)
    )


def member_print(post: Post) -> int:
    """Return a post's share of its groups' membership: a hash of its URL and date, the same in every process."""
    return int.from_bytes(hashlib.blake2b(f"{post.url}\0{post.sort_key[0]!r}".encode("utf-8", "surrogatepass"),
                                          digest_size=16).digest(), "big")


def _body_problems(relative: str, source: Source, problems: list[Problem]) -> str | None:
    """Add the body's render and Liquid problems to ``problems``; return why it is never rendered, if it is not."""
    refused = pathological(source.body)
    if refused is not None:  # found at load, so `blog check` and /healthz know before anyone views it
        problems.append(Problem(relative, "error", "render", f"not rendered: {refused}; shown as plain text"))
    unknown = unknown_liquid_tags(source.body)
    if unknown:
        listed = ", ".join(f"{{% {tag} %}}" for tag in unknown)
        first = re.compile(r"\{%-?\s*(?:" + "|".join(map(re.escape, unknown)) + r")\b")
        problems.append(Problem(relative, "warning", "liquid", f"Liquid tags not supported, shown as they are: {listed}",
                                *_body_position(source, first)))
    return refused


def _redirects(by_url: Mapping[str, Post], problems: dict[str, list[Problem]]) -> dict[str, str]:
    """Return the moves the public posts ask for (jekyll-redirect-from's ``redirect_from`` and ``redirect_to``)."""
    redirects: dict[str, str] = {}
    claimed: dict[str, Post] = {}
    for post in by_url.values():
        if "redirect_from" not in post.meta and "redirect_to" not in post.meta:
            continue  # nearly every post: two dictionary looks
        found = problems.setdefault(post.source, [])
        for origin in jekyll.redirect_from(post.meta):
            if origin in by_url:
                found.append(Problem(post.source, "warning", "redirect",
                                     f"redirect_from {origin} is the URL of {by_url[origin].source}, which keeps it"))
            elif origin in claimed:
                found.append(Problem(post.source, "warning", "redirect",
                                     f"redirect_from {origin} is also claimed by {claimed[origin].source}, which keeps it"))
            else:
                claimed[origin] = post
                redirects[origin] = post.url
                found.append(Problem(post.source, "info", "redirect", f"{origin} redirects (301) to {post.url}"))
        target = jekyll.redirect_to(post.meta)
        if target is not None and target != post.url:
            redirects[post.url] = target
            found.append(Problem(post.source, "info", "redirect", f"{post.url} redirects (301) to {target} (redirect_to)"))
    return redirects


def _body_position(source: Source, pattern: re.Pattern[str]) -> tuple[int | None, int | None]:
    """Return the file line and column where ``pattern`` first matches the body, if it does."""
    found = pattern.search(source.body)
    if found is None:
        return None, None
    start = found.start()
    return source.body_line + source.body.count("\n", 0, start), start - (source.body.rfind("\n", 0, start) + 1) + 1


def _key_line(source: Source, *keys: str) -> int | None:
    """Return the file line of the first of ``keys`` set in the front matter, so check can point at it."""
    return next((line for line in map(source.line_of, keys) if line is not None), None)
