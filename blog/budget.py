"""Each request's render budget, held for the whole WSGI call: the response cache may run the app twice."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from blog.content.store import end_render_budget, start_render_budget


class RenderBudget:
    """WSGI middleware bounding what one request may spend waiting for renders, in total.

    The bound is ``BLOG_RESPONSE_SECONDS``: past it, the posts not rendered yet show their escaped text in this
    response only (it is not cached) while their renders finish in the background. ``QUIRE_RENDER_BUDGET`` in the
    app's config overrides it; None lifts the bound (``blog freeze``, whose pages must be whole).
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], config: Mapping[str, Any]):
        self.app = app
        self.config = config

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Run the app under a fresh budget; renders still running when it ends finish in the background."""
        start_render_budget(self.config.get("QUIRE_RENDER_BUDGET", self.config["BLOG_RESPONSE_SECONDS"]))
        try:
            return self.app(environ, start_response)
        finally:
            end_render_budget()
