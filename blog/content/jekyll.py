"""Jekyll's own rules for a site: its _config.yml, front-matter defaults, which files are posts, categories, URLs.

Everything here follows Jekyll 4.3's source (``configuration.rb``, ``frontmatter_defaults.rb``,
``document.rb``, ``drops/url_drop.rb``, ``url.rb``, ``utils.rb``), so that a site served by Quire keeps the
URLs ``jekyll build`` gives it. Nothing here knows of requests; the store and the web layers ask.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import glob
import hashlib
import logging
import os
import posixpath
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import yaml

from blog.config import PERMALINK_STYLES, SETTINGS_BY_NAME, ConfigError

log = logging.getLogger("quire.content")

DEFAULT_MARKDOWN_EXT = "markdown,mkdown,mkdn,mkd,md"  # Jekyll's markdown_ext default
DEFAULT_EXCLUDE = ("Gemfile", "Gemfile.lock", "node_modules", "vendor/bundle/", "vendor/cache/", "vendor/gems/",
                   "vendor/ruby/")  # Jekyll's own, always added to a site's exclude list
JEKYLL_SOURCE_FILES = ("_config.yml", "_config.yaml", "_config.toml")
# Placeholders Jekyll's UrlDrop answers for a post; any other one makes ``jekyll build`` fail.
URL_PLACEHOLDERS = frozenset({
    "collection", "name", "title", "slug", "categories", "slugified_categories", "year", "month", "day", "hour",
    "minute", "second", "i_day", "i_month", "short_month", "long_month", "short_year", "w_year", "week", "w_day",
    "short_day", "long_day", "y_day", "output_ext", "path",
})
_PLACEHOLDER = re.compile(r":([a-z_]+)")
HTML_EXTENSIONS = (".html", ".xhtml", ".htm")  # Jekyll's Page::HTML_EXTENSIONS
# What in a page's Liquid lists the site's posts: Quire renders no such loop, so the page cannot carry over.
POST_LISTINGS = re.compile(r"\{[{%][^}]*?\b(site\.(?:posts|categories|tags|related_posts)|paginator)\b")
_DATE_FILENAME = re.compile(r"^(?:.+/)*?(\d{2,4}-\d{1,2}-\d{1,2})-([^/]*)(\.[^.]+)$")
_DATELESS_FILENAME = re.compile(r"^(?:.+/)*(.*)(\.[^.]+)$")
_PRETTY_KEPT = frozenset("._~!$&'()+,;=@")
_STRFTIME = {"year": "%Y", "month": "%m", "day": "%d", "hour": "%H", "minute": "%M", "second": "%S",
             "short_month": "%b", "long_month": "%B", "short_year": "%y", "w_year": "%G", "week": "%V",
             "w_day": "%u", "short_day": "%a", "long_day": "%A", "y_day": "%j"}
# _config.yml keys and the settings they give, unless a BLOG_* variable (or an override) gives them first.
_CONFIG_SETTINGS = (("title", "BLOG_TITLE"), ("description", "BLOG_DESCRIPTION"), ("timezone", "BLOG_TIMEZONE"),
                    ("paginate", "BLOG_PER_PAGE"), ("excerpt_separator", "BLOG_EXCERPT_SEPARATOR"),
                    ("future", "BLOG_SHOW_FUTURE"), ("show_drafts", "BLOG_SHOW_DRAFTS"))


class JekyllConfigError(ConfigError):
    """A _config.yml Quire cannot read."""


@dataclass(frozen=True)
class JekyllSite:
    """A Jekyll site's rules: its folder, parsed _config.yml, and where the posts folder sits inside it."""

    root: str = ""  # the site folder ("" when Quire serves a plain posts folder)
    config: Mapping[str, Any] = field(default_factory=dict)
    posts_prefix: str = ""  # the posts folder's path inside the site ("" when it is the site folder)
    serves_files: bool = False  # BLOG_JEKYLL_SITE was given: the site's own files are served at their paths

    @property
    def is_site(self) -> bool:
        """Tell whether a _config.yml or a site folder gives this site's rules."""
        return bool(self.root)

    @functools.cached_property
    def fingerprint(self) -> str:
        """Return a digest of everything here that decides how a post file is read (for the post cache)."""
        return hashlib.sha256(repr((self.root, self.posts_prefix, sorted(map(repr, self.config.items())))).encode()).hexdigest()

    @functools.cached_property
    def exclude(self) -> tuple[str, ...]:
        """Return the site's exclude patterns, Jekyll's own ones included."""
        return (*DEFAULT_EXCLUDE, *_strings(self.config.get("exclude")))

    @functools.cached_property
    def include(self) -> tuple[str, ...]:
        """Return the site's include patterns (names Jekyll reads although they start with '.' or '_')."""
        return _strings(self.config.get("include"))

    # Which files are posts -----------------------------------------------------------------------

    def site_path(self, relative: str) -> str:
        """Return a post's path inside the site folder, as Jekyll's ``relative_path`` and defaults see it."""
        return f"{self.posts_prefix}/{relative}" if self.posts_prefix else relative

    def reads_folder(self, relative: str) -> bool:
        """Tell whether Jekyll looks for posts under this folder of the posts root (always, for a plain folder)."""
        if self.posts_prefix or not self.root:
            return True
        parts = relative.split("/")
        inside = next((index for index, part in enumerate(parts) if part in {"_posts", "_drafts"}), len(parts))
        outside = parts[:inside]
        return not any(part.startswith(("_", ".", "#", "~")) for part in outside) and not self.excluded(relative)

    def reads_post(self, relative: str) -> bool:
        """Tell whether Jekyll reads this file (relative to the posts root) as a post or a draft."""
        if self.posts_prefix or not self.root:
            return True
        parts = relative.split("/")
        if "_posts" in parts[:-1]:
            return self.reads_folder("/".join(parts[:-1])) and _DATE_FILENAME.match(relative) is not None
        if "_drafts" in parts[:-1]:
            return self.reads_folder("/".join(parts[:-1])) and _DATELESS_FILENAME.match(relative) is not None
        return False

    def excluded(self, relative: str) -> bool:
        """Tell whether the site's ``exclude:`` list leaves this path (inside the site folder) out."""
        return any(_glob_includes(pattern, relative) for pattern in self.exclude if pattern not in self.include)

    # Which files are pages -----------------------------------------------------------------------

    def page_extensions(self, extensions: Iterable[str]) -> tuple[str, ...]:
        """Return the file extensions read as pages: the Markdown ones and ``.html``."""
        return tuple(dict.fromkeys((*extensions, ".html")))

    def reads_page_folder(self, relative: str) -> bool:
        """Tell whether Jekyll looks for pages in this folder of the site (no ``_``-folders, ``exclude:``, vendor/bundle/...)."""
        return self.copies(relative)

    def reads_page(self, relative: str) -> bool:
        """Tell whether a file of the site (of a page extension) is one Jekyll reads as a page, front matter aside."""
        return self.copies(relative)

    def page_url(self, relative: str, meta: Mapping[str, Any]) -> str:
        """Return the URL Jekyll gives a page at ``relative`` (its Page#template, or its own ``permalink``), unescaped."""
        folder, _, name = relative.rpartition("/")
        stem, extension = posixpath.splitext(name)
        basename = stem.rstrip(".")
        output_ext = self.output_ext(extension)
        permalink = meta.get("permalink")
        if isinstance(permalink, str) and permalink.strip():
            template = unquote(permalink)
        elif output_ext not in HTML_EXTENSIONS:
            template = "/:path/:basename:output_ext"
        elif basename == "index":
            template = "/:path/"
        else:
            template = "/:path/:basename" + _permalink_suffix(str(self.config.get("permalink") or "date"))
        for placeholder, value in (("path", folder), ("basename", basename), ("output_ext", output_ext)):
            if ":" not in template:
                break
            template = template.replace(":" + placeholder, value)
        return sanitize_url(template)

    def page_meta(self, relative: str, meta: Mapping[str, Any]) -> Mapping[str, Any]:
        """Return a page's front matter over the defaults scoped to pages."""
        defaults = self.defaults(relative, "pages") if self.config.get("defaults") else {}
        return _deep_merge(defaults, meta) if defaults else meta

    def layout_lists_posts(self, layout: str | None) -> str | None:
        """Return what in a layout (or the layouts it sits in) lists the site's posts, e.g. ``site.posts``, or None."""
        seen: set[str] = set()
        while layout and layout not in seen and self.root:
            seen.add(layout)
            path = next((candidate for candidate in (os.path.join(self.root, "_layouts", layout + suffix)
                                                     for suffix in (".html", ".md", "")) if os.path.isfile(candidate)), None)
            if path is None:
                return None
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    text = handle.read(1_000_000)
            except OSError:
                return None
            found = POST_LISTINGS.search(text)
            if found:
                return found.group(1)
            parent = re.match(r"---\s*\n(?:.*\n)*?layout:\s*['\"]?([^'\"\s]+)", text)
            layout = parent.group(1) if parent else None
        return None

    def rendered_files(self) -> Iterator[tuple[str, str]]:
        """Yield (site path, URL) of every file Jekyll renders rather than copies: pages of any extension and documents
        of collections with ``output: true`` (for ``blog check``: what is not served, and where links to it go)."""
        collections = self.config.get("collections")
        outputs = {str(name): values for name, values in (collections.items() if isinstance(collections, dict) else ())
                   if isinstance(values, dict) and values.get("output") and str(name) != "posts"}
        folder = str(self.config.get("collections_dir") or "").strip("/")
        for relative in _walk(self.root, lambda folder: not self.excluded(folder)):
            if self.copies(relative):
                if has_front_matter(os.path.join(self.root, relative)):
                    yield relative, self.page_url(relative, self.page_meta(relative, _front_matter(self.root, relative)))
                continue
            inside = relative[len(folder) + 1:] if folder and relative.startswith(folder + "/") else relative
            name, _, rest = inside.partition("/")
            if name.startswith("_") and name[1:] in outputs and rest and not self.excluded(relative):
                yield relative, self._document_url(name[1:], outputs[name[1:]], relative, rest)

    def _document_url(self, collection: str, settings: Mapping[str, Any], relative: str, inside: str) -> str:
        """Return the URL Jekyll gives a document of an output collection (Collection#url_template, UrlDrop)."""
        meta = _deep_merge(self.defaults(relative, collection), _front_matter(self.root, relative))
        stem, extension = posixpath.splitext(inside)
        basename = stem.rsplit("/", 1)[-1]
        permalink = meta.get("permalink") if isinstance(meta.get("permalink"), str) else settings.get("permalink")
        style = str(self.config.get("permalink") or "date")
        template = str(permalink) if permalink else "/:collection/:path" + _permalink_suffix(style)
        values = {"collection": collection, "path": stem, "name": slugify(basename), "title": slugify(basename, "pretty", cased=True),
                  "slug": slugify(basename), "output_ext": self.output_ext(extension)}
        return sanitize_url(_PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), unquote(PERMALINK_STYLES.get(template, template))))

    # The site's own files ------------------------------------------------------------------------

    def site_file(self, path: str) -> str | None:
        """Return the file Jekyll would copy as it is to the URL ``path`` (a folder's index.html too), or None.

        Only with BLOG_JEKYLL_SITE. Like static/: nothing outside the site folder, through symlinks too; and
        never what Jekyll keeps out of _site (``_``- and ``.``-names unless ``include:``d, ``exclude:``,
        backups ending in ``~``) nor files with front matter (pages, which Jekyll renders).
        """
        if not self.serves_files:
            return None
        relative = path.lstrip("/")
        if not relative or relative.endswith("/"):
            relative += "index.html"
        parts = relative.split("/")
        if any(part in {"", ".", ".."} or "\0" in part or "\\" in part for part in parts) or not self.copies(relative):
            return None
        root = os.path.realpath(self.root)
        resolved = os.path.realpath(os.path.join(root, *parts))
        if os.path.commonpath([root, resolved]) != root:
            return None
        inside = os.path.relpath(resolved, root).replace(os.sep, "/")
        if inside != relative and not self.copies(inside):  # a symlink into _posts/, .git/ or an excluded folder
            return None
        if not os.path.isfile(resolved) or has_front_matter(resolved):
            return None
        return resolved

    def copies(self, relative: str) -> bool:
        """Tell whether Jekyll copies the site path ``relative`` into _site (its EntryFilter's rules)."""
        parts = relative.split("/")
        for index, part in enumerate(parts):
            special = part.startswith((".", "_", "#", "~")) or part.endswith("~")
            if special and not any(_glob_includes(pattern, "/".join(parts[:index + 1])) or fnmatch.fnmatchcase(part, pattern)
                                   for pattern in self.include):
                return False
        return not self.excluded(relative) and relative not in JEKYLL_SOURCE_FILES

    # Front matter --------------------------------------------------------------------------------

    def defaults(self, path: str, kind: str = "posts") -> dict[str, Any]:
        """Return the front-matter defaults for a post (or with ``kind="pages"`` a page) at ``path``, Jekyll's precedence."""
        merged: dict[str, Any] = {}
        old_scope: Mapping[str, Any] | None = None
        for values, scope in self._matching_sets(path, kind):
            if _has_precedence(old_scope, scope):
                merged = _deep_merge(merged, values)
                old_scope = scope
            else:
                merged = _deep_merge(values, merged)
        return merged

    def _matching_sets(self, path: str, kind: str) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
        sets = self.config.get("defaults")
        found = []
        for entry in sets if isinstance(sets, list) else ():
            if not isinstance(entry, dict) or not isinstance(entry.get("values"), dict):
                continue
            scope = entry.get("scope") if isinstance(entry.get("scope"), dict) else {}
            if self._applies(scope, path, kind):
                found.append((entry["values"], scope))
        return found

    def _applies(self, scope: Mapping[str, Any], path: str, kind: str) -> bool:
        scope_kind = scope.get("type")
        if scope_kind is not None and str(scope_kind) not in {kind, kind[:-1]}:  # "post": Jekyll's deprecated spelling
            return False
        scope_path = scope.get("path")
        if not isinstance(scope_path, str) or not scope_path:
            return True
        path = _sanitize_scope_path(path)
        if "*" in scope_path:
            return any(path.startswith(os.path.relpath(found, self.root))
                       for found in glob.glob(os.path.join(glob.escape(self.root), scope_path)))
        return path.startswith(scope_path)

    def post_meta(self, relative: str, meta: Mapping[str, Any], excerpt_separator: str) -> Mapping[str, Any]:
        """Return a post's front matter over its defaults (``meta`` itself when nothing is added)."""
        defaults = self.defaults(self.site_path(relative)) if self.config.get("defaults") else {}
        if excerpt_separator and "excerpt_separator" not in meta and "excerpt_separator" not in defaults:
            defaults["excerpt_separator"] = excerpt_separator
        return _deep_merge(defaults, meta) if defaults else meta

    def categories(self, relative: str, meta: Mapping[str, Any], draft: bool) -> list[str]:
        """Return a post's categories as Jekyll makes them: the folders above ``_posts`` (in a site), then the front matter's."""
        path = self.site_path(relative)
        special = "_drafts" if draft else "_posts"
        folders: list[str] = []
        if self.root and special in path.split("/")[:-1] and not path.startswith(special):
            name = path.rsplit("/", 1)[-1]
            folders = [part for part in path.split(special, 1)[0].split("/") if part and part != special and part != name]
        return jekyll_categories(folders, meta)

    def template(self, pattern: str) -> str:
        """Return the posts' URL template: ``collections: posts: permalink``, else the site's style or pattern."""
        collections = self.config.get("collections")
        posts = collections.get("posts") if isinstance(collections, dict) else None
        if isinstance(posts, dict) and isinstance(posts.get("permalink"), str):
            return PERMALINK_STYLES.get(posts["permalink"], posts["permalink"])
        return PERMALINK_STYLES.get(pattern, pattern)

    def output_ext(self, extension: str) -> str:
        """Return the extension Jekyll writes a post file of this extension with (``:output_ext``)."""
        markdown = {f".{item.strip().lower()}" for item in str(self.config.get("markdown_ext") or DEFAULT_MARKDOWN_EXT).split(",")}
        if extension.lower() in markdown or extension.lower() == ".html":
            return ".html"
        return {".scss": ".css", ".sass": ".css", ".coffee": ".js"}.get(extension.lower(), extension)  # Jekyll's converters


NO_SITE = JekyllSite()


def has_front_matter(path: str) -> bool:
    """Tell whether a file starts with YAML front matter, as Jekyll's Utils.has_yaml_header? tells."""
    try:
        with open(path, "rb") as handle:
            first = handle.readline(64)
    except OSError:
        return False
    return re.match(rb"---\s*\r?\n", first) is not None


def _walk(root: str, keeps: Callable[[str], bool]) -> Iterator[str]:
    """Yield the relative path of every file under ``root``, sorted, not entering folders ``keeps`` refuses."""
    for folder, folders, files in os.walk(root):
        inside = os.path.relpath(folder, root).replace(os.sep, "/")
        prefix = "" if inside == "." else inside + "/"
        folders[:] = sorted(name for name in folders if name not in {".git", "_site", ".jekyll-cache"} and keeps(prefix + name))
        yield from (prefix + name for name in sorted(files))


def _front_matter(root: str, relative: str) -> dict[str, Any]:
    """Return a file's front matter as a mapping (empty when it has none or it is not YAML)."""
    try:
        with open(os.path.join(root, relative), encoding="utf-8", errors="replace") as handle:
            text = handle.read(200_000)
    except OSError:
        return {}
    found = re.match(r"---\s*\r?\n(.*?)^(?:---|\.\.\.)\s*$", text, re.DOTALL | re.MULTILINE)
    try:
        meta = yaml.safe_load(found.group(1)) if found else None
    except yaml.YAMLError:
        return {}
    return meta if isinstance(meta, dict) else {}


def load(site_root: str, config_path: str, posts_dir: str, serves_files: bool) -> JekyllSite:
    """Return the Jekyll rules of a site folder and/or _config.yml; raise JekyllConfigError if it is unreadable."""
    config: dict[str, Any] = {}
    if config_path:
        config = read_config(config_path)
    root = site_root or (os.path.dirname(config_path) if config_path else "")
    if not root:
        return NO_SITE
    inside = os.path.relpath(posts_dir, root)
    prefix = "" if inside == "." else inside.replace(os.sep, "/") if not inside.startswith("..") else "_posts"
    return JekyllSite(root=root, config=config, posts_prefix=prefix, serves_files=serves_files)


def read_config(path: str) -> dict[str, Any]:
    """Return a _config.yml's settings; raise JekyllConfigError saying why it cannot be used."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            config = yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError) as error:
        raise JekyllConfigError(f"{path}: cannot read it: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        raise JekyllConfigError(f"{where}: not valid YAML: {getattr(error, 'problem', None) or error}") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise JekyllConfigError(f"{path}: not a mapping of settings")
    return {str(key): value for key, value in config.items()}


def settings_from_config(config: Mapping[str, Any]) -> dict[str, str]:
    """Return the BLOG_* values a _config.yml gives, as the text an environment variable would hold."""
    found: dict[str, str] = {}
    for key, name in _CONFIG_SETTINGS:
        value = config.get(key)
        if value is not None and not isinstance(value, (dict, list)):
            found[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if isinstance(config.get("url"), str) and config["url"].strip():
        found["BLOG_URL"] = config["url"].strip().rstrip("/") + str(config.get("baseurl") or "").rstrip("/")
    feed = config.get("feed")
    if isinstance(feed, dict) and isinstance(feed.get("path"), str) and feed["path"].strip():
        found["BLOG_FEED_PATH"] = feed["path"].strip()
    # Jekyll reads a dated file of _posts in HTML too, through Liquid alone: the Markdown ones and .html.
    extensions = [f".{item.strip()}" for item in str(config.get("markdown_ext") or DEFAULT_MARKDOWN_EXT).split(",")
                  if item.strip()]
    found["BLOG_EXTENSIONS"] = ",".join(dict.fromkeys((*extensions, ".html")))
    return found


def configure(settings: dict[str, Any], given: Iterable[str]) -> dict[str, Any]:
    """Fill settings from the Jekyll site or _config.yml the settings name, where no BLOG_* value was given.

    Adds ``JEKYLL_SITE``, the site's rules, for the store. Raises ConfigError for an unusable _config.yml.
    """
    given = set(given)
    site_root = settings.get("BLOG_JEKYLL_SITE", "")
    config_path = settings.get("BLOG_JEKYLL_CONFIG", "")
    if site_root and not config_path:
        config_path = next((candidate for candidate in (os.path.join(site_root, name) for name in ("_config.yml", "_config.yaml"))
                            if os.path.isfile(candidate)), "")
        settings["BLOG_JEKYLL_CONFIG"] = config_path
    if site_root and "BLOG_POSTS_DIR" not in given:
        settings["BLOG_POSTS_DIR"] = site_root
    # The site's own pages (about.md...) are its pages, unless BLOG_PAGES_DIR names a folder of Quire pages.
    settings["JEKYLL_PAGES"] = bool(site_root) and "BLOG_PAGES_DIR" not in given
    if settings["JEKYLL_PAGES"]:
        settings["BLOG_PAGES_DIR"] = site_root
    if not site_root and not config_path:
        settings["JEKYLL_SITE"] = NO_SITE
        return settings
    site = load(site_root, config_path, settings["BLOG_POSTS_DIR"], serves_files=bool(site_root))
    for name, raw in settings_from_config(site.config).items():
        if name in given or name not in SETTINGS_BY_NAME:
            continue
        try:
            settings[name] = SETTINGS_BY_NAME[name].parse(name, raw)
        except ConfigError as error:
            raise ConfigError(f"{config_path}: {error} (from the _config.yml; set {name} to override it)") from None
    if "BLOG_PERMALINK" not in given:
        settings["BLOG_PERMALINK"] = site.template(str(site.config.get("permalink") or "date"))  # Jekyll's default
    for name in ("BLOG_KRAMDOWN_LISTS", "BLOG_SMART_QUOTES"):  # kramdown's habits, on for a Jekyll site
        if name not in given:
            settings[name] = True
    settings["JEKYLL_SITE"] = site
    return settings


def markdown_dialect(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the Python-Markdown extensions that bring Markdown closer to kramdown, as the settings ask."""
    return ((("blog.content.kramdown",) if settings.get("BLOG_KRAMDOWN_LISTS") else ())
            + (("markdown.extensions.smarty",) if settings.get("BLOG_SMART_QUOTES") else ()))


# Categories ---------------------------------------------------------------------------------------


def jekyll_categories(folders: list[str], meta: Mapping[str, Any]) -> list[str]:
    """Return categories as Jekyll 4 makes them from folder ones and front matter (``meta``, defaults included).

    ``categories:`` is a list, or a string split on spaces; ``category:`` is one category, kept whole.
    """
    names = list(folders)
    given = meta.get("categories")
    if given is not None:
        names = _union(names, given.split() if isinstance(given, str) else _as_list(given))
    single = meta.get("category")
    if "category" in meta and single is not None:
        extra = _as_list(single)
    elif isinstance(given, str):
        extra = given.split()
    elif isinstance(given, list):
        extra = [item for item in given if item is not None]
    else:
        extra = []
    return _union([str(name) for name in names], [str(name) for name in _flatten(extra)])


def jekyll_tags(meta: Mapping[str, Any]) -> list[str]:
    """Return tags as Jekyll makes them: ``tag:`` kept whole, else ``tags:`` (a string is split on spaces)."""
    single = meta.get("tag")
    if single is not None:
        return [str(item) for item in _flatten(_as_list(single))]
    given = meta.get("tags")
    if isinstance(given, str):
        return given.split()
    if isinstance(given, list):
        return [str(item) for item in _flatten(given) if item is not None]
    return []


def _union(first: list[Any], second: list[Any]) -> list[Any]:
    seen = list(dict.fromkeys(first))
    return seen + [item for item in dict.fromkeys(second) if item not in seen]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [[key, item] for key, item in value.items()]
    return [value]


def _flatten(values: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for value in values:
        flat.extend(_flatten(value) if isinstance(value, list) else [value])
    return [value for value in flat if value is not None]


# Redirects (jekyll-redirect-from) -----------------------------------------------------------------


def redirect_from(meta: Mapping[str, Any]) -> list[str]:
    """Return the old addresses a post's ``redirect_from`` names, as unescaped site paths."""
    value = meta.get("redirect_from")
    items = value if isinstance(value, list) else [value]
    return [_site_path(str(item)) for item in items
            if item is not None and not isinstance(item, (dict, list)) and str(item).strip()]


def redirect_to(meta: Mapping[str, Any]) -> str | None:
    """Return where a post's ``redirect_to`` sends its readers (the first of a list), or None."""
    value = meta.get("redirect_to")
    if isinstance(value, list):
        value = next((item for item in value if item is not None), None)
    if value is None or isinstance(value, (dict, list)) or not str(value).strip():
        return None
    text = str(value).strip()
    return text if re.match(r"^https?://", text) else _site_path(text)


def _site_path(text: str) -> str:
    """Return a path as jekyll-redirect-from makes it (a leading '/'), unescaped, with no '..' way out."""
    return sanitize_url(unquote(text.strip()))


# Permalinks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UrlParts:
    """What a post's URL placeholders are made of (Jekyll's UrlDrop)."""

    slug: str  # front matter ``slug``, else the file name after its date, trailing dots removed
    basename: str  # the file name without its extension
    categories: tuple[str, ...]
    date: dt.datetime  # in the offset Jekyll would print it in (see url_date)
    output_ext: str
    path: str  # Jekyll's cleaned_relative_path: the site path without "_posts" and the extension


def file_slug(name: str) -> str:
    """Return the slug Jekyll takes from a post's file name: after the date, before the extension, no trailing dots."""
    match = _DATE_FILENAME.match(name) or _DATELESS_FILENAME.match(name)
    slug = (match.group(2) if match and match.re is _DATE_FILENAME else match.group(1)) if match else name
    return slug.rstrip(".")


def url_parts(relative: str, meta: Mapping[str, Any], categories: list[str], date: dt.datetime,
              output_ext: str) -> UrlParts:
    """Return the placeholder values of a post file at ``relative`` (its path inside the site)."""
    name = relative.rsplit("/", 1)[-1]
    basename = name.rsplit(".", 1)[0] if "." in name else name
    given = meta.get("slug")
    slug = str(given) if given is not None and not isinstance(given, (dict, list)) else file_slug(name)
    cleaned = relative.rsplit(".", 1)[0] if "." in name else relative
    return UrlParts(slug, basename, tuple(categories), date, output_ext, cleaned.replace("_posts", "", 1).rstrip("."))


def url_date(raw: Any, parsed: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """Return a post's date as Jekyll's URL uses it: in the site's zone, where a YAML time without offset is UTC.

    Jekyll turns every date into local time (``Time.parse(...).localtime``), but Psych reads a YAML time
    written without an offset (``2016-01-05 12:00:00``) as UTC, not as local time, as Quire's dates do.
    """
    if isinstance(raw, dt.datetime) and raw.tzinfo is None:
        return raw.replace(tzinfo=dt.timezone.utc).astimezone(zone)
    return parsed.astimezone(zone)


def expand(template: str, parts: UrlParts) -> tuple[str, list[str]]:
    """Return the URL path a Jekyll permalink template gives (unescaped), and the placeholders Jekyll does not know."""
    unknown: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        pool = [name, name[:-1]] if name.endswith("_") else [name]
        winner = next((key for key in pool if key in URL_PLACEHOLDERS), None)
        if winner is None:
            unknown.append(name)
            return match.group(0)
        return _value(winner, parts) + match.group(0)[len(winner) + 1:]

    return sanitize_url(_PLACEHOLDER.sub(fill, unquote(template))), unknown


def sanitize_url(url: str) -> str:
    """Return ``url`` as Jekyll's URL#sanitize_url leaves it: a leading '/', no '..', no './', no '//'."""
    url = ("/" + url).replace("..", "/").replace("./", "")
    return re.sub(r"/{2,}", "/", url)


def _value(name: str, parts: UrlParts) -> str:
    if name == "title":
        return slugify(parts.slug, "pretty", cased=True)
    if name == "slug":
        return slugify(parts.slug)
    if name == "name":
        return slugify(parts.basename)
    if name == "categories":
        return "/".join(dict.fromkeys(category.lower() for category in parts.categories))
    if name == "slugified_categories":
        return "/".join(dict.fromkeys(slugify(category) for category in parts.categories))
    if name == "output_ext":
        return parts.output_ext
    if name == "collection":
        return "posts"
    if name == "path":
        return parts.path
    if name == "i_day":
        return str(parts.date.day)
    if name == "i_month":
        return str(parts.date.month)
    return parts.date.strftime(_STRFTIME[name])


@functools.lru_cache(maxsize=65536)
def slugify(text: str, mode: str = "default", cased: bool = False) -> str:
    """Return Jekyll's Utils.slugify of ``text``: 'default' keeps letters, marks and digits; 'pretty' also ``._~!$&'()+,;=@``."""
    kept_extra = _PRETTY_KEPT if mode == "pretty" else frozenset()
    out: list[str] = []
    replacing = False
    for character in text:
        category = unicodedata.category(character)
        kept = category[0] in "LM" or category == "Nd" or character in kept_extra
        if kept:
            out.append(character)
        elif not replacing:  # a run of other characters becomes one hyphen, as Ruby's gsub of [^...]+
            out.append("-")
        replacing = not kept
    slug = "".join(out)
    slug = slug[1:] if slug.startswith("-") else slug
    slug = slug[:-1] if slug.endswith("-") else slug
    return slug if cased else slug.lower()


def _permalink_suffix(style: str) -> str:
    """Return what Jekyll's Utils.add_permalink_suffix puts after a page's ``/:path/:basename`` for a site's permalink."""
    if style == "pretty":
        return "/"
    if style in {"date", "ordinal", "none"}:
        return ":output_ext"
    return ("/" if style.endswith("/") else "") + (":output_ext" if style.endswith(":output_ext") else "")


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``over`` merged onto ``base`` as Jekyll's Utils.deep_merge_hashes (a nil value keeps the old one)."""
    merged = dict(base)
    for key, value in over.items():
        old = merged.get(key)
        if value is None and key in merged:
            continue
        merged[key] = _deep_merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return merged


def _has_precedence(old_scope: Mapping[str, Any] | None, new_scope: Mapping[str, Any]) -> bool:
    if old_scope is None:
        return True
    new_path = _sanitize_scope_path(new_scope.get("path"))
    old_path = _sanitize_scope_path(old_scope.get("path"))
    if len(new_path) != len(old_path):
        return len(new_path) >= len(old_path)
    if "type" in new_scope:
        return True
    return "type" not in old_scope


def _sanitize_scope_path(path: Any) -> str:
    if not isinstance(path, str) or not path:
        return ""
    return path[1:] if path.startswith("/") else path


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(item) for item in value if item is not None)
    return ()


def _glob_includes(pattern: str, relative: str) -> bool:
    """Tell whether an exclude/include pattern names ``relative`` or a folder above it (Jekyll's glob_include?)."""
    pattern = pattern.strip().lstrip("/")
    if not pattern:
        return False
    folder = pattern.rstrip("/")
    return (relative == folder or relative.startswith(folder + "/") or fnmatch.fnmatchcase(relative, pattern)
            or fnmatch.fnmatchcase(relative.split("/", 1)[0], pattern))
