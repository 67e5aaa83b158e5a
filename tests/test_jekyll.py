"""Jekyll sites served as they are: _config.yml settings, defaults, Jekyll's permalink and category rules."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from flask import Flask

from blog import create_app
from blog.content import jekyll

MakeSite = Callable[..., Flask]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """Return an empty Jekyll site folder."""
    folder = tmp_path / "site"
    (folder / "_posts").mkdir(parents=True)
    return folder


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def post(site: Path, relative: str, front: str = "title: A post\n", body: str = "Some text.") -> Path:
    return write(site / relative, f"---\n{textwrap.dedent(front)}---\n\n{body}\n")


@pytest.fixture
def make_site(site: Path) -> MakeSite:
    """Return a factory for apps serving the site folder, with a _config.yml of the given text."""

    def make(config: str = "", **overrides: str) -> Flask:
        write(site / "_config.yml", config)
        app = create_app({"BLOG_JEKYLL_SITE": str(site), "BLOG_WATCH": "off", **overrides})
        app.config["TESTING"] = True
        return app

    return make


def urls(app: Flask) -> dict[str, str]:
    store = app.extensions["quire"]
    return {found.source: found.url for found in (*store.snapshot.by_url.values(), *store.snapshot.hidden_by_url.values())}


@pytest.mark.parametrize(
    ("text", "mode", "cased", "slug"),
    [
        ("The _config.yml file", "default", False, "the-config-yml-file"),  # the examples of Jekyll's utils.rb
        ("The _config.yml file", "pretty", False, "the-_config.yml-file"),
        ("The _config.yml file", "pretty", True, "The-_config.yml-file"),
        ("toolkit-1.0.0", "pretty", True, "toolkit-1.0.0"),
        ("Signed-Releases", "default", False, "signed-releases"),
        ("don't  panic!", "default", False, "don-t-panic"),
        ("café über", "default", False, "café-über"),
        ("--a--", "pretty", True, "a"),
    ],
)
def test_slugify_is_jekylls(text: str, mode: str, cased: bool, slug: str) -> None:
    assert jekyll.slugify(text, mode, cased) == slug


def test_defaults_scoped_to_posts_beat_the_top_level_permalink_and_may_lack_a_slash(site: Path,
                                                                                     make_site: MakeSite) -> None:
    post(site, "_posts/2016-09-21-toolkit-1.0.0.md")
    post(site, "_posts/2025-02-03-Homebrew-git-signing.md")
    post(site, "_posts/2019-06-14-meet-at-example.org.markdown")
    app = make_site("""
        permalink: :title
        defaults:
          - scope: {type: posts}
            values: {layout: post, permalink: ":year/:month/:day/:title/"}
          - scope: {path: ""}
            values: {image: /social.png}
    """)
    assert urls(app) == {
        "_posts/2016-09-21-toolkit-1.0.0.md": "/2016/09/21/toolkit-1.0.0/",
        "_posts/2025-02-03-Homebrew-git-signing.md": "/2025/02/03/Homebrew-git-signing/",
        "_posts/2019-06-14-meet-at-example.org.markdown": "/2019/06/14/meet-at-example.org/",
    }
    assert app.extensions["quire"].snapshot.posts[0].meta["image"] == "/social.png"  # defaults reach the post


@pytest.mark.parametrize(
    ("config", "url"),
    [
        ("", "/web/dev/2021/03/04/My-Post.v2.html"),  # Jekyll's default style is date
        ("permalink: pretty", "/web/dev/2021/03/04/My-Post.v2/"),
        ("permalink: ordinal", "/web/dev/2021/063/My-Post.v2.html"),
        ("permalink: weekdate", "/web/dev/2021/W09/Thu/My-Post.v2.html"),
        ("permalink: none", "/web/dev/My-Post.v2.html"),
        ("permalink: /:year/:i_month/:i_day/:slug", "/2021/3/4/my-post-v2"),
        ("permalink: /:short_year/:long_month/:name:output_ext", "/21/March/2021-03-04-my-post-v2.html"),
        ("collections: {posts: {permalink: /p/:title/}}\npermalink: pretty", "/p/My-Post.v2/"),
    ],
)
def test_permalink_styles_and_placeholders(site: Path, make_site: MakeSite, config: str, url: str) -> None:
    post(site, "_posts/2021-03-04-My-Post.v2.md", "title: Post\ncategories: [Web, dev]\n")
    assert urls(make_site(config)) == {"_posts/2021-03-04-My-Post.v2.md": url}


def test_a_slug_in_front_matter_replaces_the_file_name_in_title_and_slug(site: Path, make_site: MakeSite) -> None:
    post(site, "_posts/2020-01-01-file-name.md", "title: A\nslug: Better Name.2\n")
    post(site, "_posts/2020-01-02-other.md", "title: B\nslug: Better Name.2\npermalink: /s/:slug/\n")
    assert urls(make_site("permalink: /:title/")) == {"_posts/2020-01-01-file-name.md": "/Better-Name.2/",
                                                     "_posts/2020-01-02-other.md": "/s/better-name-2/"}


def test_category_is_kept_whole_categories_are_split_and_folders_come_first(site: Path, make_site: MakeSite) -> None:
    post(site, "_posts/2020-01-01-a.md", "title: A\ncategory: Open Source in Practice\n")
    post(site, "_posts/2020-01-02-b.md", "title: B\ncategories: Open Source\n")
    post(site, "blog/_posts/2020-01-03-c.md", "title: C\ncategories: [News]\n")
    post(site, "blog/_posts/2020-01-04-d.md", "title: D\n")
    app = make_site("permalink: /:categories/:title/")
    assert urls(app) == {"_posts/2020-01-01-a.md": "/open source in practice/a/",
                         "_posts/2020-01-02-b.md": "/open/source/b/",
                         "blog/_posts/2020-01-03-c.md": "/blog/news/c/",
                         "blog/_posts/2020-01-04-d.md": "/blog/d/"}
    categories = app.extensions["quire"].snapshot.categories
    assert [group.term.name for group in categories.values()] == ["blog", "News", "Open", "Open Source in Practice",
                                                                  "Source"]
    assert categories["open-source-in-practice"].term.name == "Open Source in Practice"
    page = app.test_client().get("/open source in practice/a/")
    assert page.status_code == 200


def test_placeholders_in_a_posts_own_permalink_are_expanded_and_unknown_ones_reported(site: Path,
                                                                                      make_site: MakeSite) -> None:
    post(site, "_posts/2020-05-06-Hello.World.md", "title: A\npermalink: /news/:year/:title/\n")
    post(site, "_posts/2020-05-07-b.md", "title: B\npermalink: /news/:bogus/:title/\n")
    app = make_site()
    assert urls(app) == {"_posts/2020-05-06-Hello.World.md": "/news/2020/Hello.World/",
                         "_posts/2020-05-07-b.md": "/news/:bogus/b/"}
    problems = [problem for problem in app.extensions["quire"].problems() if problem.code == "permalink"]
    assert [(problem.source, problem.line) for problem in problems] == [("_posts/2020-05-07-b.md", 3)]
    assert ":bogus" in problems[0].message


def test_defaults_precedence_longer_path_wins_then_a_typed_scope(site: Path, make_site: MakeSite) -> None:
    post(site, "_posts/2020-01-01-a.md")
    post(site, "_posts/releases/2020-01-02-b.md")
    post(site, "_posts/2020-01-03-c.md", "title: C\npermalink: /own/\n")
    app = make_site("""
        defaults:
          - scope: {path: "_posts/releases"}
            values: {permalink: /releases/:title/}
          - scope: {path: "", type: posts}
            values: {permalink: /typed/:title/}
          - scope: {path: ""}
            values: {permalink: /untyped/:title/}
    """)
    assert urls(app) == {"_posts/2020-01-01-a.md": "/typed/a/", "_posts/releases/2020-01-02-b.md": "/releases/b/",
                         "_posts/2020-01-03-c.md": "/own/"}


def test_config_values_become_settings_unless_a_blog_variable_is_set(site: Path, make_site: MakeSite,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    config = """
        title: Brew
        description: The missing package manager
        url: https://brew.example
        baseurl: /blog
        timezone: America/New_York
        paginate: 5
        future: true
        show_drafts: true
        excerpt_separator: <!-- cut -->
    """
    post(site, "_posts/2020-01-01-late.md", "title: Late\ndate: 2020-01-01 23:30:00 -0500\n",
         body="Opening.\n\n<!-- cut -->\n\nRest.")
    post(site, "_drafts/draft.md", "title: Draft\n")
    post(site, "_posts/2999-01-01-future.md", "title: Future\n")
    app = make_site(config)
    assert (app.config["BLOG_TITLE"], app.config["BLOG_DESCRIPTION"], app.config["BLOG_URL"]) == (
        "Brew", "The missing package manager", "https://brew.example/blog")
    assert (app.config["BLOG_TIMEZONE"], app.config["BLOG_PER_PAGE"]) == ("America/New_York", 5)
    store = app.extensions["quire"]
    assert {found.title for found in store.snapshot.posts} == {"Late", "Draft", "Future"}
    late = store.snapshot.by_url["/2020/01/01/late.html"]
    assert "Opening" in late.excerpt_html and "Rest" not in late.excerpt_html
    monkeypatch.setenv("BLOG_TITLE", "Mine")
    monkeypatch.setenv("BLOG_SHOW_DRAFTS", "0")
    app = make_site(config, BLOG_PER_PAGE="7")
    assert (app.config["BLOG_TITLE"], app.config["BLOG_PER_PAGE"]) == ("Mine", 7)
    assert {found.title for found in app.extensions["quire"].snapshot.posts} == {"Late", "Future"}


def test_a_bad_value_in_the_config_stops_the_start_naming_it(make_site: MakeSite) -> None:
    with pytest.raises(SystemExit, match=r"_config.yml: BLOG_TIMEZONE must be an IANA time zone.*set BLOG_TIMEZONE"):
        make_site("timezone: Mars/Olympus\n")


def test_only_posts_and_drafts_of_the_site_are_read(site: Path, make_site: MakeSite) -> None:
    post(site, "_posts/2020-01-01-a.md")
    post(site, "_posts/sub/2020-01-02-b.md")
    post(site, "_posts/undated.md")  # Jekyll reads only dated files from _posts
    post(site, "about.md", "title: About\nlayout: page\n")
    post(site, "README.md")
    post(site, "_layouts/2020-01-01-layout.md")
    post(site, "_site/_posts/2020-01-01-built.md")
    post(site, "node_modules/x/_posts/2020-01-01-module.md")  # excluded by Jekyll's defaults
    post(site, "vendor-notes/_posts/2020-01-01-excluded.md")
    post(site, "_drafts/idea.md", "title: Idea\n")
    app = make_site("exclude: [vendor-notes]\n")
    assert sorted(urls(app)) == ["_drafts/idea.md", "_posts/2020-01-01-a.md", "_posts/sub/2020-01-02-b.md"]
    assert [found.draft for found in app.extensions["quire"].snapshot.hidden_by_url.values()] == [True]


def test_url_dates_are_in_the_site_zone_as_ruby_reads_them(site: Path, make_site: MakeSite) -> None:
    # Every date is taken to the site's zone; a YAML time without an offset is UTC, as Psych reads it.
    post(site, "_posts/2020-01-01-a.md", "title: A\ndate: 2020-01-01 23:00:00 -0800\n")
    post(site, "_posts/2020-01-01-b.md", "title: B\ndate: '2020-01-01 23:00:00 -0800'\n")
    post(site, "_posts/2020-01-01-c.md", "title: C\ndate: 2020-01-02 02:00:00\n")
    post(site, "_posts/2020-01-01-d.md", "title: D\ndate: 2020-01-02 02:00\n")
    assert urls(make_site("timezone: America/New_York\npermalink: /:year/:month/:day/:title/")) == {
        "_posts/2020-01-01-a.md": "/2020/01/02/a/", "_posts/2020-01-01-b.md": "/2020/01/02/b/",
        "_posts/2020-01-01-c.md": "/2020/01/01/c/", "_posts/2020-01-01-d.md": "/2020/01/02/d/"}


def test_a_plain_posts_folder_keeps_quires_default_and_front_matter_categories(make_app, write_post) -> None:  # type: ignore[no-untyped-def]
    write_post("blog/_posts/2020-01-01-a.md", title="A", category="Open Source")
    found = make_app().extensions["quire"].snapshot.posts[0]
    assert found.url == "/posts/a/" and [term.name for term in found.categories] == ["Open Source"]


def test_url_parts_path_and_date(site: Path) -> None:
    parts = jekyll.url_parts("_posts/2020-01-01-a.b.md", {}, [], dt.datetime(2020, 1, 1), ".html")
    assert (parts.slug, parts.basename, parts.path) == ("a.b", "2020-01-01-a.b", "/2020-01-01-a.b")


# Jekyll itself as the oracle ----------------------------------------------------------------------

from bench.jekyll_urls import compare, jekyll_available  # noqa: E402 - the tests above need no Jekyll
from tests.conftest import CORPUS  # noqa: E402

CORPUS_POSTS = CORPUS / "jekyll-jekyll" / "docs" / "_posts"
needs_jekyll = pytest.mark.skipif(not jekyll_available(),
                                  reason="Debian's jekyll is not installed (it is in the Makefile's APT_PACKAGES)")
needs_corpus = pytest.mark.skipif(not CORPUS_POSTS.is_dir(), reason="../shared/corpus is not beside the checkout")
# Copies of a real release note with what real sites do to names and front matter: (path, front matter added).
VARIANTS = (
    ("_posts/2016-09-21-Toolkit-1.0.0.md", "redirect_from: [/old/toolkit/, old/Toolkit 1.html]\n"),
    ("_posts/2019-06-14-meet-at-example.org.markdown", "redirect_from: /blog/meet/\n"),
    ("_posts/2019-06-13-gone.md", "redirect_to: https://example.org/elsewhere/\n"),
    ("_posts/2019-06-15-Signed-Releases.md", "slug: Better Name.2\n"),
    ("_posts/2019-06-16-whole.md", "category: Open Source in Practice\n"),
    ("_posts/2019-06-17-split.md", "categories: release notes\n"),
    ("_posts/2019-06-18-own.md", "permalink: /news/:year/:title/\n"),
    ("_posts/2019-06-19-late.md", "date: '2019-06-19 23:30:00 -0800'\n"),
    ("_posts/2019-06-20-utc.md", "date: 2019-06-21 02:00:00\n"),
    ("_posts/releases/2019-06-21-nested.md", ""),
    ("blog/_posts/2019-06-22-folder.md", "categories: [News]\n"),
    ("blog/_posts/2019-06-23-folder-two.md", "category: Big News\n"),
)
# Pages as real sites have them: (path, front matter; None for a file without any, which is no page).
PAGES = (
    ("about.md", "title: About\n"),
    ("docs/index.md", "title: Docs\n"),
    ("docs/install.markdown", "title: Install\n"),
    ("projects/Big.Project.html", "title: Project\n"),
    ("team.md", "title: Team\npermalink: /people/\n"),
    ("guides/start.md", "title: Start\n"),
    ("private/notes.md", "title: Excluded\n"),
    ("vendor/bundle/gem/readme.md", "title: A gem's\n"),
    ("README.md", None),
)
CONFIGS = {
    "jekyllrb": "permalink: /news/:year/:month/:day/:title/\n",
    "date": "",
    "pretty-new-york": "permalink: pretty\ntimezone: America/New_York\n",
    "defaults": textwrap.dedent("""
        permalink: :title
        timezone: Asia/Tokyo
        defaults:
          - scope: {type: posts}
            values: {permalink: ":year/:month/:day/:title/"}
          - scope: {path: blog, type: posts}
            values: {permalink: "/:categories/:year/:slug:output_ext"}
          - scope: {path: _posts/releases}
            values: {permalink: /releases/:title/}
          - scope: {path: guides, type: pages}
            values: {permalink: "/manual/:basename/"}
    """),
}


def _corpus_site(folder: Path, config: str) -> Path:
    config = "plugins: [jekyll-redirect-from, jekyll-feed]\nexclude: [private]\n" + config
    shutil.copytree(CORPUS_POSTS, folder / "_posts")
    for relative, front in PAGES:
        write(folder / relative, "No front matter.\n" if front is None else f"---\n{front}---\nA page.\n")
    original = (CORPUS_POSTS / "2013-05-08-jekyll-1-0-1-released.markdown").read_text(encoding="utf-8")
    for relative, front in VARIANTS:
        write(folder / relative, original.replace("---\n", "---\n" + front, 1))
    write(folder / "_config.yml", config)
    return folder


@needs_jekyll
@needs_corpus
@pytest.mark.parametrize("name", [name if name == "defaults" else pytest.param(name, marks=pytest.mark.slow)
                                  for name in sorted(CONFIGS)])  # a Jekyll build takes seconds: one in the fast suite
def test_every_post_url_is_the_one_jekyll_writes(tmp_path: Path, name: str) -> None:
    comparison = compare(_corpus_site(tmp_path / "site", CONFIGS[name]))
    assert len(comparison.jekyll_urls) == 102 + len(VARIANTS)
    assert comparison.differences == []
    assert len(comparison.redirects) == 5 and comparison.redirect_misses == []  # each a 301 to where Jekyll's goes
    assert len(comparison.jekyll_pages) == 6 and comparison.page_differences == []  # not excluded, vendor/, README.md
    assert comparison.pages_answered == 6


@pytest.mark.parametrize(
    ("written", "day"),
    [
        ("2023-01-29 18:30:22 -0800", "30"),  # 02:30 UTC the next day
        ("2023-01-29 18:30:22 2023 -0800", "29"),  # Ruby takes an offset only right after the time
        ("2023-01-29 18:30 +0200 (CEST)", "29"),
        ("2023-01-29 23:30:00 -0100 later", "30"),
    ],
)
def test_sloppy_dates_are_read_as_rubys_time_parse_reads_them(site: Path, make_site: MakeSite, written: str,
                                                               day: str) -> None:
    post(site, "_posts/2023-01-29-a.md", f"title: A\ndate: '{written}'\n")
    assert urls(make_site("permalink: /:day/:title/")) == {"_posts/2023-01-29-a.md": f"/{day}/a/"}


def test_redirect_from_and_redirect_to_answer_301_and_check_lists_them(site: Path, make_site: MakeSite) -> None:
    post(site, "_posts/2016-09-21-homebrew-1.0.0.md", "title: A\nredirect_from: /blog/1.0.0/\n")
    post(site, "_posts/2016-09-22-b.md", "title: B\nredirect_from:\n  - /old/b\n  - old/b%20two.html\n")
    post(site, "_posts/2016-09-23-moved.md", "title: C\nredirect_to: https://elsewhere.example/c/\n")
    post(site, "_posts/2016-09-24-d.md", "title: D\nredirect_from: /2016/09/22/b/\n")  # a post's own URL: kept
    app = make_site("permalink: pretty\n")
    client = app.test_client()
    for origin, target in [("/blog/1.0.0/", "/2016/09/21/homebrew-1.0.0/"), ("/blog/1.0.0", "/2016/09/21/homebrew-1.0.0/"),
                           ("/old/b", "/2016/09/22/b/"), ("/old/b two.html", "/2016/09/22/b/"),
                           ("/2016/09/23/moved/", "https://elsewhere.example/c/")]:
        response = client.get(origin)
        assert (response.status_code, response.headers["Location"]) == (301, target), origin
    assert client.get("/2016/09/22/b/").status_code == 200
    result = app.test_cli_runner().invoke(args=["blog", "check"])
    output = result.output.splitlines()
    lines = [line.strip() for line in output if "[redirect]" in line]
    assert "Redirects made, each a 301 (5):" in output  # grouped under their heading
    assert lines == [
        "_posts/2016-09-21-homebrew-1.0.0.md: info: /blog/1.0.0/ redirects (301) to /2016/09/21/homebrew-1.0.0/ [redirect]",
        "_posts/2016-09-22-b.md: info: /old/b redirects (301) to /2016/09/22/b/ [redirect]",
        "_posts/2016-09-22-b.md: info: /old/b two.html redirects (301) to /2016/09/22/b/ [redirect]",
        "_posts/2016-09-23-moved.md: info: /2016/09/23/moved/ redirects (301) to https://elsewhere.example/c/ "
        "(redirect_to) [redirect]",
        "_posts/2016-09-24-d.md: warning: redirect_from /2016/09/22/b/ is the URL of _posts/2016-09-22-b.md, "
        "which keeps it [redirect]",
    ]


def test_the_feed_is_also_at_jekyll_feeds_path(site: Path, make_site: MakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    post(site, "_posts/2020-01-01-a.md")
    client = make_site("feed:\n  path: atom.xml\n").test_client()
    response = client.get("/atom.xml")
    assert response.status_code == 200 and response.mimetype == "application/atom+xml"
    assert response.data == client.get("/feed.xml").data
    monkeypatch.setenv("BLOG_FEED_PATH", "/feeds/all.atom")
    client = make_site("feed:\n  path: atom.xml\n").test_client()
    assert client.get("/feeds/all.atom").status_code == 200 and client.get("/atom.xml").status_code == 404


@pytest.mark.parametrize("raw", ["/../x.xml", "/a b.xml", ""])
def test_a_bad_feed_path_is_refused(raw: str) -> None:
    from blog import config

    with pytest.raises(config.ConfigError, match="BLOG_FEED_PATH must be a site path"):
        config.load({"BLOG_FEED_PATH": raw})


def test_the_sites_own_files_keep_their_urls(site: Path, make_site: MakeSite, tmp_path: Path) -> None:
    post(site, "_posts/2020-01-01-a.md")
    files = {"images/logo.png": b"\x89PNG logo", "img/a b.jpg": b"jpeg", "files/paper.pdf": b"%PDF",
             "favicon.ico": b"icon", "assets/css/site.css": b"body{}", "docs/index.html": b"<p>plain</p>",
             "README.md": b"no front matter: Jekyll copies it", ".well-known/security.txt": b"Contact: x"}
    for relative, data in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_bytes(data)
    write(site / "about.md", "---\ntitle: About\n---\nA page, rendered by Jekyll: not copied.\n")
    write(site / "_data/secret.yml", "token: s3cret\n")
    write(site / ".git/config", "[core]\n")
    write(site / "Gemfile", "source 'https://rubygems.org'\n")
    write(site / "notes/draft.txt~", "backup\n")
    (tmp_path / "outside.txt").write_text("outside the site", encoding="utf-8")
    (site / "images/escape.txt").symlink_to(tmp_path / "outside.txt")
    (site / "images/config.yml").symlink_to(site / "_config.yml")
    (site / "images/inside.png").symlink_to(site / "images/logo.png")
    client = make_site("include: [.well-known]\n").test_client()
    for relative, data in files.items():
        url = "/" + relative.removesuffix("index.html")
        response = client.get(url)
        assert (response.status_code, response.data) == (200, data), url
    assert client.get("/images/inside.png").data == b"\x89PNG logo"  # a symlink that stays in the site
    for url in ["/about.md", "/_config.yml", "/_data/secret.yml", "/.git/config", "/Gemfile", "/notes/draft.txt~",
                "/images/escape.txt", "/images/config.yml", "/images/../_config.yml", "/_posts/2020-01-01-a.md",
                "/images/", "/nothing.png"]:
        response = client.get(url)
        assert response.status_code == 404, url
        assert BeautifulSoup(response.data, "html.parser").find("a", class_="skip-link") is not None, url  # site chrome


def test_site_files_are_served_only_for_a_site_folder(make_app, write_post, posts_dir: Path) -> None:  # type: ignore[no-untyped-def]
    write_post("2020-01-01-a.md", title="A")
    (posts_dir / "images").mkdir()
    (posts_dir / "images/x.png").write_bytes(b"png")
    assert make_app().test_client().get("/images/x.png").status_code == 404


def test_kramdown_habits_are_on_for_a_jekyll_site_and_switchable(site: Path, make_site: MakeSite) -> None:
    post(site, "_posts/2020-01-01-a.md", body='"Quoted" -- and `"code" --`\n\n- a\n  - nested\n')

    def rendered(app: Flask) -> BeautifulSoup:
        return BeautifulSoup(app.extensions["quire"].snapshot.posts[0].html, "html.parser")

    html = rendered(make_site())
    assert html.p.get_text() == "\u201cQuoted\u201d \u2013 and \"code\" --"  # code is left alone
    assert html.select("ul > li > ul > li")[0].get_text() == "nested"
    html = rendered(make_site(BLOG_KRAMDOWN_LISTS="0", BLOG_SMART_QUOTES="off"))
    assert html.p.get_text() == '"Quoted" -- and "code" --' and not html.select("ul ul")


def test_a_plain_posts_folder_keeps_python_markdowns_habits(make_app, write_post) -> None:  # type: ignore[no-untyped-def]
    write_post("a.md", '"Quoted"\n\n- a\n  - flat\n', title="A")
    html = BeautifulSoup(make_app().extensions["quire"].snapshot.posts[0].html, "html.parser")
    assert html.p.get_text() == '"Quoted"' and not html.select("ul ul")


def test_the_render_cache_on_disk_keeps_the_dialects_apart(site: Path, make_site: MakeSite, tmp_path: Path) -> None:
    post(site, "_posts/2020-01-01-a.md", body='"Quoted"')
    cache = str(tmp_path / "cache")
    first = make_site(BLOG_CACHE_DIR=cache).extensions["quire"].snapshot.posts[0].html
    second = make_site(BLOG_CACHE_DIR=cache, BLOG_SMART_QUOTES="0").extensions["quire"].snapshot.posts[0].html
    assert "\u201cQuoted\u201d" in first or "&ldquo;Quoted&rdquo;" in first
    assert '"Quoted"' in second


# A Jekyll site's pages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "url"),
    [
        ("", "/about.html"),  # Jekyll's default style, date
        ("permalink: pretty\n", "/about/"),
        ("permalink: ':title'\n", "/about"),  # a pattern ending in neither / nor :output_ext
        ("permalink: /:year/:title/\n", "/about/"),
        ("permalink: none\n", "/about.html"),
    ],
)
def test_a_page_of_the_site_keeps_jekylls_url(site: Path, make_site: MakeSite, config: str, url: str) -> None:
    write(site / "about.md", "---\ntitle: About us\n---\nWho we are.\n")
    write(site / "docs" / "index.html", "---\ntitle: Docs\n---\n<p>The docs.</p>\n")
    write(site / "team.md", "---\ntitle: Team\npermalink: /people/\n---\nUs.\n")
    client = make_site(config).test_client()
    page = BeautifulSoup(client.get(url).data, "html.parser")
    assert page.find("h1").text.strip() == "About us" and "Who we are." in page.text
    assert client.get("/docs/").status_code == 200 and client.get("/people/").status_code == 200


def test_jekylls_home_page_leaves_quires_and_check_says_so(site: Path, make_site: MakeSite) -> None:
    post(site, "_posts/2024-01-01-hello.md", "title: Hello\n")
    write(site / "index.md", "---\nlayout: home\n---\nJekyll's home.\n")
    app = make_site()
    home = app.test_client().get("/").get_data(as_text=True)
    assert "Hello" in home and "Jekyll's home." not in home
    result = app.test_cli_runner().invoke(args=["blog", "check"])
    assert "Jekyll pages not served (1):" in result.output
    assert any(line.strip().startswith("index.md: warning:") and line.endswith("[home-page]")
               for line in result.output.splitlines())


def test_check_lists_what_will_not_carry_over_by_topic(site: Path, make_site: MakeSite) -> None:
    post(site, "_posts/2024-01-01-hello.md", "title: Hello\npermalink: /:month/:nonsense/\n",
         "Intro {% raw %}{{ kept }}{% endraw %}.\n\n{% include note.html %}\n\n{% if site.x %}\nMaybe.\n{% endif %}\n\n"
         "Read [the guide](/guide/) and [the feed](/feed2.xml) and [a doc](/docs/setup/) on {{ site.nowhere }}.\n")
    write(site / "guide.md", "---\ntitle: Guide\n---\nServed.\n")
    write(site / "tags.md", "---\ntitle: Tags\npermalink: /tags/\n---\nQuire's own tags page wins.\n")
    write(site / "feed2.xml", "---\nlayout: null\n---\n<feed></feed>\n")
    write(site / "_docs" / "setup.md", "---\ntitle: Setup\n---\nA document.\n")
    write(site / "archive.html", "---\ntitle: Archive\n---\n{% for post in site.posts %}{{ post.title }}{% endfor %}\n")
    app = make_site("collections:\n  docs:\n    output: true\n    permalink: /docs/:name/\n")
    result = app.test_cli_runner().invoke(args=["blog", "check"])
    assert result.exit_code == 1  # the links that no longer lead anywhere are errors
    sections: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        if line.endswith("):") and not line.startswith(" "):
            heading = sections.setdefault(line.rsplit(" (", 1)[0], [])
        elif line.startswith("  "):
            heading.append(line.strip())
    assert set(sections) == {"URLs that change", "Jekyll pages not served", "Liquid left as written",
                             "Links to Jekyll pages not served"}
    assert sections["URLs that change"][0].startswith("_posts/2024-01-01-hello.md:3: warning: permalink '/:month/:nonsense/'")
    assert [line.split(": ")[0] for line in sections["Liquid left as written"]] == [
        "_posts/2024-01-01-hello.md:8:1", "_posts/2024-01-01-hello.md:10:1", "_posts/2024-01-01-hello.md:14:83",
        "archive.html:4:1", "archive.html:4:29"]  # the list, then the {{ post.title }} in it
    liquid = sections["Liquid left as written"]
    assert "{% include %}" in liquid[0] and "{% if %}" in liquid[1] and "site.posts" in liquid[3]
    assert "kept" not in result.stdout  # what a raw block holds is shown as written on purpose
    assert "{{ site.nowhere }} is left in the page as written (not a value of the _config.yml)" in liquid[2]
    assert sections["Jekyll pages not served"] == [
        "_docs/setup.md: warning: Jekyll renders this file to /docs/setup/; Quire does not serve it (no collection but "
        "_posts is read), so that URL is lost [unserved-page]",
        "feed2.xml: warning: Jekyll renders this file to /feed2.xml; Quire does not serve it (only .md and .html pages "
        "are Quire pages), so that URL is lost; BLOG_FEED_PATH=/feed2.xml serves Quire's Atom feed there [unserved-page]",
        "tags.md: warning: Quire's own page (posts.tags) answers /tags/, so this page is not served there [unserved-page]"]
    assert [line.split(": ", 2)[2] for line in sections["Links to Jekyll pages not served"]] == [
        "link to /feed2.xml: Jekyll's page feed2.xml, which Quire does not serve [unserved-link]",
        "link to /docs/setup/: Jekyll's page _docs/setup.md, which Quire does not serve [unserved-link]"]
    assert result.stderr.strip().endswith("will not carry over from Jekyll: URLs 1, pages 3, Liquid 5, links 2, redirects 0")
    report = json.loads(app.test_cli_runner().invoke(args=["blog", "check", "--format", "json"]).stdout)
    assert report["summary"]["jekyll"] == {"URLs": 1, "pages": 3, "Liquid": 5, "links": 2, "redirects": 0}
    assert {problem.get("jekyll") for problem in report["problems"]} >= {"URLs", "pages", "Liquid", "links"}


def test_a_new_page_of_the_site_is_live_and_in_the_sitemap_not_the_feed(site: Path, make_site: MakeSite) -> None:
    from tests.conftest import eventually

    post(site, "_posts/2024-01-01-hello.md", "title: Hello\n")
    app = make_site("permalink: pretty\n", BLOG_WATCH="poll", BLOG_POLL_INTERVAL_MS="50")
    client = app.test_client()
    try:
        assert client.get("/now/").status_code == 404
        write(site / "now.md", "---\ntitle: Now\n---\nReading about otters.\n")
        eventually(lambda: client.get("/now/").status_code == 200)
        assert "/now/</loc>" in client.get("/sitemap.xml").get_data(as_text=True)
        assert "Reading about otters" not in client.get("/feed.xml").get_data(as_text=True)
    finally:
        app.extensions["quire.watchers"].stop()  # its polling threads must not outlive the test


# Markup that Python-Markdown would rewrite: a first line of text, and an indented line after a blank one.
_HTML_TEXT = """\
Welcome to <a href="/x">my_site_name</a>, *as written*.

    <p class="indented">Indented four, after a blank line.</p>

<section>
  <p>Version {{ page.version }}</p>
</section>
"""


def test_html_pages_and_posts_get_liquid_but_not_markdown(site: Path, make_site: MakeSite, tmp_path: Path) -> None:
    write(site / "start.html", f"---\ntitle: Start\nversion: 5.9\n---\n{_HTML_TEXT}")
    post(site, "_posts/2024-02-01-in-html.html", "title: In HTML\nversion: 5.9\n", _HTML_TEXT)
    post(site, "_posts/2024-02-02-in-markdown.md", "title: In Markdown\nversion: 5.9\n", _HTML_TEXT)
    client = make_site("permalink: pretty\n", BLOG_CACHE_DIR=str(tmp_path / "cache")).test_client()
    for url in ("/start/", "/2024/02/01/in-html/"):
        body = BeautifulSoup(client.get(url).data, "html.parser").find(class_=["post-body", "page-body"])
        text = str(body)
        assert "Welcome to <a href=\"/x\">my_site_name</a>, *as written*." in text, url  # no <p>, no <em>
        assert body.select_one("p.indented") is not None and body.find("pre") is None, url
        assert "Version 5.9" in body.get_text(), url  # Liquid still applies
    markdown = BeautifulSoup(client.get("/2024/02/02/in-markdown/").data, "html.parser").find(class_="post-body")
    assert markdown.find("em") is not None and markdown.find("pre") is not None  # the same text, as Markdown


def test_a_post_renamed_from_markdown_to_html_is_rendered_again(site: Path, make_site: MakeSite,
                                                                 tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    written = post(site, "_posts/2024-02-01-renamed.md", body="Some *text*.")
    assert "<em>text</em>" in make_site(BLOG_CACHE_DIR=cache).extensions["quire"].snapshot.posts[0].html
    written.rename(written.with_suffix(".html"))  # the same bytes: the render cache must not answer for both
    assert "Some *text*." in make_site(BLOG_CACHE_DIR=cache).extensions["quire"].snapshot.posts[0].html
