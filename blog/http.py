"""The HTTP edge: finished responses cached until what they show changes, ETags, 304s, HEAD and gzip."""

from __future__ import annotations

import functools
import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from blog.content.changes import touched
from blog.content.site import Site
from blog.content.store import Snapshot
from blog.content.watch import Watchers

if TYPE_CHECKING:  # the page cache builds its answers with finish() below: only its type is needed here
    from blog.page_cache import PageCache, PostPage

CACHE_MARKER = "X-Quire-Cache"  # set by views on responses that depend only on content; never sent out
MAX_CACHED_BODY = 2 * 1024 * 1024
GZIP_LEVEL = 6
MAX_CACHED_BYTES = 32 * 1024 * 1024  # per worker: pages and their gzip copies
# Keys of responses found too large to keep, remembered so they are produced once, not twice, per request;
# the oldest are forgotten past this (each then costs one extra production), whatever query strings arrive.
MAX_TOO_LARGE_KEYS = 1024
# Keys answered once from the page cache and not kept, remembered so their second request is kept in memory:
# the oldest are forgotten past this (a page then waits for two more requests within the window).
MAX_MET_ONCE_KEYS = 4096
COMPRESSIBLE = ("text/", "application/xml", "application/atom+xml", "application/rss+xml", "application/json",
                "application/feed+json", "application/javascript", "image/svg+xml", "application/manifest+json")
_CONDITIONAL = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_MATCH", "HTTP_IF_UNMODIFIED_SINCE", "HTTP_RANGE")
_DROPPED = {"content-length", "content-encoding", "etag", "vary", CACHE_MARKER.lower()}
DEPENDS = "quire.depends"  # environ key where a view leaves the keys of what its response shows (blog.content.changes)
POST_PAGE = "quire.post_page"  # environ key where the post view leaves what its page shows (blog.page_cache.PostPage)

Key = tuple[str, str, bool]

StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class Variant:
    """One encoding of a finished response: its body and the headers that go with it."""

    body: bytes
    etag: str
    headers: list[tuple[str, str]]


@dataclass(frozen=True)
class Finished:
    """A response ready to send again: identity and (when worth it) gzip variants."""

    status: str
    identity: Variant
    gzip: Variant | None
    last_modified: float | None
    size: int


class ResponseCache:
    """WSGI middleware answering repeat requests from memory until the content changes."""

    def __init__(self, app: Callable[..., Iterable[bytes]], store: Site, watcher: Watchers, max_entries: int,
                 pages: PageCache | None = None):
        self.app = app
        self.pages = pages  # posts' pages on disk, shared by the workers: asked before the app
        self.store = store
        self.watcher = watcher
        self.max_entries = max_entries
        self._entries: OrderedDict[Key, Finished] = OrderedDict()
        # What each entry shows (None: it did not say, so any change drops it) and, the other way round, the
        # entries holding each key; so a change drops the responses that show it, and keeps the others.
        self._depends: dict[Key, frozenset[str] | None] = {}
        self._holders: dict[str, set[Key]] = {}
        self._anything: set[Key] = set()
        # Passed straight through until the content changes; a dict used as an ordered set, oldest first.
        self._too_large: dict[Key, None] = {}
        # A page from disk costs a file read, not a render, so memory keeps it from its second request only
        # (a dict used as an ordered set): a crawler reading every post once no longer pays for keeping each
        # page, nor pushes the pages readers come back to out of memory.
        self._met_once: dict[Key, None] = {}
        self._bytes = 0
        self._generation = -1
        self._seen: tuple[Snapshot, tuple[int, ...]] | None = None  # the posts and the rest, as last seen
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Serve from the cache, or run the app and finish (and maybe keep) its response."""
        self.watcher.ensure_running()
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in {"GET", "HEAD"}:
            return self.app(environ, without_marker(start_response))
        generation = self.store.generation
        if generation != self._generation:
            with self._lock:
                if generation != self._generation:
                    self._catch_up(generation)
        wants_gzip = _accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", ""))
        key = (environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""), wants_gzip)
        if key in self._too_large:
            return self.app(environ, without_marker(start_response))
        finished = self._entries.get(key)
        if finished is None:
            finished, cacheable, depends, from_disk = self.produce(environ)
            if finished is None:  # too large to hold: pass the app's own answer through, now and until a change
                with self._lock:
                    self._too_large[key] = None
                    while len(self._too_large) > MAX_TOO_LARGE_KEYS:
                        del self._too_large[next(iter(self._too_large))]
                return self.app(environ, without_marker(start_response))
            if cacheable and self.max_entries and (not from_disk or self._met_before(key)):
                self._keep(key, finished, depends, generation)
        return _send(finished, environ, wants_gzip, method, start_response)

    def _catch_up(self, generation: int) -> None:
        """Drop the entries that show what changed since the content last seen (all of them if unsure what)."""
        posts = self.store.posts
        snapshot = posts.snapshot
        rest = (self.store.pages.generation, *(watched.generation for watched in self.store.watched))
        if self._seen is None or self._seen[1] != rest:
            # Pages, the site file and the theme show in every page (the menu, the layout): nothing kept holds.
            self._clear()
        else:
            stale = set(self._anything)
            for name in touched(self._seen[0], snapshot, posts.zone):
                stale.update(self._holders.get(name, ()))
            for key in stale:
                self._drop(key)
        self._too_large.clear()
        self._seen = (snapshot, rest)
        self._generation = generation

    def _met_before(self, key: Key) -> bool:
        """Tell whether ``key`` was answered from the page cache before (and not kept); remember it if not."""
        with self._lock:
            if key in self._met_once:
                del self._met_once[key]
                return True
            self._met_once[key] = None
            while len(self._met_once) > MAX_MET_ONCE_KEYS:
                del self._met_once[next(iter(self._met_once))]
            return False

    def cached_keys(self) -> list[Key]:
        """Return the (path, query, gzip) keys of the responses held now, oldest first."""
        with self._lock:
            return list(self._entries)

    def _clear(self) -> None:
        self._entries.clear()
        self._depends.clear()
        self._holders.clear()
        self._anything.clear()
        self._bytes = 0

    def _drop(self, key: Key) -> None:
        finished = self._entries.pop(key, None)
        if finished is None:
            return
        self._bytes -= finished.size
        depends = self._depends.pop(key)
        if depends is None:
            self._anything.discard(key)
            return
        for name in depends:
            holders = self._holders.get(name)
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self._holders[name]

    def produce(self, environ: dict[str, Any]) -> tuple[Finished | None, bool, frozenset[str] | None, bool]:
        """Return a response memory does not hold, whether to cache it, what it shows, and if it came from disk.

        A post's page comes from the page cache while its entry holds; else from the app (None when too large).
        """
        if self.pages is not None and not environ.get("QUERY_STRING"):
            found = self.pages.get(environ.get("PATH_INFO", ""))
            if found is not None:
                return found[0], True, found[1], True
        return (*self._run(environ), False)

    def _run(self, environ: dict[str, Any]) -> tuple[Finished | None, bool, frozenset[str] | None]:
        inner = {key: value for key, value in environ.items() if key not in _CONDITIONAL}
        inner["REQUEST_METHOD"] = "GET"  # the cache needs the body even to answer a HEAD
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        result = self.app(inner, capture)
        try:
            chunks = []
            size = 0
            for chunk in result:
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_CACHED_BODY:
                    return None, False, None
            body = b"".join(chunks)
        finally:
            if hasattr(result, "close"):
                result.close()
        depends = inner.get(DEPENDS)
        finished, cacheable = finish(captured["status"], captured["headers"], body, self.store.changed_at)
        shown: PostPage | None = inner.get(POST_PAGE)
        if (self.pages is not None and shown is not None and cacheable and finished.status.startswith("200")
                and not environ.get("QUERY_STRING")):
            self.pages.put(environ.get("PATH_INFO", ""), shown, captured["status"], captured["headers"], finished)
        return finished, cacheable, None if depends is None else frozenset(depends)

    def _keep(self, key: Key, finished: Finished, depends: frozenset[str] | None, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self._drop(key)
            self._entries[key] = finished
            self._bytes += finished.size
            self._depends[key] = depends
            if depends is None:
                self._anything.add(key)
            else:
                for name in depends:
                    self._holders.setdefault(name, set()).add(key)
            while len(self._entries) > self.max_entries or self._bytes > MAX_CACHED_BYTES:
                self._drop(next(iter(self._entries)))


def without_marker(start_response: StartResponse) -> StartResponse:
    """Return ``start_response`` dropping the internal cache marker, for responses that bypass the cache."""

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        kept = [(name, value) for name, value in headers if name.lower() != CACHE_MARKER.lower()]
        return start_response(status, kept, exc_info)

    return start


def finish(status: str, headers: list[tuple[str, str]], body: bytes, changed_at: float,
           packed: bytes | None = None, etag: str | None = None) -> tuple[Finished, bool]:
    """Return a response with strong ETags, Last-Modified and a gzip variant, and whether to cache it.

    ``packed`` and ``etag`` are the body's gzip and identity ETag when known (the page cache's): compressing
    and hashing the body would give them again, at a cost a page read from disk should not pay.
    """
    cacheable = any(name.lower() == CACHE_MARKER.lower() for name, _ in headers)
    kept = [(name, value) for name, value in headers if name.lower() not in _DROPPED]
    given = next((value for name, value in kept if name.lower() == "last-modified"), None)
    last_modified = None
    if given is not None:
        last_modified = _parse_http_date(given)
    elif status.startswith("200") and cacheable:
        kept.append(("Last-Modified", _http_date(changed_at)))
        last_modified = changed_at
    content_type = next((value for name, value in kept if name.lower() == "content-type"), "")
    compressible = content_type.startswith(COMPRESSIBLE) and len(body) >= 256
    vary = [("Vary", "Accept-Encoding")] if compressible else []
    identity_tag = etag or _etag(body)
    identity = Variant(body, identity_tag, [*kept, *vary, ("ETag", identity_tag), ("Content-Length", str(len(body)))])
    gzipped = None
    if compressible:
        if packed is None:
            packed = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        if len(packed) < len(body):
            tag = identity_tag[:-1] + '-gzip"'
            gzipped = Variant(packed, tag, [*kept, *vary, ("ETag", tag), ("Content-Encoding", "gzip"),
                                            ("Content-Length", str(len(packed)))])
    size = len(body) + (len(gzipped.body) if gzipped else 0) + 512
    return Finished(status, identity, gzipped, last_modified, size), cacheable and status[:3] in {"200", "404", "410"}


def _send(finished: Finished, environ: dict[str, Any], wants_gzip: bool, method: str,
          start_response: StartResponse) -> Iterable[bytes]:
    variant = finished.gzip if wants_gzip and finished.gzip is not None else finished.identity
    if finished.status.startswith("200") and _not_modified(environ, variant.etag, finished.last_modified):
        keep = {"etag", "cache-control", "vary", "last-modified", "expires", "content-location"}
        start_response("304 Not Modified", [(name, value) for name, value in variant.headers if name.lower() in keep])
        return []
    start_response(finished.status, variant.headers)
    return [] if method == "HEAD" else [variant.body]


def _not_modified(environ: dict[str, Any], etag: str, last_modified: float | None) -> bool:
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or etag in tags
    if_modified_since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if if_modified_since and last_modified is not None:
        since = _parse_http_date(if_modified_since)
        return since is not None and int(last_modified) <= since
    return False


def _accepts_gzip(header: str) -> bool:
    for part in header.lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in {"gzip", "*"}:
            quality = params.strip().removeprefix("q=")
            try:
                return not params or float(quality) > 0
            except ValueError:
                return True
    return False


@functools.lru_cache(maxsize=4)
def _http_date(moment: float) -> str:
    """Return ``moment`` as an HTTP date: once per change of the content, not once per response."""
    return formatdate(moment, usegmt=True)


def _etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def _parse_http_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
