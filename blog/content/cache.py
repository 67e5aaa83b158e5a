"""The post store's state kept on disk between runs, so a restart reads one file instead of parsing every post.

The file holds what a load built: each file's key, post and problems, and the snapshot of indexes over
them. A post is used only for a file whose (mtime, size, inode, ctime) is unchanged, and the indexes only
when the folder lists exactly the files they were built from; the whole cache only by the same Quire code,
PyYAML and settings that wrote it. Anything else is parsed afresh. The cache is written after a load that
changed anything, by a detached process, so writing it never delays serving. It is a pickle, so it is read
only if this user owns it and nobody else can write to it or its folder.
"""

from __future__ import annotations

import copyreg
import dataclasses
import hashlib
import logging
import os
import pickle
import stat
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from operator import attrgetter
from pathlib import Path
from typing import IO, Any, TypeVar

import yaml

from blog.content.parallel import detach
from blog.content.post import Post

log = logging.getLogger("quire.content")

FORMAT = 7  # 2: descriptions without bodies; 3: descriptions as tuples; 4: packed file keys; 5: the store's state;
# 6: groups keep their membership print; 7: and each post's version
ABANDONED_SECONDS = 3600.0  # no writer takes this long, so its temporary file was left by a killed one
CacheKey = bytes  # (mtime, size, inode, ctime) packed: 65 bytes a file against 200 for a tuple of four ints
_KEY = struct.Struct("<qqQq")
Record = TypeVar("Record")
_CODE = Path(__file__).resolve().parent
# A Post is rebuilt by its constructor from its fields: the dataclass's own __setstate__ looks its fields up
# again for every post, which made unpickling 100,000 of them a third slower.
_POST_ARGUMENTS = tuple(item.name for item in dataclasses.fields(Post) if item.init)
_POST_FIELDS = attrgetter(*_POST_ARGUMENTS)
_STORE_AT = _POST_ARGUMENTS.index("store")


def folder_for(setting: str) -> str:
    """Return the cache folder a BLOG_CACHE_DIR value names, or "" for none."""
    if setting == "off":
        return ""
    if setting != "auto":
        return setting
    if os.environ.get("CACHE_DIRECTORY"):  # systemd's CacheDirectory=
        return os.environ["CACHE_DIRECTORY"].split(":")[0]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "quire") if os.path.isabs(base) else ""  # no home: no cache, not one in the cwd


def key_of(status: os.stat_result) -> CacheKey:
    """Return what must match for a cached file to be used: ctime too, which no tool can set back."""
    return _KEY.pack(status.st_mtime_ns, status.st_size, status.st_ino, status.st_ctime_ns)


class PostCache:
    """One posts folder's cache file."""

    def __init__(self, folder: str, root: str, settings: Mapping[str, Any]):
        self.folder = folder
        name = hashlib.sha256(os.fsencode(root)).hexdigest()[:16]
        self.path = os.path.join(folder, f"posts-{name}.pickle")
        # The indexes also hang on which posts are shown: future ones, and drafts under BLOG_DEV.
        self.fingerprint = parse_fingerprint(root, settings) + repr((settings.get("BLOG_SHOW_FUTURE"),
                                                                     settings.get("BLOG_DEV")))

    def load(self, owner: object) -> dict[str, Any] | None:
        """Return the saved state, its posts owned by ``owner``; None when the cache is absent, foreign or unusable."""
        try:
            descriptor = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        except OSError as error:
            log.warning("not using the post cache %s: %s", self.path, error.strerror)
            return None
        with open(descriptor, "rb") as handle:
            try:
                trouble = unsafe(os.fstat(handle.fileno()), folder=False) or unsafe(os.stat(self.folder), folder=True)
            except OSError as error:
                trouble = error.strerror or str(error)
            if trouble:
                log.warning("not using the post cache %s: %s", self.path, trouble)
                return None
            try:
                saved = _Unpickler(handle, owner).load()  # our own file, checked above as only ours to write
            except Exception as error:  # noqa: BLE001 - a torn or old file is just a cache miss
                log.warning("not using the post cache %s: unreadable (%s)", self.path, error)
                return None
        if not isinstance(saved, dict) or saved.get("fingerprint") != self.fingerprint:
            return None  # written by other code or settings: parse everything, and the next save replaces it
        state = saved.get("state")
        return state if isinstance(state, dict) else None

    def exists(self) -> bool:
        """Tell whether there is a cache file to try (a first start has none)."""
        return os.path.lexists(self.path)

    def save(self, state: Callable[[], dict[str, Any]], owner: object) -> None:
        """Write the state ``state()`` gives, in a detached process when this one may fork, so the caller goes on."""
        if not detach(lambda: self._write(state(), owner), niceness=10):  # the server's start comes first
            self._write(state(), owner)

    def _write(self, state: dict[str, Any], owner: object) -> None:
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            remove_abandoned(self.folder, ".posts-")
            handle = tempfile.NamedTemporaryFile(dir=self.folder, prefix=".posts-", suffix=".tmp", delete=False)
            try:
                with handle:
                    _Pickler(handle, owner).dump({"fingerprint": self.fingerprint, "state": state})
                os.replace(handle.name, self.path)  # readers see the old file or the new one, never half
            except BaseException:
                os.unlink(handle.name)
                raise
        except Exception as error:  # noqa: BLE001 - a cache that cannot be written must never stop a load
            log.warning("cannot write the post cache %s: %s", self.path, error)


class _Pickler(pickle.Pickler):
    """Pickle a store's state without the store itself, which its posts name and the loading process supplies.

    The owner is left out by pickling each post as a call of ``_owned_post``, which the unpickler resolves to
    the owner's constructor: a persistent id would cost a Python call for every object written. Each post's
    version goes last: worked out here, in the detached writer, so no worker works it out after a restart.
    """

    def __init__(self, file: IO[bytes], owner: object):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.owner = owner
        self.dispatch_table = {**copyreg.dispatch_table, Post: self._reduce_post}

    def _reduce_post(self, post: Post) -> tuple[Callable[..., Post], tuple[Any, ...]]:
        if post.store is not self.owner:
            raise pickle.PicklingError(f"{post.source}: a post of another store")
        values = _POST_FIELDS(post)
        return _owned_post, (*values[:_STORE_AT], *values[_STORE_AT + 1:], post.version)


class _Unpickler(pickle.Unpickler):
    """Unpickle a state written by _Pickler, giving its posts ``owner`` as their store."""

    def __init__(self, file: IO[bytes], owner: object):
        super().__init__(file)
        self.owner = owner

    def find_class(self, module: str, name: str) -> Any:
        """Resolve ``_owned_post`` to a constructor of posts owned by ``owner``; anything else as pickle does."""
        if (module, name) == (__name__, _owned_post.__name__):
            owner = self.owner

            def owned_post(*values: Any) -> Post:
                post = Post(*values[:_STORE_AT], owner, *values[_STORE_AT:-1])
                post.restore_version(values[-1])
                return post

            return owned_post
        return super().find_class(module, name)


def pickled_by_constructor(cls: type[Record]) -> type[Record]:
    """Make a slots dataclass (``cls``) pickle as a call of its constructor with its fields' values.

    The dataclass's own __getstate__ and __setstate__ look its fields up again for every object: the post
    cache's 100,000 file states took 0.16 s to unpickle against 0.08-0.10 s, and the 16,700 outcomes an
    export's children send 0.12-0.14 s to pickle against 0.08.
    """
    names = [item.name for item in dataclasses.fields(cls)]  # type: ignore[arg-type]
    assert len(names) > 1 and all(item.init for item in dataclasses.fields(cls))  # type: ignore[arg-type]
    values = attrgetter(*names)

    def reduce(self: Record) -> tuple[type[Record], tuple[Any, ...]]:
        return cls, values(self)

    cls.__reduce__ = reduce  # type: ignore[assignment,method-assign]
    return cls


def _owned_post(*values: Any) -> Post:
    """Stand for the constructor of a loading store's posts in a pickled state (see _Unpickler.find_class)."""
    raise pickle.UnpicklingError("a post cache read without its store")


def remove_abandoned(folder: str, prefix: str) -> None:
    """Delete temporary files of writers killed mid-write (a server stopped by SIGKILL) over an hour ago."""
    cutoff = time.time() - ABANDONED_SECONDS
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(".tmp"):
                try:
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
                except OSError:
                    continue


def unsafe(status: os.stat_result, folder: bool) -> str:
    """Say why a file or folder cannot be trusted with a pickle, or return ""."""
    if hasattr(os, "geteuid") and status.st_uid != os.geteuid():
        return f"{'its folder is' if folder else 'it is'} owned by another user"
    # A shared folder with the sticky bit (like /tmp) is fine: others cannot replace a file they do not own.
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (folder and status.st_mode & stat.S_ISVTX):
        return f"{'its folder is' if folder else 'it is'} writable by other users"
    return ""


def parse_fingerprint(root: str, settings: Mapping[str, Any]) -> str:
    """Return a digest of everything besides a file's content that decides what parsing it gives (blog freeze keys by it too)."""
    digest = hashlib.sha256()
    for path in sorted(_CODE.glob("*.py")):
        digest.update(path.read_bytes())
    parts = (FORMAT, sys.version, yaml.__version__, getattr(yaml, "__with_libyaml__", False), root,
             *(repr(settings.get(name)) for name in
               ("BLOG_TIMEZONE", "BLOG_PERMALINK", "BLOG_MAX_POST_SIZE", "BLOG_EXTENSIONS", "BLOG_SHOW_DRAFTS",
                "BLOG_EXCERPT_SEPARATOR")),
             getattr(settings.get("JEKYLL_SITE"), "fingerprint", ""))
    digest.update(repr(parts).encode())
    return digest.hexdigest()
