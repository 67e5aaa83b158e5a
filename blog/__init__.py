"""Quire: a flat-file blog server. ``create_app`` builds one site from settings."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

from blog import config
from blog.content import PostStore
from blog.content.pages import PostPages, render_page
from blog.content.watch import Watcher
from blog.http import CACHE_MARKER, ResponseCache


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Create the Quire app: settings, posts store, watcher, pages, errors and CLI."""
    try:
        settings = config.load(overrides=overrides)
    except config.ConfigError as error:
        raise SystemExit(f"quire: configuration error: {error}") from None
    app = Flask(
        __name__,
        template_folder=str(config.PROJECT_ROOT / "templates"),
        static_folder=str(config.PROJECT_ROOT / "static"),
        static_url_path="/static",
    )
    app.config.update(settings)
    app.config.update(
        FLATPAGES_ROOT=settings["BLOG_POSTS_DIR"],
        FLATPAGES_EXTENSION=settings["BLOG_EXTENSIONS"],
        FLATPAGES_HTML_RENDERER=render_page,
        FLATPAGES_AUTO_RELOAD=False,
        JSON_SORT_KEYS=False,
    )
    _configure_logging()
    pages = PostPages(app)
    if not os.path.isdir(settings["BLOG_POSTS_DIR"]):
        logging.getLogger("quire").warning("posts folder %s does not exist yet; the site is empty until it does",
                                           settings["BLOG_POSTS_DIR"])
    store = PostStore(pages, settings, static_root=app.static_folder or "")
    store.load()
    watcher = Watcher(store, settings["BLOG_WATCH"], settings["BLOG_POLL_INTERVAL_MS"] / 1000)
    app.extensions["quire"] = store
    app.extensions["quire.watcher"] = watcher

    from blog import cli, discovery, errors, feeds, health, search, security, views

    app.register_blueprint(views.bp)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(search.bp)
    app.register_blueprint(discovery.bp)
    app.register_blueprint(health.bp)
    errors.register(app)
    security.register(app)
    cli.register(app)
    _register_template_helpers(app)
    flask_app = app.wsgi_app
    cached = ResponseCache(flask_app, store, watcher, settings["BLOG_RESPONSE_CACHE_ENTRIES"])
    app.extensions["quire.cache"] = cached
    app.wsgi_app = security.RequestGuard(cached, flask_app)  # type: ignore[method-assign]
    proxies = settings["BLOG_TRUSTED_PROXIES"]
    if proxies:  # outermost, so every layer sees the client's address, scheme and host
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]
    return app


def _register_template_helpers(app: Flask) -> None:
    fingerprints: dict[str, str] = {}

    def asset_url(filename: str) -> str:
        """Return a static file's URL with a content fingerprint, so it can be cached for a year."""
        if filename not in fingerprints:
            path = os.path.join(app.static_folder or "", filename)
            try:
                with open(path, "rb") as handle:
                    fingerprints[filename] = hashlib.blake2b(handle.read(), digest_size=6).hexdigest()
            except OSError:
                fingerprints[filename] = ""
        version = fingerprints[filename]
        return url_for("static", filename=filename, v=version) if version else url_for("static", filename=filename)

    @app.context_processor
    def site() -> dict[str, Any]:
        return {
            "site": {
                "title": app.config["BLOG_TITLE"],
                "description": app.config["BLOG_DESCRIPTION"],
                "url": app.config["BLOG_URL"],
            },
            "asset_url": asset_url,
        }

    @app.template_filter("long_date")
    def long_date(value: Any) -> str:
        return f"{value:%B} {value.day}, {value.year}"

    @app.after_request
    def static_cache(response: Response) -> Response:
        if request.endpoint in {"static", "posts.assets"} and response.status_code == 200:
            response.headers[CACHE_MARKER] = "static"  # compressed and validated once, not per request
            if request.args.get("v"):
                response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def _configure_logging() -> None:
    logger = logging.getLogger("quire")
    logger.setLevel(logging.INFO)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
