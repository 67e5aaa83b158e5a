"""Reader-facing HTML pages: the index, posts, and the category, tag and author listings."""

from __future__ import annotations

import hmac
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import (Blueprint, Response, abort, current_app, redirect, render_template, request, send_file,
                   send_from_directory, url_for)
from werkzeug.exceptions import NotFound

from blog import dev
from blog.content import Group, Post, PostStore
from blog.content.changes import listing_keys, order_key, post_page_keys
from blog.content.derived import archive_year, archive_years, related
from blog.content.post import slugify
from blog.content.site import Site
from blog.content.store import render_cut_short
from blog.http import DEPENDS, POST_PAGE
from blog.page_cache import PostPage
from blog.security import OFF_SITE_MARKER
from blog.theme import find_static

RELATED_POSTS = 3
# How long a shared cache (nginx) keeps a page before asking again; it asks with a conditional request, which
# the response cache answers with a 304 while the page is unchanged, so an edit shows through nginx within a
# second, as it does from Quire itself, for the cost of one cheap request per page per second.
SHARED_MAX_AGE = 1

bp = Blueprint("posts", __name__)


class PageNumbers:
    """Where a page stands among its listing's pages (``number`` of ``pages``, from 1)."""

    number: int
    pages: int

    @property
    def has_previous(self) -> bool:
        """Tell whether an earlier page exists."""
        return self.number > 1

    @property
    def has_next(self) -> bool:
        """Tell whether a later page exists."""
        return self.number < self.pages


@dataclass(frozen=True)
class Pagination(PageNumbers):
    """One page of a listing."""

    items: Sequence[Post]
    number: int
    pages: int
    total: int


def store() -> PostStore:
    """Return this app's post store."""
    return current_app.extensions["quire"]


def site() -> Site:
    """Return this app's whole site: posts, pages and what they tell together."""
    return current_app.extensions["quire.site"]


def paginate(posts: Sequence[Post], page_number: int) -> Pagination:
    """Return one page of ``posts``, aborting with 404 for a page that does not exist."""
    per_page = current_app.config["BLOG_PER_PAGE"]
    pages = max(1, math.ceil(len(posts) / per_page))
    if page_number < 1 or page_number > pages:
        abort(404)
    start = (page_number - 1) * per_page
    return Pagination(posts[start:start + per_page], page_number, pages, len(posts))


def cacheable(response: Response | str) -> Response:
    """Mark a response as depending only on content, so the response cache may keep it."""
    response = current_app.make_response(response)
    if render_cut_short():  # a post shown as its fallback while its render finishes: for this response only
        response.headers["Cache-Control"] = "no-store"
        return response
    response.headers["X-Quire-Cache"] = "content"
    seconds = current_app.config["BLOG_CACHE_SECONDS"]
    if seconds:
        response.headers["Cache-Control"] = (f"public, max-age={seconds}, s-maxage={min(seconds, SHARED_MAX_AGE)}, "
                                             f"stale-while-revalidate={seconds * 10}")
    else:
        response.headers["Cache-Control"] = "no-cache"
    return response


def shows(keys: set[str]) -> None:
    """Tell the response cache what this response shows, so that only a change of those drops it."""
    request.environ[DEPENDS] = keys


def group_or_404(groups: dict[str, Group], slug: str) -> Group:
    """Return the group at ``slug`` or abort with 404."""
    group = groups.get(slug)
    if group is None:
        abort(404)
    return group


@bp.route("/")
@bp.route("/page/<int:page_number>/")
def index(page_number: int = 1) -> Any:
    """Show the newest posts, a page at a time."""
    if page_number == 1 and request.path != "/":
        return redirect(url_for("posts.index"), 301)
    listing = paginate(store().snapshot.posts, page_number)
    shows(listing_keys("all", listing.items))
    return cacheable(render_template("index.html", listing=listing, endpoint="posts.index", args={}))


@bp.route("/categories/")
def categories() -> Any:
    """List every category with its number of posts."""
    shows({"terms:category"})
    return cacheable(render_template("terms.html", kind="category", groups=store().snapshot.categories.values()))


@bp.route("/tags/")
def tags() -> Any:
    """List every tag with its number of posts."""
    shows({"terms:tag"})
    return cacheable(render_template("terms.html", kind="tag", groups=store().snapshot.tags.values()))


@bp.route("/archive/")
def archive() -> Any:
    """List the years and months that have posts, with counts, each year linking to its own page."""
    snapshot = store().snapshot
    shows({order_key("all")})
    return cacheable(render_template("archive.html", years=archive_years(snapshot, store().zone),
                                     total=len(snapshot.posts)))


@bp.route("/archive/<int:year>/")
def archive_by_year(year: int) -> Any:
    """List one year's posts, grouped by month, newest first."""
    found = archive_year(store().snapshot, store().zone, year)
    if found is None:
        abort(404)
    shows(listing_keys(f"year/{year}", (post for month in found.months for post in month.posts)))
    return cacheable(render_template("archive_year.html", year=found))


@bp.route("/category/<slug>/")
@bp.route("/category/<slug>/page/<int:page_number>/")
def category(slug: str, page_number: int = 1) -> Any:
    """Show the posts of one category."""
    return _group_page("category", store().snapshot.categories, slug, page_number)


@bp.route("/tag/<slug>/")
@bp.route("/tag/<slug>/page/<int:page_number>/")
def tag(slug: str, page_number: int = 1) -> Any:
    """Show the posts with one tag."""
    return _group_page("tag", store().snapshot.tags, slug, page_number)


@bp.route("/author/<slug>/")
@bp.route("/author/<slug>/page/<int:page_number>/")
def author(slug: str, page_number: int = 1) -> Any:
    """Show the posts of one author."""
    return _group_page("author", store().snapshot.authors, slug, page_number)


def _group_page(kind: str, groups: dict[str, Group], slug: str, page_number: int) -> Any:
    group = group_or_404(groups, slug)
    endpoint = f"posts.{kind}"
    if page_number == 1 and request.path.rstrip("/").endswith("/page/1"):
        return redirect(url_for(endpoint, slug=slug), 301)
    listing = paginate(group.posts, page_number)
    shows(listing_keys(f"{kind}/{slug}", listing.items))
    author = site().site_file.settings.author
    profile = author if kind == "author" and author is not None and slugify(author.name) == slug else None
    return cacheable(render_template("group.html", kind=kind, group=group, listing=listing,
                                     endpoint=endpoint, args={"slug": slug}, profile=profile))


@bp.route("/assets/<path:filename>")
def assets(filename: str) -> Any:
    """Serve Jekyll-style /assets/ files from static/assets/ (the theme's, the site's or Quire's), else a Jekyll site's own."""
    folder = find_static(current_app, "assets/" + filename)
    if folder is not None:
        return send_from_directory(folder + "/assets", filename, max_age=current_app.config["BLOG_CACHE_SECONDS"])
    own = store().jekyll.site_file("/assets/" + filename)  # a Jekyll site's own assets/
    if own is None:
        raise NotFound()
    return send_file(own, max_age=current_app.config["BLOG_CACHE_SECONDS"], conditional=True)


@bp.route("/<path:url>")
def detail(url: str) -> Any:
    """Show one post or page, found by its URL; a URL missing only its trailing slash redirects."""
    path = "/" + url
    snapshot = store().snapshot
    moved = snapshot.redirects.get(path) or site().pages.snapshot.redirects.get(path)
    if moved is not None:  # jekyll-redirect-from's pages, as permanent redirects
        return _moved(moved)
    post = snapshot.by_url.get(path)
    if post is None and _holds_preview_token():
        hidden = snapshot.hidden_by_url.get(path)
        if hidden is not None:
            return _preview(hidden)
    if post is None:
        page = site().page_at(path)
        if page is not None:
            broken = dev.broken_post_page(page, site().pages) if dev.enabled() else None
            return broken if broken is not None else cacheable(render_template("page.html", page=page))
        own = store().jekyll.site_file(path)
        if own is not None:  # a Jekyll site's images/, files/, favicon.ico... at their own URLs
            return send_file(own, max_age=current_app.config["BLOG_CACHE_SECONDS"], conditional=True)
        alternative = path[:-1] if path.endswith("/") else path + "/"
        if alternative in snapshot.redirects:
            return _moved(snapshot.redirects[alternative])
        if alternative in snapshot.by_url or site().page_at(alternative) is not None:
            return redirect(url_for("posts.detail", url=alternative.lstrip("/")), 308)
        abort(404)
    if dev.enabled():  # the author sees what is wrong with the file, not its last good version
        broken = dev.broken_post_page(post, store())
        if broken is not None:
            return broken
    newer, older = snapshot.neighbours(post)
    similar = related(snapshot, post, RELATED_POSTS)
    shows(post_page_keys(post, (newer, older), similar))
    request.environ[POST_PAGE] = PostPage(snapshot, post, newer, older, similar)  # for the page cache to record
    return cacheable(render_template("post.html", post=post, newer=newer, older=older, related=similar))


def _moved(target: str) -> Response:
    """Answer a post's ``redirect_from`` or ``redirect_to`` with a permanent redirect (off the site only for the latter)."""
    response = cacheable(redirect(target, 301))
    if target.startswith(("http://", "https://")):  # only redirect_to gives one, from the author's front matter
        response.headers[OFF_SITE_MARKER] = "1"
    return response


def _holds_preview_token() -> bool:
    """Tell whether the request's ?preview= matches BLOG_PREVIEW_TOKEN, in constant time."""
    token = current_app.config["BLOG_PREVIEW_TOKEN"]
    given = request.args.get("preview")
    return bool(token) and given is not None and hmac.compare_digest(given.encode(), token.encode())


def _preview(post: Post) -> Response:
    """Show a draft or future post to the author: marked, not indexed, and kept by no cache."""
    response = current_app.make_response(render_template("post.html", post=post, newer=None, older=None, related=(),
                                                         preview=True))
    # Never views.cacheable: the draft must not reach the response cache, nginx or a browser's cache.
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    response.headers["Referrer-Policy"] = "no-referrer"  # the URL holds the token: never send it to assets or links
    return response
