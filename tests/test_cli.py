"""The ``flask blog`` commands: new writes posts, check lints the site (text and JSON), list prints the posts."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from flask.cli import ScriptInfo

import blog
from blog import lint, page_cache
from blog.cli import blog_cli
from blog.content import PostStore
from tests.conftest import SEED_AS_WRITTEN, AppFactory, WritePost

ROOT = Path(__file__).resolve().parent.parent


def test_check_clean_site_exits_zero(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-fine.md", title="Fine")
    result = make_app().test_cli_runner().invoke(args=["blog", "check"])
    assert result.exit_code == 0, result.output
    assert "1 post published, 0 errors, 0 warnings" in result.output


def test_check_lists_every_problem_per_file_and_fails_on_errors(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-broken.md", raw="---\ntitle: ok\ndate: [oops\n---\n")
    write_post("undated.md", title="Undated")
    write_post("2020-01-02-a.md", title="A", permalink="/same/")
    write_post("2020-01-03-b.md", title="B", permalink="/same/")
    write_post("2020-01-04-cover.md", title="C", cover="/assets/missing.png", layout="fancy")
    write_post("2020-01-05-draft.md", title="D", published=False)
    write_post("future.md", title="F", date=(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=9)).isoformat())
    result = make_app().test_cli_runner().invoke(args=["blog", "check"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(line.startswith("2020-01-01-broken.md:4:1: error: invalid front matter") and
               "while parsing a flow sequence that starts on line 3" in line for line in lines)
    assert any(line.startswith("undated.md: warning:") and "[undated]" in line for line in lines)
    assert any(line.startswith("2020-01-03-b.md: error: URL /same/") for line in lines)
    assert any(line.startswith("2020-01-02-a.md: warning: URL /same/") for line in lines)
    assert any(line.startswith("2020-01-04-cover.md:3: warning: cover") and "[missing-cover]" in line for line in lines)
    assert any(line.startswith("2020-01-04-cover.md:4: warning: layout") and "[unknown-layout]" in line
               for line in lines)
    assert any(line.startswith("2020-01-05-draft.md: info: draft") for line in lines)
    assert any(line.startswith("future.md: info: dated") for line in lines)


def test_list_prints_date_url_and_title(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-one.md", title="One")
    write_post("2021-06-02-two.md", title="Two")
    result = make_app().test_cli_runner().invoke(args=["blog", "list"])
    assert result.exit_code == 0
    assert result.output.splitlines() == ["2021-06-02  /posts/two/  Two", "2020-01-01  /posts/one/  One"]


# new ---------------------------------------------------------------------------------------------------------


def test_new_writes_a_dated_post_with_front_matter(make_app: AppFactory, posts_dir: Path) -> None:
    app = make_app()
    result = app.test_cli_runner().invoke(
        args=["blog", "new", "Hello, World: Again!", "--category", "Web Dev", "--tag", "python", "--tag", "flask",
              "--publish"])
    assert result.exit_code == 0, result.output
    today = dt.datetime.now(dt.timezone.utc).date()
    written = posts_dir / f"{today:%Y-%m-%d}-hello-world-again.md"
    assert result.output.splitlines() == [str(written), "https://blog.example.com/posts/hello-world-again/"]
    meta = yaml.safe_load(written.read_text(encoding="utf-8").split("---\n")[1])
    assert meta["title"] == "Hello, World: Again!"
    assert meta["categories"] == ["Web Dev"] and meta["tags"] == ["python", "flask"]
    assert "published" not in meta
    assert app.test_client().get("/posts/hello-world-again/").status_code == 200


def test_new_draft_is_unpublished_and_names_its_preview_url(make_app: AppFactory, posts_dir: Path) -> None:
    app = make_app(BLOG_PERMALINK="date", BLOG_PREVIEW_TOKEN="s3cret-token-for-tests")
    result = app.test_cli_runner().invoke(args=["blog", "new", "Work in progress", "--draft"])
    assert result.exit_code == 0, result.output
    path = Path(result.output.splitlines()[0])
    assert path.parent == posts_dir
    assert yaml.safe_load(path.read_text(encoding="utf-8").split("---\n")[1])["published"] is False
    today = dt.datetime.now(dt.timezone.utc).date()
    url = f"https://blog.example.com/{today:%Y/%m/%d}/work-in-progress.html"
    assert result.output.splitlines()[1].startswith(url + " (a draft")
    assert result.output.splitlines()[3] == f"preview: {url}?preview=s3cret-token-for-tests"
    assert app.test_client().get(url.removeprefix("https://blog.example.com")).status_code == 404


@pytest.mark.parametrize("title", ["", "   ", "!!!"])
def test_new_refuses_titles_without_a_slug(make_app: AppFactory, posts_dir: Path, title: str) -> None:
    result = make_app().test_cli_runner().invoke(args=["blog", "new", title])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot make a file name from the title")
    assert list(posts_dir.iterdir()) == []


def test_new_refuses_to_overwrite(make_app: AppFactory, posts_dir: Path) -> None:
    runner = make_app().test_cli_runner()
    first = runner.invoke(args=["blog", "new", "Same title"])
    path = Path(first.output.splitlines()[0])
    path.write_text("---\ntitle: Mine\n---\nkeep me\n", encoding="utf-8")
    second = runner.invoke(args=["blog", "new", "Same title"])
    assert second.exit_code == 1
    assert second.output.strip() == f"Error: {path} already exists; pick another title or edit that file"
    assert path.read_text(encoding="utf-8").endswith("keep me\n")


def test_python_dash_m_blog_runs_the_same_commands(posts_dir: Path) -> None:
    env = {"PATH": os.environ["PATH"], "BLOG_POSTS_DIR": str(posts_dir), "BLOG_WATCH": "off", "BLOG_CACHE_DIR": "off"}
    made = subprocess.run([sys.executable, "-m", "blog", "new", "From the shell", "--publish"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert Path(made.stdout.splitlines()[0]).is_file()
    listed = subprocess.run([sys.executable, "-m", "blog", "list"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert listed.returncode == 0 and listed.stdout.split()[1:] == ["/posts/from-the-shell/", "From", "the", "shell"]


# check --------------------------------------------------------------------------------------------------------

MOJIBAKE = "It reached the Pearl of the Orient\u00e2\u20ac\u201dHong Kong, caf\u00c3\u00a9 included."


def _check_json(make_app: AppFactory, *args: str) -> tuple[int, dict]:
    result = make_app().test_cli_runner().invoke(args=["blog", "check", "--format", "json", *args])
    return result.exit_code, json.loads(result.stdout)


def test_check_json_follows_the_documented_schema(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-broken.md", raw="---\ntitle: ok\ndate: [oops\n---\n")
    write_post("2020-01-02-fine.md", title="Fine")
    write_post("2020-01-03-garbled.md", MOJIBAKE, title="Garbled")
    code, report = _check_json(make_app)
    assert code == 1
    assert set(report) == {"version", "problems", "summary"} and report["version"] == 1
    for problem in report["problems"]:
        assert set(problem) == {"file", "line", "column", "severity", "code", "message"}
        assert problem["severity"] in {"error", "warning", "info"}
        assert isinstance(problem["line"], (int, type(None))) and isinstance(problem["column"], (int, type(None)))
    broken = next(problem for problem in report["problems"] if problem["file"] == "2020-01-01-broken.md")
    assert (broken["line"], broken["column"], broken["severity"], broken["code"]) == (4, 1, "error", "unreadable")
    garbled = next(problem for problem in report["problems"] if problem["code"] == "mojibake")
    assert (garbled["file"], garbled["line"], garbled["column"]) == ("2020-01-03-garbled.md", 5, 35)
    assert report["summary"] == {"files": 3, "posts": 2, "clean_files": 1, "errors": 1, "warnings": 1, "infos": 0}


def test_check_json_of_a_clean_site_exits_zero(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-02-fine.md", "See [the other](/posts/other/) and [home](/).", title="Fine")
    write_post("2020-01-03-other.md", title="Other")
    assert _check_json(make_app) == (0, {
        "version": 1, "problems": [],
        "summary": {"files": 2, "posts": 2, "clean_files": 2, "errors": 0, "warnings": 0, "infos": 0}})


def test_check_finds_the_seed_posts_mojibake() -> None:
    text = SEED_AS_WRITTEN.read_text(encoding="utf-8")
    lines = text.split("\n")
    found = lint.mojibake_problems("seed.md", text)
    assert [(problem.line, problem.code) for problem in found] == [(9, "mojibake")]
    assert lines[8][found[0].column - 1:].startswith("\u00e2\u20ac\u201dHong Kong")


def test_check_fix_repairs_mojibake_atomically_with_a_backup(make_app: AppFactory, write_post: WritePost,
                                                             posts_dir: Path) -> None:
    path = write_post("2020-01-03-garbled.md", raw=f"---\r\ntitle: Garbled\r\n---\r\n{MOJIBAKE}\r\nFine line.\r\n")
    original = path.read_bytes()
    app = make_app()
    result = app.test_cli_runner().invoke(args=["blog", "check", "--fix"])
    assert result.exit_code == 0, result.output
    assert "2020-01-03-garbled.md: fixed mojibake on 1 line (original kept as 2020-01-03-garbled.md~)" in result.output
    assert "[mojibake]" not in result.output
    assert path.read_bytes() == original.replace(
        MOJIBAKE.encode(), "It reached the Pearl of the Orient\u2014Hong Kong, caf\u00e9 included.".encode())
    assert (posts_dir / "2020-01-03-garbled.md~").read_bytes() == original
    assert sorted(entry.name for entry in posts_dir.iterdir()) == ["2020-01-03-garbled.md", "2020-01-03-garbled.md~"]
    assert len(app.extensions["quire"].snapshot.posts) == 1  # the backup is not a second post
    again = make_app().test_cli_runner().invoke(args=["blog", "check", "--fix"])
    assert again.exit_code == 0 and "fixed" not in again.output


@pytest.mark.parametrize(
    ("body", "code", "target"),
    [
        ("[gone](/posts/nowhere/)", "broken-link", "/posts/nowhere/"),
        ("![pic](/assets/missing.png)", "broken-image", "/assets/missing.png"),
        ('<img src="/static/css/nope.css">', "broken-image", "/static/css/nope.css"),
        ("[tag](/tag/unknown/)", "broken-link", "/tag/unknown/"),
        ("[abs](https://blog.example.com/posts/absent/)", "broken-link", "https://blog.example.com/posts/absent/"),
    ],
)
def test_check_reports_internal_links_that_point_nowhere(make_app: AppFactory, write_post: WritePost,
                                                         body: str, code: str, target: str) -> None:
    write_post("2020-01-03-links.md", f"Intro.\n\nSee {body} now.", title="Links", tags=["known"])
    code_, report = _check_json(make_app)
    assert code_ == 1
    assert [(p["file"], p["line"], p["code"], p["message"]) for p in report["problems"]] == [
        ("2020-01-03-links.md", 9, code, f"{code.split('-')[1]} to {target} points nowhere on this site")]


@pytest.mark.parametrize(
    "body",
    ["[post](/posts/other/)", "[slashless](/posts/other)", "[css](/static/css/site.css?v=1)", "[home](/)",
     "[tag](/tag/known/)", "[feed](/feed.xml)", "[anchor](#top)", "[external](https://example.org/x)",
     "[mail](mailto:a@example.org)", "[page](/page/1/)", "[search](/search?q=x)"],
)
def test_check_accepts_links_that_resolve(make_app: AppFactory, write_post: WritePost, body: str) -> None:
    write_post("2020-01-03-links.md", f"See {body}.", title="Links", tags=["known"])
    write_post("2020-01-04-other.md", title="Other")
    assert _check_json(make_app)[1]["problems"] == []


def test_check_warns_about_very_large_files(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-03-big.md", "word " * 6_000, title="Big")
    write_post("2020-01-04-huge.md", "word " * 30_000, title="Huge")
    result = make_app(BLOG_MAX_POST_SIZE="100KB").test_cli_runner().invoke(args=["blog", "check", "--format", "json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 1
    assert [(p["file"], p["code"], p["severity"]) for p in report["problems"]] == [
        ("2020-01-03-big.md", "large-file", "warning"), ("2020-01-04-huge.md", "unreadable", "error")]


def test_check_follows_reference_links_but_not_footnotes(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-03-refs.md", "See [gone][r] and a note[^1].\n\n[r]: /posts/nowhere/\n\n[^1]: A note.",
               title="Refs")
    code, report = _check_json(make_app)
    assert code == 1
    assert [(p["line"], p["code"], p["message"]) for p in report["problems"]] == [
        (7, "broken-link", "link to /posts/nowhere/ points nowhere on this site")]


def test_check_points_at_the_first_unsupported_liquid_tag_and_a_link_tags_path(make_app: AppFactory,
                                                                              write_post: WritePost) -> None:
    write_post("2020-01-03-liquid.md", "Intro.\n\nText {% raw %}{% ok %}{% endraw %} and {% include nav.html %}.\n\n"
               "  {% if x %}y{% endif %} See [h]({% link _docs/history.md %}#v1).", title="Liquid")
    code, report = _check_json(make_app)
    assert code == 1
    found = {p["code"]: (p["line"], p["column"], p["message"]) for p in report["problems"]}
    assert found["liquid"] == (
        7, 40, "Liquid tags not supported, shown as they are: {% endif %}, {% if %}, {% include %}")
    assert found["broken-link"] == (9, 42, "link to /_docs/history.md#v1 points nowhere on this site")


def test_new_warns_when_its_url_is_taken(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-same-title.md", title="Same title")
    result = make_app().test_cli_runner().invoke(args=["blog", "new", "Same title", "--publish"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1] == "https://blog.example.com/posts/same-title/"
    assert "error: URL /posts/same-title/ is also used by 2020-01-01-same-title.md" in result.stderr


def test_check_reports_a_post_that_fails_to_render_while_checking_its_links(make_app: AppFactory,
                                                                           write_post: WritePost) -> None:
    write_post("2020-01-03-hostile.md", "[" * 600 + " see [home](/).", title="Hostile")
    code, report = _check_json(make_app)
    assert code == 1
    assert [(p["file"], p["severity"], p["code"]) for p in report["problems"]] == [
        ("2020-01-03-hostile.md", "error", "render")]


FORGED = "2020-01-01-a.md: error: forged [x]\n2020-01-02-b\u2028\x1b[2Jc.md"


def test_control_characters_in_file_names_forge_no_lines(make_app: AppFactory, write_post: WritePost) -> None:
    write_post(FORGED, raw="---\ntitle: ok\ndate: [oops\n---\n")
    result = make_app().test_cli_runner().invoke(args=["blog", "check"])
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if ": error: " in line]
    assert len(problems) == 1, result.output
    assert problems[0].startswith("2020-01-01-a.md: error: forged [x]\\n2020-01-02-b\\u2028\\x1b[2Jc.md:4:1: error:")


def test_control_characters_in_log_messages_forge_no_lines() -> None:
    import logging

    from blog.logs import Formatter

    record = logging.LogRecord("quire.content", logging.WARNING, __file__, 1, "%s: %s", (FORGED, "bad\r\nline"), None)
    line = Formatter().format(record)
    assert "\n" not in line and "\r" not in line and "\u2028" not in line and "\x1b" not in line
    assert line.endswith("] [WARNING] quire.content: " + FORGED.replace("\n", "\\n").replace("\u2028", "\\u2028")
                         .replace("\x1b", "\\x1b") + ": bad\\r\\nline")


def test_check_fix_leaves_a_file_saved_while_it_runs(make_app: AppFactory, write_post: WritePost, posts_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import ftfy

    path = write_post("2020-01-03-garbled.md", raw=f"---\ntitle: Garbled\n---\n{MOJIBAKE}\n")
    saved = b"---\ntitle: Garbled\n---\nThe author's new version, saved by rename.\n"
    app = make_app()
    real_fix = ftfy.fix_encoding

    def fix_while_the_author_saves(text: str) -> str:
        temporary = posts_dir / ".2020-01-03-garbled.md.swp"
        temporary.write_bytes(saved)
        os.replace(temporary, path)  # an editor's save, between --fix reading the file and replacing it
        return real_fix(text)

    monkeypatch.setattr(ftfy, "fix_encoding", fix_while_the_author_saves)
    result = app.test_cli_runner().invoke(args=["blog", "check", "--fix"])
    assert path.read_bytes() == saved
    assert "2020-01-03-garbled.md: changed while being fixed; left as it is" in result.output
    assert sorted(entry.name for entry in posts_dir.iterdir()) == ["2020-01-03-garbled.md"]


def test_check_fix_never_overwrites_a_backup_it_did_not_write(make_app: AppFactory, write_post: WritePost,
                                                              posts_dir: Path) -> None:
    path = write_post("2020-01-03-garbled.md", raw=f"---\ntitle: Garbled\n---\n{MOJIBAKE}\n")
    original = path.read_bytes()
    (posts_dir / "2020-01-03-garbled.md~").write_bytes(b"The author's own backup.")
    (posts_dir / "2020-01-03-garbled.md.~1~").write_bytes(b"An older numbered backup.")
    result = make_app().test_cli_runner().invoke(args=["blog", "check", "--fix"])
    assert result.exit_code == 0, result.output
    assert "(original kept as 2020-01-03-garbled.md.~2~)" in result.output
    assert (posts_dir / "2020-01-03-garbled.md~").read_bytes() == b"The author's own backup."
    assert (posts_dir / "2020-01-03-garbled.md.~1~").read_bytes() == b"An older numbered backup."
    assert (posts_dir / "2020-01-03-garbled.md.~2~").read_bytes() == original
    assert "Pearl of the Orient\u2014Hong Kong" in path.read_text(encoding="utf-8")


def test_a_command_starts_no_background_filler_and_a_server_does(make_app: AppFactory, write_post: WritePost,
                                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_post("2020-01-01-fine.md", title="Fine")
    started: list[str] = []

    def detach(work: object, niceness: int, *, quiet: bool = False) -> bool:
        started.append(f"nice {niceness}")
        return True

    monkeypatch.setattr(blog, "detach", detach)
    cache = str(tmp_path / "cache")
    info = ScriptInfo(create_app=lambda: make_app(BLOG_CACHE_DIR=cache))  # as `flask --app wsgi` loads it
    with pytest.raises(SystemExit) as ended:
        blog_cli.main(args=["check"], prog_name="flask blog", obj=info)
    assert ended.value.code == 0 and started == []
    make_app(BLOG_CACHE_DIR=cache)  # as gunicorn loads it: the page cache read ahead, then every cache filled in turn
    assert started == ["nice 0", "nice 19"]


def test_one_filler_fills_each_cache_in_turn_after_the_reading_ahead(
        make_app: AppFactory, write_post: WritePost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A failing step is logged and leaves the later ones to run."""
    write_post("2020-01-01-fine.md", title="Fine")
    done: list[str] = []

    def fill_render_cache(self: PostStore, server: int) -> None:
        done.append(f"bodies of {self.pages.name or 'posts'} while {server} runs")
        if self.pages.name != "pages":
            raise OSError("the disk went away")

    monkeypatch.setattr(blog, "detach", lambda work, niceness, quiet=False: done.append(f"detached at {niceness}")
                        or work() or True)  # here and now, as the detached process would
    monkeypatch.setattr(page_cache.PageCache, "read_ahead", lambda self: done.append("read ahead"))
    monkeypatch.setattr(PostStore, "fill_render_cache", fill_render_cache)
    monkeypatch.setattr(page_cache.PageCache, "fill",
                        lambda self, server, cached, lock_folder: done.append(f"pages while {server} runs"))
    make_app(BLOG_CACHE_DIR=str(tmp_path / "cache"))
    server = os.getpid()
    assert done == ["detached at 0", "read ahead", "detached at 19", f"bodies of posts while {server} runs",
                    f"bodies of pages while {server} runs", f"pages while {server} runs"]
    assert "background filler: failed filling the render cache" in caplog.text
