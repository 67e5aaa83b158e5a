"""The ``flask blog`` commands for authors and operators: new, check, list and freeze."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import click
import yaml
from flask import Flask, current_app
from flask.cli import AppGroup

from blog import dev
from blog import freeze as exporter
from blog.content import PostStore
from blog.content import post as rules
from blog.content.store import Problem
from blog.lint import CARRY_OVER, CARRY_OVER_GROUPS, fix_mojibake, is_jekyll_site, lint
from blog.logs import printable

blog_cli = AppGroup("blog", help="Write, check, list and export the posts of this Quire site.")
JSON_SCHEMA_VERSION = 1


def _store() -> PostStore:
    return current_app.extensions["quire"]


@blog_cli.command("new")
@click.argument("title")
@click.option("--category", "categories", multiple=True, metavar="NAME", help="A category (repeat for more).")
@click.option("--tag", "tags", multiple=True, metavar="NAME", help="A tag (repeat for more).")
@click.option("--draft/--publish", default=True, show_default=True,
              help="A draft (published: false) is seen only under `make dev` or with the preview token, until you "
                   "delete that line; --publish puts the post on the site at once.")
def new(title: str, categories: tuple[str, ...], tags: tuple[str, ...], draft: bool) -> None:
    """Start a post: write posts/YYYY-MM-DD-slug.md as a draft and print its path and preview addresses."""
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
        click.echo(f"{address} (a draft: delete the line 'published: false' to publish it)")
        click.echo(f"preview: {dev.address()}{rules.encode_url(url)} (while `make dev` runs)")
        if token:
            click.echo(f"preview: {address}?preview={token}")
    else:
        click.echo(address)
    for problem in store.snapshot.problems.get(relative, ()):
        if problem.severity != "info":
            click.echo(str(problem), err=True)


@blog_cli.command("serve", with_appcontext=False)
@click.option("--dev", "dev_mode", is_flag=True, help="The author's preview: drafts and future posts shown and marked, "
              "problems shown in the page, and the open page reloads when anything changes.")
@click.option("--host", default=dev.DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option("--port", default=dev.DEFAULT_PORT, show_default=True, envvar="PORT", help="Port (or $PORT).")
def serve(dev_mode: bool, host: str, port: int) -> None:
    """Serve the site on this machine with Werkzeug's threaded server, for writing (make dev is --dev).

    For readers, serve it with gunicorn (make run) behind nginx: see docs/deploying.md.
    """
    from werkzeug.serving import make_server

    from blog import create_app

    app = create_app({"BLOG_DEV": True} if dev_mode else None)
    app.extensions["quire.watchers"].ensure_running()
    app.extensions["quire.fill"]()  # made inside this command, the app left them to the server
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    server.daemon_threads = True  # open event streams must not hold up Ctrl+C
    shown = "drafts and future posts shown, the page reloads on every change" if dev_mode else "as readers see it"
    click.echo(f"Serving {app.config['BLOG_POSTS_DIR']} at http://{host}:{server.server_port}/ ({shown}); "
               "Ctrl+C stops", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.extensions["quire.watchers"].stop()


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
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    problems = lint(app)
    counts = Counter(problem.severity for problem in problems)
    posts = len(store.snapshot.posts)
    # For a Jekyll site, what will not carry over is shown apart, topic by topic, after the other problems.
    groups = _carry_over(problems) if is_jekyll_site(app) else {}
    if output_format == "json":
        click.echo(json.dumps(_report(problems, counts, posts, store, groups), indent=2, ensure_ascii=False))
    else:
        grouped = {id(problem) for found in groups.values() for problem in found}
        for problem in problems:
            if id(problem) not in grouped:
                click.echo(str(problem))
        if groups:
            click.echo(f"\nWhat will not carry over from the Jekyll site {printable(app.config['BLOG_JEKYLL_SITE'])}:")
        for title, found in groups.items():
            click.echo(f"\n{title} ({len(found)}):")
            for problem in found:
                click.echo(f"  {problem}")
        errors, warnings = counts["error"], counts["warning"]
        pages = len(app.extensions["quire.site"].page_index.pages)
        served = f"{posts} post{'s' * (posts != 1)}" + (f" and {pages} page{'s' * (pages != 1)}" if is_jekyll_site(app) else "")
        summary = f"{served} published, {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
        if is_jekyll_site(app):
            summary += "; will not carry over from Jekyll: " + ", ".join(
                f"{short} {len(groups.get(title, ()))}" for title, short, _ in CARRY_OVER_GROUPS)
        click.echo(summary, err=True)
    if counts["error"]:
        raise SystemExit(1)


def _carry_over(problems: list[Problem]) -> dict[str, list[Problem]]:
    """Return the problems that say what a Jekyll site loses, by topic, in the order check shows them."""
    groups: dict[str, list[Problem]] = {title: [] for title, _, _ in CARRY_OVER_GROUPS}
    for problem in problems:
        if problem.code in CARRY_OVER:
            groups[CARRY_OVER[problem.code]].append(problem)
    return {title: found for title, found in groups.items() if found}


def _report(problems: list[Problem], counts: Counter[str], posts: int, store: PostStore,
            groups: dict[str, list[Problem]]) -> dict[str, object]:
    files = sum(1 for _ in store.pages.walk())
    flagged = {problem.source for problem in problems if problem.severity in {"error", "warning"}}
    topic = {id(problem): title for title, found in groups.items() for problem in found}
    short_of = {title: short for title, short, _ in CARRY_OVER_GROUPS}
    summary: dict[str, object] = {"files": files, "posts": posts, "clean_files": files - len(flagged),
                                  "errors": counts["error"], "warnings": counts["warning"], "infos": counts["info"]}
    if is_jekyll_site(current_app):
        summary["jekyll"] = {short: len(groups.get(title, ())) for title, short, _ in CARRY_OVER_GROUPS}
    return {
        "version": JSON_SCHEMA_VERSION,
        "problems": [
            {"file": problem.source, "line": problem.line, "column": problem.column, "severity": problem.severity,
             "code": problem.code, "message": problem.message,
             **({"jekyll": short_of[topic[id(problem)]]} if id(problem) in topic else {})}
            for problem in problems
        ],
        "summary": summary,
    }


@blog_cli.command("list")
def list_posts() -> None:
    """Print the published posts, newest first: date, URL and title."""
    for post in _store().snapshot.posts:
        click.echo(printable(f"{post.date:%Y-%m-%d}  {post.url}  {post.title}"))


@blog_cli.command("freeze")
@click.argument("folder", default="_site", type=click.Path(file_okay=False, path_type=Path))
@click.option("--full", is_flag=True, help="Ignore the previous export and write every file afresh.")
@click.option("--gzip", "gzip_copies", is_flag=True,
              help="Write NAME.gz beside every text file, for nginx's gzip_static and CDNs.")
@click.option("--jobs", type=click.IntRange(min=1), default=None, metavar="N",
              help="Render in N processes (default: one per usable CPU).")
def freeze(folder: Path, full: bool, gzip_copies: bool, jobs: int | None) -> None:
    """Export the whole site as static files into FOLDER (default _site) for any static host or CDN.

    Every post, listing page, feed, the sitemap and static/ are written (pretty URLs as index.html), on all
    CPUs; then every link inside the export is followed and checked. A second export compares with the first
    and writes only the files whose bytes changed; the folder is swapped in whole, so readers see the old
    export or the new one. The export it replaces is kept beside FOLDER as .FOLDER.spare (its unchanged files
    shared with FOLDER), for the next export to bring up to date. Search needs the server and is left out.
    Exits with status 1 if a link in the export leads nowhere.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        report = exporter.freeze(app, folder, progress=_progress, full=full, compress=("gz",) if gzip_copies else (),
                                 processes=jobs)
    except exporter.FreezeError as error:
        raise click.ClickException(str(error)) from None
    for name in report.refused:
        click.echo(f"{name}: leads outside static/ (the server answers 404), not exported", err=True)
    for path, status in report.failed:
        click.echo(printable(f"{path}: answered {status}, not exported"), err=True)
    for page, link in report.broken:
        click.echo(printable(f"{page}: broken link {link}"), err=True)
    broken = len(report.broken) + len(report.failed)
    click.echo(f"{folder}: {report.files:,} files, {report.written:,} written ({report.bytes:,} bytes), "
               f"{report.unchanged:,} unchanged, {report.deleted:,} deleted, {report.rendered:,} pages rendered "
               f"in {report.seconds:.1f} s; {broken} broken link{'s' * (broken != 1)}")
    if broken:
        raise SystemExit(1)


PROGRESS_SECONDS = 5.0  # between progress lines when stderr is not a terminal (a log, CI)


def _progress(total: int) -> Any:
    if sys.stderr.isatty():
        return click.progressbar(length=total, label="Exporting", file=sys.stderr, show_pos=True)
    return LineProgress(total, PROGRESS_SECONDS)


class LineProgress:
    """A progress report for logs: a line when it starts, one every few seconds, and one at the end."""

    def __init__(self, length: int, interval: float, clock: Any = time.monotonic):
        self.length = length
        self.position = 0
        self.interval = interval
        self.clock = clock
        self._last = 0.0

    def __enter__(self) -> LineProgress:
        self._last = self.clock()
        click.echo(f"Exporting {self.length:,} pages", err=True)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if exc_info[0] is None:
            self._line()

    def update(self, steps: int) -> None:
        """Count ``steps`` more pages done, and print a line if the last one is old enough."""
        self.position += steps
        if self.clock() - self._last >= self.interval:
            self._line()

    def _line(self) -> None:
        self._last = self.clock()
        share = 100 * self.position // max(self.length, 1)
        click.echo(f"Exporting: {self.position:,}/{self.length:,} pages ({share}%)", err=True)


def register(app: Flask) -> None:
    """Add the ``blog`` command group to the app's CLI."""
    app.cli.add_command(blog_cli)
