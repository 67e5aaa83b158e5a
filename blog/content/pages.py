"""Flask-FlatPages, taught to read Jekyll posts one file at a time with limits and a fast YAML loader."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Flask
from flask_flatpages import FlatPages, Page

from blog.content.markup import is_html
from blog.content.source import Source, SourceError, body_of, decode, split

_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
IGNORED_SUFFIXES = ("~", ".swp", ".swx", ".tmp", ".part", ".crdownload")


class FileChanging(SourceError):
    """The file was being written while it was read; the next change event reads it again."""


class PostPage(Page):
    """A FlatPages page whose front matter was parsed (and checked) when the file was read."""

    def __init__(self, relative: str, source: Source, renderer: Any):
        super().__init__(relative.rsplit(".", 1)[0], "", source.body, renderer, os.path.dirname(relative))
        self.__dict__["meta"] = source.meta  # shadows Page.meta, which would parse the YAML again
        self.source = source
        self.relative = relative  # the file's name, extension and all: a .html page is not Markdown


class PostPages(FlatPages):
    """The posts folder, read file by file; the post store decides when, so nothing reloads per request."""

    def init_app(self, app: Flask) -> None:
        """Set up FlatPages on ``app`` without its per-request auto-reload hook."""
        super().init_app(app)
        # The store is told of changes by the watcher; FlatPages' before_request reset would walk the
        # whole folder on every request, which is exactly the cost Quire exists to avoid.
        app.before_request_funcs[None].remove(self._conditional_auto_reset)
        self._config = app.config
        self.renderer: Any = None
        self.resolve_post_url: Any = lambda name: None
        # Which folders and files of the root hold posts: all of them, unless a Jekyll site says otherwise.
        self.reads_folder: Callable[[str], bool] = lambda relative: True
        self.reads_post: Callable[[str], bool] = lambda relative: True
        self._renderer_wrapper: Any = None
        # A pages folder skips "_" folders too: a Jekyll site's root holds _posts, _layouts, _site...
        self.skips_underscore_folders = False
        self.skipped_folders: frozenset[str] = frozenset()  # more folder names never read

    def config(self, key: str) -> Any:
        """Read this extension's settings from its own app, so watcher threads need no app context."""
        return self._config["_".join((self.config_prefix, key.upper()))]

    @property
    def root(self) -> str:
        """Return the absolute posts folder."""
        return self.config("root")

    def walk(self, ordered: bool = True) -> Iterator[tuple[str, os.stat_result]]:
        """Yield (relative path, stat) of every candidate post file under the root, sorted unless not ``ordered``.

        Unordered, a folder's entries are taken as the system lists them rather than all held at once to be
        sorted: 100,000 of them took tens of megabytes.
        """
        extensions = tuple(self.config("extension"))
        root = self.root
        stack = [""]
        while stack:
            folder = stack.pop()
            try:
                listing = os.scandir(os.path.join(root, folder))
            except OSError:
                continue
            with listing:
                try:
                    entries = sorted(listing, key=lambda entry: entry.name) if ordered else listing
                    yield from self._candidates(folder, entries, extensions, stack)
                except OSError:  # the folder went away while being listed
                    continue

    def _candidates(self, folder: str, entries: Iterable[os.DirEntry[str]], extensions: tuple[str, ...],
                    stack: list[str]) -> Iterator[tuple[str, os.stat_result]]:
        """Yield the post files among one folder's entries, and put its subfolders to read on ``stack``."""
        for entry in entries:
            relative = f"{folder}/{entry.name}" if folder else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not self.skips_folder(entry.name) and self.reads_folder(relative):
                        stack.append(relative)
                elif (entry.is_file(follow_symlinks=False) and is_post_file(entry.name, extensions)
                      and self.reads_post(relative)):
                    yield relative, entry.stat(follow_symlinks=False)
            except OSError:
                continue

    def skips_folder(self, name: str) -> bool:
        """Tell whether a folder of this name is left unread: hidden ones, and ``skipped_folders``."""
        return (name.startswith(".") or (self.skips_underscore_folders and name.startswith("_"))
                or name in self.skipped_folders)

    def render_text(self, text: str, meta: dict[str, Any], **options: Any) -> str:
        """Render a post's text with the renderer and post-URL resolver the store attached (options: Renderer.render's)."""
        return self.renderer.render(text, self.resolve_post_url, meta, **options)

    def read(self, relative: str, max_size: int) -> tuple[Source, os.stat_result, str]:
        """Read and parse one post file; return it, its status and digest; raise SourceError or OSError when unusable."""
        data, status = self._read_bytes(relative, max_size)
        return split(decode(data, max_size)), status, digest_of(data)

    def read_body(self, relative: str, max_size: int) -> tuple[str, int, str]:
        """Read one post file's body, its first line and the file's digest, with the checks of ``read`` but no YAML."""
        data, _ = self._read_bytes(relative, max_size)
        body, line = body_of(decode(data, max_size))
        return body, line, digest_of(data)

    def _read_bytes(self, relative: str, max_size: int) -> tuple[bytes, os.stat_result]:
        descriptor = os.open(os.path.join(self.root, relative), _READ_FLAGS)
        try:
            status = os.fstat(descriptor)
            if status.st_size > max_size:
                raise SourceError(f"file is {status.st_size:,} bytes, over the {max_size:,}-byte limit (BLOG_MAX_POST_SIZE)")
            # Read what fstat promised and one byte more: a different length means a writer is still at it.
            data = _read_exactly(descriptor, status.st_size + 1)
        finally:
            os.close(descriptor)
        if len(data) != status.st_size:
            raise FileChanging(f"file changed while being read ({status.st_size:,} bytes expected, {len(data):,} read)")
        return data, status

    def page(self, relative: str, source: Source) -> PostPage:
        """Return a FlatPages page for a post file's text, made when it is rendered (posts do not keep one)."""
        if self._renderer_wrapper is None:
            self._renderer_wrapper = self._smart_html_renderer(self.config("html_renderer"))
        return PostPage(relative, source, self._renderer_wrapper)


def digest_of(data: bytes) -> str:
    """Return the hex BLAKE2b digest that names one version of a post file's content."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _read_exactly(descriptor: int, size: int) -> bytes:
    """Read up to ``size`` bytes, looping over short reads, stopping at the end of the file."""
    chunks = []
    while size > 0:
        chunk = os.read(descriptor, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def render_page(body: str, pages: PostPages, page: PostPage) -> str:
    """Render a page's body; FlatPages calls this once per page (FLATPAGES_HTML_RENDERER) and caches it."""
    return pages.render_text(body, page.meta, raw_html=is_html(page.relative))


def is_post_file(name: str, extensions: tuple[str, ...]) -> bool:
    """Tell whether a file name is a post: a known extension, and not hidden or an editor's temporary."""
    if name.startswith((".", "_", "#")) or name.endswith(IGNORED_SUFFIXES):
        return False
    return name.lower().endswith(extensions)
