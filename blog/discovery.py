"""How search engines and share previews find posts: sitemap.xml, robots.txt, canonical URLs, OpenGraph and JSON-LD."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, has_request_context, render_template, request, url_for

from blog.content import Post, Snapshot
from blog.content.derived import archive_year, archive_years
from blog.content.post import slugify
from blog.theme import site_info
from blog.views import cacheable, site, store

bp = Blueprint("discovery", __name__)

SITEMAP_LIMIT = 50_000  # the sitemaps.org protocol's cap on URLs in one file
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class SitemapEntry:
    """One <url> of the sitemap."""

    loc: str
    lastmod: dt.datetime


def absolute_url(path: str) -> str:
    """Return the public URL of a site path (as url_for gives it), built on BLOG_URL."""
    if has_scheme(path):
        return path
    if path.startswith("//"):  # scheme-relative: take the site's own scheme
        return current_app.config["BLOG_URL"].split("//", 1)[0] + path
    script_root = request.script_root if has_request_context() else ""
    if script_root and path.startswith(script_root):
        path = path[len(script_root):]  # BLOG_URL already names where the site is mounted
    return current_app.config["BLOG_URL"] + "/" + path.lstrip("/")


def has_scheme(url: str) -> bool:
    """Tell whether ``url`` needs no base: https:, data:, mailto: and the like."""
    return _SCHEME.match(url) is not None


def post_url(post: Post) -> str:
    """Return a post's public, absolute URL."""
    return absolute_url(url_for("posts.detail", url=post.url[1:]))


def cover_url(post: Post) -> str | None:
    """Return a post's cover as an absolute http(s) URL for feeds and share cards, or None.

    None when it has no cover, its file is missing, or it is a data: URL that readers and previews ignore.
    """
    if not post.cover_url:
        return None
    url = absolute_url(post.cover_url)
    return url if url.startswith(("https://", "http://")) else None


def canonical_url() -> str:
    """Return the canonical URL of the page being rendered: its path on BLOG_URL, without the query."""
    return absolute_url(request.path)


def xml_text(text: str) -> str:
    """Return ``text`` without the control characters XML 1.0 forbids (a post may hold a stray form feed)."""
    return _XML_ILLEGAL.sub("", text)


def blog_posting(post: Post) -> dict[str, Any]:
    """Return schema.org BlogPosting data for a post, to be emitted as JSON-LD."""
    url = post_url(post)
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "BlogPosting",
        "headline": post.title,
        "description": post.description,
        "url": url,
        "mainEntityOfPage": {"@type": "WebPage", "@id": url},
        "datePublished": post.date.isoformat(),
        "dateModified": post.updated.isoformat(),
        "wordCount": post.words,
        "publisher": {"@type": "Organization", "name": site_info().title,
                      "url": current_app.config["BLOG_URL"] + "/"},
    }
    author = person(post)
    if author:
        data["author"] = author
    image = cover_url(post)
    if image:
        data["image"] = image
    if post.categories:
        data["articleSection"] = [category.name for category in post.categories]
    if post.tags:
        data["keywords"] = [tag.name for tag in post.tags]
    return data


def person(post: Post) -> dict[str, Any] | None:
    """Return schema.org Person data for a post's author (the site file's author when the post names none)."""
    site_author = site_info().author
    name = post.author.name if post.author else site_author.name if site_author else None
    if name is None:
        return None
    data: dict[str, Any] = {"@type": "Person", "name": name}
    slug = post.author.slug if post.author else slugify(name)
    if slug in store().snapshot.authors:
        data["url"] = absolute_url(url_for("posts.author", slug=slug))
    if site_author is not None and slugify(site_author.name) == slug:
        if site_author.bio:
            data["description"] = site_author.bio
        if site_author.avatar:
            data["image"] = absolute_url(site_author.avatar)
        if site_author.links:
            data["sameAs"] = [absolute_url(link.url) for link in site_author.links]
    return data


def web_site() -> dict[str, Any]:
    """Return schema.org WebSite data for the home page, naming the search URL (a sitelinks search box)."""
    site = current_app.config["BLOG_URL"] + "/"
    return {
        "@context": "https://schema.org",
        "@type": "WebSite",
        "name": site_info().title,
        "description": site_info().description,
        "url": site,
        "potentialAction": {
            "@type": "SearchAction",
            "target": absolute_url(url_for("search.results")) + "?q={search_term_string}",
            "query-input": "required name=search_term_string",
        },
    }


@bp.app_context_processor
def helpers() -> dict[str, Any]:
    """Give every template the helpers for absolute, canonical and share URLs and structured data."""
    return {"absolute_url": absolute_url, "canonical_url": canonical_url, "cover_url": cover_url,
            "blog_posting": blog_posting, "web_site": web_site}


def pages_of(count: int) -> int:
    """Return how many listing pages ``count`` posts fill."""
    return max(1, math.ceil(count / current_app.config["BLOG_PER_PAGE"]))


def sitemap_entries(snapshot: Snapshot, pages: Sequence[Post] = ()) -> Iterator[SitemapEntry]:
    """Yield every public page with the time its content last changed, the most useful first."""
    newest = max((post.updated for post in snapshot.posts), default=None)
    if newest is None:
        newest = dt.datetime.fromtimestamp(snapshot.changed_at, dt.timezone.utc).replace(microsecond=0)
    yield SitemapEntry(absolute_url(url_for("posts.index")), newest)
    for post in snapshot.posts:
        yield SitemapEntry(post_url(post), post.updated)
    for page in pages:
        yield SitemapEntry(post_url(page), page.updated)
    yield SitemapEntry(absolute_url(url_for("posts.archive")), newest)
    zone = store().zone
    for counted in archive_years(snapshot, zone):
        year = archive_year(snapshot, zone, counted.year)
        if year is not None:
            yield SitemapEntry(absolute_url(url_for("posts.archive_by_year", year=year.year)),
                               max(post.updated for month in year.months for post in month.posts))
    yield SitemapEntry(absolute_url(url_for("posts.categories")), newest)
    yield SitemapEntry(absolute_url(url_for("posts.tags")), newest)
    yield from _listing("posts.index", {}, snapshot.posts, first=False)
    for endpoint, groups in (("posts.category", snapshot.categories), ("posts.tag", snapshot.tags),
                             ("posts.author", snapshot.authors)):
        for slug, group in groups.items():
            yield from _listing(endpoint, {"slug": slug}, group.posts, first=True)


def _listing(endpoint: str, args: dict[str, str], posts: Sequence[Post], first: bool) -> Iterator[SitemapEntry]:
    per_page = current_app.config["BLOG_PER_PAGE"]
    for number in range(1 if first else 2, pages_of(len(posts)) + 1):
        shown = posts[(number - 1) * per_page:number * per_page]
        path = url_for(endpoint, **args) if number == 1 else url_for(endpoint, page_number=number, **args)
        yield SitemapEntry(absolute_url(path), max(post.updated for post in shown))


@bp.route("/sitemap.xml")
def sitemap() -> Response:
    """List every public page for search engines, with when it last changed."""
    snapshot = store().snapshot
    entries = []
    for entry in sitemap_entries(snapshot, site().page_index.pages):
        if len(entries) == SITEMAP_LIMIT:
            break
        entries.append(entry)
    body = xml_text(render_template("sitemap.xml", entries=entries))
    response = cacheable(body)
    response.content_type = "application/xml; charset=utf-8"
    return response


@bp.route("/robots.txt")
def robots() -> Response:
    """Tell crawlers where the sitemap is, and to leave search result pages alone."""
    # "/search?" and not "/search": a post at /search-tips/ must stay crawlable.
    lines = ["User-agent: *", f"Disallow: {url_for('search.results')}?", "",
             f"Sitemap: {absolute_url(url_for('discovery.sitemap'))}", ""]
    response = cacheable("\n".join(lines))
    response.content_type = "text/plain; charset=utf-8"
    return response

