"""Hostile post files: YAML bombs and tags, pathological Markdown, odd bytes, huge files, and fuzzed input.

Each is refused (reported as a Problem) or rendered within a bounded time, and the rest of the site serves.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from flask import Flask
from hypothesis import HealthCheck, given, settings, strategies as st

from blog.content import isolation, markup
from blog.content.source import SourceError, decode, parse_front_matter, split
from tests.conftest import AppFactory, WritePost
from tests.slow_inputs import quadratic_raw

BOUND_SECONDS = 10.0  # generous on a shared 2-core machine; the render budget itself is 2 s
GOOD = "2020-01-01-good.md"

YAML_BOMB = """---
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
title: Bomb
---
Body.
"""

REFUSED_FILES = {
    "yaml-bomb": YAML_BOMB,
    "python-object": "---\ntitle: !!python/object/apply:os.system ['touch /tmp/quire-pwned']\n---\nBody.\n",
    "python-name": "---\ntitle: !!python/name:os.system\n---\nBody.\n",
    "yaml-deep-flow": "---\ntitle: " + "[" * 5000 + "]" * 5000 + "\n---\nBody.\n",
    "yaml-deep-block": "---\n" + "".join("  " * i + f"k{i}:\n" for i in range(3000)) + "---\nBody.\n",
    "nul": "---\ntitle: Nul\n---\nBody \0 here.\n",
    "latin-1": "---\ntitle: Caf\xe9\n---\nBody.\n".encode("latin-1"),
    "utf-16": "---\ntitle: Wide\n---\nBody.\n".encode("utf-16"),
    "mixed-encodings": "---\ntitle: Mixed ünïcode\n---\n".encode() + "and latin-1 \xe9\n".encode("latin-1"),
    "unclosed-front-matter": "---\ntitle: Cut\nthis never closes\n",
}


@pytest.mark.parametrize("name", sorted(REFUSED_FILES))
def test_hostile_files_are_refused_and_the_site_serves(make_app: AppFactory, write_post: WritePost,
                                                       name: str) -> None:
    write_post(GOOD, "Fine.", title="Good")
    data = REFUSED_FILES[name]
    write_post(f"2020-01-02-{name}.md", raw=data)
    started = time.monotonic()
    app = make_app()
    assert time.monotonic() - started < BOUND_SECONDS
    store = app.extensions["quire"]
    assert [post.source for post in store.snapshot.posts] == [GOOD]
    problems = store.snapshot.problems[f"2020-01-02-{name}.md"]
    assert [problem.severity for problem in problems] == ["error"]
    assert not os.path.exists("/tmp/quire-pwned")
    client = app.test_client()
    assert client.get("/posts/good/").status_code == 200
    assert client.get(f"/posts/{name}/").status_code == 404


@pytest.mark.parametrize(("name", "data", "title"), [
    ("bom", b"\xef\xbb\xbf---\ntitle: With BOM\n---\nBody.\n", "With BOM"),
    ("crlf", b"---\r\ntitle: Windows\r\n---\r\nBody.\r\n", "Windows"),
    ("cr", b"---\rtitle: Old Mac\r---\rBody.\r", "Old Mac"),
    ("bom-crlf", b"\xef\xbb\xbf---\r\ntitle: Both\r\n---\r\n\r\nBody.\r\n", "Both"),
])
def test_bom_and_line_endings_are_read(make_app: AppFactory, write_post: WritePost, name: str, data: bytes,
                                       title: str) -> None:
    write_post(f"2020-01-02-{name}.md", raw=data)
    page = make_app().test_client().get(f"/posts/{name}/")
    assert page.status_code == 200
    soup = BeautifulSoup(page.data, "html.parser")
    assert soup.find("h1").get_text(strip=True) == title
    assert "Body." in soup.find("article").get_text()


def test_100_mb_file_is_refused_without_reading_it(make_app: AppFactory, write_post: WritePost,
                                                   posts_dir: Path) -> None:
    write_post(GOOD, "Fine.", title="Good")
    huge = posts_dir / "2020-01-02-huge.md"
    with huge.open("wb") as handle:  # sparse: no disk blocks are written
        handle.write(b"---\ntitle: Huge\n---\n")
        handle.truncate(100 * 1024 * 1024)
    started = time.monotonic()
    app = make_app()
    assert time.monotonic() - started < BOUND_SECONDS
    store = app.extensions["quire"]
    [problem] = store.snapshot.problems["2020-01-02-huge.md"]
    assert problem.code == "unreadable" and "104,857,600 bytes" in problem.message
    assert app.test_client().get("/posts/good/").status_code == 200


PATHOLOGICAL_BODIES = {
    "unclosed-emphasis": "*" * 10_000,
    "unclosed-emphasis-words": "*a " * 10_000,
    "unclosed-underscores": "_a " * 10_000,
    "mixed-emphasis": "**_" * 5_000,
    "unclosed-strong": "**" * 10_000 + "x",
    "unclosed-brackets": "[" * 10_000 + "x",
    "unclosed-links": "[a](" * 5_000,
    "unclosed-abbreviations": "*[" * 5_000,
    "unclosed-footnotes": "[^" * 10_000,
    "nested-lists": "\n".join("    " * depth + "- item" for depth in range(300)),
    "nested-ordered-lists": "\n".join("   " * depth + "1. item" for depth in range(300)),
    "nested-quotes": "> " * 2_000 + "deep",
    "nested-quote-lines": "\n".join(">" * depth + " line" for depth in range(1, 500)),
    "backticks": "`" * 20_000,
    "html-comments": "<!--" * 5_000,
    "angle-brackets": "<" * 20_000,
    "entities": "&#" * 20_000,
    "long-line": "word " * 200_000,
    "table-pipes": "|" * 20_000 + "\n" + "|-" * 2_000,
    "attribute-lists": "{: " * 5_000,
    "fences": "```\n" * 5_000,
    "headers": "#" * 10_000 + " x\n" + "=" * 10_000,
    "reference-links": "[a]: <" * 5_000,
    # Pygments advisories: CVE-2021-20270 (SML lexer looped forever on "exception"), CVE-2021-27291 and
    # CVE-2022-40896 (regular expressions with exponential backtracking in several lexers).
    "pygments-sml": "```sml\nexception\n```\n",
    "pygments-archetype": "```archetype\n" + "(" * 5_000 + "\n```\n",
    "pygments-smithy": "```smithy\n" + "$" + "a" * 20_000 + "\n```\n",
    "pygments-sql": "```sql\n" + "'" + "\\" * 20_000 + "\n```\n",
    "pygments-javascript": "```javascript\n" + "/" + "\\/" * 10_000 + "\n```\n",
    "pygments-python": "```python\n" + "'''" + "\\" * 20_000 + "\n```\n",
    "pygments-restructuredtext": "```rst\n" + ".. " * 10_000 + "\n```\n",
    "pygments-ada": "```ada\n" + "a" * 10_000 + "'(\n```\n",
    "pygments-json": "```json\n" + '{"' * 10_000 + "\n```\n",
    "liquid-unclosed-tags": "{% x " * 10_000,
    "liquid-unclosed-outputs": "{{ a " * 10_000,
    "liquid-raw": "{% raw %}" * 10_000,
    "liquid-highlight": "{% highlight python %}" * 5_000,
    "raw-html-attributes": '<a "' * 10_000,
    "liquid-nested-loops": "{% for a in page.tags %}{% for b in page.tags %}{{ b }}{% endfor %}{% endfor %}",
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL_BODIES))
def test_pathological_markdown_renders_in_bounded_time(make_app: AppFactory, write_post: WritePost,
                                                       name: str) -> None:
    write_post(GOOD, "Fine.", title="Good")
    write_post("2020-01-02-evil.md", PATHOLOGICAL_BODIES[name], title="Evil", tags=[f"t{i}" for i in range(300)])
    app = make_app()
    client = app.test_client()
    started = time.monotonic()
    page = client.get("/posts/evil/")
    assert time.monotonic() - started < BOUND_SECONDS
    assert page.status_code == 200
    assert client.get("/posts/good/").status_code == 200
    assert client.get("/").status_code == 200
    soup = BeautifulSoup(page.data, "html.parser")
    fallback = soup.select_one("pre.render-fallback")
    problems = app.extensions["quire"].snapshot.problems.get("2020-01-02-evil.md", ())
    if fallback is not None:  # refused or too slow: reported, and shown as the escaped text
        assert [problem.code for problem in problems if problem.severity == "error"] == ["render"]
        assert fallback.get_text().strip() == PATHOLOGICAL_BODIES[name].strip()


def test_slow_render_is_reported_once_and_served_as_text(make_app: AppFactory, write_post: WritePost) -> None:
    body = "Some <b>text</b> & more.\n\n" + quadratic_raw(4000)  # about 15 s of one C-level regex call
    write_post("2020-01-02-slow.md", body, title="Slow")
    app = make_app(BLOG_RENDER_SECONDS=0.5)
    client = app.test_client()
    jobs = isolation.pool().jobs
    first = client.get("/posts/slow/")
    again = client.get("/posts/slow/?again")
    assert first.status_code == again.status_code == 200
    for response in (first, again):
        fallback = BeautifulSoup(response.data, "html.parser").select_one("pre.render-fallback")
        assert fallback.get_text().strip() == body.strip()
        assert b"<b>text</b>" not in response.data
    assert isolation.pool().jobs == jobs + 1  # not retried on every request
    problems = app.extensions["quire"].snapshot.problems["2020-01-02-slow.md"]
    assert [problem.code for problem in problems] == ["render"]
    assert "longer than 0.5 s" in problems[0].message


def test_a_fixed_post_renders_again(make_app: AppFactory, write_post: WritePost) -> None:
    path = write_post("2020-01-02-evil.md", "[" * 2000, title="Evil")
    app = make_app()
    client = app.test_client()
    assert b"render-fallback" in client.get("/posts/evil/").data
    write_post("2020-01-02-evil.md", "Now *fine*.", title="Evil")
    os.utime(path, ns=(1, 1))
    app.extensions["quire"].refresh(["2020-01-02-evil.md"])
    page = BeautifulSoup(client.get("/posts/evil/").data, "html.parser")
    assert page.select_one("article em").get_text() == "fine"
    assert "2020-01-02-evil.md" not in app.extensions["quire"].snapshot.problems


@pytest.mark.parametrize(("text", "refused"), [
    ("[" * 501, True), ("(" * 501, True), ("[a] " * 5000, False), ("> " * 101 + "x", True),
    (" " * 401 + "x", True), ("    " * 99 + "- x", False), ("plain text", False),
])
def test_pathological_heuristics(text: str, refused: bool) -> None:
    assert (markup.pathological(text) is not None) is refused


# Fuzzing ---------------------------------------------------------------------------------------------

FRONT_MATTER_TEXT = st.text(alphabet=st.sampled_from(list("-:abc &*!|>'\"[]{},#\n\t ?%@`\\0123.") + ["\u00e9", "\ufeff"]),
                            max_size=200)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_decode_and_split_raise_only_source_errors(data: bytes) -> None:
    try:
        source = split(decode(data, 1024))
    except SourceError:
        return
    assert isinstance(source.meta, dict) and isinstance(source.body, str)


@settings(max_examples=300, deadline=None)
@given(FRONT_MATTER_TEXT)
def test_parse_front_matter_gives_a_mapping_or_a_source_error(raw: str) -> None:
    try:
        meta = parse_front_matter(raw)
    except SourceError as error:
        assert error.line is None or error.line >= 1
        return
    assert isinstance(meta, dict) and all(isinstance(key, str) for key in meta)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_split_never_loses_the_body(text: str) -> None:
    try:
        source = split("---\ntitle: x\n---\n" + text)
    except SourceError:
        return
    assert source.body.replace("\n", "") in text.replace("\n", "") or source.body == ""


@pytest.fixture(scope="module")
def fuzz_site(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """Return one app over a folder the fuzzing test rewrites, so each example costs one refresh."""
    from blog import create_app

    posts = tmp_path_factory.mktemp("fuzz") / "posts"
    posts.mkdir()
    (posts / GOOD).write_text("---\ntitle: Good\n---\nFine.\n")
    app = create_app({"BLOG_POSTS_DIR": str(posts), "BLOG_WATCH": "off", "BLOG_URL": "https://x.example"})
    app.config["TESTING"] = True
    return app


POST_FILE = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda front, body: f"---\n{front}\n---\n{body}".encode(), FRONT_MATTER_TEXT, st.text(max_size=200)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=POST_FILE)
def test_store_builds_any_file_without_failing_the_site(fuzz_site: Flask, data: bytes) -> None:
    store = fuzz_site.extensions["quire"]
    path = Path(store.pages.root) / "2020-01-02-fuzz.md"
    path.write_bytes(data)
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    store.refresh(["2020-01-02-fuzz.md"])
    client = fuzz_site.test_client()
    for post in store.snapshot.posts:
        assert client.get(post.url).status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/feed.xml").status_code == 200
    assert client.get("/posts/good/").status_code == 200


def test_check_reports_a_post_that_cannot_render(make_app: AppFactory, write_post: WritePost) -> None:
    write_post(GOOD, "Fine.", title="Good")
    write_post("2020-01-02-evil.md", "[" * 2000, title="Evil")
    result = make_app().test_cli_runner().invoke(args=["blog", "check"])
    assert result.exit_code == 1
    [line] = [line for line in result.output.splitlines() if line.startswith("2020-01-02-evil.md")]
    assert "error" in line and "[render]" in line and "2,000 unclosed '['" in line
