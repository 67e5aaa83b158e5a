"""The immutable Post and Jekyll's front-matter rules: dates, slugs, categories, tags and permalinks."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import html
import posixpath
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from blog.config import PERMALINK_STYLES
from blog.content import jekyll

DEFAULT_EXCERPT_SEPARATOR = "<!--more-->"
KNOWN_LAYOUTS = frozenset({"post", "default", "page", "home", "single"})
WORDS_PER_MINUTE = 220

_FILE_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})-(.+)$")
_DATE_TEXT = re.compile(
    r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2}|UTC|GMT)?\s*$",
    re.IGNORECASE,
)
_TAG = re.compile(r"<[^<>]*>")  # stops at the next "<", so unclosed ones cost linear time
_FOOTNOTE_REFERENCE = re.compile(r"\[\^[^\]\s]+\](?!:)")
_BLANK_LINES = re.compile(r"\n[ \t]*\n")


class PostError(ValueError):
    """A front-matter value that breaks a rule, fatal for the post (like Jekyll's invalid date)."""

    line: int | None = None


@dataclass(frozen=True, slots=True)
class Term:
    """A category, tag or author: the name pages show and the slug URLs use; one object per name (see _term)."""

    name: str
    slug: str


# Not frozen, though no code changes a post once made (a new version is a new Post): a frozen dataclass sets
# each field through object.__setattr__, and made a post in 4.7 us against 0.34, which 100,000 posts pay at
# every start from the post cache.
@dataclass(eq=False, slots=True)
class Post:
    """One post as readers see it; built once per version of its file.

    Compact, as 100,000 of them live in every worker: front matter and what listings show. The body is read
    from the file when it is rendered or searched (as Flask-FlatPages reads its pages) and checked against
    ``digest``, the hash of the file this post was made from; only when there is no render cache to hold
    the last good version's HTML (BLOG_CACHE_DIR=off) is the body ``kept`` in memory instead.
    """

    source: str
    url: str
    slug: str
    title: str
    date: dt.datetime
    updated: dt.datetime
    dated: bool
    author: Term | None
    categories: tuple[Term, ...]
    tags: tuple[Term, ...]
    cover: str | None
    cover_missing: bool
    layout: str | None
    published: bool
    draft: bool
    words: int  # counted at load: the archive shows every post's reading time
    meta: Mapping[str, Any] = field(repr=False)
    sort_key: tuple[float, str] = field(repr=False)  # (timestamp, source): oldest first, ties by file name
    stem: str = field(repr=False)  # file name without folder and extension, for Jekyll's post_url
    digest: str = field(repr=False)  # BLAKE2b of the file's bytes: the version of its content
    links: tuple[str, ...] = field(repr=False)  # what its post_url and link tags name: their URLs shape its HTML
    store: Any = field(repr=False)  # the PostStore that made it: reads and renders its body
    kind: str = "post"  # "page" for a file of the pages folder: served and searched, never listed
    nav: int | float | None = None  # a page's place in the header's navigation (front matter ``nav``)
    kept: tuple[str, int] | None = field(default=None, repr=False)  # (body, first line), only without a render cache
    _cache: dict[str, Any] | None = field(default=None, init=False, repr=False)
    # Its own slot rather than in _cache: the post cache keeps it (blog.content.cache), so no process works it
    # out again after a restart, and 8 bytes a post cost less than a dictionary each.
    _version: str | None = field(default=None, init=False, repr=False)

    @property
    def body(self) -> str:
        """Return the Markdown body, read from the post's file (the text there now, if it changed since)."""
        return self.store.read_body(self)

    @property
    def html(self) -> str:
        """Return the body as HTML, from the store's render caches (in memory, then on disk)."""
        return self.store.render_body(self)

    @property
    def excerpt_html(self) -> str:
        """Return the excerpt as HTML, from the store's bounded cache of rendered excerpts."""
        return self.store.render_excerpt(self)

    @property
    def excerpt_source(self) -> str:
        """Return the excerpt's Markdown: front matter ``excerpt``, else the body's opening."""
        return first_text(self.meta, "excerpt") or excerpt_of(self.body, self.meta)

    @property
    def description(self) -> str:
        """Return a plain-text summary for meta tags: front matter ``description``, else the excerpt."""
        return self._derived("description", lambda: plain_text(first_text(self.meta, "description", "excerpt")
                                                               or self.excerpt_source))

    @property
    def reading_minutes(self) -> int:
        """Return the estimated reading time in whole minutes (at least one)."""
        return max(1, round(self.words / WORDS_PER_MINUTE))

    @property
    def version(self) -> str:
        """Return a digest of everything about the post a page may show, but where its links lead.

        The dataclass repr (every field but the store's plumbing), the file's digest (its body) and the front
        matter; worked out once per post version, as the page cache and blog freeze check it on every page
        that shows the post, and kept in the post cache.
        """
        found = self._version
        if found is None:
            found = hashlib.blake2b(repr([repr(self), self.digest, repr(self.meta)]).encode("utf-8", "surrogatepass"),
                                    digest_size=16).hexdigest()
            self._version = found
        return found

    def restore_version(self, version: str) -> None:
        """Take ``version`` as this post's version: the post cache's, worked out before for these same fields."""
        self._version = version

    @property
    def cover_url(self) -> str | None:
        """Return the cover's URL, percent-encoded, or None when its file is missing."""
        return None if self.cover_missing or not self.cover else encode_url(self.cover)

    def is_future(self, now: float) -> bool:
        """Tell whether the post is dated after ``now`` (a POSIX timestamp)."""
        return self.sort_key[0] > now

    def _derived(self, name: str, compute: Callable[[], Any]) -> Any:
        # A post is never changed once made; small values derived from it are worked out on first use, once
        # per post version, so loading 100,000 posts only does what the listings need.
        cache = self._cache
        if cache is None:
            cache = {}
            self._cache = cache
        if name not in cache:
            cache[name] = compute()
        return cache[name]


_URL_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):", re.IGNORECASE)
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]+")


def is_safe_url(url: str) -> bool:
    """Tell whether a front-matter URL is http(s) or site-relative: never javascript:, data: or another scheme."""
    # Browsers drop tabs, newlines and leading spaces before reading a scheme ("java\tscript:"), so do the same.
    scheme = _URL_SCHEME.match(_INVISIBLE.sub("", url))
    return scheme is None or scheme.group(1).lower() in {"http", "https"}


@functools.lru_cache(maxsize=65536)
def slugify(text: str) -> str:
    """Return a URL slug: lower case, words joined by '-', letters of any script kept."""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    text = re.sub(r"[\s_./\\]+", "-", text)
    text = re.sub(r"[^\w-]+", "", text)
    return re.sub(r"-{2,}", "-", text).strip("-")


def title_from_slug(slug: str) -> str:
    """Return a readable title for a post that has none, Jekyll style."""
    words = [word for word in re.split(r"[-_\s]+", slug) if word]
    return " ".join(word[:1].upper() + word[1:] for word in words) or "Untitled"


def split_file_name(name: str) -> tuple[dt.date | None, str]:
    """Return the date prefix (if valid) and the rest of a file name without its extension."""
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    match = _FILE_DATE.match(stem)
    if not match:
        return None, stem
    year, month, day, rest = match.groups()
    try:
        return dt.date(int(year), int(month), int(day)), rest
    except ValueError:
        return None, rest


def parse_date(value: Any, zone: ZoneInfo) -> dt.datetime:
    """Return an aware datetime from a YAML date, datetime or string; naive times are in ``zone``."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        moment = _parse_date_text(value, zone)
    else:
        raise PostError(f"date {value!r} is not a date; write it as YYYY-MM-DD or YYYY-MM-DD HH:MM:SS +0000")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment


def _parse_date_text(text: str, zone: ZoneInfo) -> dt.datetime:
    match = _DATE_TEXT.match(text) or _DATE_TEXT.match(_lenient_date(text))
    if not match:
        raise PostError(f"date {text!r} is not a date; write it as YYYY-MM-DD or YYYY-MM-DD HH:MM:SS +0000")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        tzinfo = _offset_zone(offset) if offset else None  # "+2500" is no offset: a ValueError, as a bad day is
        return dt.datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")), tzinfo=tzinfo,
        )
    except ValueError as error:
        raise PostError(f"date {text!r} is not a real date: {error}") from None


@functools.lru_cache(maxsize=256)
def _offset_zone(offset: str) -> dt.timezone:
    """Return the fixed zone of a date's offset ("Z", "UTC", "+0100", "-04:00")."""
    if offset.upper() in {"Z", "UTC", "GMT"}:
        return dt.timezone.utc
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    return dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def _lenient_date(text: str) -> str:
    """Keep the date, time and offset of a sloppy date string, as Ruby's Time.parse does (so Jekyll's URLs).

    Ruby takes an offset only right after the time: "18:30:22 -0800 (PST)" is at -08:00, but
    "18:30:22 2023 -0800" is local time (Jekyll's own 3.9.3 release note is dated so).
    """
    found = re.match(r"\s*(\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?)(?:\s*([+-]\d{2}:?\d{2}|Z|UTC|GMT)(?![\w:]))?",
                     text)
    if not found:
        return text
    return found.group(1) + (" " + found.group(2) if found.group(2) else "")


def terms(value: Any) -> tuple[Term, ...]:
    """Return categories or tags from a YAML list or a space-separated string (Jekyll's rule)."""
    if value is None or value == "":
        return ()
    if type(value) is list and all(type(item) is str for item in value):  # the usual [a, b]: no copying
        return _terms(tuple(value))
    if isinstance(value, str):
        names = tuple(value.split())
    elif isinstance(value, (list, tuple)):
        names = tuple(str(item).strip() for item in value if item is not None and not isinstance(item, (dict, list)))
    else:
        names = (str(value),)
    return _terms(names)


@functools.lru_cache(maxsize=4096)  # posts share a few sets of categories and tags: build (and keep) each once
def _terms(names: tuple[str, ...]) -> tuple[Term, ...]:
    seen: dict[str, Term] = {}
    for name in map(str.strip, names):
        slug = slugify(name)
        if name and slug and slug not in seen:
            seen[slug] = _term(name, slug)
    return tuple(seen.values())


def plain_text(markup: str, limit: int = 300) -> str:
    """Return text without tags or Markdown marks, cut at a word boundary near ``limit``."""
    # The patterns below rescan from every unclosed '[' or '<', quadratic in hostile input; ten times the
    # limit is far more markup than any real summary needs before it is cut.
    text = _TAG.sub(" ", markup[:limit * 10])
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\{%.*?%\}|\{\{.*?\}\}", " ", text)
    text = re.sub(r"[*_`#>]+", "", text)
    text = " ".join(html.unescape(text).split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",.;:") + "…"


def excerpt_of(body: str, meta: Mapping[str, Any]) -> str:
    """Return the Markdown of the excerpt: before the separator, else the first paragraph."""
    return _FOOTNOTE_REFERENCE.sub("", _excerpt_of(body, meta))  # its footnotes are not part of it


def _excerpt_of(body: str, meta: Mapping[str, Any]) -> str:
    separator = meta.get("excerpt_separator")
    if isinstance(separator, str) and separator and separator in body:
        return body.split(separator, 1)[0].strip()
    if DEFAULT_EXCERPT_SEPARATOR in body:
        return body.split(DEFAULT_EXCERPT_SEPARATOR, 1)[0].strip()
    for block in _blocks(body):
        if block and not block.startswith(("#", "<!--", "{%", "|", "```", "~~~", "    ")) and _TAG.sub("", block).strip():
            return block
    return ""


def _blocks(body: str):  # type: ignore[no-untyped-def]
    """Yield the blank-line separated blocks of ``body``, stripped, without splitting all of it at once."""
    start = 0
    for match in _BLANK_LINES.finditer(body):
        block = body[start:match.start()].strip()
        if block:
            yield block
        start = match.end()
    block = body[start:].strip()
    if block:
        yield block


def permalink(pattern: str, *, slug: str, date: dt.datetime, categories: tuple[Term, ...]) -> str:
    """Return the URL of a new post file named after ``slug``, from a permalink pattern or Jekyll style name."""
    parts = jekyll.UrlParts(slug, slug, tuple(term.name for term in categories), date, ".html", "/" + slug)
    return normalize_url(jekyll.expand(PERMALINK_STYLES.get(pattern, pattern), parts)[0])


def normalize_url(url: str) -> str:
    """Return a site-absolute URL path with no empty, '.' or '..' segments (they never leave the site)."""
    trailing = url.endswith("/")
    parts: list[str] = []
    for part in url.replace("\\", "/").split("/"):
        if part in {"", "."}:
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    path = "/" + "/".join(parts)
    return path + "/" if trailing and parts else path


def page_url(relative: str, jekyll: bool = False) -> str:
    """Return the URL a page file is served at: ``about.md`` → ``/about/``, ``projects/index.md`` → ``/projects/``.

    With ``jekyll``, as Jekyll serves pages without a permalink: ``about.md`` → ``/about.html``.
    """
    stem = relative.rsplit(".", 1)[0] if "." in posixpath.basename(relative) else relative
    folder, _, name = stem.rpartition("/")
    if name == "index":
        return normalize_url("/" + folder + "/")
    return normalize_url("/" + stem + (".html" if jekyll else "/"))


def encode_url(url: str) -> str:
    """Return ``url`` with spaces and other unsafe characters percent-encoded, keeping existing escapes."""
    return quote(url, safe="/:?=&#%@+,;~!$'()*[]")


def first_text(meta: Mapping[str, Any], *keys: str) -> str | None:
    """Return the first of ``keys`` whose value is a non-empty scalar, as text."""
    for key in keys:
        value = meta.get(key)
        if type(value) is str:  # nearly always: skip the checks below
            value = value.strip()
            if value:
                return value
            continue
        if isinstance(value, dict):
            value = value.get("name") or value.get("path") or value.get("url")
        if value is not None and not isinstance(value, (list, dict)) and str(value).strip():
            return str(value).strip()
    return None


def term(name: str | None) -> Term | None:
    """Return a Term for a name, or None for no name."""
    if not name:
        return None
    return _term(name, slugify(name) or "anonymous")


@functools.lru_cache(maxsize=65536)
def _term(name: str, slug: str) -> Term:
    """Return the one Term of a name and slug: 100,000 posts share a few hundred, and each post kept its own."""
    return Term(name, slug)


def word_count(text: str) -> int:
    """Return the number of words in Markdown text, ignoring tags."""
    return len((_TAG.sub(" ", text) if "<" in text else text).split())


def dirname(source: str) -> str:
    """Return the folder part of a source path relative to the posts folder."""
    return posixpath.dirname(source)
