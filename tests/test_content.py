"""Jekyll's front-matter rules as the store applies them: dates, slugs, terms, drafts, permalinks, excerpts."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from blog.content import Post
from blog.content.post import normalize_url, permalink, slugify, terms
from tests.conftest import AppFactory, WritePost

UTC = dt.timezone.utc


def only_post(make_app: AppFactory, **settings: object) -> Post:
    posts = make_app(**settings).extensions["quire"].snapshot.posts
    assert len(posts) == 1, posts
    return posts[0]


@pytest.mark.parametrize(
    ("name", "date", "expected"),
    [
        ("2020-01-02-a.md", None, dt.datetime(2020, 1, 2, tzinfo=UTC)),
        ("2020-01-02-a.md", dt.date(2019, 5, 6), dt.datetime(2019, 5, 6, tzinfo=UTC)),
        ("a.md", dt.datetime(2019, 5, 6, 7, 8, 9), dt.datetime(2019, 5, 6, 7, 8, 9, tzinfo=UTC)),
        ("a.md", "2013-09-14 20:40:00 -0400", dt.datetime(2013, 9, 15, 0, 40, tzinfo=UTC)),
        ("a.md", "2013-09-14T20:40:00Z", dt.datetime(2013, 9, 14, 20, 40, tzinfo=UTC)),
        ("a.md", "2013-09-14 20:40", dt.datetime(2013, 9, 14, 20, 40, tzinfo=UTC)),
        # Ruby (so Jekyll) takes an offset only right after the time: this one is in the site's zone.
        ("a.md", "2023-01-29 18:30:22 2023 -0800", dt.datetime(2023, 1, 29, 18, 30, 22, tzinfo=UTC)),
    ],
)
def test_date_from_front_matter_or_file_name(make_app: AppFactory, write_post: WritePost, name: str,
                                             date: object, expected: dt.datetime) -> None:
    meta = {"title": "T"} if date is None else {"title": "T", "date": date}
    write_post(name, **meta)
    post = only_post(make_app)
    assert post.date == expected
    assert post.dated


def test_naive_dates_use_the_site_time_zone(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("a.md", title="T", date="2024-06-01 12:00:00")
    post = only_post(make_app, BLOG_TIMEZONE="Europe/Paris")
    assert post.date.astimezone(UTC) == dt.datetime(2024, 6, 1, 10, 0, tzinfo=UTC)


def test_undated_post_uses_mtime_and_is_reported(make_app: AppFactory, write_post: WritePost) -> None:
    path = write_post("notes.md", title="Notes")
    os.utime(path, (1_600_000_000, 1_600_000_000))
    app = make_app()
    post = app.extensions["quire"].snapshot.posts[0]
    assert not post.dated
    assert post.date.timestamp() == 1_600_000_000
    assert [problem.code for problem in app.extensions["quire"].problems()] == ["undated"]


@pytest.mark.parametrize("date", ["not a date", "2020-02-30", "2020-01-01 10:00:00 +2500", "2020-01-01 10:00 -99:00"])
def test_invalid_date_is_an_error_with_its_line(make_app: AppFactory, write_post: WritePost, posts_dir: Path,
                                                date: str) -> None:
    write_post("2020-01-01-a.md", raw=f"---\ntitle: A\ndate: {date}\n---\nBody\n")
    write_post("2020-01-01-b.md", title="Fine")
    store = make_app().extensions["quire"]
    assert [post.title for post in store.snapshot.posts] == ["Fine"]
    (problem,) = [problem for problem in store.problems() if problem.severity == "error"]
    assert (problem.source, problem.line) == ("2020-01-01-a.md", 3)
    assert "date" in problem.message  # YAML builds 2020-02-30 itself, so that one is "unreadable", not "invalid"


@pytest.mark.parametrize(
    ("name", "meta", "slug", "title"),
    [
        ("2020-01-02-hello-world.md", {}, "hello-world", "Hello World"),
        ("2020-01-02-hello-world.markdown", {"title": "Hi"}, "hello-world", "Hi"),
        ("2020-01-02-x.md", {"slug": "Custom Slug"}, "custom-slug", "Custom Slug"),
        ("2020-01-02-Ünïcode_Name.md", {}, "ünïcode-name", "Ünïcode Name"),
        ("nested/deeper/2020-01-02-inside.md", {}, "inside", "Inside"),
    ],
)
def test_slug_and_title(make_app: AppFactory, write_post: WritePost, name: str, meta: dict, slug: str, title: str) -> None:
    write_post(name, **meta) if meta else write_post(name, raw="---\nauthor: A\n---\nText\n")
    post = only_post(make_app)
    assert (post.slug, post.title, post.url) == (slug, title, f"/posts/{slug}/")


def test_touching_a_file_keeps_its_url(make_app: AppFactory, write_post: WritePost) -> None:
    path = write_post("undated-post.md", title="Stable")
    store = make_app().extensions["quire"]
    before = store.snapshot.posts[0].url
    os.utime(path, (1_700_000_000, 1_700_000_000))
    store.refresh()
    assert store.snapshot.posts[0].url == before == "/posts/undated-post/"


@pytest.mark.parametrize(
    ("meta", "categories", "tags"),
    [
        ({"categories": ["Web Dev", "python"]}, [("Web Dev", "web-dev"), ("python", "python")], []),
        ({"categories": "web python"}, [("web", "web"), ("python", "python")], []),
        ({"category": "News"}, [("News", "news")], []),
        ({"tags": "a b a"}, [], [("a", "a"), ("b", "b")]),
        ({"tags": ["C++", "Go"]}, [], [("C++", "c"), ("Go", "go")]),
        ({"categories": None, "tags": ""}, [], []),
    ],
)
def test_categories_and_tags_from_lists_or_strings(make_app: AppFactory, write_post: WritePost, meta: dict,
                                                   categories: list, tags: list) -> None:
    write_post("2020-01-01-a.md", title="A", **meta)
    post = only_post(make_app)
    assert [(term.name, term.slug) for term in post.categories] == categories
    assert [(term.name, term.slug) for term in post.tags] == tags


def test_drafts_and_unpublished_are_hidden(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-shown.md", title="Shown")
    write_post("2020-01-02-hidden.md", title="Hidden", published=False)
    write_post("_drafts/idea.md", title="Idea")
    snapshot = make_app().extensions["quire"].snapshot
    assert [post.title for post in snapshot.posts] == ["Shown"]
    assert sorted(post.title for post in snapshot.hidden_by_url.values()) == ["Hidden", "Idea"]


def test_future_posts_hidden_unless_shown(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("a.md", title="Later", date=dt.datetime.now(UTC) + dt.timedelta(days=3))
    write_post("b.md", title="Now", date="2020-01-01")
    assert [post.title for post in make_app().extensions["quire"].snapshot.posts] == ["Now"]
    assert [post.title for post in make_app(BLOG_SHOW_FUTURE="1").extensions["quire"].snapshot.posts] == ["Later", "Now"]


def test_future_post_appears_when_its_time_comes(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("a.md", title="Soon", date=dt.datetime.now(UTC) + dt.timedelta(seconds=1))
    store = make_app().extensions["quire"]
    assert store.snapshot.posts == ()
    from tests.conftest import eventually

    eventually(lambda: store.snapshot.posts, timeout=4)


@pytest.mark.parametrize(
    ("pattern", "meta", "url"),
    [
        ("/posts/:slug/", {}, "/posts/my-post/"),
        ("date", {}, "/web/dev/2021/03/04/my-post.html"),
        ("pretty", {}, "/web/dev/2021/03/04/my-post/"),
        ("ordinal", {}, "/web/dev/2021/063/my-post.html"),
        ("none", {}, "/web/dev/my-post.html"),
        ("/:year/:i_month/:i_day/:title/", {}, "/2021/3/4/my-post/"),
        ("/:categories/:slug", {"categories": []}, "/my-post"),
        ("/posts/:slug/", {"permalink": "/custom/path/"}, "/custom/path/"),
        ("/posts/:slug/", {"permalink": "/../../../../etc/passwd.html"}, "/etc/passwd.html"),
    ],
)
def test_permalinks(make_app: AppFactory, write_post: WritePost, pattern: str, meta: dict, url: str) -> None:
    fields = {"title": "My Post", "categories": ["web", "dev"], **meta}
    write_post("2021-03-04-my-post.md", **fields)
    assert only_post(make_app, BLOG_PERMALINK=pattern).url == url


def test_duplicate_urls_older_post_wins_and_both_reported(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-old.md", title="Old", permalink="/same/")
    write_post("2021-01-01-new.md", title="New", permalink="/same/")
    store = make_app().extensions["quire"]
    assert store.snapshot.by_url["/same/"].title == "Old"
    assert {(problem.source, problem.code) for problem in store.problems()} == {
        ("2020-01-01-old.md", "duplicate-url"), ("2021-01-01-new.md", "duplicate-url")}


@pytest.mark.parametrize(
    ("body", "meta", "excerpt"),
    [
        ("First para.\n\nSecond para.", {}, "First para."),
        ("# Heading\n\nFirst real para.\n\nMore.", {}, "First real para."),
        ("Intro one.\n\nIntro two.\n<!--more-->\nRest.", {}, "Intro one.\n\nIntro two."),
        ("Part A\n\nPart B\n~~~\nRest", {"excerpt_separator": "~~~"}, "Part A\n\nPart B"),
        ("Body text.", {"excerpt": "Given excerpt."}, "Given excerpt."),
        ("Intro with a note.[^1]\n\nMore.\n\n[^1]: The note.", {}, "Intro with a note."),
    ],
)
def test_excerpts(make_app: AppFactory, write_post: WritePost, body: str, meta: dict, excerpt: str) -> None:
    write_post("2020-01-01-a.md", body, title="A", **meta)
    assert only_post(make_app).excerpt_source == excerpt


@pytest.mark.parametrize(
    "body",
    [
        '<div class="note">\n<p>Opened in the excerpt.</p>\n\n<p>Closed after it.</p>\n</div>',  # an open block
        'Intro with <a href="/x">a link that\n\ngoes on</a> past the cut.',  # an open inline element
        'Closes what it never opened.</div></article>\n\nMore.',  # stray end tags
    ],
)
def test_an_excerpt_cut_inside_raw_html_keeps_the_listing_whole(make_app: AppFactory, write_post: WritePost,
                                                                  body: str) -> None:
    from bs4 import BeautifulSoup

    write_post("2020-01-01-raw.md", body, title="Raw")
    for number in range(1, 4):
        write_post(f"2019-01-0{number}-plain-{number}.md", "Plain text.", title=f"Plain {number}")
    page = BeautifulSoup(make_app().test_client().get("/").data, "lxml")  # lxml's HTML parser: as a browser nests
    cards = page.select("article.card")
    assert [card.h2.get_text(strip=True) for card in cards] == ["Raw", "Plain 3", "Plain 2", "Plain 1"]
    assert len({id(card.parent) for card in cards}) == 1  # siblings, none taken in by the one before it
    excerpt = only_post_of(make_app, "/posts/raw/").excerpt_html
    assert excerpt.strip() and _unbalanced(excerpt) == []


def only_post_of(make_app: AppFactory, url: str) -> Post:
    return make_app().extensions["quire"].snapshot.by_url[url]


def _unbalanced(fragment: str) -> list[str]:
    """Return the elements of an HTML fragment left open or closed by another's end tag, and stray end tags."""
    from html.parser import HTMLParser

    void = {"br", "img", "hr", "input", "wbr", "source", "meta", "link", "area", "col", "embed", "track", "base"}
    opened: list[str] = []
    strays: list[str] = []

    class Balance(HTMLParser):
        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag not in void:
                opened.append(tag)

        def handle_endtag(self, tag: str) -> None:
            if tag not in opened:
                strays.append(f"</{tag}>")
                return
            while (top := opened.pop()) != tag:  # closed only by its container's end: browsers reopen an <a>
                strays.append(f"<{top}>")

    Balance().feed(fragment)
    return opened + strays


def test_description_prefers_front_matter(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-a.md", "Body **bold** text.", title="A", description="Short <b>summary</b>.")
    assert only_post(make_app).description == "Short summary ."


@pytest.mark.parametrize(
    "name",
    [".hidden.md", "_partial.md", "post.md~", "post.md.swp", "post.md.tmp", "notes.txt", ".git/2020-01-01-x.md"],
)
def test_ignored_files(make_app: AppFactory, write_post: WritePost, name: str) -> None:
    write_post(name, title="Ignored")
    assert make_app().extensions["quire"].snapshot.posts == ()


def test_extensions_are_configurable(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-a.text", title="Text")
    assert make_app().extensions["quire"].snapshot.posts == ()
    assert only_post(make_app, BLOG_EXTENSIONS=".md,.text").title == "Text"


def test_markdown_features_render(make_app: AppFactory, write_post: WritePost) -> None:
    body = (
        "## Section\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nNote[^1]\n\n```python\nprint('hi')\n```\n\n"
        "Term\n:   Definition\n\n*[HTML]: Hyper Text\n\nHTML here {: .lead }\n\n[^1]: Footnote.\n"
    )
    write_post("2020-01-01-a.md", body, title="A")
    html = only_post(make_app).html
    assert '<h2 id="section">' in html and 'class="anchor"' in html
    assert '<table tabindex="0">' in html and 'class="footnote"' in html
    assert '<div class="highlight"><pre tabindex="0">' in html and '<span class="nb">print</span>' in html
    assert "<dl>" in html and '<abbr title="Hyper Text">HTML</abbr>' in html
    assert 'style=' not in html  # Pygments classes, never inline styles


def test_liquid_tags_render_like_jekyll(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-target.md", title="Target")
    body = (
        "[t]({% post_url 2020-01-01-target %}) [b]({{ site.baseurl }}/x/)\n\n"
        "{% highlight ruby %}\nputs 1\n{% endhighlight %}\n\n{% raw %}{{ kept }}{% endraw %} {% include nav.html %}\n"
    )
    write_post("2020-01-02-source.md", body, title="Source")
    store = make_app().extensions["quire"]
    html = store.snapshot.by_url["/posts/source/"].html
    assert 'href="/posts/target/"' in html and 'href="/x/"' in html
    assert '<span class="nb">puts</span>' in html
    assert "{{ kept }}" in html and "{% include nav.html %}" in html
    assert any(problem.code == "liquid" and "include" in problem.message for problem in store.problems())


def test_pure_helpers() -> None:
    assert slugify("  Hello, World! ") == "hello-world"
    assert normalize_url("/a/./b/../c") == "/a/c"
    assert normalize_url("\\..\\x/") == "/x/"
    assert [term.slug for term in terms("a  b")] == ["a", "b"]
    date = dt.datetime(2021, 3, 4, tzinfo=UTC)
    assert permalink("/:short_year/:y_day/:slug", slug="s", date=date, categories=()) == "/21/063/s"
