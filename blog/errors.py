"""One place that turns HTTP errors into the site's own error pages."""

from __future__ import annotations

import logging

from flask import Flask, current_app, render_template
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger("quire.errors")


def register(app: Flask) -> None:
    """Render every HTTP error, and any unexpected exception, with the site's chrome."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):  # type: ignore[no-untyped-def]
        if error.code is None or error.code < 400:
            return error
        response = error.get_response()
        response.set_data(render_template("error.html", error=error))
        response.content_type = "text/html; charset=utf-8"
        seconds = current_app.config["BLOG_CACHE_SECONDS"]
        cacheable = error.code < 500 and seconds
        # s-maxage as views.cacheable's: a post written at a URL that was missing shows through nginx at once too.
        response.headers["Cache-Control"] = f"public, max-age={seconds}, s-maxage=1" if cacheable else "no-store"
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception):  # type: ignore[no-untyped-def]
        log.exception("unexpected error")
        return http_error(InternalServerError())
