"""Quire's settings: defaults, reading them from the environment, and validating them."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A setting has a value Quire cannot use."""


@dataclass(frozen=True)
class Setting:
    """One documented setting: its environment name, default and parser."""

    name: str
    default: Any
    parse: Callable[[str, str], Any]
    help: str


def _text(name: str, raw: str) -> str:
    return raw


def _path(name: str, raw: str) -> str:
    if "\0" in raw:
        raise ConfigError(f"{name} must be a folder path, got {raw!r}")
    return str(Path(raw).expanduser().resolve())


def _site_path(name: str, raw: str) -> str:
    return _path(name, raw) if raw.strip() else ""  # empty: the default place in BLOG_SITE_DIR


def _int_at_least(minimum: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _positive_seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 < value < 3600:
        raise ConfigError(f"{name} must be more than 0 and less than 3600 seconds, got {raw!r}")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _flag(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {raw!r}")


def _url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
        raise ConfigError(f"{name} must be an absolute http(s) URL such as https://blog.example.com, got {raw!r}")
    return value


def _timezone(name: str, raw: str) -> str:
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name} must be an IANA time zone such as UTC or Europe/Paris, got {raw!r}") from None
    return raw


def _extensions(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(item.strip().lower() for item in raw.split(",") if item.strip())
    if not items or not all(re.fullmatch(r"\.[a-z0-9]+", item) for item in items):
        raise ConfigError(f"{name} must be a comma-separated list of extensions such as .md,.markdown, got {raw!r}")
    return items


PERMALINK_STYLES = {
    "date": "/:categories/:year/:month/:day/:title:output_ext",
    "pretty": "/:categories/:year/:month/:day/:title/",
    "ordinal": "/:categories/:year/:y_day/:title:output_ext",
    "weekdate": "/:categories/:year/W:week/:short_day/:title:output_ext",
    "none": "/:categories/:title:output_ext",
}
PERMALINK_PLACEHOLDERS = (  # Jekyll 4.3's, for posts
    "year", "month", "day", "i_month", "i_day", "short_year", "y_day", "hour", "minute", "second",
    "week", "short_day", "long_day", "w_year", "w_day", "short_month", "long_month", "slug", "title", "name",
    "categories", "slugified_categories", "collection", "path", "output_ext",
)


def _permalink(name: str, raw: str) -> str:
    pattern = PERMALINK_STYLES.get(raw.strip(), raw.strip())  # slash-less patterns are fine: Jekyll adds the '/'
    if not pattern:
        raise ConfigError(f"{name} must be a pattern or one of {', '.join(PERMALINK_STYLES)}; got {raw!r}")
    unknown = set(re.findall(r":([a-z_]+)", pattern)) - set(PERMALINK_PLACEHOLDERS)
    if unknown:
        raise ConfigError(f"{name} uses unknown placeholder(s) {', '.join(sorted(':' + u for u in unknown))}")
    if ":slug" not in pattern and ":title" not in pattern:
        raise ConfigError(f"{name} must contain :slug or :title so that every post gets its own URL; got {raw!r}")
    return pattern


def _url_path(name: str, raw: str) -> str:
    value = "/" + raw.strip().lstrip("/")  # jekyll-feed's path is written without the leading slash
    if not re.fullmatch(r"/[\w~-][\w./~-]*", value) or ".." in value:
        raise ConfigError(f"{name} must be a site path such as /feed.xml or atom.xml, got {raw!r}")
    return value


def _watch(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"auto", "inotify", "poll", "off"}:
        raise ConfigError(f"{name} must be auto, inotify, poll or off; got {raw!r}")
    return value


def _size(name: str, raw: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([kmg]?)b?\s*", raw.lower())
    if not match:
        raise ConfigError(f"{name} must be a size such as 2MB, 500KB or 1048576; got {raw!r}")
    number, unit = match.groups()
    value = int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]
    if value < 1024:
        raise ConfigError(f"{name} must be at least 1KB, got {raw!r}")
    return value


def _token(name: str, raw: str) -> str:
    value = raw.strip()
    if value and (len(value) < 16 or not re.fullmatch(r"[A-Za-z0-9._~-]+", value)):
        raise ConfigError(f"{name} must be empty (previews off) or at least 16 URL-safe characters "
                          "(letters, digits, . _ ~ -), such as the output of "
                          "python -c 'import secrets; print(secrets.token_urlsafe())'")
    return value


def _cache_dir(name: str, raw: str) -> str:
    value = raw.strip()
    if value.lower() in {"auto", "off"}:
        return value.lower()
    if not value or value.lower() in _FALSE:
        return "off"
    return _path(name, value)


def _optional_folder(name: str, raw: str) -> str:
    if not raw.strip():
        return ""
    path = _path(name, raw.strip())
    if not os.path.isdir(path):
        raise ConfigError(f"{name} must name an existing folder (or be empty), got {raw!r}")
    return path


def _optional_file(name: str, raw: str) -> str:
    if not raw.strip():
        return ""
    path = _path(name, raw.strip())
    if not os.path.isfile(path):
        raise ConfigError(f"{name} must name an existing file (or be empty), got {raw!r}")
    return path


SETTINGS = (
    Setting("BLOG_SITE_DIR", str(PROJECT_ROOT), _path,
            "The site's own folder, holding posts/, pages/, site.yml, theme/ and static/ (each movable by its own setting)."),
    Setting("BLOG_POSTS_DIR", "", _site_path, "Folder of Markdown posts (subfolders allowed); default posts/ of BLOG_SITE_DIR."),
    Setting("BLOG_PAGES_DIR", "", _site_path,
            "Folder of pages (About, Projects...): served at their path, in the sitemap and search, never in listings or feeds."),
    Setting("BLOG_SITE_FILE", "", _site_path, "The site file (title, author, menu...); default site.yml of BLOG_SITE_DIR."),
    Setting("BLOG_THEME_DIR", "", _site_path,
            "Folder whose templates/ and static/ override the default theme's, file by file; default theme/ of BLOG_SITE_DIR."),
    Setting("BLOG_STATIC_DIR", "", _site_path,
            "The site's static files (images...), served at /static/ and /assets/; default static/ of BLOG_SITE_DIR."),
    Setting("BLOG_TITLE", "", _text, "Site title, shown in the header, feeds and page titles; overrides site.yml's (else Quire)."),
    Setting("BLOG_DESCRIPTION", "", _text,
            "One-line description for the home page and feeds; overrides site.yml's (else 'A blog served by Quire.')."),
    Setting("BLOG_URL", "http://127.0.0.1:8000", _url, "Public base URL, used for absolute links in feeds and meta tags."),
    Setting("BLOG_PER_PAGE", 10, _positive_int, "Posts per listing page."),
    Setting("BLOG_FEED_PATH", "/feed.xml", _url_path,
            "Another path the site's Atom feed is served at as well as /feed.xml (jekyll-feed's feed: path:)."),
    Setting("BLOG_FEED_ENTRIES", 20, _positive_int, "Newest posts listed in each Atom, RSS and JSON feed."),
    Setting("BLOG_PERMALINK", "/posts/:slug/", _permalink,
            "Post URL pattern: a Jekyll style (date, pretty, ordinal, weekdate, none) or a pattern of placeholders."),
    Setting("BLOG_TIMEZONE", "UTC", _timezone, "Time zone for dates written without one, and for URLs."),
    Setting("BLOG_SHOW_FUTURE", False, _flag, "Publish posts dated in the future right away."),
    Setting("BLOG_SHOW_DRAFTS", False, _flag, "Publish the posts of _drafts/ folders (as jekyll --drafts does)."),
    Setting("BLOG_EXCERPT_SEPARATOR", "<!--more-->", _text,
            "Marker that ends a post's excerpt (front matter excerpt_separator wins); without it, the first paragraph."),
    Setting("BLOG_EXTENSIONS", (".md", ".markdown"), _extensions, "File extensions read as posts."),
    Setting("BLOG_MAX_POST_SIZE", 2 * 1024**2, _size, "Largest post file read; larger files are reported and skipped."),
    Setting("BLOG_WATCH", "auto", _watch, "How workers notice changed posts: auto, inotify, poll or off."),
    Setting("BLOG_POLL_INTERVAL_MS", 500, _positive_int, "Folder scan interval when watching by polling."),
    Setting("BLOG_CACHE_SECONDS", 60, _non_negative_int, "Browsers' max-age of pages and feeds (shared caches such as nginx: 1 s, then a 304); 0 sends no-cache."),
    Setting("BLOG_KRAMDOWN_LISTS", False, _flag,
            "Nest lists indented two spaces (to the item's text) as kramdown does; on by default for a Jekyll site."),
    Setting("BLOG_SMART_QUOTES", False, _flag,
            "Typographic quotes, dashes and ellipses (Python-Markdown's smarty), as kramdown makes them; on by default "
            "for a Jekyll site."),
    Setting("BLOG_SANITIZE", False, _flag,
            "Clean rendered post bodies with nh3 (no scripts, event handlers, styles or javascript: links), for posts from untrusted authors."),
    Setting("BLOG_RENDER_SECONDS", 2.0, _positive_seconds,
            "CPU seconds one post's render may use; past them the render process is killed and the post shown as escaped text."),
    Setting("BLOG_RESPONSE_SECONDS", 4.0, _positive_seconds,
            "Most time one response may wait for post renders in all; posts not ready by then show their text in that "
            "response only (not cached) while their renders finish in the background. Keep it below gunicorn's timeout."),
    Setting("BLOG_RENDER_MEMORY_MB", 512, _positive_int,
            "Memory one post's render may allocate (RLIMIT_AS of its render process, beyond the worker's own)."),
    Setting("BLOG_RESPONSE_CACHE_ENTRIES", 4096, _non_negative_int, "Finished responses kept in memory per worker (0 turns the cache off)."),
    Setting("BLOG_PREVIEW_TOKEN", "", _token,
            "Secret that shows drafts and future posts at their URL with ?preview=<token> (empty: previews off)."),
    Setting("BLOG_JEKYLL_SITE", "", _optional_folder,
            "A Jekyll site folder to serve as it is: its _posts/ and _drafts/ folders, _config.yml and own files (empty: none)."),
    Setting("BLOG_JEKYLL_CONFIG", "", _optional_file,
            "A Jekyll _config.yml to take permalinks, defaults, title, time zone and more from, and whose values "
            "posts may use as {{ site.<key> }} (empty: the site folder's, if any)."),
    Setting("BLOG_CACHE_DIR", "auto", _cache_dir,
            "Folder for the cache of parsed posts that makes restarts fast: auto ($CACHE_DIRECTORY under systemd, "
            "else $XDG_CACHE_HOME/quire or ~/.cache/quire), a path, or off."),
    Setting("BLOG_TRUSTED_PROXIES", 0, _non_negative_int,
            "Number of proxies in front of Quire whose X-Forwarded-For/-Proto/-Host to trust (0: ignore them)."),
    Setting("BLOG_DEV", False, _flag,
            "The author's preview server, as make dev and python -m blog serve --dev set it: drafts and future posts "
            "shown and marked, problems in the page, live reload, no caching. Never for production."),
)
SETTINGS_BY_NAME = {setting.name: setting for setting in SETTINGS}


def given(environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> set[str]:
    """Return the names of the settings a ``BLOG_*`` variable or an override sets (rather than a default)."""
    environ = os.environ if environ is None else environ
    return {setting.name for setting in SETTINGS if setting.name in environ} | set(overrides or {})


def load(environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return validated settings: defaults, then ``BLOG_*`` variables, then overrides."""
    environ = os.environ if environ is None else environ
    settings: dict[str, Any] = {setting.name: setting.default for setting in SETTINGS}
    for setting in SETTINGS:
        if setting.name in environ:
            settings[setting.name] = setting.parse(setting.name, environ[setting.name])
    for name, value in (overrides or {}).items():
        setting = SETTINGS_BY_NAME.get(name)
        settings[name] = setting.parse(name, value) if setting is not None and isinstance(value, str) else value
    for name, part in SITE_PARTS.items():
        if not settings[name]:
            settings[name] = str(Path(settings["BLOG_SITE_DIR"]) / part)
    return settings


# Where each part of a site lives in BLOG_SITE_DIR unless its own setting says otherwise.
SITE_PARTS = {"BLOG_POSTS_DIR": "posts", "BLOG_PAGES_DIR": "pages", "BLOG_SITE_FILE": "site.yml",
              "BLOG_THEME_DIR": "theme", "BLOG_STATIC_DIR": "static"}
DEFAULT_TITLE = "Quire"
DEFAULT_DESCRIPTION = "A blog served by Quire."
