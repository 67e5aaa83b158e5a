"""What every template is given: the site's settings, its navigation, fingerprinted asset URLs and filters."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, has_request_context, request, url_for

from blog.http import CACHE_MARKER

# The menu's built-in entries, by the names the site file's ``nav:`` may use for them.
BUILT_IN_NAV = {
    "home": ("Home", "posts.index"),
    "categories": ("Categories", "posts.categories"),
    "tags": ("Tags", "posts.tags"),
    "archive": ("Archive", "posts.archive"),
}
DEFAULT_NAV = ("home", "categories", "tags", "archive", "pages")


@dataclass(frozen=True)
class NavItem:
    """One link of the site's menu."""

    title: str
    url: str
    current: bool  # the page being shown: marked aria-current="page"


def navigation() -> list[NavItem]:
    """Return the menu: built-in pages and pages with ``nav: N`` in the default order."""
    here = request.path
    items: list[NavItem] = []
    for name in DEFAULT_NAV:
        if name == "pages":
            for page in current_app.extensions["quire.site"].page_index.nav:
                url = url_for("posts.detail", url=page.url[1:])
                items.append(NavItem(page.title, url, url == here))
        else:
            title, endpoint = BUILT_IN_NAV[name]
            url = url_for(endpoint)
            items.append(NavItem(title, url, url == here))
    return items


def register(app: Flask) -> None:
    """Give the app's templates their context, helpers and filters, and mark static files long-cacheable."""
    fingerprints: dict[str, str] = {}

    def asset_url(filename: str) -> str:
        """Return a static file's URL with a content fingerprint, so it can be cached for a year."""
        if filename not in fingerprints or app.config["BLOG_DEV"]:  # dev mode: a changed file, a new URL
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
            "navigation": navigation() if has_request_context() else [],
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
