"""Static export: crawl the app's own links and write every page, feed and asset as files."""

from __future__ import annotations

import html
import os
import posixpath
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from flask import Flask
from werkzeug.exceptions import HTTPException


MARKER = ".quire-freeze"  # marks a folder this command made, so it may be replaced by the next export
SEEDS = ("/", "/robots.txt", "/sitemap.xml")  # everything else is found by following links from these
DYNAMIC_ENDPOINTS = frozenset({"search.results", "health.healthz"})  # need a server; a static host cannot answer
NOT_FOUND_PROBE = "/quire-freeze-missing-page/"

Progress = Callable[[int], AbstractContextManager[Any]]


class FreezeError(Exception):
    """The export cannot be written where it was asked to go."""


@dataclass
class Report:
    """What an export wrote and what it could not resolve."""

    files: int = 0
    broken: list[tuple[str, str]] = field(default_factory=list)  # (exported file, link leading nowhere)
    failed: list[tuple[str, int]] = field(default_factory=list)  # (linked URL, status it answered)


def freeze(app: Flask, folder: Path, progress: Progress) -> Report:
    """Export the site into ``folder`` (replaced only if an earlier export made it); return what happened."""
    folder = folder.resolve()
    if folder.exists() and any(folder.iterdir()) and not (folder / MARKER).exists():
        raise FreezeError(f"{folder} is not empty and was not made by blog freeze; choose an empty or new folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        report = _export(app, staging, progress)
        (staging / MARKER).write_text("Written by `blog freeze`; the next export replaces this folder.\n")
        report.files = sum(1 for _ in _files(staging)) - 1
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return report


def _export(app: Flask, root: Path, progress: Progress) -> Report:
    report = Report()
    base = app.config["BLOG_URL"]
    static = Path(app.static_folder or "")
    if static.is_dir():
        shutil.copytree(static, root / "static")
        if (static / "assets").is_dir():
            shutil.copytree(static / "assets", root / "assets")  # Jekyll's /assets/ URLs
    client = app.test_client()
    seen = set(SEEDS)
    queue = deque(SEEDS)
    with progress(len(seen)) as bar:
        while queue:
            path = queue.popleft()
            response = client.get(path)
            if response.status_code in {301, 302, 303, 307, 308}:
                target = site_path(response.headers["Location"], path, base)
                if target is not None:
                    if file_for(root, target) != file_for(root, path):  # /about -> /about/ share one file
                        _write(root, path, _redirect_page(target))
                    _enqueue(app, target, seen, queue)
            elif response.status_code == 200:
                body = response.get_data()
                _write(root, path, body)
                for reference in references(body, response.mimetype, base):
                    target = site_path(reference, path, base)
                    if target is not None:
                        _enqueue(app, target, seen, queue)
            elif path not in SEEDS:  # a seed that is missing is a feature this site lacks, not a broken link
                report.failed.append((path, response.status_code))
            bar.length = len(seen)
            bar.update(1)
    missing = client.get(NOT_FOUND_PROBE)
    if missing.status_code == 404:
        (root / "404.html").write_bytes(missing.get_data())  # the page static hosts show for unknown URLs
    report.broken = verify(root, base)
    return report


def verify(root: Path, base: str) -> list[tuple[str, str]]:
    """Return (file, link) for every link inside an export that resolves to no file in it."""
    broken = []
    for file in _files(root):
        relative = file.relative_to(root).as_posix()
        if relative.startswith(("static/", "assets/")) or relative in {MARKER, "404.html"}:  # 404 names itself
            continue
        page = "/" + (relative[:-len("index.html")] if file.name == "index.html" else relative)
        mimetype = "text/html" if file.suffix == ".html" else "text/plain"
        for reference in dict.fromkeys(references(file.read_bytes(), mimetype, base)):  # each once, in order
            target = site_path(reference, page, base)
            if target is not None and not exported(root, target):
                broken.append((relative, reference))
    return broken


def exported(root: Path, path: str) -> bool:
    """Tell whether a static host serving ``root`` has a file for the site path ``path``."""
    try:
        file = file_for(root, path)
    except ValueError:
        return False
    return file.is_file()


def file_for(root: Path, path: str) -> Path:
    """Return the file that holds the page at ``path``: pretty URLs (ending in /) become index.html."""
    relative = posixpath.normpath(unquote(path)).lstrip("/")
    if relative in {"", "."}:
        relative = ""
    name = "index.html" if path.endswith("/") or not relative else ""
    if not name and "." not in relative.rsplit("/", 1)[-1]:
        name = "index.html"  # /about: a folder with an index, which static hosts serve at /about and /about/
    if relative.startswith("..") or "\0" in relative:
        raise ValueError(f"{path!r} leaves the site")
    return root / relative / name if name else root / relative


# href and src of real start tags only: in code samples '<' is escaped, so a shown tag never matches.
# A regular expression rather than html.parser, which took two thirds of an export's time.
_LINK_ATTRIBUTE = re.compile(
    r"<(?:a|link|img|script|source|iframe|area|video|audio)\b[^>]*?\s(?:href|src)\s*=\s*"
    r"(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>]+))", re.IGNORECASE)


def references(body: bytes, mimetype: str, base: str) -> list[str]:
    """Return the URLs a response refers to: links and sources in HTML, the site's own URLs in anything else."""
    text = body.decode("utf-8", "replace")
    if mimetype == "text/html":
        return [html.unescape(next(value for value in match.groups() if value is not None))
                for match in _LINK_ATTRIBUTE.finditer(text)]
    return re.findall(re.escape(base) + r"(/[^\s\"'<>&\\]*)", text)


def site_path(reference: str, page: str, base: str) -> str | None:
    """Return the path (without query or fragment) a reference leads to on this site, or None if elsewhere."""
    reference = reference.strip()
    if reference.startswith(base + "/") or reference == base:
        reference = reference[len(base):] or "/"
    if not reference or reference.startswith("#"):
        return None
    parts = urlsplit(urljoin(page, reference))
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return None
    return parts.path


def _enqueue(app: Flask, path: str, seen: set[str], queue: deque[str]) -> None:
    if path in seen or path.startswith(("/static/", "/assets/")):  # assets were copied whole
        return
    seen.add(path)
    try:
        endpoint, _ = app.url_map.bind("localhost").match(path)
    except HTTPException:
        endpoint = None
    if endpoint not in DYNAMIC_ENDPOINTS:
        queue.append(path)


def _write(root: Path, path: str, body: bytes) -> None:
    try:
        file = file_for(root, path)
    except ValueError:
        return
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(body)


def _redirect_page(target: str) -> bytes:
    escaped = target.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return (f'<!doctype html><meta charset="utf-8"><title>Moved</title>'
            f'<meta http-equiv="refresh" content="0; url={escaped}"><link rel="canonical" href="{escaped}">'
            f'<p>This page moved to <a href="{escaped}">{escaped}</a>.</p>\n').encode("utf-8")


def _files(root: Path) -> Iterator[Path]:
    for folder, _, names in os.walk(root):
        for name in names:
            yield Path(folder) / name
