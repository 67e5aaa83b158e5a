"""Operators' view of a worker: /healthz, answered from the current snapshot without touching files."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify

from blog.content import PostStore

bp = Blueprint("health", __name__)


@bp.route("/healthz")
def healthz() -> Response:
    """Report that this worker serves, with its post count, problems and content age, as JSON."""
    store: PostStore = current_app.extensions["quire"]
    snapshot = store.snapshot
    counts = {"errors": 0, "warnings": 0}
    for problems in snapshot.problems.values():
        for problem in problems:
            if problem.severity in {"error", "warning"}:
                counts[problem.severity + "s"] += 1
    response = jsonify({
        "status": "ok",
        "posts": len(snapshot.posts),
        "problems": counts,
        "content_age_seconds": round(time.time() - snapshot.changed_at, 1),
        "generation": snapshot.generation,
    })
    response.headers["Cache-Control"] = "no-store"  # a health check must reach the worker, not a cache
    return response
