"""The site file (site.yml): what belongs to the content rather than the deployment, read, checked and kept current."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from blog.content.post import is_safe_url
from blog.content.store import Problem

log = logging.getLogger("quire.content")

CHECK_SECONDS = 0.25  # how often a worker looks (one stat) whether the site file changed
NAV_NAMES = ("home", "categories", "tags", "archive", "pages")
KEYS = ("title", "description", "author", "social", "footer", "logo", "favicon", "nav", "lang")
_LANG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")


@dataclass(frozen=True)
class Link:
    """A titled link: a menu entry, a social profile, one of the author's links."""

    title: str
    url: str


@dataclass(frozen=True)
class Author:
    """The site's author, shown on their author page and named in feeds and JSON-LD."""

    name: str
    bio: str = ""
    avatar: str = ""
    links: tuple[Link, ...] = ()


@dataclass(frozen=True)
class SiteSettings:
    """The site file's values; every one optional. ``nav`` holds built-in names and links."""

    title: str | None = None
    description: str | None = None
    author: Author | None = None
    social: tuple[Link, ...] = ()
    footer: str = ""
    logo: str = ""
    favicon: str = ""
    nav: tuple[str | Link, ...] | None = None
    lang: str = "en"


class SiteFileError(ValueError):
    """The site file cannot be used; the message names the key, and ``line`` where it is."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line


class SiteFile:
    """One site file, re-read when it changes; a broken version keeps the last good settings serving."""

    def __init__(self, path: str, label: str):
        self.path = path
        self.label = label  # how `check` names the file
        self.settings = SiteSettings()
        self.problems: tuple[Problem, ...] = ()
        self.generation = 0
        self._key: tuple[int, int, int] | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self.refresh()

    def refresh_if_due(self) -> None:
        """Re-read the file if it changed, looking at most every CHECK_SECONDS; cheap enough per request."""
        if time.monotonic() - self._checked_at >= CHECK_SECONDS:
            self.refresh()

    def refresh(self) -> bool:
        """Re-read the file if it changed (or appeared, or went); return whether the settings changed."""
        with self._lock:
            self._checked_at = time.monotonic()
            try:
                status = os.stat(self.path)
                key: tuple[int, int, int] | None = (status.st_mtime_ns, status.st_size, status.st_ino)
            except OSError:
                key = None
            if key == self._key and self.generation:
                return False
            self._key = key
            previous = (self.settings, self.problems)
            if key is None:
                self.settings, self.problems = SiteSettings(), ()
            else:
                self._read()
            changed = (self.settings, self.problems) != previous or not self.generation
            if changed:
                self.generation += 1
            return changed

    def _read(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                text = handle.read()
            self.settings, self.problems = parse(text, self.label)
        except (OSError, UnicodeDecodeError) as error:
            self._keep_last_good(SiteFileError(f"cannot read the site file: {error}"))
        except SiteFileError as error:
            self._keep_last_good(error)

    def _keep_last_good(self, error: SiteFileError) -> None:
        problem = Problem(self.label, "error", "site-file",
                          f"{error.message}; the last good settings are kept until it is fixed", error.line)
        log.error("%s", problem)
        self.problems = (problem,)


def parse(text: str, label: str) -> tuple[SiteSettings, tuple[Problem, ...]]:
    """Return the settings a site file's text gives and its warnings; raise SiteFileError if it is unusable."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        raise SiteFileError(f"not valid YAML: {problem}", mark.line + 1 if mark else None) from None
    if data is None:
        return SiteSettings(), ()
    if not isinstance(data, dict):
        raise SiteFileError("the site file must be a mapping of keys such as title: and nav:", 1)
    lines = _key_lines(node)
    warnings = tuple(Problem(label, "warning", "site-file", f"unknown key {key!r} is ignored (known: {', '.join(KEYS)})",
                             lines.get((key,))) for key in data if key not in KEYS)

    def fail(message: str, *path: Any) -> SiteFileError:
        found = next((lines[path[:end]] for end in range(len(path), 0, -1) if path[:end] in lines), None)
        return SiteFileError(message, found)

    def text_of(key: str, value: Any, *path: Any) -> str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise fail(f"{key} must be text, got {type(value).__name__}", *path)

    def url_of(key: str, value: Any, *path: Any) -> str:
        url = text_of(key, value, *path).strip()
        if not is_safe_url(url) and not url.startswith("mailto:"):
            raise fail(f"{key} {url[:80]!r} must be an http(s) URL or a path on the site such as /about/", *path)
        return url

    def links_of(key: str, value: Any, *path: Any) -> tuple[Link, ...]:
        if isinstance(value, dict):  # {GitHub: https://github.com/ada} reads naturally too
            return tuple(Link(text_of(key, name, *path, name), url_of(f"{key}.{name}", url, *path, name))
                         for name, url in value.items())
        if not isinstance(value, list):
            raise fail(f"{key} must be a list of links with title: and url:", *path)
        return tuple(link_of(f"{key}[{index + 1}]", item, *path, index) for index, item in enumerate(value))

    def link_of(key: str, item: Any, *path: Any) -> Link:
        if not isinstance(item, dict) or "title" not in item or "url" not in item:
            raise fail(f"{key} must have a title: and a url:", *path)
        return Link(text_of(f"{key}.title", item["title"], *path, "title"), url_of(f"{key}.url", item["url"], *path, "url"))

    values: dict[str, Any] = {}
    for key in ("title", "description", "footer"):
        if data.get(key) is not None:
            values[key] = text_of(key, data[key], key)
    for key in ("logo", "favicon"):
        if data.get(key):
            values[key] = url_of(key, data[key], key)
    if data.get("lang"):
        lang = text_of("lang", data["lang"], "lang")
        if not _LANG.fullmatch(lang):
            raise fail(f"lang {lang!r} must be a language tag such as en, fr or pt-BR", "lang")
        values["lang"] = lang
    if data.get("social") is not None:
        values["social"] = links_of("social", data["social"], "social")
    author = data.get("author")
    if author is not None:
        if isinstance(author, str):
            author = {"name": author}
        if not isinstance(author, dict) or not author.get("name"):
            raise fail("author must be a name, or a mapping with name: (and bio:, avatar:, links:)", "author")
        values["author"] = Author(
            text_of("author.name", author["name"], "author", "name"),
            text_of("author.bio", author.get("bio") or "", "author", "bio"),
            url_of("author.avatar", author["avatar"], "author", "avatar") if author.get("avatar") else "",
            links_of("author.links", author["links"], "author", "links") if author.get("links") else ())
    if data.get("nav") is not None:
        if not isinstance(data["nav"], list):
            raise fail("nav must be a list of links (title: and url:) and built-in names: " + ", ".join(NAV_NAMES), "nav")
        entries: list[str | Link] = []
        for index, item in enumerate(data["nav"]):
            if isinstance(item, str) and item.lower() in NAV_NAMES:
                entries.append(item.lower())
            elif isinstance(item, dict):
                entries.append(link_of(f"nav[{index + 1}]", item, "nav", index))
            else:
                raise fail(f"nav[{index + 1}] must be one of {', '.join(NAV_NAMES)} or a link with title: and url:",
                           "nav", index)
        values["nav"] = tuple(entries)
    return SiteSettings(**values), warnings


def _key_lines(node: yaml.Node | None) -> dict[tuple[Any, ...], int]:
    """Return the 1-based line of every key and list item in a composed YAML document, by its path."""
    lines: dict[tuple[Any, ...], int] = {}

    def walk(current: yaml.Node, path: tuple[Any, ...]) -> None:
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    lines[(*path, key.value)] = key.start_mark.line + 1
                    walk(value, (*path, key.value))
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                lines[(*path, index)] = item.start_mark.line + 1
                walk(item, (*path, index))

    if node is not None:
        walk(node, ())
    return lines


def effective(value: str | None, override: str, default: str) -> str:
    """Return a deployment's override (a ``BLOG_*`` variable) if set, else the site file's value, else the default."""
    return override or value or default


def as_mapping(settings: SiteSettings) -> Mapping[str, Any]:
    """Return the settings as plain values, for templates' ``site``."""
    return {key: getattr(settings, key) for key in KEYS}
