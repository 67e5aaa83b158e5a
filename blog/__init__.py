"""Quire: a flat-file blog server. ``create_app`` builds one site from settings."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import click
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from blog import config, logs
from blog.budget import RenderBudget
from blog.content import PostStore, jekyll
from blog.content.pages import PostPages, render_page
from blog.content.parallel import detach
from blog.content.render_cache import UNWANTED_SECONDS
from blog.content.site import Site
from blog.content.sitefile import SiteFile
from blog.content.watch import Watcher, Watchers
from blog.http import ResponseCache
from blog.page_cache import PageCache
from blog.theme import CompiledTemplates, ThemedFlask, static_folders, use_theme


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Create the Quire app: settings, posts store, watcher, pages, errors and CLI."""
    try:
        settings = jekyll.configure(config.load(overrides=overrides), config.given(overrides=overrides))
    except config.ConfigError as error:
        raise SystemExit(f"quire: configuration error: {error}") from None
    app = ThemedFlask(
        __name__,
        template_folder=str(config.PROJECT_ROOT / "templates"),
        static_folder=str(config.PROJECT_ROOT / "static"),
        static_url_path="/static",
    )
    app.config.update(settings)
    theme_folder = use_theme(app, settings["BLOG_THEME_DIR"], settings["BLOG_STATIC_DIR"])
    app.config.update(
        FLATPAGES_ROOT=settings["BLOG_POSTS_DIR"],
        FLATPAGES_EXTENSION=settings["BLOG_EXTENSIONS"],
        FLATPAGES_HTML_RENDERER=render_page,
        FLATPAGES_AUTO_RELOAD=False,
        FLATPAGES_PAGES_ROOT=settings["BLOG_PAGES_DIR"],
        FLATPAGES_PAGES_EXTENSION=(settings["JEKYLL_SITE"].page_extensions(settings["BLOG_EXTENSIONS"])
                                   if settings["JEKYLL_PAGES"] else settings["BLOG_EXTENSIONS"]),
        FLATPAGES_PAGES_HTML_RENDERER=render_page,
        FLATPAGES_PAGES_AUTO_RELOAD=False,
        JSON_SORT_KEYS=False,
    )
    logs.configure()
    site_file = SiteFile(settings["BLOG_SITE_FILE"], _label(settings["BLOG_SITE_FILE"], settings["BLOG_POSTS_DIR"]))
    # What posts' Liquid sees as {{ site.title }}: the deployment's override, else the site file's at start.
    content_settings = {
        **settings,
        "BLOG_TITLE": settings["BLOG_TITLE"] or site_file.settings.title or config.DEFAULT_TITLE,
        "BLOG_DESCRIPTION": settings["BLOG_DESCRIPTION"] or site_file.settings.description or config.DEFAULT_DESCRIPTION,
    }
    pages = PostPages(app)
    if not os.path.isdir(settings["BLOG_POSTS_DIR"]):
        logging.getLogger("quire").warning("posts folder %s does not exist yet; the site is empty until it does",
                                           settings["BLOG_POSTS_DIR"])
    voice = logs.SiteVoice()
    store = PostStore(pages, content_settings, static_root=static_folders(app), speaks=voice.speaks)
    store.load()
    watcher = Watcher(store, settings["BLOG_WATCH"], settings["BLOG_POLL_INTERVAL_MS"] / 1000)
    page_store = _page_store(app, content_settings, store)
    page_watcher = Watcher(page_store, settings["BLOG_WATCH"], settings["BLOG_POLL_INTERVAL_MS"] / 1000)
    site = Site(store, page_store, site_file, _label(settings["BLOG_PAGES_DIR"], settings["BLOG_POSTS_DIR"]))
    site.watched.append(theme_folder)
    watchers = Watchers((watcher, page_watcher))
    app.extensions["quire"] = store
    app.extensions["quire.site"] = site
    app.extensions["quire.watcher"] = watcher
    app.extensions["quire.watchers"] = watchers

    from blog import cli, dev, discovery, errors, feeds, health, search, security, theme, views

    dev.register(app)  # first, so its after_request hook runs last (see dev.register)

    app.register_blueprint(views.bp)
    app.register_blueprint(feeds.bp)
    if settings["BLOG_FEED_PATH"] != "/feed.xml":  # e.g. a Jekyll site's /atom.xml, so subscribers keep it
        app.add_url_rule(settings["BLOG_FEED_PATH"], "feeds.atom", feeds.atom)
    app.register_blueprint(search.bp)
    app.register_blueprint(discovery.bp)
    app.register_blueprint(health.bp)
    errors.register(app)
    security.register(app)
    cli.register(app)
    theme.register(app, theme_folder)
    if store.rendered is not None:  # after everything that configures Jinja: its options name the folder
        compiled = CompiledTemplates(store.rendered.parent, app.jinja_env)
        app.jinja_env.bytecode_cache = compiled
        compiled.remove_others(UNWANTED_SECONDS)
    flask_app = app.wsgi_app
    page_cache = None
    if settings["BLOG_DEV"]:  # nothing may hide a change from the author, and event streams never end to be cached
        app.wsgi_app = security.RequestGuard(flask_app, flask_app)  # type: ignore[method-assign]
    else:
        # Posts' finished pages on disk, under the render cache's folder (so BLOG_CACHE_DIR) and its rules.
        page_cache = PageCache(store.rendered.parent, app, site) if store.rendered else None
        cached = ResponseCache(flask_app, site, watchers, settings["BLOG_RESPONSE_CACHE_ENTRIES"], page_cache)
        app.extensions["quire.cache"] = cached
        app.wsgi_app = security.RequestGuard(cached, flask_app)  # type: ignore[method-assign]
    app.extensions["quire.fill"] = fill = _fillers(store, page_store, page_cache, app.extensions.get("quire.cache"))
    if click.get_current_context(silent=True) is None:  # a server; not a `flask blog` command (`serve` fills itself)
        fill()
    proxies = settings["BLOG_TRUSTED_PROXIES"]
    if proxies:  # outermost, so every layer sees the client's address, scheme and host
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]
    app.wsgi_app = security.SiteMount(app.wsgi_app, settings["BLOG_URL"])  # type: ignore[method-assign]
    app.wsgi_app = RenderBudget(app.wsgi_app, app.config)  # type: ignore[method-assign]
    return app


def _fillers(store: PostStore, page_store: PostStore, page_cache: PageCache | None,
             cached: ResponseCache | None) -> Callable[[], None]:
    """Return what starts the caches' background fillers, so that a crawler after a start finds everything ready.

    Two processes, detached from the server: one asks the kernel to read the page cache's entries ahead (at
    normal priority: the kernel does the work, and it is worth most at once) and ends; the other, at nice 19,
    renders the bodies the render cache lacks, the pages folder's too, and last the post pages the page cache
    lacks, in turn. Each detached process costs the server's start two forks of its whole memory (about 50 ms
    at 100,000 posts) before gunicorn forks a worker, so the fillers share one. The reading ahead keeps its
    own, short-lived one: it goes through every post at once, which copies the memory that holds the posts
    (each one's reference count is written), and a filler that did it first would keep those 100 MB copied
    (at 100,000 posts) for as long as it fills, and share them with its render child.

    The server starts them; a ``flask blog`` command (check, freeze, list) does not: they would compete with
    the command's own work for the CPU and stop when the command ends, their work left half done. Nothing
    starts where this process may not fork.
    """
    def fill(server: int) -> None:
        steps: list[tuple[str, Callable[[], None]]] = [
            ("filling the render cache", lambda: store.fill_render_cache(server)),
            ("filling the pages' render cache", lambda: page_store.fill_render_cache(server))]
        if page_cache is not None and cached is not None and store.rendered is not None:  # pages after bodies
            steps.append(("filling the page cache", lambda: page_cache.fill(server, cached, store.rendered.folder)))
        for name, step in steps:
            try:
                step()
            except Exception:  # one cache's trouble leaves the others filled, and is said
                logging.getLogger("quire").exception("background filler: failed %s", name)

    def start() -> None:
        server = os.getpid()
        if page_cache is not None:
            detach(page_cache.read_ahead, niceness=0)
        detach(lambda: fill(server), niceness=19)  # serving comes first, always

    return start


def _page_store(app: Flask, settings: Mapping[str, Any], posts: PostStore) -> PostStore:
    """Make the store of the pages folder: the posts' machinery over other files, with page rules."""
    pages = PostPages(app, name="pages")
    # A Jekyll site's own pages: its "_"-folders are skipped by Jekyll's rules, which also know include:.
    pages.skips_underscore_folders = not settings["JEKYLL_PAGES"]
    if not os.path.isdir(settings["BLOG_PAGES_DIR"]):
        logging.getLogger("quire").info("pages folder %s does not exist: the site has no pages until it does",
                                        settings["BLOG_PAGES_DIR"])
    store = PostStore(pages, settings, static_root=static_folders(app), kind="page",
                      jekyll_pages=settings["JEKYLL_PAGES"], speaks=posts.speaks)
    pages.resolve_post_url = posts.resolve_post_url  # {% post_url %} in a page names a post
    store.load()
    return store


def _label(folder: str, posts_folder: str) -> str:
    """Return how `check` names a folder: relative to the posts folder's parent when it is inside it."""
    if folder == posts_folder:  # a Jekyll site's pages and posts: both named from the site folder
        return ""
    relative = os.path.relpath(folder, os.path.dirname(posts_folder))
    return folder if relative.startswith("..") else "" if relative == "." else relative
