"""The hostile-internet edge: security headers on every response, request limits and static-file containment."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit, urlunsplit

from flask import Flask, Response, abort, current_app, request
from werkzeug.security import safe_join

from blog.http import without_marker
from blog.theme import static_folders

# Scripts only from this site (JSON-LD data blocks are not scripts, so they need no hash); styles only from
# static/ (templates carry no style attributes); images from anywhere, since posts link covers and pictures.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "img-src * data:",
    "style-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
PERMISSIONS_POLICY = ", ".join(f"{feature}=()" for feature in (
    "accelerometer", "camera", "geolocation", "gyroscope", "magnetometer", "microphone", "payment", "usb",
    "interest-cohort", "browsing-topics",
))
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": PERMISSIONS_POLICY,
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HSTS = "max-age=31536000"
# Far above any URL the site makes (post URLs, search queries), far below what would cost memory or time.
MAX_PATH_BYTES = 2048
MAX_QUERY_BYTES = 32 * 1024
MAX_HEADER_BYTES = 16 * 1024
STATIC_ENDPOINTS = {"static": "", "posts.assets": "assets"}

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def register(app: Flask) -> None:
    """Add the request limits and the security headers to ``app``."""
    headers = dict(HEADERS)
    if app.config["BLOG_URL"].startswith("https://"):
        headers["Strict-Transport-Security"] = HSTS

    @app.before_request
    def limit_request() -> None:
        refused = refusal(request.environ)
        if refused is not None:
            abort(*refused)
        if request.endpoint in STATIC_ENDPOINTS:
            contain_static(STATIC_ENDPOINTS[request.endpoint], (request.view_args or {}).get("filename", ""))

    # Runs for views, error pages (404, 405, 500) and static files alike, and before the response cache
    # stores the response, so cached copies carry the same headers.
    @app.after_request
    def add_headers(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        off_site = response.headers.pop(OFF_SITE_MARKER, None) is not None  # an author's redirect_to
        if 300 <= response.status_code < 400 and "Location" in response.headers and not off_site:
            response.headers["Location"] = site_relative(response.headers["Location"])
        return response


OFF_SITE_MARKER = "X-Quire-Off-Site"  # set by a view whose redirect leaves the site on purpose; never sent


def site_relative(location: str) -> str:
    """Return a redirect target as a path on this site, whatever host or scheme it was built with.

    Werkzeug builds its trailing-slash redirects on the request's ``Host``, which the client chooses; Quire
    never redirects off the site (but where a post's own ``redirect_to`` says, see OFF_SITE_MARKER), so the
    host is dropped, and a path is never left starting with ``//``.
    """
    parts = urlsplit(location)
    return urlunsplit(("", "", "/" + parts.path.lstrip("/"), parts.query, parts.fragment))


class SiteMount:
    """WSGI middleware mounting the site where BLOG_URL's path says, whatever SCRIPT_NAME the client sent.

    gunicorn takes SCRIPT_NAME from a request header (from loopback and forwarded-allowed addresses) and
    strips it from the path; url_for builds every link on it, so a forged one would reach every reader of a
    cached page. The request's whole path is put back together and split again at the configured mount.
    """

    def __init__(self, app: WSGIApp, blog_url: str):
        self.app = app
        self.mount = urlsplit(blog_url).path.rstrip("/")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Pass the request on with SCRIPT_NAME set to the mount and PATH_INFO to the rest of its path."""
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if self.mount and (path == self.mount or path.startswith(self.mount + "/")):
            path = path[len(self.mount):]
        environ["SCRIPT_NAME"] = self.mount
        environ["PATH_INFO"] = path
        return self.app(environ, start_response)


def refusal(environ: dict[str, Any]) -> tuple[int, str | None] | None:
    """Return the 4xx status (and reason) for a request too large or not valid UTF-8, or None if it is fine."""
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    path = environ.get("PATH_INFO", "").encode("latin-1", "replace")
    query = environ.get("QUERY_STRING", "").encode("latin-1", "replace")
    if len(path) > MAX_PATH_BYTES or len(query) > MAX_QUERY_BYTES or len(raw_uri) > MAX_PATH_BYTES + MAX_QUERY_BYTES:
        return 414, None
    header_bytes = sum(len(key) + len(value) for key, value in environ.items()
                       if key.startswith("HTTP_") and isinstance(value, str))
    if header_bytes > MAX_HEADER_BYTES:
        return 431, None
    try:  # the server has already percent-decoded the path, but not the query string
        path.decode("utf-8")
        unquote_to_bytes(query).decode("utf-8")
    except UnicodeDecodeError:
        return 400, "The address is not valid UTF-8."
    if b"\0" in path:  # no file or post can have such a name
        return 404, None
    return None


class RequestGuard:
    """WSGI middleware sending refused requests past the response cache, so even a cached URL gets its 4xx."""

    def __init__(self, app: WSGIApp, uncached: WSGIApp):
        self.app = app
        self.uncached = uncached

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Pass the request on: to Flask directly (which refuses it with the error page) if over a limit."""
        if refusal(environ) is not None:
            return self.uncached(environ, without_marker(start_response))
        return self.app(environ, start_response)


def contain_static(subfolder: str, filename: str) -> None:
    """Abort with 404 if ``filename`` leaves the static folders: ``..``, an absolute path, or a symlink out of one.

    A file no static folder has is left to the view (a Jekyll site's own ``/assets/`` files are served there).
    """
    relative = posixpath.join(subfolder, filename) if subfolder else filename
    for root in static_folders(current_app):
        joined = safe_join(root, relative)
        if joined is None:
            abort(404)
        real_root = os.path.realpath(root)
        if os.path.lexists(joined) and os.path.commonpath([real_root, os.path.realpath(joined)]) != real_root:
            abort(404)
