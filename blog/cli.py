"""The ``flask blog`` commands for authors and operators: check and list."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from blog.content import PostStore

blog_cli = AppGroup("blog", help="Check and list the posts of this Quire site.")


def _store() -> PostStore:
    return current_app.extensions["quire"]


@blog_cli.command("check")
def check() -> None:
    """Report every problem in the posts folder; exit with status 1 if any is an error."""
    store = _store()
    problems = sorted(store.problems(), key=lambda problem: (problem.source, problem.line or 0))
    for problem in problems:
        click.echo(str(problem))
    errors = sum(problem.severity == "error" for problem in problems)
    warnings = sum(problem.severity == "warning" for problem in problems)
    posts = len(store.snapshot.posts)
    click.echo(f"{posts} post{'s' * (posts != 1)} published, {errors} error{'s' * (errors != 1)}, "
               f"{warnings} warning{'s' * (warnings != 1)}", err=True)
    if errors:
        raise SystemExit(1)


@blog_cli.command("list")
def list_posts() -> None:
    """Print the published posts, newest first: date, URL and title."""
    for post in _store().snapshot.posts:
        click.echo(f"{post.date:%Y-%m-%d}  {post.url}  {post.title}")


def register(app: Flask) -> None:
    """Add the ``blog`` command group to the app's CLI."""
    app.cli.add_command(blog_cli)
