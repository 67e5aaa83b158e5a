"""Feeds for readers' apps: Atom 1.0, RSS 2.0 and JSON Feed 1.1, for the site and per category and tag."""

from __future__ import annotations

import datetime as dt
import functools
import html
import json
import mimetypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import format_datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from flask import Blueprint, Response, current_app, render_template, url_for

from blog.content import Group, Post
from blog.content.derived import shares_day_and_slug
from blog.content.markup import clean
from blog.discovery import absolute_url, cover_url, has_scheme, post_url, xml_text
from blog.theme import SiteInfo, site_info
from blog.views import cacheable, group_or_404, store

bp = Blueprint("feeds", __name__)

ATOM_TYPE = "application/atom+xml; charset=utf-8"
RSS_TYPE = "application/rss+xml; charset=utf-8"
JSON_FEED_TYPE = "application/feed+json; charset=utf-8"

# Attributes whose value is a URL (srcset: a list of them), rewritten wherever a tag carries them.
_URL_ATTRIBUTES = {"href", "src", "poster", "srcset", "cite", "data"}


class _LinkRewriter(HTMLParser):
    """Copy a fragment token by token, rebuilding only the start tags whose URL attributes change.

    The parser reads attribute values the way a browser does, so a ``src=`` inside another attribute's value is
    that value's text, never a link; rebuilt tags quote and escape every value, so nothing can leave its value.
    """

    def __init__(self, absolute: Callable[[str], str]):
        super().__init__()
        self.absolute = absolute
        self.out: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, ">")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, " />")

    def _start(self, tag: str, attrs: list[tuple[str, str | None]], end: str) -> None:
        rewritten = [(name, self._rewrite(name, value)) for name, value in attrs]
        if rewritten == attrs:
            self.out.append(self.get_starttag_text() or "")
            return
        parts = [f" {name}" if value is None else f' {name}="{html.escape(value)}"' for name, value in rewritten]
        self.out.append(f"<{tag}{''.join(parts)}{end}")

    def _rewrite(self, name: str, value: str | None) -> str | None:
        if value is None or name not in _URL_ATTRIBUTES:
            return value
        if name == "srcset":
            return ", ".join(" ".join([self.absolute(candidate.split()[0]), *candidate.split()[1:]])
                             for candidate in value.split(",") if candidate.strip())
        return self.absolute(value)

    def handle_endtag(self, tag: str) -> None:
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        # Text comes decoded (so "AT&T" stays as written); script and style contents come raw and stay raw.
        self.out.append(data if self.cdata_elem else html.escape(data, quote=False))

    def handle_comment(self, data: str) -> None:
        self.out.append(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.out.append(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self.out.append(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        self.out.append(f"<![{data}]>")


@dataclass(frozen=True)
class Entry:
    """One post as every feed format needs it: absolute URLs, a stable id and full HTML."""

    post: Post
    id: str
    url: str
    content: str
    image: str | None
    image_type: str | None
    author_url: str | None
    categories: tuple[tuple[str, str], ...]  # (name, absolute URL of its page), categories then tags


@dataclass(frozen=True)
class Feed:
    """A feed's own title, links and entries."""

    title: str
    description: str
    page_url: str
    atom_url: str
    rss_url: str
    json_url: str
    updated: dt.datetime
    entries: tuple[Entry, ...]


def entry_id(post: Post) -> str:
    """Return an id that survives edits: a tag: URI of the site's host, the post's date and slug.

    Date and slug outlive a change of BLOG_PERMALINK, which would otherwise make every post new to
    readers. An undated post's date is its file's modification time, which moves with every save, so
    its id is its permalink; so is the id of a post sharing its day and slug with another.
    """
    if not post.dated or shares_day_and_slug(store().snapshot, post):
        return post_url(post)
    host = urlsplit(current_app.config["BLOG_URL"]).hostname or "localhost"
    return f"tag:{host},{post.date:%Y-%m-%d}:{quote(post.slug, safe='')}"


def absolute_links(fragment: str, base: str) -> str:
    """Return ``html`` with every relative link and source made absolute against the post's URL ``base``."""
    return _absolute_links(fragment, base, current_app.config["BLOG_URL"], bool(current_app.config["BLOG_SANITIZE"]))


# A post is in the site's feed and in the feed of each of its tags and categories: its body was parsed again for
# each (a tenth of an export's time at 10,000 posts), and the result depends on nothing but these arguments.
# 128 bodies and their copies: a few megabytes at most, held only by a process that builds feeds.
@functools.lru_cache(maxsize=128)
def _absolute_links(fragment: str, base: str, site: str, sanitize: bool) -> str:
    def absolute(url: str) -> str:
        url = url.strip()
        if not url or has_scheme(url):
            return url
        if url.startswith("//"):
            return site.split("//", 1)[0] + url
        if url.startswith("/"):  # site-rooted: BLOG_URL may carry a path prefix that urljoin would drop
            return site + url
        return urljoin(base, url)

    rewriter = _LinkRewriter(absolute)
    rewriter.feed(fragment)
    rewriter.close()
    rewritten = "".join(rewriter.out)
    # Sanitize the feed's copy again after the rewrite, so nothing this step changed escapes BLOG_SANITIZE.
    return clean(rewritten) if sanitize else rewritten


def make_entry(post: Post) -> Entry:
    """Return the feed entry for a post."""
    url = post_url(post)
    image = cover_url(post)
    image_type = (mimetypes.guess_type(urlsplit(image).path)[0] or "image/jpeg") if image else None
    terms = [(term.name, absolute_url(url_for("posts.category", slug=term.slug))) for term in post.categories]
    terms += [(term.name, absolute_url(url_for("posts.tag", slug=term.slug))) for term in post.tags]
    author_url = absolute_url(url_for("posts.author", slug=post.author.slug)) if post.author else None
    return Entry(post, entry_id(post), url, xml_text(absolute_links(post.html, url)), image, image_type, author_url,
                 tuple(terms))


def build_feed(title: str, description: str, page_url: str, links: Sequence[str], posts: Sequence[Post]) -> Feed:
    """Return the feed of the newest BLOG_FEED_ENTRIES of ``posts``."""
    shown = posts[:current_app.config["BLOG_FEED_ENTRIES"]]
    updated = max((post.updated for post in shown), default=None)
    if updated is None:  # an empty feed still needs a date: when the content last changed
        updated = dt.datetime.fromtimestamp(store().snapshot.changed_at, dt.timezone.utc).replace(microsecond=0)
    atom_url, rss_url, json_url = links
    return Feed(title, description, page_url, atom_url, rss_url, json_url, updated,
                tuple(make_entry(post) for post in shown))


def site_feed() -> Feed:
    """Return the feed of the whole site."""
    site = site_info()
    links = [absolute_url(url_for(endpoint)) for endpoint in ("feeds.atom", "feeds.rss", "feeds.json_feed")]
    return build_feed(site.title, site.description, absolute_url(url_for("posts.index")),
                      links, store().snapshot.posts)


def group_feed(kind: str, group: Group) -> Feed:
    """Return the feed of one category or tag."""
    label = {"category": "Category", "tag": "Tag"}[kind]
    site = site_info().title
    page_url = absolute_url(url_for(f"posts.{kind}", slug=group.term.slug))
    links = [absolute_url(url_for("feeds.group", kind=kind, slug=group.term.slug, name=name))
             for name in ("feed.xml", "rss.xml", "feed.json")]
    return build_feed(f"{site}: {group.term.name}", f"{label} {group.term.name} on {site}", page_url,
                      links, group.posts)


def render_atom(feed: Feed) -> Response:
    """Return ``feed`` as an Atom 1.0 response."""
    return _xml(render_template("feeds/atom.xml", feed=feed), ATOM_TYPE)


def render_rss(feed: Feed) -> Response:
    """Return ``feed`` as an RSS 2.0 response."""
    return _xml(render_template("feeds/rss.xml", feed=feed, rfc822=_rfc822), RSS_TYPE)


def render_json(feed: Feed) -> Response:
    """Return ``feed`` as a JSON Feed 1.1 response."""
    data: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": feed.title,
        "home_page_url": feed.page_url,
        "feed_url": feed.json_url,
        "description": feed.description,
        "language": site_info().lang,
        "authors": [_json_author(site_info())],
        "items": [_json_item(entry) for entry in feed.entries],
    }
    response = cacheable(json.dumps(data, ensure_ascii=False, indent=1))
    response.content_type = JSON_FEED_TYPE
    return response


def _json_author(site: SiteInfo) -> dict[str, Any]:
    """Return the feed's author: the site file's author (with their avatar), else the site itself."""
    if site.author is None:
        return {"name": site.title, "url": site.url + "/"}
    author: dict[str, Any] = {"name": site.author.name, "url": site.url + "/"}
    if site.author.avatar:
        author["avatar"] = absolute_url(site.author.avatar)
    return author


def _json_item(entry: Entry) -> dict[str, Any]:
    post = entry.post
    item: dict[str, Any] = {
        "id": entry.id,
        "url": entry.url,
        "title": post.title,
        "content_html": entry.content,
        "summary": post.description,
        "date_published": post.date.isoformat(),
        "date_modified": post.updated.isoformat(),
    }
    if post.author:
        item["authors"] = [{"name": post.author.name, "url": entry.author_url}]
    if entry.image:
        item["image"] = entry.image
    if entry.categories:
        item["tags"] = list(dict.fromkeys(name for name, _ in entry.categories))  # a tag may also be a category
    return item


def _xml(body: str, content_type: str) -> Response:
    response = cacheable(xml_text(body))
    response.content_type = content_type
    return response


def _rfc822(moment: dt.datetime) -> str:
    return format_datetime(moment)


@bp.route("/feed.xml")
def atom() -> Response:
    """Serve the site's Atom feed."""
    return render_atom(site_feed())


@bp.route("/rss.xml")
def rss() -> Response:
    """Serve the site's RSS feed."""
    return render_rss(site_feed())


@bp.route("/feed.json")
def json_feed() -> Response:
    """Serve the site's JSON Feed."""
    return render_json(site_feed())


@bp.route("/<any(category, tag):kind>/<slug>/<any('feed.xml', 'rss.xml', 'feed.json'):name>")
def group(kind: str, slug: str, name: str) -> Response:
    """Serve one category's or tag's feed, in the format its file name says."""
    render = {"feed.xml": render_atom, "rss.xml": render_rss, "feed.json": render_json}[name]
    snapshot = store().snapshot
    return render(group_feed(kind, group_or_404(snapshot.categories if kind == "category" else snapshot.tags, slug)))
