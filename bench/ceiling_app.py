"""The ceiling: a bare WSGI app answering pre-rendered bytes, no framework, no work per request.

Served by the benchmark as ``gunicorn bench.ceiling_app:app`` with ``BENCH_CEILING_DIR`` holding
``manifest.json`` (URL path → file name) and the files, fetched from Quire itself so the bytes match.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

FOLDER = Path(os.environ.get("BENCH_CEILING_DIR", "."))
PAGES = {
    path: (FOLDER / name).read_bytes()
    for path, name in json.loads((FOLDER / "manifest.json").read_text(encoding="utf-8")).items()
} if (FOLDER / "manifest.json").exists() else {}
NOT_FOUND = b"not found"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer a known path with its bytes, anything else with 404."""
    body = PAGES.get(environ.get("PATH_INFO", ""))
    if body is None:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(NOT_FOUND)))])
        return [NOT_FOUND]
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
