"""Static export: every page, feed and asset written as files, on all cores, rewriting only what changed.

The pages to write are listed from the store (every post, listing page, feed, terms page, the sitemap), and
rendered through the app itself by forked children, each with its own test client over a slice of the
list. Each page gets a key: a digest of everything it shows (the posts on it, their neighbours and related
posts, the code, templates, static files and settings). The manifest of the previous export (``MARKER``,
inside it) records each page's key, content digest and links; a page whose key is unchanged is not rendered
again, and a page whose bytes are unchanged is not written again.

The export before the previous one is kept beside the folder as a spare generation (``.NAME.spare``, its
unchanged files hard links shared with the folder). An export brings the spare up to the new state, writing
only the files whose bytes differ from what the spare holds and deleting those no longer produced, then
exchanges it with the folder in one atomic step: a reader of the folder sees the old export or the new one,
never half of either, and the work grows with the change, not with the site. Without a spare it can trust,
the new tree is built afresh beside the folder, its unchanged files hard-linked from the previous export.
Afterwards the links of the pages rendered again are followed and checked (those of every page when the set
of pages or files changed): a linked URL the list missed is rendered too (a redirect, say), and a link to
nothing is reported.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import gc
import gzip
import hashlib
import html
import io
import json
import logging
import marshal
import os
import pickle
import posixpath
import re
import secrets
import selectors
import shutil
import signal
import struct
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Any, BinaryIO
from urllib.parse import unquote, urljoin, urlsplit

from flask import Flask, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.test import EnvironBuilder

from blog import feeds
from blog.content import Post, PostStore, isolation
from blog.content.derived import archive_year, archive_years, related
from blog.content.cache import parse_fingerprint, pickled_by_constructor, unsafe
from blog.content.jekyll import JekyllSite
from blog.content.parallel import detach, fork_writer, may_fork, reap, usable_cpus
from blog.content.store import Snapshot
from blog.theme import static_folders
from blog.page_cache import membership_print, post_version, site_fingerprint
from blog.views import RELATED_POSTS

log = logging.getLogger("quire")

MARKER = ".quire-freeze"  # the manifest; it also marks a folder this command made, which the next export may replace
# Of the manifest: another value means a clean build. 2: a header line (read alone to identify a spare), then
# the body, each page's links as ids into one table of references, the spare's difference from this export.
# 3: the body in marshal, not JSON: a fifth of the time to write and half to read (12 MB at 10,000 posts).
FORMAT = 3
SEEDS = ("/", "/robots.txt", "/sitemap.xml", "/favicon.ico")  # a seed that is missing is a feature this site lacks, not a broken link
DYNAMIC_ENDPOINTS = frozenset({"search.results", "health.healthz"})  # need a server; a static host cannot answer
NOT_FOUND_PROBE = "/quire-freeze-missing-page/"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Files nginx's gzip_static (and a CDN) can serve compressed; images and fonts are compressed already.
COMPRESSED_SUFFIXES = frozenset({".html", ".xml", ".json", ".txt", ".css", ".js", ".mjs", ".svg", ".map", ".ico",
                                 ".webmanifest", ".csv", ".md"})
GZIP_LEVEL = 9  # written once, served many times
# A feed's three forms share one list of entries, each entry's links made absolute by an HTML parse of the
# whole post: built once per feed (in one process), not once per form.
FEED_FORMS = (("feed.xml", "atom"), ("rss.xml", "rss"), ("feed.json", "json"))
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
MIN_PAGES_PER_PROCESS = 50  # below this, forking and a second copy of the caches cost more than they save
BATCH = 32  # outcomes per message from a child: fewer wake-ups for the parent, a smooth enough progress bar

Progress = Callable[[int], AbstractContextManager[Any]]
# A page kept as it was, as a child sends it: (path, files written, files linked, bytes written, whether its
# related posts are as the manifest says, else what they are now).
Kept = tuple[str, int, int, int, bool, "tuple[str, list[str]] | None"]


class FreezeError(Exception):
    """The export cannot be written where it was asked to go."""


@dataclass
class Report:
    """What an export did: files written, kept and deleted, links it could not resolve, files it refused."""

    files: int = 0  # in the export now, compressed copies included, the manifest not
    written: int = 0
    unchanged: int = 0  # the same bytes as in the previous export (hard links of its files, or the spare's own)
    deleted: int = 0  # in the previous export, no longer produced
    bytes: int = 0  # written
    rendered: int = 0  # pages asked of the app; the others were known unchanged from the manifest
    discovered: int = 0  # pages found only by following links (redirects, pages the list does not know)
    seconds: float = 0.0
    processes: int = 1  # that rendered the pages
    broken: list[tuple[str, str]] = field(default_factory=list)  # (exported file, link leading nowhere)
    failed: list[tuple[str, int]] = field(default_factory=list)  # (linked URL, status it answered)
    refused: list[str] = field(default_factory=list)  # static files the server refuses (symlinks out of static/)


@dataclass(frozen=True)
class Job:
    """One URL to export; ``post`` when it is a post's page, whose key is worked out by the process rendering it."""

    path: str
    key: str | None  # None: rendered every time
    post: Post | None = None
    feed: tuple[str, str, str] | None = None  # (kind, slug, form) of a feed; kind "" for the site's own


@pickled_by_constructor  # sent by a child for every page it exports
@dataclass(slots=True)
class Outcome:
    """What exporting one URL gave: picklable, so a child can send it to the parent.

    Not frozen: one is made for every page of the site, and a frozen one took four times as long to make.
    """

    path: str
    status: int
    key: str | None = None
    file: str | None = None  # relative to the export; None when nothing was written (a failure, a shared file)
    digest: str = ""
    size: int = 0
    references: tuple[str, ...] = ()  # links in the page, each once, in order
    written: int = 0  # files written (the page and its compressed copy); the rest were linked unchanged
    linked: int = 0
    bytes: int = 0
    rendered: bool = False
    related: tuple[str, list[str]] | None = None  # a post page's (related key, related URLs), for the next run
    encoded: str | None = None  # not rendered again: its references as ids into the previous manifest's table


@dataclass(frozen=True)
class _Response:
    """What the app answered for one URL: status, Location (or ""), media type and the whole body."""

    status: int
    location: str
    mimetype: str
    body: bytes


@dataclass
class _Previous:
    """The export being replaced: its folder and what its manifest says (nothing, for a clean build)."""

    folder: Path | None = None
    pages: dict[str, list[Any]] = field(default_factory=dict)  # path -> [key, file, digest, size, "id,id,..."]
    statics: dict[str, list[Any]] = field(default_factory=dict)  # file -> [digest, size, source mtime_ns]
    related: dict[str, list[Any]] = field(default_factory=dict)  # post URL -> [related key, related URLs]
    references: list[str] = field(default_factory=list)
    compressed: tuple[str, ...] = ()
    files: frozenset[str] = frozenset()
    generation: str = ""  # of the tree in the folder
    shape: str = ""  # digest of the planned paths and their files: when unchanged, so are unchanged pages' links
    leads: dict[str, list[str]] = field(default_factory=dict)  # path -> the URLs outside the plan it links to
    broken: dict[str, list[str]] = field(default_factory=dict)  # path -> its links leading nowhere
    spare: dict[str, Any] | None = None  # {"generation": of the spare, "changed": file -> [digest, size] or None}
    versions: dict[str, list[str]] = field(default_factory=dict)  # post file -> [its check, its version]
    versions_context: str = ""  # the parsing code, settings and site the versions were worked out under


@dataclass
class _Spare:
    """The generation before the previous export, beside it, and the files it holds (digest and size of each)."""

    folder: Path
    states: dict[str, tuple[str, int]]  # as the manifest says; each is checked by its size before it is kept
    survey: _Survey  # the files there, compressed copies included: any the new export lacks goes (added by hand)


class _Survey:
    """The files under a folder, listed by a forked child while the export goes on, for when they are needed.

    Listing the 16,800 folders of a 10,000-post export takes tenths of a second, which the other core spends
    while this one plans; where it cannot fork, the list is made when asked for.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.pid = 0
        self._pipe: io.BufferedReader | None = None
        self._files: set[str] | None = None
        if not may_fork():
            return
        try:  # NUL: the one byte no file name holds
            pid, reading = fork_writer(lambda pipe: pipe.write(
                "\0".join(_relative_files(folder)).encode("utf-8", "surrogateescape")))
        except OSError:
            return
        self.pid, self._pipe = pid, os.fdopen(reading, "rb")

    def files(self) -> set[str]:
        """Return every file under the folder (the manifest aside), waiting for the child's list if need be."""
        if self._files is None:
            if self._pipe is not None:
                data = self._pipe.read()
                self.stop()
                self._files = set(data.decode("utf-8", "surrogateescape").split("\0")) if data else set()
            else:
                self._files = set(_relative_files(self.folder))
            self._files.discard(MARKER)
        return self._files

    def stop(self) -> None:
        """Stop and reap the child if it is still there."""
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            reap(self.pid)
            self.pid = 0


def freeze(app: Flask, folder: Path, progress: Progress, *, full: bool = False, compress: Iterable[str] = (),
           processes: int | None = None) -> Report:
    """Export the site into ``folder`` (replaced only if an earlier export made it); return what happened.

    ``full`` ignores the previous export and writes every file afresh; ``compress`` ("gz") writes a compressed
    copy beside every text file; ``processes`` defaults to every usable CPU.
    """
    started = time.perf_counter()
    app.config["QUIRE_RENDER_BUDGET"] = None  # every page whole: a render may take its full deadline
    folder = folder.resolve()
    if folder.exists() and any(folder.iterdir()) and not (folder / MARKER).exists():
        raise FreezeError(f"{folder} is not empty and was not made by blog freeze; choose an empty or new folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock(folder)
    # The export's tables (the manifest read, a record of every page) are hundreds of thousands of objects
    # with hardly a cycle among them: the collector rescanned them for 80 ms of a 1.6 s incremental export.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _export(app, folder, progress, full, tuple(sorted(set(compress))), processes, started)
    finally:
        if collecting:
            gc.enable()
        os.close(lock)  # after the swap: its lock is on the folder that is now the spare


def _lock(folder: Path) -> int:
    """Lock ``folder`` (made empty if missing) against another export into it; return the descriptor holding it.

    Two exports into one folder would both bring its spare up to date and could swap in a tree that is half
    of each. The lock is on the folder itself, so nothing is left beside it; a file system that cannot lock
    (some network ones) exports unlocked, as before.
    """
    folder.mkdir(exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise FreezeError(f"another blog freeze is exporting into {folder}; run this one when it has finished") from None
    except OSError:
        pass
    return descriptor


def _export(app: Flask, folder: Path, progress: Progress, full: bool, compress: tuple[str, ...],
            processes: int | None, started: float) -> Report:
    """Do freeze's work, the folder locked."""
    previous = _Previous() if full else _read_manifest(folder)
    spare = None if full else _open_spare(spare_folder(folder), previous, compress)
    root = spare.folder if spare is not None else Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        if spare is not None:
            (root / MARKER).unlink(missing_ok=True)  # until the new manifest is written, the spare is untrusted
        exporter = _Exporter(app, root, previous, compress, spare)
        report = exporter.run(progress, processes or usable_cpus(), folder)
        exporter.prune()
        exporter.write_manifest()
        if previous.folder is None and folder.exists():  # a clean build: everything there goes
            previous.files = frozenset(_relative_files(folder)) - {MARKER}
        report.deleted = len(previous.files - exporter.files)
    except BaseException:
        if spare is None:
            shutil.rmtree(root, ignore_errors=True)  # the previous export stays as it was
        else:
            spare.survey.stop()
        raise  # a spare left without its manifest is built afresh by the next export
    _swap(root, folder, keep=previous.folder is not None)
    report.seconds = time.perf_counter() - started
    return report


def spare_folder(folder: Path) -> Path:
    """Return where the export before the one in ``folder`` is kept, to be brought up to date by the next one."""
    return folder.with_name(f".{folder.name}.spare")


class _Exporter:
    """One export into a new tree or the spare: the plan, the rendering, the statics, the link check and the manifest."""

    def __init__(self, app: Flask, root: Path, previous: _Previous, compress: tuple[str, ...], spare: _Spare | None):
        self.app = app
        self.root = root
        self.previous = previous
        self.compress = compress
        self.spare = spare
        self.base = app.config["BLOG_URL"]
        self.store: PostStore = app.extensions["quire"]
        self.snapshot: Snapshot = self.store.snapshot
        self.outcomes: dict[str, Outcome] = {}
        self.statics: dict[str, list[Any]] = {}
        self.files: set[str] = set()
        self.report = Report()
        self._environ: dict[str, Any] = EnvironBuilder(path="/").get_environ()
        self._targets: dict[str, str | None] = {}
        self._endpoints: dict[str, str | None] = {}
        self.planned: frozenset[str] = frozenset()  # the paths of the plan, and below their files and the statics'
        self.planned_files: frozenset[str] = frozenset()
        self.shape = ""
        self.leads: dict[str, list[str]] = {}
        self.broken: dict[str, list[str]] = {}
        self._feed: tuple[tuple[str, str], Any] | None = None
        self.site = app.extensions["quire.site"]
        self.store_app = app.extensions["quire.cache"].app  # Flask's own WSGI app, behind the response cache
        self.pages = {url: post_version(page, self.site.pages.resolve_post_url)
                      for url, page in self.site.page_index.by_url.items()}
        # Pages are in every page's menu (nav), so any change to them is a change to every page.
        # What decides every page's look besides the posts: the page cache's fingerprint (code, templates, the
        # theme, static files, settings, the site file), this exporter's format and the pages.
        site = site_fingerprint(app, self.site)
        self.fingerprint = _digest([FORMAT, site, sorted(self.pages.items())])
        self.versions_context = _digest([site, parse_fingerprint(self.store.pages.root, self.store.settings)])
        self.known_versions: dict[str, list[str]] = {}  # for the next export: post file -> [check, version]
        self.fresh = 0  # posts whose version was worked out anew: edited, added, or all of them the first time
        self.versions = self._post_versions()
        # Per post: the versions of its (newer, older) neighbours; per tag and category: its part of the related
        # keys. Worked out once here, not per page: a bisection and a print per term took a tenth of a second.
        listed = ["", *[self.versions[post.url] for post in self.snapshot.posts], ""]  # newest first, and the ends
        self._neighbours = {post.url: (listed[index], listed[index + 2]) for index, post in enumerate(self.snapshot.posts)}
        self._prints = tuple({slug: self._print(kind, slug) for slug in groups}
                             for kind, groups in (("tag", self.snapshot.tags), ("category", self.snapshot.categories)))

    def _post_versions(self) -> dict[str, str]:
        """Return every post's version by URL, the previous export's for each post whose file is unchanged.

        A version is a digest of the whole post (``post_version``), a third of a second for 10,000 posts. A
        post is made from its file alone (the stat key the store and its post cache trust: mtime, size, inode,
        ctime), under the parsing code and settings, but for whether its cover exists and where its post_url
        links lead: while those and the key are as they were, so is the version.
        """
        resolve = self.store.resolve_post_url
        known = self.previous.versions if self.previous.versions_context == self.versions_context else {}
        versions = {}
        for post in self.snapshot.posts:
            key = self.store.file_key(post)
            if key is None:  # its file changed since the store read it
                versions[post.url] = post_version(post, resolve)
                self.fresh += 1
                continue
            check = _key([repr(key), repr(post.cover_missing), *[repr(resolve(name)) for name in post.links]])
            entry = known.get(post.source)
            if entry is not None and entry[0] == check:
                version = entry[1]
            else:
                version = post_version(post, resolve)
                self.fresh += 1
            versions[post.url] = version
            self.known_versions[post.source] = [check, version]
        return versions

    # The plan -------------------------------------------------------------------------------------

    def plan(self) -> list[Job]:
        """List every URL the store knows the site has, each with the key of what it shows."""
        snapshot, config_, versions = self.snapshot, self.app.config, self.versions
        per_page, entries = config_["BLOG_PER_PAGE"], config_["BLOG_FEED_ENTRIES"]
        everything = _key([self.fingerprint, *self.versions.values(),
                           *(repr(group.term.name) for groups in (snapshot.categories, snapshot.tags, snapshot.authors)
                             for group in groups.values())])
        jobs = [Job(post.url, None, post) for post in snapshot.posts]
        jobs += [Job(url, _digest([self.fingerprint, url])) for url in self.pages]
        redirects = {**self.site.pages.snapshot.redirects, **snapshot.redirects}  # redirect_from and redirect_to
        jobs += [Job(path, _digest([self.fingerprint, path, target])) for path, target in sorted(redirects.items())
                 if path not in snapshot.by_url and path not in self.pages]
        with self.app.test_request_context("/") as context:
            # url_for's own work around the URL map's build took half the plan's time at 10,000 posts; while no
            # url_defaults are registered, building with the request's adapter gives the very same paths.
            build = _slug_builder(context.url_adapter.build) if not any(self.app.url_default_functions.values()) \
                else (lambda endpoint, values=None: url_for(endpoint, **(values or {})))
            for path in (*SEEDS[1:], build("posts.archive"), build("posts.categories"), build("posts.tags")):
                jobs.append(Job(path, self.sitemap_key(path) if path == "/sitemap.xml" else _key([path, everything])))
            zone = self.store.zone
            for counted in archive_years(snapshot, zone):  # each year's archive page: its posts' versions
                year = archive_year(snapshot, zone, counted.year)
                path = build("posts.archive_by_year", {"year": counted.year})
                jobs.append(Job(path, _key([self.fingerprint, path, *[versions[post.url] for month in
                                                                      (year.months if year else ()) for post in month.posts]])))
            listings: list[tuple[str, dict[str, str], str, tuple[Post, ...]]] = [("posts.index", {}, "", snapshot.posts)]
            for kind, groups in (("category", snapshot.categories), ("tag", snapshot.tags), ("author", snapshot.authors)):
                listings += [(f"posts.{kind}", {"slug": slug}, group.term.name, group.posts) for slug, group in groups.items()]
            for endpoint, args, name, posts in listings:
                pages = max(1, -(-len(posts) // per_page))
                for number in range(1, pages + 1):
                    path = build(endpoint, args) if number == 1 else build(endpoint, {**args, "page_number": number})
                    shown = posts[(number - 1) * per_page:number * per_page]
                    jobs.append(Job(path, _key([self.fingerprint, path, repr(name), str(number), str(pages), str(len(posts)),
                                                *[versions[post.url] for post in shown]])))
            feeds = [(build(endpoint), "", snapshot.posts, ("", "", form))
                     for endpoint, form in (("feeds.atom", "atom"), ("feeds.rss", "rss"), ("feeds.json_feed", "json"))]
            for kind, groups in (("category", snapshot.categories), ("tag", snapshot.tags)):
                feeds += [(build("feeds.group", {"kind": kind, "slug": slug, "name": name}), group.term.name, group.posts,
                           (kind, slug, form)) for slug, group in groups.items() for name, form in FEED_FORMS]
            for path, name, posts, feed in feeds:
                shown = posts[:entries]
                # An empty feed is dated by the store's last change, which no key captures: rendered each time.
                key = _key([self.fingerprint, path, repr(name), *[versions[post.url] for post in shown]]) if shown else None
                jobs.append(Job(path, key, feed=feed))
        return jobs

    def sitemap_key(self, path: str) -> str | None:
        """Return the sitemap's key: its URLs and their last changes, not what the pages say.

        So an edit that leaves a post's dates and terms alone leaves the sitemap (every URL of the site, a
        third of a second to render at 10,000 posts) as it was. Without posts it is dated by the store's last
        change, which no key captures: rendered each time.
        """
        snapshot = self.snapshot
        if not snapshot.posts:
            return None
        # A group's listing pages are dated by its posts: which they are is its membership print (their URLs
        # and dates), and their last changes are in the posts' part.
        kinds = (("category", snapshot.categories), ("tag", snapshot.tags), ("author", snapshot.authors))
        return _key([self.fingerprint, path,
                     *[f"{post.url}\0{post.updated.isoformat()}\0{post.sort_key[0]!r}\0{post.sort_key[1]}"
                       for post in snapshot.posts],
                     *[f"{kind}\0{slug}\0{len(group.posts)}\0{group.membership:032x}"
                       for kind, groups in kinds for slug, group in groups.items()]])

    def post_key(self, post: Post) -> tuple[str, tuple[str, list[str]]]:
        """Return a post page's key, and its (related key, related URLs) for the next run."""
        related_key, urls = self.known_related(post)
        if urls is None:
            urls = [other.url for other in related(self.snapshot, post, RELATED_POSTS)]
        return self._post_key(post, urls), (related_key, urls)

    def known_related(self, post: Post) -> tuple[str, list[str] | None]:
        """Return a post's related key, and its related URLs if the previous export's ranking still holds."""
        # Related posts are ranked by the posts of this post's tags and categories alone (their URLs and dates),
        # so while those groups are unchanged the ranking from the last run still holds: no need to redo it. The
        # store keeps each group's print of those, as the page cache checks it.
        tags, categories = self._prints
        related_key = _key([self.fingerprint, post.url,
                            *[tags.get(term.slug) or self._print("tag", term.slug) for term in post.tags],
                            *[categories.get(term.slug) or self._print("category", term.slug)
                              for term in post.categories]])
        known = self.previous.related.get(post.url)
        urls = known[1] if known and known[0] == related_key else None
        if urls is None or any(url not in self.versions for url in urls):
            return related_key, None
        return related_key, urls

    def _print(self, kind: str, slug: str) -> str:
        """Return a tag's or category's part of related keys: its kind, slug and membership print."""
        return f"{kind}\0{slug}\0{membership_print(self.snapshot, kind, slug)}"

    def _post_key(self, post: Post, urls: list[str]) -> str:
        versions = self.versions
        newer, older = self._neighbours.get(post.url) or ("", "")
        return _key([self.fingerprint, post.url, versions[post.url], newer, older, *[versions[url] for url in urls]])

    # Running ----------------------------------------------------------------------------------------

    def run(self, progress: Progress, processes: int, folder: Path) -> Report:
        """Export everything into the staging folder (for ``folder``) and check the links; return the report."""
        renderer = self.store.pages.renderer
        if 0 < self.fresh < MIN_PAGES_PER_PROCESS and renderer.isolated:
            # A few posts changed: their bodies are likely to be rendered here, by a render child that is made
            # ready on the other core while this one plans (the many of a first export render in children).
            isolation.pool().warm(renderer.settings)
        self._statics(folder)
        jobs = self.plan()
        with progress(len(jobs) + 1) as bar:
            jobs = self._keep_unchanged(jobs, bar)
            with closing(self._parallel(jobs, processes, bar)) as outcomes:  # closed at once if interrupted
                for outcome in outcomes:
                    self._record(outcome)
            self.planned, self.planned_files = frozenset(self.outcomes), frozenset(self.files)
            self.shape = _digest([sorted(self.planned), sorted(self.planned_files)])
            # The same pages at the same files: the links of a page not rendered again lead where they led.
            same_shape = self.shape == self.previous.shape
            self._discover(bar, same_shape)
            self._record(self.export(Job(NOT_FOUND_PROBE, None)))  # the page static hosts show for unknown URLs
            bar.update(1)
        self._check_links(same_shape and self.files == self.previous.files)
        self.report.failed.sort()  # the children finish in any order
        self.report.files = len(self.files)
        return self.report

    def _keep_unchanged(self, jobs: list[Job], bar: Any) -> list[Job]:
        """Keep, here, every page whose key and file are as the manifest says; return the jobs left to render.

        After an edit nearly every page is kept, at a few microseconds each: less than forking children to do
        it and sending each outcome back (a quarter of a second at 10,000 posts), and the few pages left are
        then rendered in this process. A post whose related posts must be ranked again is left to the children.
        """
        left = []
        for job in jobs:
            old = self.previous.pages.get(job.path)
            outcome = None
            if old is not None and job.post is None:
                outcome = self._as_it_was(job, job.key, None, old)
            elif old is not None:
                related_key, urls = self.known_related(job.post)
                if urls is not None:
                    outcome = self._as_it_was(job, self._post_key(job.post, urls), (related_key, urls), old)
            if outcome is None:
                left.append(job)
            else:
                self._record(outcome)
        bar.update(len(jobs) - len(left))
        return left

    def _parallel(self, jobs: list[Job], processes: int, bar: Any) -> Iterator[Outcome]:
        """Yield the outcome of every job, rendered by ``processes`` forked children (or here, when not worth it)."""
        wanted = min(processes, len(jobs) // MIN_PAGES_PER_PROCESS)
        if wanted < 2 or not may_fork():
            with _collecting(len(jobs) >= MIN_PAGES_PER_PROCESS):
                for job in jobs:
                    yield self.export(job)
                    bar.update(1)
            return
        children = {}
        units: list[list[Job]] = []  # a feed's three forms stay together, so its entries are built once
        for job in jobs:
            if units and job.feed is not None and units[-1][-1].feed is not None and units[-1][-1].feed[:2] == job.feed[:2]:
                units[-1].append(job)
            else:
                units.append([job])
        for index in range(wanted):  # interleaved: posts and listings spread evenly
            child = _Child.start(self, [job for unit in units[index::wanted] for job in unit])
            if child is not None:
                children[child.reading] = child
        self.report.processes = max(1, len(children))
        done: set[str] = set()
        selector = selectors.DefaultSelector()
        try:
            for child in children.values():
                selector.register(child.reading, selectors.EVENT_READ, child)
            while selector.get_map():
                for event, _ in selector.select():
                    child = event.data
                    batch = child.receive()
                    if batch is None:
                        selector.unregister(child.reading)
                        child.finish()
                        continue
                    for item in batch:
                        outcome = self.unpack(item)
                        done.add(outcome.path)
                        yield outcome
                    bar.update(len(batch))
        finally:
            selector.close()
            for child in children.values():
                child.stop()
        left = [job for job in jobs if job.path not in done]  # what a child failed to deliver (it crashed...)
        with _collecting(len(left) >= MIN_PAGES_PER_PROCESS):
            for job in left:
                yield self.export(job)
                bar.update(1)

    def pack(self, outcome: Outcome) -> Outcome | Kept:
        """Return what a child sends of ``outcome``: for a page kept as it was, what the parent cannot tell itself.

        Most pages of an incremental export are kept, and their whole outcomes (links and related posts, known
        from the manifest already) took a fifth of a second to pickle and unpickle at 10,000 posts.
        """
        if outcome.encoded is None:
            return outcome
        known = self.previous.related.get(outcome.path)
        same = known is None if outcome.related is None else known == list(outcome.related)
        return (outcome.path, outcome.written, outcome.linked, outcome.bytes, same, None if same else outcome.related)

    def unpack(self, item: Outcome | Kept) -> Outcome:
        """Return the outcome a child sent with ``pack``."""
        if isinstance(item, Outcome):
            return item
        path, written, linked, size_written, same, related_info = item
        if same and path in self.previous.related:
            known = self.previous.related[path]
            related_info = (known[0], known[1])
        old = self.previous.pages[path]
        return Outcome(path, 200, old[0], old[1], old[2], old[3], (), written, linked, size_written,
                       related=related_info, encoded=old[4])

    def _discover(self, bar: Any, same_shape: bool) -> None:
        """Follow every link to a URL not exported yet, as the old crawler did: nothing linked is missed.

        With ``same_shape``, a page not rendered again leads where the manifest says it led last time.
        """
        seen = set(self.outcomes)
        queue: deque[str] = deque()
        for outcome in list(self.outcomes.values()):
            leads = self.previous.leads.get(outcome.path, []) if same_shape and not outcome.rendered \
                else self._leads(outcome)
            self._follow(outcome.path, leads, seen, queue)
        while queue:
            bar.length += 1
            outcome = self.export(Job(queue.popleft(), None))
            self._record(outcome)
            self.report.discovered += 1
            self._follow(outcome.path, self._leads(outcome), seen, queue)
            bar.update(1)

    def _leads(self, outcome: Outcome) -> list[str]:
        """Return the site URLs a page links to that no planned page answers, each once (whatever was seen before)."""
        found: dict[str, None] = {}
        for reference in self.links(outcome):
            target = self.target(reference, outcome.path)
            if target is None or target in self.planned or target in found or target.startswith(("/static/", "/assets/")):
                continue
            try:
                if _file_name(target) in self.planned_files:  # the same page by another spelling (%C3%A1 and á)
                    continue
            except ValueError:
                pass
            if target not in self._endpoints:
                try:
                    self._endpoints[target] = self.app.url_map.bind("localhost").match(target)[0]
                except HTTPException:
                    self._endpoints[target] = None
            if self._endpoints[target] not in DYNAMIC_ENDPOINTS:
                found[target] = None
        return list(found)

    def _follow(self, path: str, leads: list[str], seen: set[str], queue: deque[str]) -> None:
        if leads:
            self.leads[path] = leads
        for target in leads:
            if target in seen:
                continue
            seen.add(target)
            try:
                if _file_name(target) in self.files:  # a page discovered already, by another spelling
                    continue
            except ValueError:
                pass
            queue.append(target)

    def links(self, outcome: Outcome) -> tuple[str, ...]:
        """Return the references of an exported page, from the previous manifest if it was not rendered again."""
        if outcome.encoded is None:
            return outcome.references
        table = self.previous.references
        return tuple(table[int(number)] for number in outcome.encoded.split(",")) if outcome.encoded else ()

    def target(self, reference: str, page: str) -> str | None:
        """Return ``site_path(reference, page)``, worked out once per reference that does not depend on the page."""
        if not reference.startswith(("/", "#", self.base)) and not _SCHEME.match(reference):
            return site_path(reference, page, self.base)  # relative: it depends on the page
        found = self._targets.get(reference, "")
        if found == "":
            found = self._targets[reference] = site_path(reference, page, self.base)
        return found

    def _record(self, outcome: Outcome) -> None:
        self.outcomes[outcome.path] = outcome
        if outcome.file is not None:
            self.files.add(outcome.file)
            self.files.update(outcome.file + "." + suffix for suffix in self.compress if _compressible(outcome.file))
        self.report.written += outcome.written
        self.report.unchanged += outcome.linked
        self.report.bytes += outcome.bytes
        self.report.rendered += outcome.rendered
        if outcome.status != 200 and outcome.status not in REDIRECTS and outcome.path not in SEEDS \
                and outcome.path != NOT_FOUND_PROBE:
            self.report.failed.append((outcome.path, outcome.status))

    # One URL ------------------------------------------------------------------------------------------

    def get(self, path: str) -> _Response:
        """Answer a GET of ``path`` from Flask itself: no response cache (nor its watcher), no test client in between.

        One WSGI call on a copy of a ready environ: the test client built a new one, and wrapped the answer in
        a response object, for every page (a tenth of the time a page took).
        """
        if path.isascii() and "%" not in path:
            environ = {**self._environ, "PATH_INFO": path, "REQUEST_URI": path, "RAW_URI": path,
                       "wsgi.input": io.BytesIO()}
        else:  # the test client's own decoding of percent-escapes and non-ASCII paths, whatever they hold
            environ = EnvironBuilder(path=path).get_environ()
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            started[:] = [status, headers]
            return lambda data: None

        chunks = self.store_app(environ, start_response)
        try:  # the whole body now, so a file the app sent (a favicon) is closed at once
            body = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        headers = {name.lower(): value for name, value in started[1]}
        mimetype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        return _Response(int(started[0].split(None, 1)[0]), headers.get("location", ""), mimetype, body)

    def feed(self, path: str, feed: tuple[str, str, str]) -> _Response:
        """Answer a feed's URL as its view does, from the feed built for the last of its forms asked for, if any."""
        kind, slug, form = feed
        with self.app.request_context({**self._environ, "PATH_INFO": path, "REQUEST_URI": path, "RAW_URI": path,
                                       "wsgi.input": io.BytesIO()}):
            if self._feed is None or self._feed[0] != (kind, slug):
                snapshot = self.snapshot
                built = feeds.site_feed() if not kind else \
                    feeds.group_feed(kind, (snapshot.categories if kind == "category" else snapshot.tags)[slug])
                self._feed = ((kind, slug), built)  # only the last: the forms of a feed come one after another
            render = {"atom": feeds.render_atom, "rss": feeds.render_rss, "json": feeds.render_json}[form]
            response = render(self._feed[1])
            return _Response(response.status_code, "", response.mimetype, response.get_data())

    def export(self, job: Job) -> Outcome:
        """Export one URL into the staging folder: linked from the previous export if unchanged, else rendered."""
        key, related_info = self.post_key(job.post) if job.post is not None else (job.key, None)
        old = self.previous.pages.get(job.path)
        kept = self._as_it_was(job, key, related_info, old)
        if kept is not None:
            return kept
        response = self.get(job.path) if job.feed is None else self.feed(job.path, job.feed)
        status = response.status
        if status in REDIRECTS:
            location = response.location
            target = site_path(location, job.path, self.base)
            if target is None:  # off the site (a post's redirect_to): a static host needs the page all the same
                body, links = _redirect_page(location), ()
            elif _file_name(target) == _file_name(job.path):  # /about -> /about/ share one file: nothing to add
                return Outcome(job.path, status, references=(target,), rendered=True)
            else:
                body, links = _redirect_page(target), (target,)
        elif status == 200 or job.path == NOT_FOUND_PROBE and status == 404:
            body = response.body
            links: tuple[str, ...] = tuple(dict.fromkeys(references(body, response.mimetype, self.base))) if status == 200 else ()
        else:
            return Outcome(job.path, status, rendered=True)
        if b'class="render-fallback"' in body:
            key = None  # a render that failed (or timed out) this time may well succeed next time
        try:
            name = "404.html" if job.path == NOT_FOUND_PROBE else _file_name(job.path)
        except ValueError:
            return Outcome(job.path, status, rendered=True)
        digest = _digest_bytes(body)
        written, linked, size_written = self._place(name, body, digest, old)
        return Outcome(job.path, status, key, name, digest, len(body), links, written, linked, size_written,
                       rendered=True, related=related_info)

    def _as_it_was(self, job: Job, key: str | None, related_info: tuple[str, list[str]] | None,
                   old: list[Any] | None) -> Outcome | None:
        """Return the outcome of keeping a page as the previous export has it; None if its key or file differ."""
        if key is None or old is None or old[0] != key or old[1] is None:
            return None
        kept = self._keep(old[1], old[2], old[3])
        if kept is None:
            return None
        return Outcome(job.path, 200, key, old[1], old[2], old[3], (), kept[0], kept[1], kept[2],
                       related=related_info, encoded=old[4])

    def _place(self, name: str, body: bytes, digest: str, old: list[Any] | None) -> tuple[int, int, int]:
        """Put ``body`` at ``name``: linked from the previous export when its bytes are the same there."""
        if old is not None and old[1] == name and old[2] == digest:
            kept = self._keep(name, digest, len(body), body)
            if kept is not None:
                return kept
        return self._write(name, body)

    def _keep(self, name: str, digest: str, size: int, body: bytes | None = None) -> tuple[int, int, int] | None:
        """Keep ``name`` (and its compressed copies) as the previous export has it; None if it is not there as recorded.

        In the spare, a file it holds as the previous export does stays as it is; any other is hard-linked
        from the previous export.
        """
        folder = self.previous.folder
        if folder is None:
            return None
        # Strings, not Paths: this runs for every file of the site, and pathlib's joins took most of its time.
        source, target = f"{folder}/{name}", f"{self.root}/{name}"
        held = self.spare is not None and self.spare.states.get(name) == (digest, size) and _size(target) == size
        if not held:
            if _size(source) != size:  # changed by hand since: write it again
                return None
            try:
                self._link(Path(source), Path(target))
            except OSError:
                return None
        written = size_written = 0
        linked = 1
        if self.compress and _compressible(name):  # most exports have no compressed copies: no name to look at
            for suffix in self.compress:
                copy = f"{name}.{suffix}"
                if held and _size(f"{self.root}/{copy}") is not None:
                    linked += 1
                    continue
                try:
                    if suffix not in self.previous.compressed:
                        raise FileNotFoundError
                    self._link(folder / copy, self.root / copy)
                    linked += 1
                except OSError:
                    data = _compressed(body if body is not None else Path(source).read_bytes(), suffix)
                    self._put(self.root / copy, data)
                    written += 1
                    size_written += len(data)
        return written, linked, size_written

    def _write(self, name: str, body: bytes) -> tuple[int, int, int]:
        self._put(self.root / name, body)
        written, size = 1, len(body)
        if self.compress and _compressible(name):
            for suffix in self.compress:
                data = _compressed(body, suffix)
                self._put(self.root / f"{name}.{suffix}", data)
                written += 1
                size += len(data)
        return written, 0, size

    def _link(self, source: Path, target: Path) -> None:
        """Hard-link ``source`` at ``target``; in the spare, by a rename over the file there."""
        if self.spare is None:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, target)
            return
        temporary = self._make_room(target)
        os.link(source, temporary)
        os.replace(temporary, target)

    def _put(self, target: Path, data: bytes) -> None:
        """Write ``data`` at ``target``; in the spare, never into the file there, which the live export may share."""
        if self.spare is None:  # a new tree: os calls, as pathlib's took a fifth of the time of a full export's writes
            try:
                descriptor = os.open(target, _NEW_FILE, 0o666)
            except FileNotFoundError:
                os.makedirs(target.parent, exist_ok=True)
                descriptor = os.open(target, _NEW_FILE, 0o666)
            with open(descriptor, "wb", buffering=0) as file:
                file.write(data)
            return
        temporary = self._make_room(target)
        temporary.write_bytes(data)
        os.replace(temporary, target)

    def _make_room(self, target: Path) -> Path:
        """Clear the spare's way to ``target`` and return a temporary name beside it, to be renamed over it.

        A file where the new export needs a folder, or a folder where it needs a file, is stale: it goes.
        """
        parent = self.root
        for part in target.relative_to(self.root).parts[:-1]:
            parent = parent / part
            if parent.is_symlink() or parent.exists() and not parent.is_dir():
                parent.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        temporary.unlink(missing_ok=True)
        return temporary

    # Static files -------------------------------------------------------------------------------------

    def _statics(self, folder: Path) -> None:
        """Copy static/ (and static/assets/ to /assets/), and a Jekyll site's own files, under the server's rules."""
        copies: list[tuple[str, str]] = []
        chosen: set[str] = set()
        for static in static_folders(self.app):  # the theme's, the site's, then Quire's: the first one wins
            if not os.path.isdir(static):
                continue
            for relative, source in static_files(static, self.report.refused):
                if relative in chosen:
                    continue
                chosen.add(relative)
                copies.append((f"static/{relative}", source))
                if relative.startswith("assets/"):
                    copies.append((relative, source))  # Jekyll's /assets/ URLs
        jekyll = self.store.jekyll
        if jekyll.serves_files:  # the site's images/, files/, favicon.ico...: what the server sends as they are
            taken = {name for name, _ in copies}
            copies += [(name, source) for name, source in site_files(jekyll, folder) if name not in taken]
        for name, source in copies:
            status = os.stat(source)
            old = self.previous.statics.get(name)
            if old is not None and old[1] == status.st_size and old[2] == status.st_mtime_ns:
                kept = self._keep(name, old[0], old[1])
                if kept is not None:
                    self._add_static(name, old[0], status, kept)
                    continue
            body = Path(source).read_bytes()
            digest = _digest_bytes(body)
            self._add_static(name, digest, status, self._place(name, body, digest, [None, name, old[0]] if old else None))

    def _add_static(self, name: str, digest: str, status: os.stat_result, counts: tuple[int, int, int]) -> None:
        self.statics[name] = [digest, status.st_size, status.st_mtime_ns]
        self.files.add(name)
        self.files.update(f"{name}.{suffix}" for suffix in self.compress if _compressible(name))
        self.report.written += counts[0]
        self.report.unchanged += counts[1]
        self.report.bytes += counts[2]

    # Links and manifest -------------------------------------------------------------------------------

    def _check_links(self, same_files: bool) -> None:
        """Report every link in an exported page or feed that resolves to no file of the export.

        With ``same_files`` (the same pages at the same files as last time), a page not rendered again has the
        broken links the manifest says it had.
        """
        resolved: dict[str, bool] = {}
        for outcome in sorted(self.outcomes.values(), key=lambda outcome: outcome.file or ""):
            if outcome.file is None or outcome.file == "404.html":  # the 404 page is shown at any depth
                continue
            if same_files and not outcome.rendered:
                broken = self.previous.broken.get(outcome.path, [])
            else:
                broken = [reference for reference in self.links(outcome) if not self._resolves(reference, outcome.path, resolved)]
            if broken:
                self.broken[outcome.path] = broken
                self.report.broken += [(outcome.file, reference) for reference in broken]

    def _resolves(self, reference: str, page: str, resolved: dict[str, bool]) -> bool:
        target = self.target(reference, page)
        if target is None:
            return True
        found = resolved.get(target)
        if found is None:
            try:
                found = resolved[target] = _file_name(target) in self.files
            except ValueError:
                found = resolved[target] = False
        return found

    def prune(self) -> None:
        """Delete from the spare the files the new export no longer has, and the folders they leave empty."""
        if self.spare is None:
            return
        for name in self.spare.survey.files() - self.files:
            target = self.root / name
            try:
                target.unlink()
            except (FileNotFoundError, NotADirectoryError):  # gone already, with a folder a file took the place of
                continue
            for parent in target.parents:
                if parent == self.root:
                    break
                try:
                    parent.rmdir()
                except OSError:
                    break

    def write_manifest(self) -> None:
        """Write what this export holds, for the next one to compare against, and how the spare will differ."""
        reused = any(outcome.encoded is not None for outcome in self.outcomes.values())
        # The table of references grows by the new ones; it starts afresh when every page was rendered again.
        references = list(self.previous.references) if reused else []
        table: dict[str, int] = {reference: number for number, reference in enumerate(references)} if reused else {}
        pages = {}
        related_posts = {}
        for path, outcome in self.outcomes.items():
            if outcome.file is not None:
                encoded = outcome.encoded
                if encoded is None:
                    numbers = []
                    for reference in outcome.references:
                        number = table.get(reference)
                        if number is None:
                            number = table[reference] = len(references)
                            references.append(reference)
                        numbers.append(number)
                    encoded = ",".join(map(str, numbers))
                pages[path] = [outcome.key, outcome.file, outcome.digest, outcome.size, encoded]
            if outcome.related is not None:
                related_posts[path] = list(outcome.related)
        spare = None
        if self.previous.folder is not None:  # the previous export becomes the spare: what differs from this one
            spare = {"generation": self.previous.generation,
                     "changed": _difference(self.previous.pages, self.previous.statics, pages, self.statics)}
        header = {"format": FORMAT, "about": "Written by `blog freeze`; the next export compares against it.",
                  "generation": secrets.token_hex(8), "compressed": list(self.compress), "python": sys.version}
        body = {"pages": pages, "statics": self.statics, "related": related_posts, "references": references,
                "shape": self.shape, "leads": self.leads, "broken": self.broken, "spare": spare,
                "versions": self.known_versions, "versions_context": self.versions_context}
        # Only this user may write it (see _read_manifest), whatever the umask.
        descriptor = os.open(self.root / MARKER, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(descriptor, "wb") as manifest:
            manifest.write(json.dumps(header, ensure_ascii=False).encode("utf-8") + b"\n")
            manifest.write(marshal.dumps(body))


class _Child:
    """A forked process exporting a slice of the jobs, sending back its outcomes in pickled batches."""

    def __init__(self, pid: int, reading: int):
        self.pid = pid
        self.reading = reading
        self._buffer = b""
        self._pipe = os.fdopen(reading, "rb", buffering=0)

    @classmethod
    def start(cls, exporter: _Exporter, jobs: list[Job]) -> _Child | None:
        """Fork a child exporting ``jobs``; None if it cannot fork (the parent then does them)."""
        def write(pipe: BinaryIO) -> None:
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C stops it at once; the parent cleans up
            gc.enable()  # the parent's bookkeeping runs without it (see freeze); thousands of renders need it
            for start in range(0, len(jobs), BATCH):
                data = pickle.dumps([exporter.pack(exporter.export(job)) for job in jobs[start:start + BATCH]],
                                    protocol=pickle.HIGHEST_PROTOCOL)
                pipe.write(struct.pack("!Q", len(data)) + data)

        try:
            return cls(*fork_writer(write))
        except OSError:
            return None

    def receive(self) -> list[Outcome | Kept] | None:
        """Return the next batch of outcomes (maybe empty while one is on its way), or None at the end."""
        chunk = self._pipe.read(1 << 20)
        if not chunk:
            return None
        self._buffer += chunk
        batch: list[Outcome | Kept] = []
        while len(self._buffer) >= 8:
            (length,) = struct.unpack("!Q", self._buffer[:8])
            if len(self._buffer) < 8 + length:
                break
            batch += pickle.loads(self._buffer[8:8 + length])  # noqa: S301 - our own child, through a private pipe
            self._buffer = self._buffer[8 + length:]
        return batch

    def finish(self) -> None:
        """Reap the child once it has sent everything."""
        self._pipe.close()
        reap(self.pid)
        self.pid = 0

    def stop(self) -> None:
        """Stop and reap a child still running (the export was interrupted or failed)."""
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.finish()


# Static files under the server's rule ------------------------------------------------------------------

def static_files(static: str, refused: list[str] | None = None) -> Iterator[tuple[str, str]]:
    """Yield (path under static/, file) for every file the server would serve from ``static``, sorted.

    The server answers 404 for a path that resolves, through any symlink, outside static/
    (``security.contain_static``), so those are never exported; they are added to ``refused``.
    """
    root = os.path.realpath(static)
    stack = [("", static)]
    visited = {root}
    found = []
    while stack:
        relative, folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            continue
        for entry in entries:
            name = f"{relative}{entry.name}"
            resolved = os.path.realpath(entry.path)
            if os.path.commonpath([root, resolved]) != root:
                if refused is not None:
                    refused.append(f"static/{name}")
                continue
            if os.path.isdir(resolved):
                if resolved not in visited:  # a symlink back up the tree would loop forever
                    visited.add(resolved)
                    stack.append((f"{name}/", entry.path))
            elif os.path.isfile(resolved):
                found.append((name, resolved))
    yield from sorted(found)


def site_files(jekyll: JekyllSite, export: Path) -> Iterator[tuple[str, str]]:
    """Yield (URL path without its /, file) for every file of a Jekyll site the server sends as it is."""
    root = jekyll.root
    skipped = {os.path.realpath(export)}  # an export inside the site folder is not part of the site
    for folder, folders, names in os.walk(root):
        relative = os.path.relpath(folder, root).replace(os.sep, "/")
        prefix = "" if relative == "." else f"{relative}/"
        folders[:] = sorted(name for name in folders if jekyll.copies(prefix + name)
                            and os.path.realpath(os.path.join(folder, name)) not in skipped)
        for name in sorted(names):
            source = jekyll.site_file(f"/{prefix}{name}")
            if source is not None:
                yield prefix + name, source


# Links ---------------------------------------------------------------------------------------------------

def file_for(root: Path, path: str) -> Path:
    """Return the file that holds the page at ``path``: pretty URLs (ending in /) become index.html."""
    return root / _file_name(path)


def _file_name(path: str) -> str:
    relative = posixpath.normpath(unquote(path)).lstrip("/")
    if relative in {"", "."}:
        relative = ""
    name = "index.html" if path.endswith("/") or not relative else ""
    if not name and "." not in relative.rsplit("/", 1)[-1]:
        name = "index.html"  # /about: a folder with an index, which static hosts serve at /about and /about/
    if relative.startswith("..") or "\0" in relative:
        raise ValueError(f"{path!r} leaves the site")
    return f"{relative}/{name}".lstrip("/") if name else relative


# href and src of real start tags only: in code samples '<' is escaped, so a shown tag never matches.
# A regular expression rather than html.parser, which took two thirds of an export's time.
_LINK_ATTRIBUTE = re.compile(
    r"<(?:a|link|img|script|source|iframe|area|video|audio)\b[^>]*?\s(?:href|src)\s*=\s*"
    r"(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>]+))", re.IGNORECASE)


def references(body: bytes, mimetype: str, base: str) -> list[str]:
    """Return the URLs a response refers to: links and sources in HTML, the site's own URLs in anything else."""
    text = body.decode("utf-8", "replace")
    if mimetype == "text/html":
        # Of the three ways to write a value (double, single or no quotes) one matched; the others are "".
        return [html.unescape(double or single or bare) for double, single, bare in _LINK_ATTRIBUTE.findall(text)]
    return re.findall(re.escape(base) + r"(/[^\s\"'<>&\\]*)", text)


_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")
_UNUSUAL = re.compile(r"[\x00-\x20\x7f\\]|/\.")  # what urljoin and urlsplit would clean up or resolve


def site_path(reference: str, page: str, base: str) -> str | None:
    """Return the path (without query or fragment) a reference leads to on this site, or None if elsewhere."""
    reference = reference.strip()
    if reference.startswith(base + "/") or reference == base:
        reference = reference[len(base):] or "/"
    if reference.startswith("/") and not reference.startswith("//"):
        path = reference.split("#", 1)[0].split("?", 1)[0]
        if not _UNUSUAL.search(path):
            return path  # the common case, an absolute path: urljoin would give it back unchanged
    if not reference or reference.startswith("#"):
        return None
    parts = urlsplit(urljoin(page, reference))
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return None
    return parts.path


# Keys and the manifest -----------------------------------------------------------------------------------

def _read_manifest(folder: Path) -> _Previous:
    """Return what the previous export's manifest says, or a clean slate when there is none it can trust.

    Its body is marshal, which is not safe against crafted data: it is read only from a file of this user's
    that nobody else may write to (the rule the caches' pickles follow), written by the same Python.
    """
    try:
        with _open_manifest(folder) as manifest:
            header = json.loads(manifest.readline())
            if header.get("format") != FORMAT or header.get("python") != sys.version:
                return _Previous()
            trouble = unsafe(os.fstat(manifest.fileno()), folder=False)
            if trouble:
                log.warning("not using the manifest %s (%s): exporting afresh", folder / MARKER, trouble)
                return _Previous()
            body = marshal.loads(manifest.read())  # whole: marshal.load reads a Python file object piece by piece
        previous = _Previous(folder, body["pages"], body["statics"], body["related"], body["references"],
                             tuple(header["compressed"]), generation=header["generation"], shape=body["shape"],
                             leads=body["leads"], broken=body["broken"], spare=body["spare"],
                             versions=body.get("versions", {}), versions_context=body.get("versions_context", ""))
    except (OSError, ValueError, EOFError, AttributeError, KeyError, TypeError):
        return _Previous()
    files = {entry[1] for entry in previous.pages.values()} | set(previous.statics)
    files |= {f"{name}.{suffix}" for suffix in previous.compressed for name in files if _compressible(name)}
    previous.files = frozenset(files)
    return previous


def _open_spare(folder: Path, previous: _Previous, compress: tuple[str, ...]) -> _Spare | None:
    """Return the spare beside the export if it is the generation the manifest says, with the same compression.

    Its header alone is read; what it holds is the previous export but for the files the manifest lists as
    changed, and its files are listed, since some may have been added by hand to the folder it was. Anything
    else (no spare, a damaged one, one from another format or export) is not used.
    """
    recorded = previous.spare
    if previous.folder is None or not isinstance(recorded, dict):
        return None
    try:
        with _open_manifest(folder) as manifest:
            header = json.loads(manifest.readline())
        if header.get("format") != FORMAT or header.get("generation") != recorded["generation"] \
                or tuple(header.get("compressed", ())) != compress:
            return None
        states = _states(previous.pages, previous.statics)
        for name, state in recorded["changed"].items():
            if state is None:
                states.pop(name, None)
            else:
                states[name] = (state[0], state[1])
    except (OSError, ValueError, AttributeError, KeyError, TypeError, IndexError):
        return None
    return _Spare(folder, states, _Survey(folder))


def _open_manifest(folder: Path) -> BinaryIO:
    """Open the manifest in ``folder`` for reading, never through a symlink."""
    return open(os.open(folder / MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")


def _states(pages: dict[str, list[Any]], statics: dict[str, list[Any]],
            only: set[str] | None = None) -> dict[str, tuple[str, int]]:
    """Return (digest, size) of every file a manifest lists (or of those in ``only``), compressed copies aside."""
    states = {entry[1]: (entry[2], entry[3]) for entry in pages.values() if only is None or entry[1] in only}
    states.update((name, (entry[0], entry[1])) for name, entry in statics.items() if only is None or name in only)
    return states


def _difference(before_pages: dict[str, list[Any]], before_statics: dict[str, list[Any]],
                now_pages: dict[str, list[Any]], now_statics: dict[str, list[Any]]) -> dict[str, Any]:
    """Return what the earlier of two manifests has ([digest, size], None if nothing) of each file they differ in.

    Most pages are at the same file with the same bytes in both: only the others' files are compared, so no
    table of every file is built (a tenth of a second at 10,000 posts).
    """
    touched: set[str] = set()
    for path, entry in now_pages.items():
        old = before_pages.get(path)
        if old is None or old[1:4] != entry[1:4]:  # file, digest, size
            touched.add(entry[1])
            if old is not None:
                touched.add(old[1])
    touched.update(old[1] for path, old in before_pages.items() if path not in now_pages)
    touched.update(name for name in now_statics.keys() | before_statics.keys()
                   if now_statics.get(name, [None])[:2] != before_statics.get(name, [None])[:2])
    now, before = _states(now_pages, now_statics, touched), _states(before_pages, before_statics, touched)
    return {name: before.get(name) for name in touched if now.get(name) != before.get(name)}


def _size(path: str) -> int | None:
    """Return the size of the regular file at ``path``; None if there is none (a symlink counts as none)."""
    try:
        status = os.lstat(path)
    except OSError:
        return None
    return status.st_size if S_ISREG(status.st_mode) else None


@contextmanager
def _collecting(many: bool) -> Iterator[None]:
    """Run the cyclic collector meanwhile when ``many`` pages are rendered here: each leaves some 40 cyclic objects."""
    if not many or gc.isenabled():
        yield
        return
    gc.enable()
    try:
        yield
    finally:
        gc.disable()


def _slug_builder(build: Callable[..., str]) -> Callable[..., str]:
    """Return ``build`` (a URL map adapter's) that builds each URL rule once per set of other values, a slug put in.

    A listing's pages, and a group's feeds, differ by their slug alone: the plan built 8,300 such URLs at
    10,000 posts, a tenth of a second. Only a slug that no converter quotes or changes is put in this way.
    """
    made: dict[tuple[str, tuple[tuple[str, Any], ...]], str] = {}

    def built(endpoint: str, values: dict[str, Any] | None = None) -> str:
        slug = values.get("slug") if values else None
        if not isinstance(slug, str) or not _PLAIN_SLUG.fullmatch(slug):
            return build(endpoint, values)
        assert values is not None
        shape = (endpoint, tuple(sorted((name, value) for name, value in values.items() if name != "slug")))
        template = made.get(shape)
        if template is None:
            template = made[shape] = build(endpoint, {**values, "slug": _SLUG_MARK})
            if template.count(_SLUG_MARK) != 1:
                made[shape] = template = ""
        return template.replace(_SLUG_MARK, slug) if template else build(endpoint, values)

    return built


_PLAIN_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]*")
_SLUG_MARK = "quire0slug0mark"


def _digest(parts: Iterable[Any]) -> str:
    return hashlib.blake2b(repr(list(parts)).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _key(parts: Iterable[str]) -> str:
    """Return a digest of strings none of which holds a NUL (digests, paths, numbers, user text through repr).

    Two and a half times as fast as ``_digest``'s repr of a list, and the plan makes one for each of the
    site's 16,700 pages at 10,000 posts.
    """
    return hashlib.blake2b("\0".join(parts).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _digest_bytes(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _compressible(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in COMPRESSED_SUFFIXES


def _compressed(data: bytes, suffix: str) -> bytes:
    if suffix != "gz":
        raise ValueError(f"unknown compression {suffix!r}")
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)  # mtime 0: the same bytes every time


def _redirect_page(target: str) -> bytes:
    escaped = target.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return (f'<!doctype html><meta charset="utf-8"><title>Moved</title>'
            f'<meta http-equiv="refresh" content="0; url={escaped}"><link rel="canonical" href="{escaped}">'
            f'<p>This page moved to <a href="{escaped}">{escaped}</a>.</p>\n').encode("utf-8")


def _relative_files(root: Path) -> Iterator[str]:
    """Yield the path of every file under ``root`` (symlinks too, never followed), relative to it."""
    stack = [("", os.fspath(root))]
    while stack:
        prefix, folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((f"{prefix}{entry.name}/", entry.path))
                else:
                    yield prefix + entry.name


# The swap ------------------------------------------------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _swap(tree: Path, folder: Path, *, keep: bool) -> None:
    """Put ``tree`` at ``folder`` in one step; the previous export becomes the spare if ``keep``, else it goes."""
    spare = spare_folder(folder)
    if spare.exists() and spare != tree:  # stale: the manifest now in ``tree`` does not describe it
        aside = spare.with_name(f"{spare.name}.{os.getpid()}.old")
        os.rename(spare, aside)
        remove_later(aside)
    if not folder.exists():
        os.rename(tree, folder)
        return
    if _exchange(tree, folder):
        old = tree
    else:
        old = tree.with_name(tree.name + ".previous")  # no atomic exchange here: a moment with neither
        os.rename(folder, old)
        os.rename(tree, folder)
    if keep:
        if old != spare:
            os.rename(old, spare)
    else:
        remove_later(old)


def remove_later(folder: Path) -> None:
    """Delete ``folder`` in a detached process, so the command is done once the new export is in place.

    Deleting tens of thousands of files and folders is the slowest step of an incremental export on a busy
    disk (seconds), and nothing waits for it: the folder is already out of the way, under a hidden name.
    """
    if not detach(lambda: shutil.rmtree(folder, ignore_errors=True), niceness=10, quiet=True):
        shutil.rmtree(folder, ignore_errors=True)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False where that is not available."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if function(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP}:  # a filesystem or kernel without it
        return False
    raise OSError(code, os.strerror(code), str(second))
