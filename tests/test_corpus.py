"""Real Jekyll content from ../shared/corpus: everything loads, and no page of the site answers 5xx."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from flask.testing import FlaskClient

from tests.conftest import CORPUS

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


def test_check_over_the_corpus_runs_to_completion_with_the_documented_findings(tmp_path: Path) -> None:
    from blog import create_app

    jekyll_config = tmp_path / "_config.yml"  # the value jekyllrb.com's own _config.yml gives
    jekyll_config.write_text("repository: https://github.com/jekyll/jekyll\n", encoding="utf-8")
    app = create_app({"BLOG_POSTS_DIR": str(CORPUS / "jekyll-jekyll"), "BLOG_WATCH": "off",
                      "BLOG_EXTENSIONS": ALL_EXTENSIONS, "BLOG_PERMALINK": "/news/:year/:month/:day/:title/",
                      "BLOG_JEKYLL_CONFIG": str(jekyll_config)})
    result = app.test_cli_runner().invoke(args=["blog", "check", "--format", "json"])
    assert result.exit_code == 1  # the broken links to Jekyll's documentation pages are errors
    report = json.loads(result.stdout)
    summary = report["summary"]
    assert (summary["files"], summary["posts"], summary["clean_files"]) == (168, 164, 91)  # as docs/jekyll.md says
    liquid = {problem["file"] for problem in report["problems"] if problem["code"] == "liquid"}
    assert len(liquid) == 4 and not any(file.startswith("docs/") for file in liquid)
    broken = [problem for problem in report["problems"] if problem["code"] in {"broken-link", "broken-image"}]
    assert len(broken) == 86 and all(problem["message"].split()[2].startswith(("/docs/", "/img/", "/_docs/",
                                                                               "/help/", "/philosophy/", "/team/",
                                                                               "/tutorials/"))
                                      for problem in broken)
    release = app.extensions["quire"].snapshot.by_url["/news/2013/05/08/jekyll-1-0-1-released/"]
    assert "{% for" not in release.html and "{{" not in release.html
    links = {link.text: link["href"] for link in BeautifulSoup(release.html, "html.parser").find_all("a")}
    assert links["#1037"] == "https://github.com/jekyll/jekyll/issues/1037"  # built by assign, split and for
