"""Whole-site checks for ``blog check``: mojibake, very large files, and internal links that point nowhere."""

from __future__ import annotations

import functools
import os
import posixpath
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

from flask import Flask
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from blog.content import Post, PostStore
from blog.content.markup import KNOWN_LIQUID_TAGS, LIQUID_OUTPUT, LIQUID_TAG
from blog.content.source import SourceError
from blog.content.site import Site
from blog.theme import find_static
from blog.content.store import Problem

LARGE_FILE_FRACTION = 4  # warn once a file passes a quarter of BLOG_MAX_POST_SIZE: it is on its way to the limit
BACKUP_SUFFIX = "~"  # the loader ignores names ending in '~', so a backup is never served as a second post
# What any link or image in Markdown, HTML or Liquid must contain; posts without one are not rendered.
_LINK_HINT = re.compile(r"\]\(|^ {0,3}\[[^\]^][^\]]*\]:|\b(?:href|src)\s*=|\{[{%]|<https?:",
                        re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Repair:
    """Mojibake fixed in one file: how many lines changed and where the original was kept."""

    source: str
    lines: int
    backup: str


# What does not carry over when a Jekyll site is served, by problem code, in the order `check` shows it.
# Each: its heading, its word in the summary line, and its problem codes.
CARRY_OVER_GROUPS = (
    ("URLs that change", "URLs", ("permalink", "duplicate-url")),
    ("Jekyll pages not served", "pages", ("home-page", "unserved-page")),
    ("Liquid left as written", "Liquid", ("liquid", "post-listing")),
    ("Links to Jekyll pages not served", "links", ("unserved-link", "unserved-image")),
    ("Redirects made, each a 301", "redirects", ("redirect",)),
)
CARRY_OVER = {code: title for title, _, codes in CARRY_OVER_GROUPS for code in codes}
# Liquid tags that only continue or close another one: reported with the tag they belong to.
_PART_OF_A_TAG = frozenset({"else", "elsif", "when", "break", "continue"})


def lint(app: Flask) -> list[Problem]:
    """Return the store's problems and the whole-site ones, sorted by file, line and column."""
    store: PostStore = app.extensions["quire"]
    site: Site = app.extensions["quire.site"]
    found = link_problems(app)  # first: rendering for links may find a post that fails to render
    for files in (store, site.pages):
        files.recall_render_failures()  # and the server's processes may have found others
    found.extend(store.problems())
    site.site_file.refresh()  # check reads the file as it is now, not as a worker last saw it
    found.extend(site.problems())
    found.extend(site_file_link_problems(app))
    if store.jekyll.serves_files:
        found = jekyll_problems(app, found)
    for files, label in ((store, ""), (site.pages, site.pages_label)):
        for relative, text, size in _post_files(files):
            named = f"{label}/{relative}" if label else relative
            found.extend(_size_problems(named, size, store.settings["BLOG_MAX_POST_SIZE"]))
            if text is not None:
                found.extend(mojibake_problems(named, text))
    return sorted(found, key=lambda problem: (problem.source, problem.line or 0, problem.column or 0, problem.code))


def is_jekyll_site(app: Flask) -> bool:
    """Tell whether the app serves a Jekyll site folder (BLOG_JEKYLL_SITE), for which check says what carries over."""
    return app.extensions["quire"].jekyll.serves_files


def jekyll_problems(app: Flask, found: list[Problem]) -> list[Problem]:
    """Return ``found`` with what a Jekyll site loses made precise: each Liquid tag left, Jekyll's pages not served.

    The store notes one ``liquid`` problem per file (it runs for every post at load); here each tag left gets
    its own line. Links to Jekyll's own pages (``/docs/...``) are named as such.
    """
    site: Site = app.extensions["quire.site"]
    resolver = LinkResolver(app)
    served = set(site.pages.snapshot.by_url) | set(site.pages.snapshot.hidden_by_url)
    result = []
    for problem in found:
        result.extend((_liquid_tags_left(site, problem) or [problem]) if problem.code == "liquid" else [problem])
    routes = app.url_map.bind("")
    for url, page in site.pages.snapshot.by_url.items():
        try:
            endpoint = routes.match(url)[0]
        except RequestRedirect:
            endpoint = "a redirect"
        except HTTPException:
            continue
        if endpoint != "posts.detail":  # Quire's own page at that URL (/tags/, /archive/, /search...) wins
            result.append(Problem(page.source, "warning", "unserved-page",
                                  f"Quire's own page ({endpoint}) answers {url}, so this page is not served there",
                                  None))
    for store in (site.posts, site.pages):
        snapshot = store.snapshot
        for post in _all_posts(snapshot.by_url.values(), snapshot.hidden_by_url.values()):
            result.extend(_liquid_outputs_left(store, post))
    for url, relative in resolver.jekyll_rendered.items():
        if url in served or url == "/" or resolver.resolves(url):
            continue
        if site.pages.snapshot.problems.get(relative):
            continue  # a page Quire reads but cannot serve: its own problem says why
        feed = url.endswith((".xml", ".atom", ".rss")) and any(word in url for word in ("atom", "feed", "rss"))
        hint = f"; BLOG_FEED_PATH={url} serves Quire's Atom feed there" if feed else ""
        why = "no collection but _posts is read" if relative.startswith("_") else "only .md and .html pages are Quire pages"
        result.append(Problem(relative, "warning", "unserved-page",
                              f"Jekyll renders this file to {url}; Quire does not serve it ({why}), so that URL is lost{hint}"))
    return result


def _liquid_tags_left(site: Site, problem: Problem) -> list[Problem]:
    """Return one problem per Liquid tag Quire leaves as written in the file ``problem`` names, with its line."""
    store = site.posts if problem.source in site.posts.snapshot.problems else site.pages
    try:
        body, first_line, _ = store.pages.read_body(problem.source, store.settings["BLOG_MAX_POST_SIZE"])
    except (OSError, SourceError):
        return []
    found, in_raw = [], False
    for match in LIQUID_TAG.finditer(body):
        name = match.group(1)
        if in_raw:
            in_raw = name != "endraw"
            continue
        in_raw = name == "raw"
        if name in KNOWN_LIQUID_TAGS or name in _PART_OF_A_TAG or name.startswith("end"):
            continue
        start = match.start()
        found.append(Problem(problem.source, "warning", "liquid",
                             f"{{% {name} %}} is left in the page as written (Quire does not run it)",
                             first_line + body.count("\n", 0, start), start - (body.rfind("\n", 0, start) + 1) + 1))
    return found


def _liquid_outputs_left(store: PostStore, post: Post) -> list[Problem]:
    """Return one problem per ``{{ … }}`` Quire leaves as written in a post (an unknown variable or filter)."""
    body, first_line, _ = store.read_source(post)
    if "{{" not in body:
        return []
    # Raw blocks blanked out, same length: what is left is what Liquid runs, at the same positions.
    text, start, in_raw = [], 0, False
    for match in LIQUID_TAG.finditer(body):
        name = match.group(1)
        if in_raw and name == "endraw":
            text.append(" " * (match.end() - start))
            start, in_raw = match.end(), False
        elif not in_raw and name == "raw":
            text.append(body[start:match.start()])
            start, in_raw = match.start(), True
    text.append(" " * (len(body) - start) if in_raw else body[start:])
    runnable = "".join(text)
    rendered = store.pages.renderer.liquid(runnable, store.resolve_post_url, post.meta)
    left = {match.group(0) for match in LIQUID_OUTPUT.finditer(rendered)}
    found = []
    for match in LIQUID_OUTPUT.finditer(runnable):
        if match.group(0) in left:
            index = match.start()
            why = "not a value of the _config.yml" if match.group(1).strip().startswith("site.") else "Quire does not know its value"
            found.append(Problem(post.source, "warning", "liquid", f"{match.group(0)[:80]} is left in the page as written ({why})",
                                 first_line + body.count("\n", 0, index), index - (body.rfind("\n", 0, index) + 1) + 1))
    return found


def mojibake_problems(relative: str, text: str) -> list[Problem]:
    """Return one warning per line of ``text`` that ftfy can repair (UTF-8 read as cp1252 and the like)."""
    import ftfy  # about 0.2 s to import; only check needs it, not every worker

    found = []
    for number, line in enumerate(text.split("\n"), start=1):
        fixed = ftfy.fix_encoding(line)
        if fixed != line:
            column = next((index for index, (a, b) in enumerate(zip(line, fixed)) if a != b), 0) + 1
            start = column - 1
            sample = line[start:start + 12].split(" ")[0] or line[start:start + 3]
            found.append(Problem(relative, "warning", "mojibake",
                                 f"garbled text {sample!r} (mis-decoded UTF-8); `blog check --fix` repairs it",
                                 number, column))
    return found


def fix_mojibake(store: PostStore) -> tuple[list[Repair], list[str]]:
    """Repair mojibake in every post file in place, atomically, keeping the original as a backup.

    Return the repairs and the files left alone because they changed while being fixed (an author's save
    always wins). The backup is ``NAME~``, or the first free ``NAME.~N~`` if that exists: none is overwritten.
    """
    import ftfy  # about 0.2 s to import; only check needs it, not every worker

    repairs, skipped = [], []
    limit = store.settings["BLOG_MAX_POST_SIZE"]
    for relative, status in store.pages.walk():
        path = os.path.join(store.pages.root, relative)
        if status.st_size > limit:
            continue
        try:
            original, read = _read_with_identity(path)
            text = original.removeprefix(b"\xef\xbb\xbf").decode("utf-8")  # line ends kept: written back
        except (OSError, UnicodeDecodeError):
            continue  # reported by the store as unreadable
        lines = text.split("\n")
        fixed = [ftfy.fix_encoding(line) for line in lines]
        changed = sum(a != b for a, b in zip(lines, fixed))
        if not changed:
            continue
        bom = b"\xef\xbb\xbf" if original.startswith(b"\xef\xbb\xbf") else b""
        backup = _write_backup(path, original)
        if not _replace_if_unchanged(path, bom + "\n".join(fixed).encode("utf-8"), read):
            os.unlink(backup)  # this run's own copy of a version that is no longer the file's
            skipped.append(relative)
            continue
        repairs.append(Repair(relative, changed, os.path.relpath(backup, store.pages.root).replace(os.sep, "/")))
    return repairs, skipped


FileIdentity = tuple[int, int, int, int]


def _identity(status: os.stat_result) -> FileIdentity:
    return (status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def _read_with_identity(path: str) -> tuple[bytes, FileIdentity]:
    """Return a file's bytes and the identity of the very file they were read from."""
    with open(path, "rb") as handle:
        before = _identity(os.fstat(handle.fileno()))
        data = handle.read()
        if _identity(os.fstat(handle.fileno())) != before:
            raise OSError(f"{path} changed while read")
    return data, before


def _write_backup(path: str, data: bytes) -> str:
    """Keep ``data`` as NAME~, or as the first free NAME.~N~: a new name, never an existing file replaced."""
    temporary = _temporary_copy(path, data)
    try:
        number = 0
        while True:
            backup = path + BACKUP_SUFFIX if number == 0 else f"{path}.~{number}~"
            try:
                os.link(temporary, backup)  # fails if the name is taken, unlike a rename
                return backup
            except FileExistsError:
                number += 1
    finally:
        os.unlink(temporary)


def _replace_if_unchanged(path: str, data: bytes, read: FileIdentity) -> bool:
    """Write ``data`` over ``path`` atomically, unless the file is no longer the one read; tell which."""
    temporary = _temporary_copy(path, data)
    try:
        # Checked last, just before the rename: only a save landing in between could still be lost.
        if _identity(os.stat(path)) != read:
            os.unlink(temporary)
            return False
        os.replace(temporary, path)
        return True
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _temporary_copy(path: str, data: bytes) -> str:
    """Write ``data`` to a new dot-file beside ``path``, with its mode, flushed to disk; return its path."""
    folder, name = os.path.split(path)
    # A dot-name in the same folder: the loader and watcher skip it, and os.replace stays on one file system.
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, os.stat(path).st_mode & 0o7777)
    except BaseException:
        os.unlink(temporary)
        raise
    return temporary


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _post_files(store: PostStore) -> Iterator[tuple[str, str | None, int]]:
    """Yield (relative path, text or None when undecodable or too large, size) of every post file."""
    limit = store.settings["BLOG_MAX_POST_SIZE"]
    for relative, status in store.pages.walk():
        text = None
        if status.st_size <= limit:
            try:
                data = _read_bytes(os.path.join(store.pages.root, relative))
                text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")  # line ends kept: --fix writes them back
            except (OSError, UnicodeDecodeError):
                text = None  # reported by the store as unreadable
        yield relative, text, status.st_size


def _size_problems(relative: str, size: int, limit: int) -> list[Problem]:
    if limit // LARGE_FILE_FRACTION < size <= limit:
        return [Problem(relative, "warning", "large-file",
                        f"file is {size:,} bytes, over a quarter of BLOG_MAX_POST_SIZE ({limit:,}); "
                        "split it or raise the limit before it stops being served")]
    return []


class _LinkCollector(HTMLParser):
    """Collect the href and src values of a rendered post body."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"href", "src"} and value:
                self.links.append((tag, value))


def links_of(html: str) -> list[tuple[str, str]]:
    """Return (tag, URL) of every href and src in an HTML fragment."""
    collector = _LinkCollector()
    collector.feed(html)
    collector.close()
    return collector.links


def link_problems(app: Flask) -> list[Problem]:
    """Return an error for every internal link or image in a post body that answers 404 (or worse)."""
    site: Site = app.extensions["quire.site"]
    posts, pages = site.posts.snapshot, site.pages.snapshot
    resolver = LinkResolver(app)
    found = []
    for post in _all_posts(posts.by_url.values(), posts.hidden_by_url.values(),
                           pages.by_url.values(), pages.hidden_by_url.values()):
        if not _LINK_HINT.search(post.body):
            continue  # rendering is most of check's time, and most posts of a big site link nowhere
        for tag, target in dict.fromkeys(links_of(post.html)):  # each broken target once per post
            path = resolver.internal_path(target)
            if path is None or resolver.resolves(path):
                continue
            kind = "image" if tag == "img" else "link"
            line, column = _locate(post, target)
            owner = resolver.jekyll_page(path)  # built by Jekyll, so a link that worked there and does not here
            source = f"{site.pages_label}/{post.source}" if post.kind == "page" and site.pages_label else post.source
            if owner:
                found.append(Problem(source, "error", f"unserved-{kind}",
                                     f"{kind} to {target}: Jekyll's page {owner}, which Quire does not serve", line, column))
            else:
                found.append(Problem(source, "error", f"broken-{kind}", f"{kind} to {target} points nowhere on this site",
                                     line, column))
    return found


def site_file_link_problems(app: Flask) -> list[Problem]:
    """Return an error for every site path the site file names (logo, avatar, menu, links) that answers 404."""
    site_file = app.extensions["quire.site"].site_file
    settings = site_file.settings
    named: list[tuple[str, str, str]] = [("logo", settings.logo, "image"), ("favicon", settings.favicon, "image")]
    if settings.author:
        named.append(("author.avatar", settings.author.avatar, "image"))
        named += [("author.links", link.url, "link") for link in settings.author.links]
    named += [("nav", entry.url, "link") for entry in settings.nav or () if not isinstance(entry, str)]
    named += [("social", link.url, "link") for link in settings.social]
    try:
        with open(site_file.path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
    except (OSError, UnicodeDecodeError):
        lines = []
    resolver = LinkResolver(app)
    found = []
    for key, target, kind in named:
        path = resolver.internal_path(target) if target else None
        if path is None or resolver.resolves(path):
            continue
        line = next((number for number, text in enumerate(lines, start=1) if target in text), None)
        found.append(Problem(site_file.label, "error", f"broken-{kind}",
                             f"{key} {target} points nowhere on this site", line))
    return found


def _all_posts(*groups: Iterable[Post]) -> Iterator[Post]:
    seen = set()
    for group in groups:
        for post in group:
            if (post.kind, post.source) not in seen:
                seen.add((post.kind, post.source))
                yield post


def _locate(post: Post, target: str) -> tuple[int | None, int | None]:
    """Return the file line and column where ``target`` is written in the post's body, if it is."""
    body, body_line, _ = post.store.read_source(post)
    index = body.find(target)
    if index < 0:  # written another way, e.g. {% link _docs/x.md %}: look for its path without the leading '/'
        path = urlsplit(target).path.lstrip("/")
        index = body.find(path) if path else -1
    if index < 0:
        return None, None
    line = body.count("\n", 0, index)
    column = index - (body.rfind("\n", 0, index) + 1) + 1
    return body_line + line, column


class LinkResolver:
    """Tell whether a site path is served: a post, a static file, or any route answering below 400."""

    def __init__(self, app: Flask):
        self.app = app
        self.store: PostStore = app.extensions["quire"]
        self.base = app.config["BLOG_URL"].rstrip("/")
        self._client = app.test_client()
        self._answers: dict[str, bool] = {}

    @functools.cached_property
    def jekyll_rendered(self) -> dict[str, str]:
        """Return the file of a Jekyll site that Jekyll renders to each URL (none for other sites)."""
        site = self.store.jekyll
        return {url: relative for relative, url in site.rendered_files()} if site.serves_files else {}

    def jekyll_page(self, path: str) -> str | None:
        """Return the Jekyll file rendered to ``path`` (a folder's index.html too), if one is."""
        rendered = self.jekyll_rendered
        return rendered.get(path) or (rendered.get(path + "index.html") if path.endswith("/") else None)

    def internal_path(self, target: str) -> str | None:
        """Return the site path a link points at, or None for other sites, anchors and mail links."""
        if target.startswith(self.base + "/"):
            target = target[len(self.base):]
        if not target.startswith("/") or target.startswith("//"):
            return None
        return unquote(urlsplit(target).path) or "/"

    def resolves(self, path: str) -> bool:
        """Tell whether GET ``path`` finds something (following redirects)."""
        if path in self.store.snapshot.by_url or self.app.extensions["quire.site"].page_at(path) is not None:
            return True
        if self.store.jekyll.site_file(path) is not None:  # a Jekyll site's own files, /assets/ included
            return True
        for prefix, folder in (("/static/", ""), ("/assets/", "assets")):
            if path.startswith(prefix):
                relative = posixpath.normpath(path[len(prefix):])
                if relative.startswith(".."):
                    return False
                return find_static(self.app, posixpath.join(folder, relative) if folder else relative) is not None
        if path not in self._answers:
            response = self._client.get(path, follow_redirects=True)
            self._answers[path] = response.status_code < 400
            response.close()
        return self._answers[path]
