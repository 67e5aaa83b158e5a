"""The ``flask blog`` commands for authors and operators: new, check, list and freeze."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click
import yaml
from flask import Flask, current_app
from flask.cli import AppGroup

from blog import freeze as exporter
from blog.content import PostStore
from blog.content import post as rules
from blog.content.store import Problem
from blog.lint import fix_mojibake, lint
from blog.logs import printable

blog_cli = AppGroup("blog", help="Write, check, list and export the posts of this Quire site.")
JSON_SCHEMA_VERSION = 1


def _store() -> PostStore:
    return current_app.extensions["quire"]


@blog_cli.command("new")
@click.argument("title")
@click.option("--category", "categories", multiple=True, metavar="NAME", help="A category (repeat for more).")
@click.option("--tag", "tags", multiple=True, metavar="NAME", help="A tag (repeat for more).")
@click.option("--draft", is_flag=True,
              help="Write it as a draft (published: false): visible only with the preview token.")
def new(title: str, categories: tuple[str, ...], tags: tuple[str, ...], draft: bool) -> None:
    """Start a post: write posts/YYYY-MM-DD-slug.md with front matter and print its path and URL."""
    store = _store()
    slug = rules.slugify(title)
    if not title.strip() or not slug:
        raise click.ClickException(f"cannot make a file name from the title {title!r}; use some letters or digits")
    now = dt.datetime.now(store.zone).replace(microsecond=0)
    relative = f"{now:%Y-%m-%d}-{slug}.md"
    path = os.path.join(store.pages.root, relative)
    meta: dict[str, object] = {"title": title.strip(), "date": now.strftime("%Y-%m-%d %H:%M:%S %z")}
    if categories:
        meta["categories"] = list(categories)
    if tags:
        meta["tags"] = list(tags)
    if draft:
        meta["published"] = False
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, default_flow_style=None, width=1000)
    os.makedirs(store.pages.root, exist_ok=True)
    try:
        with open(path, "x", encoding="utf-8") as handle:  # "x": never overwrite an existing post
            handle.write(f"---\n{front}---\n\nWrite the first paragraph here; it is the excerpt in listings.\n")
    except FileExistsError:
        raise click.ClickException(f"{path} already exists; pick another title or edit that file") from None
    store.refresh([relative])
    url = rules.permalink(store.settings["BLOG_PERMALINK"], slug=slug, date=now,
                          categories=rules.terms(list(categories)))
    address = current_app.config["BLOG_URL"] + rules.encode_url(url)
    token = current_app.config.get("BLOG_PREVIEW_TOKEN")
    click.echo(path)
    if draft:
        click.echo(f"{address} (a draft: remove 'published: false' to publish it)")
        if token:
            click.echo(f"preview: {address}?preview={token}")
    else:
        click.echo(address)
    for problem in store.snapshot.problems.get(relative, ()):
        if problem.severity != "info":
            click.echo(str(problem), err=True)


@blog_cli.command("check")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one line per problem; json: one document for tools (schema in the README).")
@click.option("--fix", is_flag=True, help="Repair mojibake in place (atomically), keeping each original as NAME~ "
                   "(or NAME.~N~ if that exists); a file saved meanwhile is left alone.")
def check(output_format: str, fix: bool) -> None:
    """Report every problem in the posts folder; exit with status 1 if any is an error."""
    store = _store()
    if fix:
        repairs, skipped = fix_mojibake(store)
        for repair in repairs:
            click.echo(printable(f"{repair.source}: fixed mojibake on {repair.lines} line{'s' * (repair.lines != 1)} "
                                 f"(original kept as {repair.backup})"), err=True)
        for relative in skipped:
            click.echo(printable(f"{relative}: changed while being fixed; left as it is (run check --fix again)"),
                       err=True)
        if repairs:
            store.refresh([repair.source for repair in repairs])
    problems = lint(current_app._get_current_object())  # type: ignore[attr-defined]
    counts = Counter(problem.severity for problem in problems)
    posts = len(store.snapshot.posts)
    if output_format == "json":
        click.echo(json.dumps(_report(problems, counts, posts, store), indent=2, ensure_ascii=False))
    else:
        for problem in problems:
            click.echo(str(problem))
        errors, warnings = counts["error"], counts["warning"]
        click.echo(f"{posts} post{'s' * (posts != 1)} published, {errors} error{'s' * (errors != 1)}, "
                   f"{warnings} warning{'s' * (warnings != 1)}", err=True)
    if counts["error"]:
        raise SystemExit(1)


def _report(problems: list[Problem], counts: Counter[str], posts: int, store: PostStore) -> dict[str, object]:
    files = sum(1 for _ in store.pages.walk())
    flagged = {problem.source for problem in problems if problem.severity in {"error", "warning"}}
    return {
        "version": JSON_SCHEMA_VERSION,
        "problems": [
            {"file": problem.source, "line": problem.line, "column": problem.column, "severity": problem.severity,
             "code": problem.code, "message": problem.message}
            for problem in problems
        ],
        "summary": {"files": files, "posts": posts, "clean_files": files - len(flagged),
                    "errors": counts["error"], "warnings": counts["warning"], "infos": counts["info"]},
    }


@blog_cli.command("list")
def list_posts() -> None:
    """Print the published posts, newest first: date, URL and title."""
    for post in _store().snapshot.posts:
        click.echo(printable(f"{post.date:%Y-%m-%d}  {post.url}  {post.title}"))


@blog_cli.command("freeze")
@click.argument("folder", default="_site", type=click.Path(file_okay=False, path_type=Path))
def freeze(folder: Path) -> None:
    """Export the whole site as static files into FOLDER (default _site) for any static host or CDN.

    Every page reachable from the home page, robots.txt and the sitemap is written (pretty URLs as
    index.html), with every feed and asset; then every link inside the export is checked. Search needs the
    server and is left out. Exits with status 1 if a link in the export leads nowhere.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        report = exporter.freeze(app, folder, progress=_progress)
    except exporter.FreezeError as error:
        raise click.ClickException(str(error)) from None
    for path, status in report.failed:
        click.echo(printable(f"{path}: answered {status}, not exported"), err=True)
    for page, link in report.broken:
        click.echo(printable(f"{page}: broken link {link}"), err=True)
    broken = len(report.broken) + len(report.failed)
    click.echo(f"{report.files} files written to {folder}, {broken} broken link{'s' * (broken != 1)}")
    if broken:
        raise SystemExit(1)


def _progress(total: int) -> Any:
    return click.progressbar(length=total, label="Exporting", file=sys.stderr, show_pos=True)


def register(app: Flask) -> None:
    """Add the ``blog`` command group to the app's CLI."""
    app.cli.add_command(blog_cli)
