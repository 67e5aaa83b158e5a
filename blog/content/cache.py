"""Parsed posts kept on disk between runs, so a restart reads one file instead of parsing every post again.

An entry is used only for a file whose (mtime, size, inode, ctime) is unchanged, and the whole cache only
by the same Quire code, PyYAML and settings that wrote it; anything else is parsed afresh. The cache is
written once per start, after the first load, by a detached process, so writing it never delays serving.
It is a pickle, so it is read only if this user owns it and nobody else can write to it or its folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import stat
import struct
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from blog.content.parallel import detach

log = logging.getLogger("quire.content")

FORMAT = 4  # 2: descriptions without bodies; 3: descriptions as tuples; 4: packed file keys
ABANDONED_SECONDS = 3600.0  # no writer takes this long, so its temporary file was left by a killed one
CacheKey = bytes  # (mtime, size, inode, ctime) packed: 65 bytes a file against 200 for a tuple of four ints
_KEY = struct.Struct("<qqQq")
_CODE = Path(__file__).resolve().parent


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
        self.fingerprint = parse_fingerprint(root, settings)

    def load(self) -> dict[str, tuple[CacheKey, Any]]:
        """Return the cached entries by file, or nothing when the cache is absent, foreign or unusable."""
        try:
            descriptor = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return {}
        except OSError as error:
            log.warning("not using the post cache %s: %s", self.path, error.strerror)
            return {}
        with open(descriptor, "rb") as handle:
            try:
                trouble = unsafe(os.fstat(handle.fileno()), folder=False) or unsafe(os.stat(self.folder), folder=True)
            except OSError as error:
                trouble = error.strerror or str(error)
            if trouble:
                log.warning("not using the post cache %s: %s", self.path, trouble)
                return {}
            try:
                saved = pickle.load(handle)  # noqa: S301 - our own file, checked above as only ours to write
            except Exception as error:  # noqa: BLE001 - a torn or old file is just a cache miss
                log.warning("not using the post cache %s: unreadable (%s)", self.path, error)
                return {}
        if not isinstance(saved, dict) or saved.get("fingerprint") != self.fingerprint:
            return {}  # written by other code or settings: parse everything, and the next save replaces it
        entries = saved.get("entries")
        return entries if isinstance(entries, dict) else {}

    def save(self, entries: dict[str, tuple[CacheKey, Any]]) -> None:
        """Write the entries, in a detached process when this one may fork, so the caller goes on at once."""
        if not detach(lambda: self._write(entries), niceness=10):  # the server's start comes first
            self._write(entries)

    def _write(self, entries: dict[str, tuple[CacheKey, Any]]) -> None:
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            remove_abandoned(self.folder, ".posts-")
            handle = tempfile.NamedTemporaryFile(dir=self.folder, prefix=".posts-", suffix=".tmp", delete=False)
            try:
                with handle:
                    pickle.dump({"fingerprint": self.fingerprint, "entries": entries}, handle,
                                protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(handle.name, self.path)  # readers see the old file or the new one, never half
            except BaseException:
                os.unlink(handle.name)
                raise
        except Exception as error:  # noqa: BLE001 - a cache that cannot be written must never stop a load
            log.warning("cannot write the post cache %s: %s", self.path, error)


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
