"""The baseline: a blog written the way Flask-FlatPages' documentation shows it, auto-reload on.

Served by the benchmark as ``gunicorn bench.baseline_app:app`` with ``BENCH_POSTS_DIR`` set. Pages keep
FlatPages' own keys, the file name without ``.md``, so a post's URL is ``/posts/<file name without .md>/``.
"""

from __future__ import annotations

import datetime as dt
import os

from flask import Flask, render_template_string
from flask_flatpages import FlatPages, Page

app = Flask(__name__)
app.config.update(
    # The documented way to see new and edited posts without a restart: every request re-checks the folder.
    FLATPAGES_AUTO_RELOAD=True,
    FLATPAGES_EXTENSION=".md",
    FLATPAGES_ROOT=os.path.abspath(os.environ.get("BENCH_POSTS_DIR", "posts")),
    # codehilite is FlatPages' default; the rest render what the generated posts (and Quire) use.
    FLATPAGES_MARKDOWN_EXTENSIONS=["codehilite", "fenced_code", "tables", "footnotes"],
)
pages = FlatPages(app)

LIST = """<!doctype html><title>Blog</title><h1>{{ heading }}</h1><ul>
{% for page in posts %}<li><a href="/posts/{{ page.path }}/">{{ page.title }}</a> {{ page.date }}</li>{% endfor %}
</ul>"""
POST = """<!doctype html><title>{{ page.title }}</title><h1>{{ page.title }}</h1>{{ page }}"""


def published(page: Page) -> dt.datetime:
    """Return the page's front-matter date as a naive datetime, so dates and datetimes sort together."""
    value = page.meta.get("date")
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    return dt.datetime.fromisoformat(str(value)[:19]) if value else dt.datetime.min


@app.route("/")
def index() -> str:
    """Show the 10 newest posts, newest first."""
    latest = sorted(pages, key=published, reverse=True)
    return render_template_string(LIST, posts=latest[:10], heading="Posts")


@app.route("/category/<name>/")
def category(name: str) -> str:
    """Show the 10 newest posts of one category."""
    latest = sorted((page for page in pages if name in page.meta.get("categories", [])), key=published,
                    reverse=True)
    return render_template_string(LIST, posts=latest[:10], heading=name)


@app.route("/posts/<path:path>/")
def post(path: str) -> str:
    """Show one post, rendered by FlatPages."""
    return render_template_string(POST, page=pages.get_or_404(path))
