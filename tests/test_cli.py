"""The ``flask blog`` commands: check reports every problem per file, list prints the posts."""

from __future__ import annotations

import datetime as dt

from tests.conftest import AppFactory, WritePost


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
    assert any("2020-01-04-cover.md" in line and "[missing-cover]" in line for line in lines)
    assert any("2020-01-04-cover.md" in line and "[unknown-layout]" in line for line in lines)
    assert any(line.startswith("2020-01-05-draft.md: info: draft") for line in lines)
    assert any(line.startswith("future.md: info: dated") for line in lines)


def test_list_prints_date_url_and_title(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-one.md", title="One")
    write_post("2021-06-02-two.md", title="Two")
    result = make_app().test_cli_runner().invoke(args=["blog", "list"])
    assert result.exit_code == 0
    assert result.output.splitlines() == ["2021-06-02  /posts/two/  Two", "2020-01-01  /posts/one/  One"]
