"""The whole site's content: the posts store, the pages store, the site file, and what only together they tell."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from blog.content.post import Post
from blog.content.sitefile import SiteFile
from blog.content.store import PostStore, Problem


@dataclass(frozen=True)
class PageIndex:
    """The pages readers can reach, for one generation of posts and pages; never changed once built."""

    pages: tuple[Post, ...]  # by source file
    by_url: Mapping[str, Post]
    nav: tuple[Post, ...]  # pages with a ``nav`` number, in that order
    problems: tuple[Problem, ...]  # pages whose URL a post holds, and those posts (named as `check` shows them)


@dataclass(frozen=True)
class Searchable:
    """What search indexes: every public post and page by URL, with a generation that only grows."""

    generation: int
    by_url: Mapping[str, Post]


class Site:
    """Posts and pages together: one generation for caches, and pages kept off the URLs posts hold."""

    def __init__(self, posts: PostStore, pages: PostStore, site_file: SiteFile, pages_label: str = "pages"):
        self.posts = posts
        self.pages = pages
        self.site_file = site_file
        # More things readers see that change on their own (the theme folder): each has refresh_if_due()
        # and a growing generation.
        self.watched: list[Any] = [site_file]
        self.pages_label = pages_label  # how `check` names the pages folder before a page's file name
        self._index = functools.lru_cache(maxsize=1)(self._build_index)
        self._searchable = functools.lru_cache(maxsize=1)(self._build_searchable)

    @property
    def generation(self) -> int:
        """Return a number that grows whenever anything readers see changes: posts, pages, the site file, the theme."""
        generation = self.posts.generation + self.pages.generation
        for watched in self.watched:
            watched.refresh_if_due()
            generation += watched.generation
        return generation

    @property
    def changed_at(self) -> float:
        """Return when the content last changed (a POSIX timestamp)."""
        return max(self.posts.snapshot.changed_at, self.pages.snapshot.changed_at)

    @property
    def page_index(self) -> PageIndex:
        """Return the current pages readers can reach."""
        return self._index(self.posts.generation, self.pages.generation)

    def page_at(self, url: str) -> Post | None:
        """Return the public page at a URL path, or None."""
        return self.page_index.by_url.get(url)

    def searchable(self) -> Searchable:
        """Return every public post and page by URL, for the search index."""
        return self._searchable(self.posts.generation, self.pages.generation)

    def problems(self) -> list[Problem]:
        """Return the pages' own problems, the URLs they lose to posts and the site file's, named as `check` shows them."""
        own = [dataclasses.replace(problem, source=self._label(problem.source)) for problem in self.pages.problems()]
        return [*own, *self.page_index.problems, *self.site_file.problems]

    def _label(self, relative: str) -> str:
        return f"{self.pages_label}/{relative}" if self.pages_label else relative

    def _build_index(self, posts_generation: int, pages_generation: int) -> PageIndex:
        posts = self.posts.snapshot
        pages = self.pages.snapshot
        problems = []
        by_url: dict[str, Post] = {}
        for url, page in pages.by_url.items():
            post = posts.by_url.get(url) or posts.hidden_by_url.get(url)
            if post is None:
                by_url[url] = page
            else:
                problems.append(Problem(self._label(page.source), "error", "duplicate-url",
                                        f"URL {url} is also used by the post {post.source}, which keeps it"))
                problems.append(Problem(post.source, "warning", "duplicate-url",
                                        f"URL {url} is also claimed by the page {self._label(page.source)}"))
        public = tuple(sorted(by_url.values(), key=attrgetter("source")))
        nav = tuple(sorted((page for page in public if page.nav is not None), key=lambda page: (page.nav, page.source)))
        return PageIndex(public, by_url, nav, tuple(problems))

    def _build_searchable(self, posts_generation: int, pages_generation: int) -> Searchable:
        return Searchable(posts_generation + pages_generation,
                          {**self.page_index.by_url, **self.posts.snapshot.by_url})
