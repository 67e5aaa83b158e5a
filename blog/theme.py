"""The site's look: the theme folder over the default theme, and what every template is given (settings, menu, assets)."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import jinja2
from flask import Flask, Response, abort, current_app, has_request_context, redirect, request, send_file, send_from_directory, url_for
from flask.globals import _cv_request
from jinja2 import ChoiceLoader, Environment, FileSystemLoader
from jinja2.bccache import Bucket, BytecodeCache
from werkzeug.security import safe_join

from blog.config import DEFAULT_DESCRIPTION, DEFAULT_TITLE
from blog.content.derived import MONTHS
from blog.content.render_cache import FolderTrust, read_trusted, remove_other_folders, write_atomically
from blog.content.sitefile import CHECK_SECONDS, Author, Link
from blog.http import CACHE_MARKER

URLS_KEPT = 10_000  # paths ThemedFlask.url_for keeps (about 3 MB); past it, it starts again

# The menu's built-in entries, by the names the site file's ``nav:`` may use for them.
BUILT_IN_NAV = {
    "home": ("Home", "posts.index"),
    "categories": ("Categories", "posts.categories"),
    "tags": ("Tags", "posts.tags"),
    "archive": ("Archive", "posts.archive"),
}
DEFAULT_NAV = ("home", "categories", "tags", "archive", "pages")
# The views under each built-in entry: on one of them, the entry is the section being shown (aria-current="true").
BUILT_IN_SECTIONS = {
    "home": frozenset({"posts.index"}),
    "categories": frozenset({"posts.categories", "posts.category"}),
    "tags": frozenset({"posts.tags", "posts.tag"}),
    "archive": frozenset({"posts.archive", "posts.archive_by_year"}),
}


@dataclass(frozen=True)
class NavItem:
    """One link of the site's menu."""

    title: str
    url: str
    current: bool  # the page being shown: marked aria-current="page"
    section: bool = False  # not the page shown but the part of the site holding it (a tag under Tags): "true"


@dataclass(frozen=True)
class SiteInfo:
    """What templates, feeds and JSON-LD know of the site: ``BLOG_*`` overrides first, then the site file."""

    title: str
    description: str
    url: str
    lang: str
    author: Author | None
    social: tuple[Link, ...]
    footer: str
    logo: str
    favicon: str
    nav: tuple[str | Link, ...]


def site_info() -> SiteInfo:
    """Return the site's current settings, the site file's as last read well."""
    site_file = current_app.extensions["quire.site"].site_file
    cached = current_app.extensions.get("quire.site_info")
    if cached is None or cached[0] != site_file.generation:
        config, settings = current_app.config, site_file.settings
        info = SiteInfo(
            title=config["BLOG_TITLE"] or settings.title or DEFAULT_TITLE,
            description=config["BLOG_DESCRIPTION"] or settings.description or DEFAULT_DESCRIPTION,
            url=config["BLOG_URL"], lang=settings.lang, author=settings.author, social=settings.social,
            footer=settings.footer, logo=settings.logo, favicon=settings.favicon,
            nav=_with_links(settings.nav) if settings.nav is not None else DEFAULT_NAV)
        cached = current_app.extensions["quire.site_info"] = (site_file.generation, info)
    return cached[1]


def _with_links(nav: tuple[str | Link, ...]) -> tuple[str | Link, ...]:
    """Return the menu a site file's ``nav:`` gives: in its order if it names a built-in, else after the defaults."""
    if any(isinstance(entry, str) for entry in nav):
        return nav
    return (*DEFAULT_NAV, *nav)


def navigation() -> list[NavItem]:
    """Return the menu: built-in pages, pages with ``nav: N`` and the site file's links, in the site file's order."""
    here = request.path
    items: list[NavItem] = []
    for entry in site_info().nav:
        if isinstance(entry, Link):
            items.append(NavItem(entry.title, entry.url, entry.url == here, _under(here, entry.url)))
        elif entry == "pages":
            for page in current_app.extensions["quire.site"].page_index.nav:
                url = url_for("posts.detail", url=page.url[1:])
                items.append(NavItem(page.title, url, url == here, _under(here, url)))
        else:
            title, endpoint = BUILT_IN_NAV[entry]
            url = url_for(endpoint)
            items.append(NavItem(title, url, url == here, url != here and request.endpoint in BUILT_IN_SECTIONS[entry]))
    return items


def _under(here: str, url: str) -> bool:
    """Tell whether the path ``here`` lies below the site folder ``url`` (/projects/quire/ below /projects/)."""
    return url.startswith("/") and url.endswith("/") and here != url and here.startswith(url) and \
        url != url_for("posts.index")  # the home page holds every path: only its listing's pages are its section


class ThemedFlask(Flask):
    """Flask whose static files are looked up in the theme's static/, the site's, then Quire's own, and whose
    url_for keeps the paths it builds."""

    static_overrides: tuple[str, ...] = ()  # the theme's static/ and the site's, before static_folder

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._built: dict[tuple[Any, ...], str] = {}

    def url_for(self, endpoint: str, *, _anchor: str | None = None, _method: str | None = None,
                _scheme: str | None = None, _external: bool | None = None, **values: Any) -> str:
        """Return Flask's url_for, the path built once per request adapter's host and root, endpoint and values.

        Templates ask for the same few thousand URLs (each term's page, each post's) on every page: werkzeug's
        build took a sixth of a page's time. Only a path in a request, from string values, with no URL
        defaults registered, is kept: anything else is built each time, as Flask builds it.
        """
        context = _cv_request.get(None)
        if context is None or _anchor is not None or _method is not None or _scheme is not None or _external \
                or endpoint[:1] == ".":
            return super().url_for(endpoint, _anchor=_anchor, _method=_method, _scheme=_scheme, _external=_external,
                                   **values)
        adapter = context.url_adapter
        key = (adapter.server_name, adapter.script_name, adapter.subdomain, adapter.url_scheme, endpoint,
               *values.items())
        try:
            found = self._built.get(key)
        except TypeError:  # an unhashable value: never kept
            found = None
        if found is None:
            found = super().url_for(endpoint, **values)
            # URL defaults may change what is built (none can be registered once requests come in).
            if all(type(value) is str for value in values.values()) and not any(self.url_default_functions.values()):
                if len(self._built) >= URLS_KEPT:
                    self._built.clear()
                self._built[key] = found
        return found

    def send_static_file(self, filename: str) -> Response:
        """Serve ``filename`` from the first static folder that has it (never outside that folder)."""
        found = find_static(self, filename)
        if found is None:
            abort(404)
        return send_from_directory(found, filename, max_age=self.get_send_file_max_age(filename))


def static_folders(app: Flask) -> list[str]:
    """Return the static folders in lookup order: the theme's, the site's, Quire's default theme's."""
    return list(dict.fromkeys([*getattr(app, "static_overrides", ()), app.static_folder or ""]))


def find_static(app: Flask, filename: str) -> str | None:
    """Return the static folder holding ``filename`` (following no link out of that folder), or None."""
    for root in static_folders(app):
        joined = safe_join(root, filename)
        if joined is None:
            return None  # an absolute path or one with "..": no folder may serve it
        real_root, resolved = os.path.realpath(root), os.path.realpath(joined)
        if os.path.commonpath([real_root, resolved]) == real_root and os.path.isfile(resolved):
            return root
    return None


class ThemeFolder:
    """The theme folder's files, looked at every few moments so an edited template or stylesheet shows live."""

    def __init__(self, app: Flask, folder: str):
        self.app = app
        self.folder = folder
        self.generation = 1
        self.fingerprints: dict[str, str] = {}
        self._signature = self._scan()
        self._checked_at = time.monotonic()
        self._lock = threading.Lock()

    def refresh_if_due(self) -> None:
        """Notice changed, added or removed theme files, looking at most every CHECK_SECONDS."""
        if time.monotonic() - self._checked_at < CHECK_SECONDS:
            return
        with self._lock:
            self._checked_at = time.monotonic()
            signature = self._scan()
            if signature == self._signature:
                return
            self._signature = signature
            self.fingerprints.clear()
            cache = self.app.jinja_env.cache
            if cache is not None:
                cache.clear()  # templates are compiled once; an override added or edited must be read again
            self.generation += 1

    def _scan(self) -> frozenset[tuple[str, int, int]]:
        found = set()
        for folder, _, files in os.walk(self.folder):
            for name in files:
                path = os.path.join(folder, name)
                try:
                    status = os.stat(path)
                except OSError:
                    continue
                found.add((path, status.st_mtime_ns, status.st_size))
        return frozenset(found)


class CompiledTemplates(BytecodeCache):
    """Templates compiled once for every process, kept under BLOG_CACHE_DIR with the render cache's rules.

    Compiling the 26 templates took a quarter of a second in each process that rendered them: each gunicorn
    worker after every start, each ``freeze`` and ``check``. Jinja checks an entry against its template's
    source (an edited template is compiled again); the folder is named by what else decides the compiled
    code (Jinja, Python and the environment's options), and entries are code, so they are read only from
    this user's folders and files that nobody else may write, as the render cache's are.
    """

    def __init__(self, parent: str, environment: Environment):
        self.parent = parent
        self.folder = os.path.join(parent, f"templates-{_compile_fingerprint(environment)}")
        self._folders_safe = FolderTrust((parent, self.folder), self._refuse)
        self._warned = False

    def load_bytecode(self, bucket: Bucket) -> None:
        """Give ``bucket`` the code kept for its template, if there is one to trust."""
        if not self._folders_safe():
            return
        data, trouble = read_trusted(self._path(bucket))
        if trouble:
            self._refuse(self._path(bucket), trouble)
        elif data is not None:
            try:  # Jinja ignores it unless its versions and the source match
                bucket.bytecode_from_string(data)
            except (EOFError, ValueError, TypeError, pickle.UnpicklingError):  # torn: Jinja reads its header unguarded
                bucket.reset()
                self._refuse(self._path(bucket), "torn")

    def dump_bytecode(self, bucket: Bucket) -> None:
        """Keep ``bucket``'s freshly compiled code for the next process."""
        if not self._folders_safe():
            return
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
        except OSError as error:
            self._refuse(self.folder, error.strerror or str(error))
            return
        error = write_atomically(self._path(bucket), self.folder, ".template-", bucket.bytecode_to_string())
        if error:
            self._refuse(self.folder, error)

    def remove_others(self, older_than: float) -> None:
        """Delete other code's or options' folders not written to for ``older_than`` seconds."""
        remove_other_folders(self.parent, "templates-", self.folder, time.time() - older_than)

    def _path(self, bucket: Bucket) -> str:
        return os.path.join(self.folder, f"{bucket.key}.code")

    def _refuse(self, path: str, why: str) -> None:
        if not self._warned:  # once per process: templates still compile, only slower
            logging.getLogger("quire").warning("not using compiled templates in %s: %s", path, why)
            self._warned = True


def _compile_fingerprint(environment: Environment) -> str:
    """Return a digest of what decides a template's compiled code besides its source."""
    autoescape = environment.autoescape
    options = (jinja2.__version__, sys.version_info[:2], sorted(environment.extensions),
               environment.block_start_string, environment.block_end_string, environment.variable_start_string,
               environment.variable_end_string, environment.comment_start_string, environment.comment_end_string,
               environment.line_statement_prefix, environment.line_comment_prefix, environment.trim_blocks,
               environment.lstrip_blocks, environment.newline_sequence, environment.keep_trailing_newline,
               environment.optimized, environment.finalize is None, environment.is_async,
               autoescape if isinstance(autoescape, bool) else getattr(autoescape, "__qualname__", repr(type(autoescape))))
    return hashlib.blake2b(repr(options).encode(), digest_size=8).hexdigest()


def use_theme(app: ThemedFlask, theme_folder: str, static_folder: str) -> ThemeFolder:
    """Put the theme's templates/ before the default ones, and its static/ and the site's before Quire's."""
    app.jinja_loader = ChoiceLoader([FileSystemLoader(os.path.join(theme_folder, "templates")),
                                     FileSystemLoader(app.template_folder or "")])  # type: ignore[assignment]
    app.static_overrides = (os.path.join(theme_folder, "static"), static_folder)
    return ThemeFolder(app, theme_folder)


def register(app: Flask, theme: ThemeFolder) -> None:
    """Give the app's templates their context, helpers and filters, and mark static files long-cacheable."""
    fingerprints = theme.fingerprints

    def asset_url(filename: str) -> str:
        """Return a static file's URL with a fingerprint of the file served (the theme's, if it overrides it)."""
        if filename not in fingerprints or app.config["BLOG_DEV"]:  # dev mode: a changed file, a new URL
            folder = find_static(app, filename)
            try:
                with open(os.path.join(folder or "", filename), "rb") as handle:
                    fingerprints[filename] = hashlib.blake2b(handle.read(), digest_size=6).hexdigest()
            except OSError:
                fingerprints[filename] = ""
        version = fingerprints[filename]
        return url_for("static", filename=filename, v=version) if version else url_for("static", filename=filename)

    @app.context_processor
    def site() -> dict[str, Any]:
        return {
            "site": site_info(),
            "asset_url": asset_url,
            "navigation": navigation() if has_request_context() else [],
        }

    @app.route("/favicon.ico")
    def favicon() -> Response:
        """Serve the site file's favicon when it names a file of the site, else the default theme's."""
        named = site_info().favicon
        for prefix in ("/static/", "/assets/"):
            if named.startswith(prefix):
                filename = ("assets/" if prefix == "/assets/" else "") + named[len(prefix):]
                if find_static(app, filename) is not None:
                    return app.send_static_file(filename)
        if named.startswith(("http://", "https://")):
            return redirect(named)
        own = app.extensions["quire"].jekyll.site_file("/favicon.ico")  # a Jekyll site's own icon keeps its URL
        if own is not None and find_static(app, "favicon.ico") in (None, app.static_folder):
            return send_file(own, max_age=app.config["BLOG_CACHE_SECONDS"], conditional=True)
        return app.send_static_file("favicon.ico")

    @app.template_filter("long_date")
    def long_date(value: Any) -> str:
        return f"{MONTHS[value.month - 1]} {value.day}, {value.year}"

    @app.after_request
    def static_cache(response: Response) -> Response:
        if request.endpoint in {"static", "posts.assets", "favicon"} and response.status_code == 200:
            response.headers[CACHE_MARKER] = "static"  # compressed and validated once, not per request
            if request.args.get("v"):
                response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response
