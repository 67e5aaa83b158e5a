"""The baseline: a blog written the way Flask-FlatPages' documentation shows it, auto-reload on.

Served by the benchmark as ``gunicorn bench.baseline_app:app`` with ``BENCH_POSTS_DIR`` set.
"""

from __future__ import annotations

import datetime as dt
import os

from flask import Flask, render_template_string
from flask_flatpages import FlatPages

app = Flask(__name__)
app.config.update(
    FLATPAGES_AUTO_RELOAD=True,
    FLATPAGES_EXTENSION=".md",
    FLATPAGES_ROOT=os.path.abspath(os.environ.get("BENCH_POSTS_DIR", "posts")),
    FLATPAGES_MARKDOWN_EXTENSIONS=["codehilite", "fenced_code", "tables", "footnotes"],
)
pages = FlatPages(app)

LIST = """<!doctype html><title>Blog</title><h1>{{ heading }}</h1><ul>
{% for page in posts %}<li><a href="/posts/{{ page.path }}/">{{ page.title }}</a> {{ page.date }}</li>{% endfor %}
</ul>"""
POST = """<!doctype html><title>{{ page.title }}</title><h1>{{ page.title }}</h1>{{ page }}"""


def _date(page) -> dt.datetime:  # type: ignore[no-untyped-def]
    value = page.meta.get("date")
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    return dt.datetime.fromisoformat(str(value)[:19]) if value else dt.datetime.min


@app.route("/")
def index():  # type: ignore[no-untyped-def]
    posts = sorted(pages, key=_date, reverse=True)[:10]
    return render_template_string(LIST, posts=posts, heading="Posts")


@app.route("/category/<name>/")
def category(name: str):  # type: ignore[no-untyped-def]
    posts = [page for page in sorted(pages, key=_date, reverse=True) if name in page.meta.get("categories", [])][:10]
    return render_template_string(LIST, posts=posts, heading=name)


@app.route("/posts/<path:path>/")
def post(path: str):  # type: ignore[no-untyped-def]
    page = pages.get_or_404(path)
    return render_template_string(POST, page=page)
