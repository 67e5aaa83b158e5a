"""Rendered post bodies on disk, shared by every worker and kept across restarts: each version rendered once.

The API, for the store and for ``blog freeze``::

    cache = store.rendered                 # None when BLOG_CACHE_DIR is off
    html = cache.get(post)                 # the body's HTML, or None when it was never rendered
    cache.put(post, html)                  # keep it for every process of this site
    cache.get(post, EXCERPT) / cache.put(post, html, EXCERPT)    # the same for the listing excerpt

An entry's key is a hash of the post file's content (``post.digest``: front matter and body, so Liquid's
``page`` values too), the URLs its ``post_url`` and ``link`` tags resolve to now, and what kind of HTML it
is; the folder it lives in is named after a fingerprint of everything else rendering depends on (Quire's
content code, Python-Markdown, Pygments and nh3 versions, the site values and BLOG_SANITIZE). A changed
file, moved link target or new release therefore never meets an old entry. Each entry is one file,
``rendered-FINGERPRINT/ab/KEY.html``, written to a temporary file and renamed into place, beginning with a
line that names its fingerprint, key and the hash of the HTML after it.

An entry is served as HTML, so it is trusted only as the post cache is: the folders must belong to this
user and not be writable by others, an entry file must belong to this user and be writable by nobody else;
a torn or foreign file (its first line does not match, or the hash of its HTML does not) is not used.

After the first load, the server's background filler (one detached process per start, at nice 19: see
``blog._fillers``; only one at a time for a cache folder, by a lock file) renders every post the cache
lacks, newest first, so that a crawler finds bodies ready; it stops when the server that started it exits,
and removes entries no current post wants after a month.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import markdown
import pygments

from blog.content.cache import remove_abandoned, unsafe
from blog.content.markup import is_html

log = logging.getLogger("quire.content")

FORMAT = 1
BODY, EXCERPT, FAILED = "body", "excerpt", "failed"
UNWANTED_SECONDS = 30 * 24 * 3600.0  # entries no current post wants are removed once this old
_CODE = Path(__file__).resolve().parent
_MAGIC = b"quire-render"


class RenderCache:
    """One site's rendered bodies: a folder of files named by content hash (see the module docstring)."""

    def __init__(self, folder: str, site_values: Mapping[str, Any], settings: Mapping[str, Any],
                 resolve_post_url: Callable[[str], str | None]):
        self.fingerprint = _fingerprint(site_values, settings)
        self.folder = os.path.join(folder, f"rendered-{self.fingerprint[:16]}")
        self.parent = folder
        self.resolve_post_url = resolve_post_url
        self._folders_safe = FolderTrust((folder, self.folder), self._refuse)
        self._warned = False

    def key(self, post: Any, kind: str = BODY) -> str:
        """Return the entry key of one kind of HTML of one version of a post, given today's link targets."""
        # The same text is other HTML in a .html file (no Markdown): renamed from .md, it is another entry.
        markup = "\0html" if is_html(post.source) else ""
        digest = hashlib.blake2b(f"{kind}{markup}\0{post.digest}".encode(), digest_size=16)
        for name in post.links:  # almost always none: then the file's content alone decides
            digest.update(f"\0{name}\0{self.resolve_post_url(name) or ''}".encode())
        return digest.hexdigest()

    def path(self, key: str) -> str:
        """Return the file of an entry."""
        return os.path.join(self.folder, key[:2], f"{key}.html")

    def get(self, post: Any, kind: str = BODY) -> str | None:
        """Return the cached HTML of ``post``, or None when absent, unsafe, torn or another fingerprint's."""
        if not self._folders_safe():
            return None
        key = self.key(post, kind)
        data, trouble = read_trusted(self.path(key))
        if trouble:
            self._refuse(self.path(key), trouble)
        if data is None:
            return None
        header, _, html = data.partition(b"\n")
        if header != self._header(key, html):
            self._refuse(self.path(key), "torn, or written for another version or settings")
            return None
        return html.decode("utf-8")

    def has(self, post: Any, kind: str = BODY) -> bool:
        """Tell whether an entry for ``post`` exists (without reading or checking it)."""
        return os.path.exists(self.path(self.key(post, kind)))

    def put(self, post: Any, html: str, kind: str = BODY) -> None:
        """Keep ``html`` as the rendering of ``post``; a cache that cannot be written is only logged."""
        error = write_entry(*self.target(post, kind), html)
        if error and not self._warned:
            log.warning("cannot write the render cache %s: %s", self.folder, error)
            self._warned = True

    def target(self, post: Any, kind: str = BODY) -> tuple[str, str, str]:
        """Return (folder, fingerprint, key) of an entry: what a render child needs to write it (write_entry)."""
        return self.folder, self.fingerprint, self.key(post, kind)

    def failure(self, post: Any) -> str | None:
        """Return why this version of ``post`` failed to render in any process of the site, or None."""
        if not self._folders_safe():
            return None
        try:
            with open(self.path(self.key(post, FAILED)), "rb") as handle:
                header, _, message = handle.read().partition(b"\n")
        except OSError:
            return None
        key = self.key(post, FAILED)
        return message.decode("utf-8", "replace") if header == _header(self.fingerprint, key, message) else None

    def mark_failed(self, post: Any, message: str) -> bool:
        """Record that this version of ``post`` fails to render; tell whether this process is the first to say so.

        The first process of the site to find a failure logs it; the others find the mark and never retry.
        """
        if not self._folders_safe():
            return True
        key = self.key(post, FAILED)
        data = message.encode("utf-8")
        try:
            os.makedirs(os.path.join(self.folder, key[:2]), mode=0o700, exist_ok=True)
            descriptor = os.open(self.path(key), os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                                 0o600)
        except FileExistsError:
            return False
        except OSError:
            return True  # no cache to share it through: this process says it
        with open(descriptor, "wb") as handle:
            handle.write(_header(self.fingerprint, key, data) + b"\n" + data)
        return True

    def fill(self, server: int, posts: Callable[[], Iterable[Any]], render: Callable[[Any], None]) -> None:
        """Render every post the cache lacks, here (the server's background filler), until process ``server`` ends."""
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        if not self._folders_safe():
            return
        with open(os.path.join(self.folder, "fill.lock"), "ab") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a restart's filler waits for the last one, which stops soon
            wanted = set()
            for post in posts():
                if not alive(server):
                    return  # the server stopped: so does its filler
                wanted.add(f"{self.key(post)}.html")
                wanted.add(f"{self.key(post, EXCERPT)}.html")
                if not self.has(post):
                    render(post)
            remove_abandoned(self.folder, ".render-")
            self._remove_unwanted(wanted)

    def _remove_unwanted(self, wanted: set[str]) -> None:
        """Delete entries no current post wants after UNWANTED_SECONDS, and other fingerprints' folders as old."""
        cutoff = time.time() - UNWANTED_SECONDS
        for entry in os.scandir(self.folder):
            if entry.is_dir(follow_symlinks=False):
                for file in os.scandir(entry.path):
                    if file.name not in wanted and _older(file, cutoff):
                        _unlink(file.path)
        remove_other_folders(self.parent, "rendered-", self.folder, cutoff)

    def _header(self, key: str, html: bytes) -> bytes:
        return _header(self.fingerprint, key, html)

    def _refuse(self, path: str, why: str) -> None:
        log.warning("not using the render cache %s: %s", path, why)


def write_entry(folder: str, fingerprint: str, key: str, html: str) -> str | None:
    """Write one entry (see RenderCache.target) atomically; return why it could not be, or None."""
    data = html.encode("utf-8")
    return write_atomically(os.path.join(folder, key[:2], f"{key}.html"), folder, ".render-",
                            _header(fingerprint, key, data) + b"\n" + data)


def write_atomically(path: str, folder: str, prefix: str, data: bytes) -> str | None:
    """Write ``data`` to ``path`` through a temporary file in ``folder`` renamed into place; return why not, or None."""
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=folder, prefix=prefix, suffix=".tmp", delete=False)
        try:
            with handle:
                handle.write(data)
            os.replace(handle.name, path)  # readers see no entry or a whole one
        except BaseException:
            os.unlink(handle.name)
            raise
    except OSError as error:
        return error.strerror or str(error)
    return None


def read_trusted(path: str) -> tuple[bytes | None, str]:
    """Return an entry file's bytes (None when absent or refused) and why it was refused ("" if it was not)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None, ""
    except OSError as error:
        return None, error.strerror or str(error)
    try:
        status = os.fstat(descriptor)
        trouble = unsafe(status, folder=False)
        if trouble:
            return None, trouble
        # One read of the size fstat gave: a buffered file object's read() grows its buffer chunk by chunk,
        # which cost 40 us against 14 for a 19 KB page entry. Entries are replaced, never written in place;
        # should one grow all the same, the rest is read too.
        data = os.read(descriptor, status.st_size + 1)
        if len(data) <= status.st_size:
            return data, ""
        parts = [data]
        while chunk := os.read(descriptor, 1 << 16):
            parts.append(chunk)
        return b"".join(parts), ""
    except OSError as error:  # a folder in its place, or the disk failing: no entry
        return None, error.strerror or str(error)
    finally:
        os.close(descriptor)


class FolderTrust:
    """Whether a cache's folders (outermost first) are only this user's to write, checked once per process.

    Until the innermost exists (the cache makes it), it is checked again each time. ``refuse`` is told the
    folder and why when one is not safe.
    """

    def __init__(self, folders: tuple[str, ...], refuse: Callable[[str, str], None]):
        self.folders = folders
        self.refuse = refuse
        self._known: tuple[int, bool] | None = None  # (pid, the folders were safe) for this process

    def __call__(self) -> bool:
        """Tell whether the folders are safe to read entries from and write them into."""
        if self._known is not None and self._known[0] == os.getpid():
            return self._known[1]
        found = folders_trouble(*self.folders)
        if found:
            self.refuse(*found)
        if found or os.path.isdir(self.folders[-1]):
            self._known = (os.getpid(), not found)
        return not found


def folders_trouble(*folders: str) -> tuple[str, str] | None:
    """Return (folder, why) for the first of ``folders`` (outermost first) others could write, or None.

    A missing folder ends the check: the cache makes it, and the folders inside it, private to this user.
    """
    for folder in folders:
        try:
            trouble = unsafe(os.stat(folder), folder=True)
        except FileNotFoundError:
            return None
        except OSError as error:
            trouble = error.strerror or str(error)
        if trouble:
            return folder, trouble
    return None


def _header(fingerprint: str, key: str, data: bytes) -> bytes:
    return b" ".join((_MAGIC, str(FORMAT).encode(), fingerprint.encode(), key.encode(),
                      hashlib.blake2b(data, digest_size=16).hexdigest().encode()))


def alive(pid: int) -> bool:
    """Tell whether the process ``pid`` (a filler's server) still runs as this user's."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # the pid was reused by another user's process
        return False
    return True


def remove_other_folders(parent: str, prefix: str, current: str, cutoff: float) -> None:
    """Delete the ``prefix`` folders in ``parent`` but ``current`` (other code's, other settings') idle since ``cutoff``."""
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(prefix) and entry.path != current and _older(entry, cutoff):
            shutil.rmtree(entry.path, ignore_errors=True)


def _older(entry: os.DirEntry[str], cutoff: float) -> bool:
    try:
        return entry.stat(follow_symlinks=False).st_mtime < cutoff
    except OSError:
        return False


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fingerprint(site_values: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """Return a digest of everything besides a post's file and link targets that decides its HTML."""
    digest = hashlib.sha256()
    for path in sorted(_CODE.glob("*.py")):
        digest.update(path.read_bytes())
    try:
        import nh3  # only if installed; it matters only with BLOG_SANITIZE

        sanitizer = getattr(nh3, "__version__", "present")
    except ImportError:
        sanitizer = "absent"
    parts = (FORMAT, markdown.__version__, pygments.__version__, sanitizer,
             sorted((str(key), repr(value)) for key, value in site_values.items()),
             repr(settings.get("BLOG_SANITIZE")), repr(settings.get("BLOG_EXTENSIONS")),
             repr(settings.get("BLOG_KRAMDOWN_LISTS")), repr(settings.get("BLOG_SMART_QUOTES")),
             getattr(settings.get("JEKYLL_SITE"), "fingerprint", ""))  # its defaults: page values
    digest.update(repr(parts).encode())
    return digest.hexdigest()
