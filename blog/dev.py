"""The author's preview server (``make dev``): drafts shown, problems in the page, and live reload over SSE."""

from __future__ import annotations

import hashlib
import html
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, render_template, request, url_for

from blog.content import Post, PostStore
from blog.content.store import Problem

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
CHECK_SECONDS = 0.25  # how often an open event stream looks for changes
PING_SECONDS = 15.0  # a comment line keeps idle connections (and proxies) from timing out
# Each stream ends after this and the browser reconnects (EventSource does, after `retry`), so no connection
# or server thread lives forever; the page's version rides along, so a change in between is not missed.
STREAM_SECONDS = 120.0
SHOWN_SEVERITIES = ("error", "warning")

bp = Blueprint("dev", __name__)
# A new server is a new version: a page left open across a restart (after a code change) reloads.
_BOOT = secrets.token_hex(4)


def enabled(app: Flask | None = None) -> bool:
    """Tell whether ``app`` (or the current one) runs in dev mode."""
    return bool((app or current_app).config.get("BLOG_DEV"))


def address() -> str:
    """Return where ``make dev`` serves the site: http://127.0.0.1:$PORT (8000 by default)."""
    return f"http://{DEFAULT_HOST}:{os.environ.get('PORT') or DEFAULT_PORT}"


def version(app: Flask) -> str:
    """Return a value that changes whenever a post, page, template, static file or the site file changes."""
    site = app.extensions["quire.site"]
    digest = hashlib.blake2b(digest_size=8)
    for path in _watched_paths(app):
        for name, status in _files_under(path):
            digest.update(f"{name}\0{status.st_mtime_ns}\0{status.st_size}\n".encode("utf-8", "surrogateescape"))
    return f"{_BOOT}-{site.generation}-{digest.hexdigest()}"


def _watched_paths(app: Flask) -> list[str]:
    paths = list(dict.fromkeys([*_template_folders(app.jinja_loader), *_template_folders(app.jinja_env.loader)]))
    if app.static_folder:
        paths.append(app.static_folder)
    for name in ("BLOG_SITE_FILE", "BLOG_THEME_DIR", "BLOG_STATIC_DIR"):  # the site's own settings, theme, images
        value = app.config.get(name)
        if isinstance(value, str) and value:
            paths.append(value)
    return paths


def _template_folders(loader: Any) -> Iterator[str]:
    if loader is None:
        return
    yield from getattr(loader, "searchpath", ())
    for inner in getattr(loader, "loaders", ()):  # a ChoiceLoader of theme and default templates
        yield from _template_folders(inner)


def _files_under(path: str) -> Iterator[tuple[str, os.stat_result]]:
    try:
        status = os.stat(path)
    except OSError:
        return
    if not os.path.isdir(path):
        yield path, status
        return
    for folder, folders, files in os.walk(path):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            full = os.path.join(folder, name)
            try:
                yield full, os.stat(full)
            except OSError:
                continue


def post_status(post: Post) -> str | None:
    """Return "Draft" or "Scheduled" for a post dev mode shows before its time, else None."""
    if not enabled():
        return None
    if not post.published:
        return "Draft"
    if post.is_future(time.time()):
        return "Scheduled"
    return None


def problems(app: Flask) -> list[tuple[str, Problem]]:
    """Return the errors and warnings of every post and page and of the site file, each with its file's path."""
    site = app.extensions["quire.site"]
    found = [(os.path.join(store.pages.root, problem.source), problem) for store in (site.posts, site.pages)
             for problem in store.problems() if problem.severity in SHOWN_SEVERITIES]
    return found + [(site.site_file.path, problem) for problem in site.site_file.problems
                    if problem.severity in SHOWN_SEVERITIES]


def broken_post_page(post: Post, store: PostStore) -> Response | None:
    """Return a page showing what is wrong with ``post``'s file in place of its last good version, or None."""
    errors = [(os.path.join(store.pages.root, problem.source), problem)
              for problem in store.snapshot.problems.get(post.source, ()) if problem.severity == "error"]
    if not errors:
        return None
    g.quire_problems_shown = True
    return current_app.make_response(render_template("dev_problem.html", post=post, problems=errors))


@bp.route("/_quire/events")
def events() -> Response:
    """Stream one ``reload`` event as soon as the site differs from the version the page was made from."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    since = request.args.get("since", "")

    def stream() -> Iterator[str]:
        yield "retry: 500\n\n"
        started = last_ping = time.monotonic()
        while time.monotonic() - started < STREAM_SECONDS:
            current = version(app)
            if current != since:
                yield f"event: reload\ndata: {current}\n\n"
                return
            if time.monotonic() - last_ping >= PING_SECONDS:
                last_ping = time.monotonic()
                yield ": ping\n\n"
            time.sleep(CHECK_SECONDS)

    return Response(stream(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def register(app: Flask) -> None:
    """Give templates ``post_status``; in dev mode also add the event stream, the reload script and no-store.

    Call before any other ``after_request`` hook is added: Flask runs them last-added first, so this one
    runs last and its Cache-Control wins over the views' and the static files'.
    """
    app.add_template_global(post_status)
    if not enabled(app):
        return
    app.config["TEMPLATES_AUTO_RELOAD"] = True
    app.jinja_env.auto_reload = True
    app.register_blueprint(bp)

    @app.before_request
    def start_watching() -> None:
        app.extensions["quire.watchers"].ensure_running()
        g.quire_version = version(app)  # before rendering: a change during the render still reloads

    @app.after_request
    def live(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        response.headers.pop("ETag", None)
        response.headers.pop("Last-Modified", None)
        if response.mimetype == "text/html" and not response.direct_passthrough and "quire_version" in g:
            response.set_data(_inject(response.get_data(as_text=True), g.quire_version,
                                      not g.get("quire_problems_shown")))
        return response


def _inject(page: str, page_version: str, with_problems: bool) -> str:
    """Return ``page`` with the reload script before ``</body>`` and the site's problems atop ``<main>``."""
    script = (f'<script src="{url_for("static", filename="js/dev-reload.js")}" '
              f'data-events="{html.escape(url_for("dev.events", since=page_version), quote=True)}" defer></script>')
    head, found, tail = page.rpartition("</body>")
    page = head + script + found + tail if found else page + script
    found_problems = problems(current_app._get_current_object()) if with_problems else []  # type: ignore[attr-defined]
    if found_problems:
        panel = render_template("_dev_problems.html", problems=found_problems)
        start = page.find("<main")
        end = page.find(">", start) + 1 if start >= 0 else 0
        if end > 0:
            page = page[:end] + panel + page[end:]
    return page
