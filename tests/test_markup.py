"""Jekyll's Liquid in post bodies: the tags and filters real posts use render as Jekyll would; the rest stays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup

from blog.content.markup import Renderer, unknown_liquid_tags
from tests.conftest import AppFactory, WritePost

SITE = {"baseurl": "", "url": "https://blog.example.com", "title": "Quire & co", "description": "A blog."}
PAGE = {"title": "Hello <World>", "version": "4.1.0", "zero": 0, "empty": "",
        "filters_linked_to": ["where expression", "find"]}


def liquid(text: str, page: dict[str, Any] | None = None) -> str:
    return Renderer(SITE).liquid(text, lambda name: "/posts/target/" if "target" in name else None,
                                 PAGE if page is None else page)


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ site.baseurl }}/x/", "/x/"),
    ("{{ site.url }}", "https://blog.example.com"),
    ("{{ site.title }}", "Quire &amp; co"),
    ("{{ page.title }}", "Hello &lt;World&gt;"),
    ("{{ page.version }}", "4.1.0"),
    ('{{ "/docs/themes/#assets" | relative_url }}', "/docs/themes/#assets"),
    ("{{ 'docs/' | relative_url }}", "/docs/"),
    ('{{ "/feed.xml" | absolute_url }}', "https://blog.example.com/feed.xml"),
    ('{{ "https://x.org/a" | absolute_url }}', "https://x.org/a"),
    ("{{ page.version | prepend: 'v' | append: '!' }}", "v4.1.0!"),
    ("{{ page.title | slugify }}", "hello-world"),
    ("{{ page.title | downcase }}", "hello &lt;world&gt;"),
    ('{{ "a b" | uri_escape }}', "a%20b"),
    ("{{ page.filters_linked_to | join: ', ' }}", "where expression, find"),
    ("{{ page.filters_linked_to | size }}", "2"),
    ("{{ page.missing | default: 'none' }}", "none"),
    ("{{ page.version | default: 'none' }}", "4.1.0"),
    ("{{ page.zero | default: 'none' }}", "0"),
    ("{{ page.empty | default: 'none' }}", "none"),
    ("{{ page.missing | upcase | default: 'none' }}", "{{ page.missing | upcase | default: 'none' }}"),
    ("{% post_url 2020-01-01-target %}", "/posts/target/"),
    ("{% link _posts/2020-01-01-target.md %}", "/posts/target/"),
])
def test_outputs_tags_and_filters_render_like_jekyll(source: str, expected: str) -> None:
    assert liquid(source) == expected


@pytest.mark.parametrize("source", [
    "{{ site.repository }}/issues",  # a _config.yml value Quire does not have
    "{{ page.title | no_such_filter }}",
    "{{ content }}",
    "{% include nav.html %}",
    "{% include_relative part.md %}",
    "{% if page.title %}yes{% endif %}",
    "{% for item in page.nothing %}{{ item }}{% endfor %}",
    "{% post_url 2020-01-01-nowhere %}",
])
def test_what_quire_cannot_render_stays_visible(source: str) -> None:
    assert liquid(source) == source


def test_assign_split_and_for_build_reference_links_as_in_jekyll_release_notes() -> None:
    source = (
        "Fixed [#1037][] and [#1040][]; see [where][where-expression-filter].\n\n"
        '{% assign issue_numbers = "1037|1040" | split: "|" %}\n'
        "{% for issue in issue_numbers %}\n"
        "[#{{ issue }}]: https://github.com/jekyll/jekyll/issues/{{ issue }}\n"
        "{% endfor %}\n"
        "{% for filter in page.filters_linked_to %}\n"
        "{% assign filter_slug = filter | slugify %}\n"
        "[{{ filter_slug }}-filter]: {{ filter_slug | prepend: '/docs/liquid/filters/#' | relative_url }}\n"
        "{% endfor %}\n"
    )
    html = Renderer(SITE).render(source, lambda name: None, PAGE)
    links = {link.text: link["href"] for link in BeautifulSoup(html, "html.parser").find_all("a")}
    assert links == {"#1037": "https://github.com/jekyll/jekyll/issues/1037",
                     "#1040": "https://github.com/jekyll/jekyll/issues/1040",
                     "where": "/docs/liquid/filters/#where-expression"}
    assert "{%" not in html and "{{" not in html


def test_raw_blocks_keep_liquid_as_written() -> None:
    assert liquid('{% raw %}{{ "/x" | relative_url }} {% assign a = 1 %}{% endraw %}') == \
        '{{ "/x" | relative_url }} {% assign a = 1 %}'


def test_unknown_tags_are_listed_once_outside_raw_blocks() -> None:
    text = ("{% include a.html %}{% include b.html %}{% if x %}{% endif %}"
            "{% raw %}{% nope %}{% endraw %}{% assign a = 1 %}")
    assert unknown_liquid_tags(text) == ["endif", "if", "include"]


def test_posts_render_front_matter_lists_and_check_reports_the_rest(make_app: AppFactory,
                                                                    write_post: WritePost) -> None:
    body = ("Filters: {{ page.filters | join: ' and ' }}.\n\n{% include footer.html %}\n")
    write_post("2020-01-01-a.md", body, title="A", filters=["where", "find"])
    app = make_app()
    html = app.extensions["quire"].snapshot.by_url["/posts/a/"].html
    assert "Filters: where and find." in html and "{% include footer.html %}" in html
    result = app.test_cli_runner().invoke(args=["blog", "check"])
    assert any("[liquid]" in line and "{% include %}" in line for line in result.output.splitlines())


def test_jekyll_config_values_become_site_variables(make_app: AppFactory, write_post: WritePost,
                                                    tmp_path: Path) -> None:
    config = tmp_path / "_config.yml"
    config.write_text("title: Jekyll's title\nurl: https://old.example\nrepository: https://github.com/jekyll/jekyll\n"
                      "authors: [ada, bob]\nversion: 4\ndefaults: {layout: post}\nshow_drafts: true\n",
                      encoding="utf-8")
    write_post("2020-01-01-a.md", "[#1]({{ site.repository }}/issues/1) {{ site.authors | join: '+' }} "
               "v{{ site.version }} {{ site.title }} {{ site.url }} {{ site.defaults }} {{ site.show_drafts }}",
               title="A")
    html = make_app(BLOG_JEKYLL_CONFIG=str(config), BLOG_TITLE="Quire").extensions["quire"].snapshot.posts[0].html
    assert BeautifulSoup(html, "html.parser").find("a")["href"] == "https://github.com/jekyll/jekyll/issues/1"
    # Quire's own settings win over the Jekyll file's; mappings and booleans are not values Quire prints.
    assert "ada+bob v4 Quire https://blog.example.com {{ site.defaults }} {{ site.show_drafts }}" in html


def test_a_broken_jekyll_config_stops_the_app_with_its_file_and_line(make_app: AppFactory, tmp_path: Path) -> None:
    # It decides every post's URL now (permalinks, defaults): serving with it ignored would serve wrong URLs.
    config = tmp_path / "_config.yml"
    config.write_text("title: A\nrepository: [unclosed\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=rf"configuration error: {config}:3: not valid YAML"):
        make_app(BLOG_JEKYLL_CONFIG=str(config))


def test_a_missing_jekyll_config_stops_the_app_with_one_line(make_app: AppFactory, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="BLOG_JEKYLL_CONFIG must name an existing file"):
        make_app(BLOG_JEKYLL_CONFIG=str(tmp_path / "nope.yml"))


@pytest.mark.parametrize(
    ("body", "expected", "absent"),
    [
        ('<center><img src="https://example.com/a.png" title="t"></center>',
         ['<div class="center"><img src="https://example.com/a.png" title="t" loading="lazy" decoding="async" '
          'referrerpolicy="no-referrer"></div>'], ["<center"]),
        ("![alt](/assets/a.png)",
         ['<img alt="alt" src="/assets/a.png" loading="lazy" decoding="async" referrerpolicy="no-referrer">'], []),
        ('<img src="x.png" loading="eager">', ['loading="eager" decoding="async"'], ['loading="lazy"']),
        ("| a | b |\n|:--|--:|\n| 1 | 2 |", ['<th class="align-left">a</th>', '<td class="align-right">2</td>'],
         ["style="]),
        ("```text\n<center><img src=x></center>\n```", ["&lt;center&gt;&lt;img"], ['<div class="center"', "loading="]),
    ],
)
def test_rendered_html_suits_the_theme_and_its_policy(make_app: AppFactory, write_post: WritePost, body: str,
                                                      expected: list[str], absent: list[str]) -> None:
    write_post("2020-01-01-a.md", body, title="A")
    html = make_app().extensions["quire"].snapshot.posts[0].html
    for fragment in expected:
        assert fragment in html
    for fragment in absent:
        assert fragment not in html


def test_code_blocks_highlight_exactly_as_pygments_own_formatter_does() -> None:
    """The formatter that keeps its token tables per style writes what Pygments' own writes, block after block."""
    from markdown.extensions.codehilite import CodeHilite
    from pygments.formatters.html import HtmlFormatter
    from pygments.token import Keyword

    from blog.content import markup

    blocks = [("python", "import os\n\nclass A:\n    x = 'a' + \"b\"  # note\n", {}),
              ("js", "var a = 1;\nfunction f() { return a; }\n", {"hl_lines": [2]}),
              ("text", "plain <text> & more\n", {"linenos": "table", "linenostart": 4}),
              ("python", "def f():\n    pass\n", {"cssclass": "other", "classprefix": "x-"})]
    for lang, source, options in blocks * 2:  # the second time from the kept tables
        ours = CodeHilite(source, lang=lang, pygments_formatter=markup._CodeFormatter, **options).hilite()
        theirs = CodeHilite(source, lang=lang, pygments_formatter=lambda lang_str, **kept: HtmlFormatter(**kept),
                            **options).hilite()
        assert ours == theirs
        assert "<span" in ours or lang == "text"
    first, again = markup._CodeFormatter(), markup._CodeFormatter(classprefix="x-")
    assert first.ttype2class is markup._CodeFormatter().ttype2class  # made once for the style...
    assert again.ttype2class is not first.ttype2class  # ...and once for each class prefix
    assert again.ttype2class[Keyword] == "x-k" and first.ttype2class[Keyword] == "k"
