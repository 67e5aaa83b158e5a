"""Search: ranking, phrases, prefixes, escaped snippets, pagination, any input, and an index that follows edits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from flask import Flask
from flask.testing import FlaskClient

from blog.search import fts_query
from tests.conftest import AppFactory, WritePost, eventually


def results(client: FlaskClient, query: str, **params: str) -> BeautifulSoup:
    """Return the parsed results page for ``query``, which must answer 200."""
    response = client.get("/search", query_string={"q": query, **params})
    assert response.status_code == 200, (query, response.status_code)
    return BeautifulSoup(response.data, "html.parser")


def titles(page: BeautifulSoup) -> list[str]:
    """Return the result titles on a results page, in rank order."""
    return [hit.select_one(".card-title a").get_text() for hit in page.select(".search-hit")]


@pytest.fixture
def corpus(make_app: AppFactory, write_post: WritePost) -> Flask:
    """Return a site whose posts match 'generators' more or less well."""
    write_post("2024-01-01-generators.md", "Generators yield values lazily. A generator keeps its state.",
               title="Python generators explained", tags=["python"])
    write_post("2024-01-02-pasta.md", "Boil water. " * 40 + "The kitchen has two power generators out back.",
               title="Cooking pasta")
    write_post("2024-01-03-lazy.md", "Lazy evaluation is how generators save memory.",
               title="Lazy evaluation")
    write_post("2024-01-04-apart.md", "Being lazy is fine; careful evaluation of options matters.",
               title="Apart words")
    write_post("2024-01-05-escaping.md",
               'A body that shows &lt;script&gt;alert("x")&lt;/script&gt; & generators & &lt;b&gt;tags&lt;/b&gt;.',
               title="Tricky <em>title</em> & generators")
    write_post("2024-01-06-unrelated.md", "Nothing to see.", title="Unrelated")
    return make_app()


def test_better_match_ranks_first(corpus: Flask) -> None:
    found = titles(results(corpus.test_client(), "generators"))
    assert found[0] == "Python generators explained"
    assert found[-1] == "Cooking pasta"  # one mention deep in a long body
    assert set(found) == {"Python generators explained", "Cooking pasta", "Lazy evaluation",
                          "Tricky <em>title</em> & generators"}


def test_title_match_outranks_body_matches(corpus: Flask) -> None:
    assert titles(results(corpus.test_client(), "pasta")) == ["Cooking pasta"]
    assert titles(results(corpus.test_client(), "lazy"))[0] == "Lazy evaluation"


def test_phrase_query_needs_the_words_together(corpus: Flask) -> None:
    client = corpus.test_client()
    assert set(titles(results(client, "lazy evaluation"))) == {"Lazy evaluation", "Apart words"}
    assert titles(results(client, '"lazy evaluation"')) == ["Lazy evaluation"]


def test_when_no_post_has_every_word_posts_with_some_are_shown(corpus: Flask) -> None:
    page = results(corpus.test_client(), "generators zeppelin")
    assert page.select_one(".lede").get_text(" ", strip=True).startswith("No post has all of generators zeppelin")
    assert titles(page)[0] == "Python generators explained" and len(titles(page)) == 4
    assert titles(results(corpus.test_client(), "zeppelin")) == []
    assert "match" in results(corpus.test_client(), "lazy generators").select_one(".lede").get_text()


def test_prefix_query(corpus: Flask) -> None:
    client = corpus.test_client()
    assert "Python generators explained" in titles(results(client, "gene*"))
    assert titles(results(client, "gene")) == []
    assert titles(results(client, "expla*")) == ["Python generators explained"]


def test_words_match_their_other_forms(corpus: Flask) -> None:
    client = corpus.test_client()
    assert titles(results(client, "generator"))[0] == "Python generators explained"
    assert titles(results(client, "explaining")) == ["Python generators explained"]
    page = results(client, "cooked")
    assert [mark.get_text() for mark in page.select(".card-title mark")] == ["Cooking"]


def test_snippets_and_titles_are_escaped_around_the_highlight(corpus: Flask) -> None:
    page = results(corpus.test_client(), "generators")
    hit = next(hit for hit in page.select(".search-hit") if "Tricky" in hit.get_text())
    title = hit.select_one(".card-title a")
    assert title.get_text() == "Tricky <em>title</em> & generators"
    assert title.find("em") is None and [mark.get_text() for mark in title.find_all("mark")] == ["generators"]
    snippet = hit.select_one(".snippet")
    assert snippet.find("script") is None and snippet.find("b") is None
    assert '<script>alert("x")</script>' in snippet.get_text()
    assert [mark.get_text() for mark in snippet.find_all("mark")] == ["generators"]
    assert [child.name for child in snippet.find_all(True)] == ["mark"]


def test_text_cannot_forge_a_highlight(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2024-01-01-forged.md", "Private \ue000marks\ue001 and a needle.", title="Forged")
    page = results(make_app().test_client(), "needle")
    assert [mark.get_text() for mark in page.select(".snippet mark")] == ["needle"]


@pytest.mark.parametrize("query", [
    '"unbalanced quote', 'unbalanced" quote"', "NEAR(a b)", "a AND", "OR", "NOT generators", "*", "gen**",
    "^generators", "title:generators", "-generators", "(generators", "generators)", "'; DROP TABLE posts; --",
    "\x00", "\u200b", "💥", "x" * 10240, "generators " * 2000, '"' * 501, "{title body}: generators", "a + b",
])
def test_any_input_gives_a_normal_results_page(corpus: Flask, query: str) -> None:
    page = results(corpus.test_client(), query)
    assert page.select_one("h1.page-title").get_text() == "Search"
    assert page.select_one("#search-page-q")["value"] == query[:200]


@pytest.mark.parametrize(("typed", "expected"), [
    ("generators", '"generators"'),
    ("lazy evaluation", '"lazy" "evaluation"'),
    ('"lazy evaluation"', '"lazy evaluation"'),
    ('"lazy evaluation', '"lazy" "evaluation"'),
    ("gener*", '"gener" *'),
    ('"lazy eval*"', '"lazy eval" *'),
    ("NOT x OR y", '"NOT" "x" "OR" "y"'),
    ('x "a b" c*', '"x" "a b" "c"'),  # a one-letter prefix is searched as the whole word
    ('x "a b" cd*', '"x" "a b" "cd" *'),
    ("t* a* s*", '"t" "a" "s"'),
    ("ab* cd* ef* gh* ij*", '"ab" * "cd" * "ef" * "gh" "ij"'),  # three prefixes at most
    (" ".join(f"w{number}" for number in range(20)), " ".join(f'"w{number}"' for number in range(8))),
    ("e-mail", '"e mail"'),
    ("title:foo", '"title foo"'),
    ('"" * ()', None),
    ("", None),
])
def test_queries_become_quoted_fts_terms(typed: str, expected: str | None) -> None:
    assert fts_query(typed) == expected


def test_any_term_query_joins_the_same_terms_with_or() -> None:
    assert fts_query('x "a b" cd*', any_term=True) == '"x" OR "a b" OR "cd" *'
    assert fts_query("solo", any_term=True) == fts_query("solo")


def test_pagination(make_app: AppFactory, write_post: WritePost) -> None:
    for number in range(23):
        write_post(f"2024-01-01-match-{number:02d}.md", "needle " * (number + 1), title=f"Match {number}")
    client = make_app(BLOG_PER_PAGE="10").test_client()
    first = results(client, "needle")
    assert first.select_one(".lede").get_text(" ", strip=True).startswith("23 posts match")
    assert len(first.select(".search-hit")) == 10
    assert first.head.find("link", rel="next")["href"] == "https://blog.example.com/search?q=needle&page=2"
    assert first.head.find("link", rel="prev") is None
    third = results(client, "needle", page="3")
    assert len(third.select(".search-hit")) == 3
    assert third.head.find("link", rel="prev")["href"] == "https://blog.example.com/search?q=needle&page=2"
    everything = titles(first) + [title for number in ("2", "3") for title in titles(results(client, "needle", page=number))]
    assert sorted(everything) == sorted(f"Match {number}" for number in range(23))
    assert client.get("/search?q=needle&page=4").status_code == 404
    nonsense = client.get("/search?q=needle&page=nonsense")  # one URL per page: the cache keeps it once
    assert nonsense.status_code == 301 and nonsense.headers["Location"] == "/search?q=needle"


def test_results_follow_changes_reindexing_only_changed_posts(make_app: AppFactory, write_post: WritePost,
                                                              posts_dir: Path) -> None:
    for number in range(5):
        write_post(f"2024-01-0{number + 1}-post-{number}.md", f"Text number {number}.", title=f"Post {number}")
    app = make_app()
    client = app.test_client()
    store, index = app.extensions["quire"], app.extensions["quire.search"]
    assert titles(results(client, "zebra")) == []
    write_post("2024-01-02-post-1.md", "Now about a zebra.", title="Post 1")
    (posts_dir / "2024-01-03-post-2.md").unlink()
    store.load()
    assert index.sync(app.extensions["quire.site"].searchable()) == {"/posts/post-1/", "/posts/post-2/"}
    assert titles(results(client, "zebra")) == ["Post 1"]
    assert sorted(titles(results(client, "number"))) == ["Post 0", "Post 3", "Post 4"]


def test_results_change_soon_after_a_file_changes(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2024-01-01-a.md", "Nothing yet.", title="A")
    client = make_app(BLOG_WATCH="poll", BLOG_POLL_INTERVAL_MS="50").test_client()
    assert titles(results(client, "quokka")) == []
    write_post("2024-01-01-a.md", "Now a quokka.", title="A")
    eventually(lambda: titles(results(client, "quokka")) == ["A"])


def test_search_form_in_every_header_is_labelled(corpus: Flask) -> None:
    page = BeautifulSoup(corpus.test_client().get("/").data, "html.parser")
    form = page.select_one("header form[role=search]")
    assert form["action"] == "/search" and form["method"] == "get"
    field = form.find("input", attrs={"name": "q"})
    assert form.find("label", attrs={"for": field["id"]}).get_text() == "Search posts"


def test_empty_query_shows_just_the_form(corpus: Flask) -> None:
    page = results(corpus.test_client(), "")
    assert page.select(".search-hit") == [] and page.select_one("#search-page-q")["value"] == ""


def test_search_responses_are_cacheable(corpus: Flask) -> None:
    response = corpus.test_client().get("/search?q=generators")
    assert response.headers["Cache-Control"].startswith("public") and "ETag" in response.headers


def test_a_forked_worker_builds_its_own_index(corpus: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    client = corpus.test_client()
    before = titles(results(client, "generators"))
    index = corpus.extensions["quire.search"]
    inherited = index._connection()
    monkeypatch.setattr("blog.search.os.getpid", lambda: -2)  # as in a worker gunicorn forked after loading
    assert titles(results(client, "pasta")) == ["Cooking pasta"]
    assert index._connection() is not inherited
    assert titles(results(client, "generators")) == before


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _titles_at(url: str) -> list[str] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return titles(BeautifulSoup(response.read(), "html.parser"))
    except OSError:
        return None


@pytest.mark.slow
def test_every_gunicorn_worker_searches_and_follows_changes(write_post: WritePost, posts_dir: Path) -> None:
    # The shipped config preloads the app in the master and forks three workers: each must build its own index.
    write_post("2024-01-01-first.md", "A wombat lives here.", title="First")
    port = _free_port()
    env = {**os.environ, "BLOG_POSTS_DIR": str(posts_dir), "PORT": str(port), "WEB_CONCURRENCY": "3"}
    root = Path(__file__).resolve().parent.parent
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=root,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}/search?q=wombat"
    try:
        eventually(lambda: _titles_at(url) is not None, timeout=20)
        assert [_titles_at(url) for _ in range(12)] == [["First"]] * 12
        write_post("2024-01-02-second.md", "Another wombat.", title="Second")
        eventually(lambda: all(sorted(_titles_at(url) or []) == ["First", "Second"] for _ in range(12)))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        _, errors = server.communicate(timeout=20)
    assert b"Traceback" not in errors, errors.decode()


@pytest.mark.parametrize(("query_string", "target"), [
    ("q=lazy&utm_source=x", "/search?q=lazy"),
    ("q=lazy&page=1", "/search?q=lazy"),
    ("q=lazy&q=other", "/search?q=lazy"),
    ("q=lazy&page=2&junk=", "/search?q=lazy&page=2"),
    ("page=abc&q=lazy", "/search?q=lazy"),
    ("x=1", "/search"),
])
def test_unknown_query_parameters_redirect_to_the_one_cached_url(corpus: Flask, query_string: str,
                                                                 target: str) -> None:
    client = corpus.test_client()
    response = client.get("/search?" + query_string)
    assert response.status_code == 301 and response.headers["Location"] == target
    assert client.get(target).status_code in {200, 404}


def test_one_letter_prefixes_match_whole_words_only(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2024-01-01-t.md", "Plan t is the fallback.", title="Plans")
    write_post("2024-01-02-tea.md", "Tea time.", title="Tea")
    client = make_app().test_client()
    assert titles(results(client, "t*")) == ["Plans"]
    assert titles(results(client, "te*")) == ["Tea"]
