"""Finished post pages on disk, shared by every worker and kept across restarts: the response cache's second level.

A post's page costs a render (its body, then the template) in every worker that has not kept it in memory,
and again after each restart; a file read costs microseconds. So the response cache, on a miss for a post's
own page (``posts.detail`` of a public post, no query string), asks this cache before the app, and keeps
here what the app answers (a cacheable 200 only: never a render fallback, a preview or BLOG_DEV's pages).

An entry, ``pages/ab/KEY.page`` under BLOG_CACHE_DIR (KEY: a hash of the URL path), holds what the page
showed when rendered, so any process can check in microseconds that it still shows that:
- the site's fingerprint (Quire's code, templates, the theme, static files, BLOG_* settings, the site file
  and every page, which the menu shows), computed once per change of those;
- the post's version, its newer and older neighbours' URLs and versions, and its related posts' URLs and
  versions;
- a print of each of the post's tags and categories (their posts' URLs and dates): related posts are ranked
  from those groups alone, so while the prints hold the recorded related posts are still the ones chosen.
A post's version is worked out once per post version (kept with the Post), a group's print is kept by the
store with the group (``Group.membership``, changed with each post that comes or goes), and the URLs a
post's links name once per snapshot, so a change costs what it touches, and a check reads no group's posts:
a worker that read every post of a tag would copy the memory it shares with gunicorn's master (200 MB per
worker at 100,000 posts, when the prints were worked out here).

The file is a header line (magic, format, key, CRC-32 of the rest), a JSON line (that record, the view's
status and headers, the gzip body's length), then the page's identity body and its gzip body: a hit sends
either as read, with no decompression for clients that ask for no gzip (about 13.5 KB more a post than the
gzip body alone, against 25-50 us of gunzip a hit); ETag, Last-Modified and Vary are made again by
``finish`` exactly as for a fresh render. The CRC finds a torn file; trust comes from the folders, not from a
digest. It is written to a temporary file and renamed into place, and read only under the render cache's
rules (this user's folders and file, writable by nobody else); a torn, foreign or mismatching entry is
ignored and replaced.

After start, a short-lived detached process asks the kernel to read every current post's entry ahead (a
sync worker waiting on the disk serves nobody), and the server's background filler (nice 19, see
``blog._fillers``), after the bodies and under the render cache's lock, produces the page of every post that
lacks a valid entry, so a crawler finds pages ready.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import sys
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Flask
from jinja2 import ChoiceLoader, FileSystemLoader
from werkzeug.test import EnvironBuilder

from blog.content.cache import remove_abandoned
from blog.content.changes import post_page_keys
from blog.content.post import Post
from blog.content.render_cache import FolderTrust, alive, read_trusted, write_atomically
from blog.content.site import Site
from blog.content.store import Snapshot, end_render_budget, start_render_budget
from blog.http import Finished, finish
from blog.theme import static_folders

if TYPE_CHECKING:  # the response cache holds this one: only its type is needed here
    from blog.http import ResponseCache

log = logging.getLogger("quire.content")

FORMAT = 3  # 3: the identity body beside the gzip one, a CRC-32 for the hash
FOLDER = "pages"
UNWANTED_SECONDS = 30 * 24 * 3600.0  # entries of URLs no current post has are removed once this old
_MAGIC = b"quire-page"
_BLOG = Path(__file__).resolve().parent


@dataclass(frozen=True)
class PostPage:
    """What a post's page shows, as the view found it: for the page cache to record."""

    snapshot: Snapshot
    post: Post
    newer: Post | None
    older: Post | None
    related: tuple[Post, ...]


class PageCache:
    """The site's finished post pages: a folder of files named by URL (see the module docstring)."""

    def __init__(self, folder: str, app: Flask, site: Site):
        self.parent = folder
        self.folder = os.path.join(folder, FOLDER)
        self.app = app
        self.site = site
        self._site_print: tuple[tuple[int, ...], str] | None = None  # (what it was computed for, the print)
        self._pages_print: tuple[Any, str] | None = None  # (the page index it was computed for, the print)
        self._fingerprint: tuple[str, str, str] | None = None  # (site print, pages print, their digest)
        self._folders_safe = FolderTrust((folder, self.folder), self._refuse)
        self._warned = False

    def path(self, url: str) -> str:
        """Return the entry file of the page at ``url``."""
        key = _key(url)
        return os.path.join(self.folder, key[:2], f"{key}.page")

    def get(self, url: str) -> tuple[Finished, frozenset[str]] | None:
        """Return the page at ``url`` and the dependency keys it shows, or None unless an entry still holds."""
        if not self._folders_safe():
            return None
        posts = self.site.posts.snapshot
        post = posts.by_url.get(url)
        if post is None or url in posts.redirects or url in self.site.pages.snapshot.redirects:
            return None  # not a post's page (the view answers a redirect first)
        path = self.path(url)
        data, trouble = read_trusted(path)
        if trouble:
            self._refuse(path, trouble)
        if data is None:
            return None
        # Positions rather than partitions: each partition would copy the page's bytes once more.
        header_end = data.find(b"\n")
        line_end = data.find(b"\n", header_end + 1)
        if line_end < 0 or data[:header_end] != _header(_key(url), memoryview(data)[header_end + 1:]):
            self._refuse(path, "torn, or written by another version")
            return None
        record = json.loads(data[header_end + 1:line_end])
        newer, older = posts.neighbours(post)
        if record["state"] != self._state(posts, post, newer, older):
            return None
        related = []
        for other_url, version in record["related"]:
            other = posts.by_url.get(other_url)
            if other is None or self._version(posts, other) != version:
                return None
            related.append(other)
        body_end = len(data) - record["gzip"]
        body = data[line_end + 1:body_end]
        packed = data[body_end:] if record["gzip"] else None
        finished, _ = finish(record["status"], [tuple(pair) for pair in record["headers"]], body,
                             self.site.changed_at, packed=packed, etag=record["etag"])
        return finished, frozenset(post_page_keys(post, (newer, older), related))

    def put(self, url: str, shown: PostPage, status: str, headers: list[tuple[str, str]], finished: Finished) -> None:
        """Keep a post's page as the view answered it (``headers`` before ``finish``); failures are only logged."""
        rendered = self.site.posts.rendered
        if not self._folders_safe() or (rendered is not None and rendered.failure(shown.post) is not None):
            return  # a body that fails to render shows as text, and each process must find that out for `check`
        snapshot = shown.snapshot
        record = {"state": self._state(snapshot, shown.post, shown.newer, shown.older),
                  "related": [[other.url, self._version(snapshot, other)] for other in shown.related],
                  "status": status, "headers": headers,
                  "gzip": len(finished.gzip.body) if finished.gzip is not None else 0,
                  "etag": finished.identity.etag}
        packed = finished.gzip.body if finished.gzip is not None else b""
        rest = b"".join((json.dumps(record, separators=(",", ":")).encode(), b"\n", finished.identity.body, packed))
        error = write_atomically(self.path(url), self.folder, ".page-", _header(_key(url), rest) + b"\n" + rest)
        if error and not self._warned:
            log.warning("cannot write the page cache %s: %s", self.folder, error)
            self._warned = True

    def fill(self, server: int, cached: ResponseCache, lock_folder: str) -> None:
        """Produce every post's page the cache lacks, here (the server's background filler), while ``server`` runs.

        It waits for ``lock_folder``'s fill.lock (the render cache's), so pages come after the bodies, and one
        page filler works at a time.
        """
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        os.makedirs(lock_folder, mode=0o700, exist_ok=True)
        if not self._folders_safe():
            return
        with open(os.path.join(lock_folder, "fill.lock"), "ab") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # after the bodies, and one page filler at a time
            cached.max_entries = 0  # this process answers no reader: memory would only hold what it wrote
            mount = urlsplit(self.app.config["BLOG_URL"]).path.rstrip("/")
            wanted = set()
            for post in self.site.posts.snapshot.posts:
                if not alive(server):
                    return  # the server stopped: so does its filler
                wanted.add(os.path.basename(self.path(post.url)))
                if self.get(post.url) is None:
                    start_render_budget(None)  # the whole page, however long its body takes to render
                    try:
                        cached.produce(_environ(mount, post.url))
                    finally:
                        end_render_budget()
            remove_abandoned(self.folder, ".page-")
            _remove_unwanted(self.folder, wanted)

    def read_ahead(self) -> None:
        """Ask the kernel to read the current posts' entries into memory, newest first, before any reader does.

        After a restart the files may have left the kernel's page cache (some machines page out what nobody
        touched for a minute), and a sync worker waiting on the disk serves nobody meanwhile: the kernel reads
        them while the workers compute. Nothing where the platform has no posix_fadvise.
        """
        advise = getattr(os, "posix_fadvise", None)
        if advise is None or not self._folders_safe():
            return
        for post in self.site.posts.snapshot.posts:
            try:
                descriptor = os.open(self.path(post.url), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except OSError:
                continue
            try:
                advise(descriptor, 0, 0, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass
            finally:
                os.close(descriptor)

    # What a page shows ----------------------------------------------------------------------------

    def _state(self, snapshot: Snapshot, post: Post, newer: Post | None, older: Post | None) -> list[Any]:
        """Return what must be as recorded for an entry to hold, besides its related posts' versions."""
        return [self.fingerprint(), post.url, self._version(snapshot, post),
                *([other.url, self._version(snapshot, other)] if other is not None else None for other in (newer, older)),
                *([kind, term.slug, membership_print(snapshot, kind, term.slug)]
                  for kind, terms in (("tag", post.tags), ("category", post.categories)) for term in terms)]

    def _version(self, snapshot: Snapshot, post: Post) -> str:
        """Return a digest of everything about ``post`` a page showing it may show (as blog freeze keys it)."""
        if not post.links:
            return post_version(post, self.site.posts.resolve_post_url)  # kept with the post: no lookups
        memo = _memo(snapshot)  # the URLs its links name are the snapshot's
        found = memo.get(post.url)
        if found is None:
            found = memo[post.url] = post_version(post, self.site.posts.resolve_post_url)
        return found

    def fingerprint(self) -> str:
        """Return a digest of everything besides the posts that decides how a post's page looks."""
        watched = (self.site.pages.generation, *(item.generation for item in self.site.watched))
        if self._site_print is None or self._site_print[0] != watched:
            self._site_print = (watched, site_fingerprint(self.app, self.site))
        index = self.site.page_index  # the same object until posts or pages change
        if self._pages_print is None or self._pages_print[0] is not index:
            pages = self.site.pages
            self._pages_print = (index, _digest(sorted((url, repr(page), page.digest, repr(page.meta),
                                                        *(pages.resolve_post_url(name) for name in page.links))
                                                       for url, page in index.by_url.items())))
        site_print, pages_print = self._site_print[1], self._pages_print[1]
        if self._fingerprint is None or self._fingerprint[:2] != (site_print, pages_print):
            # Asked for on every hit: their digest is worked out once per change of either, not per request.
            self._fingerprint = (site_print, pages_print, _digest([site_print, pages_print]))
        return self._fingerprint[2]

    def _refuse(self, path: str, why: str) -> None:
        log.warning("not using the page cache %s: %s", path, why)


def post_version(post: Post, resolve_post_url: Callable[[str], str | None]) -> str:
    """Return a digest of everything about ``post`` that any page showing it may show (here and in blog freeze)."""
    # The post's own version, then the URLs its post_url and link tags name: part of its HTML, and they move
    # with other posts.
    return _digest([post.version, *(resolve_post_url(name) for name in post.links)]) if post.links else post.version


def membership_print(snapshot: Snapshot, kind: str, slug: str) -> str:
    """Return the print of a tag's or category's membership (its posts' URLs and dates) that the store keeps."""
    group = (snapshot.tags if kind == "tag" else snapshot.categories).get(slug)
    return f"{group.membership:032x}" if group is not None else ""


def site_fingerprint(app: Flask, site: Site) -> str:
    """Return a digest of Quire's code and libraries, templates, theme, static files, settings and site file."""
    parts: list[Any] = [FORMAT, sys.version, *(package_version(name) for name in
                                               ("flask", "jinja2", "markdown", "pygments", "werkzeug", "flask-flatpages"))]
    parts += sorted((name, repr(value)) for name, value in app.config.items() if name.startswith("BLOG_"))
    parts.append(getattr(app.config.get("JEKYLL_SITE"), "fingerprint", ""))
    loader = app.jinja_loader
    loaders = loader.loaders if isinstance(loader, ChoiceLoader) else [loader]  # the theme's templates, then Quire's
    templates = [Path(path) for each in loaders if isinstance(each, FileSystemLoader) for path in each.searchpath]
    for folder in (_BLOG, *templates):
        for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
            if path.is_file() and "__pycache__" not in path.parts:
                parts += [str(path), _digest_bytes(path.read_bytes())]
    for folder in static_folders(app):  # pages carry static files' fingerprints in their asset URLs
        for root, _, names in sorted(os.walk(folder)):
            for name in sorted(names):
                status = os.stat(os.path.join(root, name))
                parts += [os.path.join(root, name), status.st_size, status.st_mtime_ns]
    try:
        parts.append(_digest_bytes(Path(site.site_file.path).read_bytes()) if site.site_file.path else "")
    except OSError:
        parts.append("")
    return _digest(parts)


def _memo(snapshot: Snapshot) -> dict[Any, str]:
    # Kept with the snapshot, as derived.py keeps its indexes: true for its lifetime, and gone with it.
    return snapshot.__dict__.setdefault("_page_cache", {})


def _environ(mount: str, url: str) -> dict[str, Any]:
    """Return a GET of ``url`` as the response cache sees one from a gzip client, behind SiteMount."""
    environ = EnvironBuilder(path=url, headers={"Accept-Encoding": "gzip"}).get_environ()
    environ["SCRIPT_NAME"] = mount
    return environ


def _remove_unwanted(folder: str, wanted: set[str]) -> None:
    """Delete entries of URLs no current post has, once UNWANTED_SECONDS old."""
    cutoff = time.time() - UNWANTED_SECONDS
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            for file in os.scandir(entry.path):
                try:
                    if file.name not in wanted and file.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(file.path)
                except OSError:
                    continue


def _key(url: str) -> str:
    return hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _header(key: str, rest: bytes | memoryview) -> bytes:
    return b" ".join((_MAGIC, str(FORMAT).encode(), key.encode(), b"%08x" % zlib.crc32(rest)))


def _digest(parts: Iterable[Any]) -> str:
    return hashlib.blake2b(repr(list(parts)).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _digest_bytes(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()
