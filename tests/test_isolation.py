"""Renders in child processes: killed at their deadline or memory cap, budgeted per response, kept when late."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from blog.content import isolation
from blog.content.markup import Renderer, RenderError, RenderPending
from tests.conftest import AppFactory, WritePost, eventually
from tests.slow_inputs import (CATASTROPHIC_CODE, MEMORY_HUNGRY, MEMORY_HUNGRY_BIG, quadratic_raw,
                               register_lexer)

SLOW = {"catastrophic-lexer": CATASTROPHIC_CODE, "quadratic-raw": quadratic_raw(4000)}


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[isolation.RenderPool]:
    """Give the test a render pool of its own, forked after the test-only lexer is registered; stop it after."""
    register_lexer()
    fresh = isolation.RenderPool()
    monkeypatch.setattr(isolation, "_pool", fresh)
    yield fresh
    fresh.close()
    assert fresh.children() == []


def gone(pid: int) -> bool:
    """Tell whether ``pid`` is no process at all (killed and reaped: no zombie left)."""
    return not Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize("name", sorted(SLOW))
def test_a_render_past_its_deadline_is_killed_and_replaced(pool: isolation.RenderPool, name: str) -> None:
    renderer = Renderer({}, budget=0.5)
    with pytest.raises(RenderError, match="longer than 0.5 s"):
        renderer.render(SLOW[name], lambda target: None, {})
    assert pool.forked == 1 and pool.children() == []
    assert renderer.render("Still *fine*.", lambda target: None, {}) == "<p>Still <em>fine</em>.</p>"
    assert pool.forked == 2


def test_a_memory_hungry_render_is_capped(pool: isolation.RenderPool) -> None:
    renderer = Renderer({}, budget=30, memory_mb=16)
    with pytest.raises(RenderError, match="more than 16 MB of memory"):
        renderer.render(MEMORY_HUNGRY, lambda target: None, {"big": MEMORY_HUNGRY_BIG})
    (child,) = [pool.forked]
    assert child == 1 and pool.children() == []  # the child that hit the cap exits; the next render gets a new one
    assert renderer.render("ok", lambda target: None, {}) == "<p>ok</p>"


def test_a_render_starved_of_cpu_is_stopped_but_not_held_against_the_post(pool: isolation.RenderPool,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolation, "WALL_FACTOR", 2)
    renderer = Renderer({}, budget=0.5)
    assert renderer.render("warm", lambda target: None, {}) == "<p>warm</p>"
    (child,) = pool.children()
    os.kill(child, signal.SIGSTOP)  # as good as a machine too busy to give it a core: no CPU second passes
    with pytest.raises(RenderError, match="1.5 s of wall time") as raised:
        renderer.render("Just *fine*.", lambda target: None, {})
    assert raised.value.lasting is False  # the deadline counts CPU seconds: this says nothing of the post
    assert gone(child)
    assert renderer.render("Just *fine*.", lambda target: None, {}) == "<p>Just <em>fine</em>.</p>"


def test_a_starved_render_shows_the_text_once_and_the_next_request_renders_the_post(
        pool: isolation.RenderPool, make_app: AppFactory, write_post: WritePost,
        monkeypatch: pytest.MonkeyPatch) -> None:
    write_post("2020-01-01-fine.md", "Just *fine*.", title="Fine")
    app = make_app(BLOG_CACHE_DIR="off")
    render = isolation.RenderPool.render
    busy = [True]

    def starving(self: isolation.RenderPool, *args: object, **options: object) -> str:
        if busy[0]:
            raise isolation.RenderFailed("the render process did not finish within 20.5 s of wall time", lasting=False)
        return render(self, *args, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(isolation.RenderPool, "render", starving)
    client = app.test_client()
    first = client.get("/posts/fine/")
    assert first.status_code == 200 and b"render-fallback" in first.data
    assert first.headers["Cache-Control"] == "no-store"
    busy[0] = False
    second = client.get("/posts/fine/")
    assert b"<em>fine</em>" in second.data and b"render-fallback" not in second.data
    assert app.extensions["quire"].problems() == []


def test_links_are_resolved_with_the_parents_current_posts(pool: isolation.RenderPool) -> None:
    renderer = Renderer({})
    urls = {"a": "/posts/one/"}
    source = "[x]({% post_url a %})"
    assert renderer.render(source, urls.get, {}) == '<p><a href="/posts/one/">x</a></p>'
    urls["a"] = "/posts/moved/"  # the child was forked before: it is told, not left with its copy
    assert renderer.render(source, urls.get, {}) == '<p><a href="/posts/moved/">x</a></p>'


def test_a_caller_that_stops_waiting_is_told_later(pool: isolation.RenderPool) -> None:
    renderer = Renderer({}, budget=60)
    told: list[object] = []
    with pytest.raises(RenderPending):
        renderer.render(quadratic_raw(600), lambda target: None, {}, wait=0.01, late=told.append)
    # The next use of the pool collects it (or waits for a free child, the first being busy).
    eventually(lambda: renderer.render("x", lambda target: None, {}) and told, timeout=60)
    assert isinstance(told[0], str) and "{%endraw x%}" in told[0]


def test_slow_posts_cost_a_response_its_budget_and_finish_in_the_background(
        pool: isolation.RenderPool, make_app: AppFactory, write_post: WritePost, tmp_path: Path) -> None:
    for day in (1, 2, 3):
        write_post(f"2020-01-0{day}-slow-{day}.md", "Intro.\n" + quadratic_raw(600), title=f"Slow {day}")
    app = make_app(BLOG_RENDER_SECONDS=60, BLOG_RESPONSE_SECONDS=0.05, BLOG_CACHE_DIR=str(tmp_path / "cache"))
    client = app.test_client()
    store = app.extensions["quire"]
    for path in ("/", "/feed.xml", "/posts/slow-1/"):
        response = client.get(path)
        assert response.status_code == 200
        assert b"render-fallback" in response.data
        assert response.headers["Cache-Control"] == "no-store"  # never kept: the next reader gets the render
    # Renders finish and are kept on disk though no request waits for them any more: each of the three
    # requests started one (the newest first) before its budget ran out, slow-1's last.
    eventually(lambda: all(store.rendered.get(post) for post in store.snapshot.posts), timeout=60)
    app.config["QUIRE_RENDER_BUDGET"] = None
    page = client.get("/posts/slow-1/")
    assert b"render-fallback" not in page.data and "public" in page.headers["Cache-Control"]
    assert store.problems() == []


def test_a_render_failure_is_logged_once_per_site(pool: isolation.RenderPool, make_app: AppFactory,
                                                  write_post: WritePost, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    write_post("2020-01-01-slow.md", quadratic_raw(4000), title="Slow")
    cache = str(tmp_path / "cache")
    first, second = (make_app(BLOG_RENDER_SECONDS=0.5, BLOG_CACHE_DIR=cache) for _ in range(2))  # two workers
    caplog.set_level(logging.INFO, logger="quire")
    for app in (first, second):
        page = BeautifulSoup(app.test_client().get("/posts/slow/").data, "html.parser")
        assert page.select_one("pre.render-fallback") is not None
        problems = app.extensions["quire"].problems()
        assert [(problem.code, "longer than 0.5 s" in problem.message) for problem in problems] == [("render", True)]
    # The second found the first's mark and never tried; the render cache's filler, a process of its own, may
    # have been the first of all (and logged it there).
    assert pool.jobs <= 1
    assert len([record for record in caplog.records if "longer than 0.5 s" in record.getMessage()]) <= 1


def test_check_reports_what_the_server_found(pool: isolation.RenderPool, make_app: AppFactory,
                                             write_post: WritePost, tmp_path: Path) -> None:
    write_post("2020-01-01-slow.md", quadratic_raw(4000), title="Slow")
    cache = str(tmp_path / "cache")
    server = make_app(BLOG_RENDER_SECONDS=0.5, BLOG_CACHE_DIR=cache)
    server.test_client().get("/posts/slow/")
    result = make_app(BLOG_RENDER_SECONDS=0.5, BLOG_CACHE_DIR=cache).test_cli_runner().invoke(args=["blog", "check"])
    assert result.exit_code == 1
    assert "2020-01-01-slow.md: error: rendering took longer than 0.5 s; shown as plain text [render]" in result.output


def test_a_warmed_child_makes_its_renderer_before_any_request(pool: isolation.RenderPool, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    converted = tmp_path / "converted"
    convert = Renderer.convert

    def recorded(self: Renderer, text: str, *args: object, **kwargs: object) -> str:
        with open(converted, "a", encoding="utf-8") as record:  # the child's, inherited by the fork
            record.write(text.splitlines()[0] + "\n")
        return convert(self, text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Renderer, "convert", recorded)
    renderer = Renderer({})
    pool.warm(renderer.settings)
    assert pool.forked == 1
    # Warmed with no request sent: the sample went through the renderer made from these settings.
    eventually(lambda: converted.exists() and converted.read_text().splitlines() == ["# Warm"])
    pool.warm(renderer.settings)  # there is a child already: no second one
    assert renderer.render("First *post*.", lambda target: None, {}) == "<p>First <em>post</em>.</p>"
    assert pool.forked == 1 and converted.read_text().splitlines() == ["# Warm", "First *post*."]


def test_a_warm_up_that_fails_leaves_a_child_that_renders(pool: isolation.RenderPool) -> None:
    pool.warm(b"not the settings of any renderer")
    assert Renderer({}).render("Still *fine*.", lambda target: None, {}) == "<p>Still <em>fine</em>.</p>"
    assert pool.forked == 1


def test_a_forked_process_makes_its_own_pool(pool: isolation.RenderPool) -> None:
    renderer = Renderer({})
    assert renderer.render("a", lambda target: None, {}) == "<p>a</p>"
    parents_child = pool.children()[0]
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(reading)
            ok = renderer.render("b", lambda target: None, {}) == "<p>b</p>" and pool.children() != [parents_child]
            pool.close()
            os.write(writing, b"ok" if ok else b"no")
            code = 0
        finally:
            os._exit(code)
    os.close(writing)
    with open(reading, "rb") as pipe:
        assert pipe.read() == b"ok"
    os.waitpid(pid, 0)
    assert pool.children() == [parents_child] and not gone(parents_child)
    assert renderer.render("c", lambda target: None, {}) == "<p>c</p>"


# Through a real gunicorn ---------------------------------------------------------------------------------

KILLERS = {"catastrophic": CATASTROPHIC_CODE, "quadratic": quadratic_raw(16000), "hungry": MEMORY_HUNGRY}
SLUGGISH = 12  # posts that each render in a fraction of a second: a feed of them would take longer than its budget


def process_group(pgid: int) -> list[int]:
    """Return the pids of the processes still in a process group."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_gunicorn_serves_posts_that_never_finish_rendering(posts_dir: Path, tmp_path: Path,
                                                            write_post: WritePost) -> None:
    import signal
    import subprocess
    import sys

    from tests.test_gunicorn import ROOT, fetch, free_port

    write_post("2020-01-01-good.md", "Plain *good* text.", title="Good")
    for day in range(SLUGGISH):
        write_post(f"2020-02-{day + 1:02d}-sluggish-{day}.md", "Intro.\n" + quadratic_raw(400), title=f"Sluggish {day}")
    for day, (name, body) in enumerate(sorted(KILLERS.items()), start=1):
        extra = {"big": MEMORY_HUNGRY_BIG} if name == "hungry" else {}
        write_post(f"2020-03-0{day}-{name}.md", body, title=name.title(), **extra)
    port = free_port()
    env = {**os.environ, "BLOG_POSTS_DIR": str(posts_dir), "BLOG_PAGES_DIR": str(tmp_path / "pages"),
           "BLOG_CACHE_DIR": str(tmp_path / "cache"), "BLOG_RENDER_MEMORY_MB": "16", "PORT": str(port),
           "WEB_CONCURRENCY": "2"}
    # gunicorn's timeout lowered from 30 to 10 s: a render holding a worker that long would be seen killed.
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--timeout", "10", "tests.slow_wsgi:app"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: fetch(base + "/healthz")[0] == 200, timeout=30)
        for _ in range(4):  # each worker meets each post at least once, most likely
            for name in KILLERS:
                status, body = fetch(base + f"/posts/{name}/", timeout=20)
                assert status == 200
                fallback = BeautifulSoup(body, "html.parser").select_one("pre.render-fallback")
                assert fallback is not None and fallback.get_text().strip() == KILLERS[name].strip()
            for path in ("/", "/feed.xml", "/page/2/", "/posts/good/"):
                assert fetch(base + path, timeout=20)[0] == 200
        # The sluggish posts were rendered once each, while the feed and index answered without them.
        eventually(lambda: fetch(base + "/feed.xml", timeout=20)[1].count("render-fallback") == len(KILLERS),
                   timeout=120, interval=0.5)
        health = [fetch(base + "/healthz")[1] for _ in range(6)]
        assert all('"errors":3' in body.replace(" ", "") for body in health), health
    finally:
        os.kill(process.pid, signal.SIGTERM)  # the master only: its workers stop, and their render children
        _, errors = process.communicate(timeout=30)
    log = errors.decode()
    assert "WORKER TIMEOUT" not in log and "Traceback" not in log, log
    for message in ("longer than 2 s", "more than 16 MB of memory"):
        assert message in log, log
    render_lines = [line for line in log.splitlines() if "[render]" in line]
    assert sorted(line.split("quire.content: ")[1].split(":")[0] for line in render_lines) == sorted(
        f"2020-03-0{day}-{name}.md" for day, name in enumerate(sorted(KILLERS), start=1))  # once per site
    eventually(lambda: process_group(process.pid) == [], timeout=10)  # no render process outlives its worker

    started = [sys.executable, "-m", "flask", "--app", "wsgi", "blog", "check"]
    check = subprocess.run(started, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 1
    assert sorted(line.split(":")[0] for line in check.stdout.splitlines() if line.endswith("[render]")) == sorted(
        f"2020-03-0{day}-{name}.md" for day, name in enumerate(sorted(KILLERS), start=1))
