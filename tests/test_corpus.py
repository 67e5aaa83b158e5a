"""Real Jekyll content from ../shared/corpus: everything loads, and no page of the site answers 5xx."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from flask.testing import FlaskClient

from tests.conftest import CORPUS, AppFactory

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not beside the checkout")

ALL_EXTENSIONS = ".md,.markdown,.mkdn,.text,.html,.erb,.rmd,.yml"


@pytest.fixture(scope="module")
def corpus_client(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    from blog import create_app

    app = create_app({"BLOG_POSTS_DIR": str(CORPUS), "BLOG_WATCH": "off", "BLOG_EXTENSIONS": ALL_EXTENSIONS,
                      "BLOG_PER_PAGE": "50"})
    return app.test_client()


def test_corpus_posts_load(corpus_client: FlaskClient) -> None:
    store = corpus_client.application.extensions["quire"]
    posts = store.snapshot.posts
    assert len(posts) >= 150
    by_source = {post.source: post for post in posts}
    release = by_source["jekyll-jekyll/docs/_posts/2013-09-14-jekyll-1-2-1-released.markdown"]
    assert release.date.isoformat() == "2013-09-14T20:40:00-04:00" or release.date.utcoffset() is not None
    assert [term.name for term in release.categories] == ["release"]
    escape = next(post for post in list(posts) + list(store.snapshot.hidden_by_url.values())
                  if post.source.endswith("2014-01-06-permalink-traversal.md"))
    assert ".." not in escape.url and escape.url.startswith("/")
    assert "jekyll-jekyll/test/source/_posts/2008-02-02-not-published.markdown" not in by_source


def test_every_corpus_page_answers_without_server_error(corpus_client: FlaskClient) -> None:
    snapshot = corpus_client.application.extensions["quire"].snapshot
    paths = ["/", "/categories/", "/tags/", "/page/2/"]
    paths += [post.url for post in snapshot.posts]
    paths += [f"/category/{slug}/" for slug in snapshot.categories]
    paths += [f"/tag/{slug}/" for slug in snapshot.tags]
    paths += [f"/author/{slug}/" for slug in snapshot.authors]
    failures = []
    for path in paths:
        response = corpus_client.get(path)
        if response.status_code >= 500 or response.status_code != 200:
            failures.append((path, response.status_code))
    assert failures == []


def test_corpus_links_in_listings_resolve(corpus_client: FlaskClient) -> None:
    page = BeautifulSoup(corpus_client.get("/").data, "html.parser")
    links = [link["href"] for link in page.select(".card-title a")]
    assert len(links) == 50
    assert all(corpus_client.get(link).status_code == 200 for link in links)
