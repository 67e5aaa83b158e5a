"""The first load on several cores: same posts, problems and pages as one process, whatever a child does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from blog.content import parallel
from tests.conftest import WritePost

ROOT = Path(__file__).resolve().parent.parent


def run(code: str, *args: str) -> tuple[str, str]:
    """Run ``code`` in a fresh interpreter (no threads of this test session, so forking is allowed)."""
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


MAP = """
import json, os, signal, sys
from blog.content import parallel
parallel.MIN_ITEMS_PER_PROCESS = 1
parent = os.getpid()
if sys.argv[1] == "sigchld-ignored":  # children are reaped by the kernel, so waitpid finds none
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
def square(item):
    if sys.argv[1] == "fail" and os.getpid() != parent:
        raise RuntimeError("a child that breaks")
    if sys.argv[1] == "parent-fails" and os.getpid() == parent:
        raise RuntimeError("the parent breaks")
    return item * item, os.getpid()
if sys.argv[1] == "parent-fails":
    try:
        parallel.forked_map(square, list(range(5000)), processes=3)
    except RuntimeError:
        pass
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        print(json.dumps({"children left": 0}))
    else:
        print(json.dumps({"children left": "some"}))
    sys.exit()
results = parallel.forked_map(square, list(range(50)), processes=3)
print(json.dumps({"values": [value for value, _ in results], "pids": sorted({pid for _, pid in results}),
                  "parent": parent}))
"""


@pytest.mark.parametrize("mode", ["ok", "sigchld-ignored"])
def test_forked_map_computes_slices_in_children_in_order(mode: str) -> None:
    found = json.loads(run(MAP, mode)[0])
    assert found["values"] == [item * item for item in range(50)]
    assert len(found["pids"]) == 3 and found["parent"] in found["pids"]


def test_a_failing_child_is_redone_in_the_parent() -> None:
    found = json.loads(run(MAP, "fail")[0])
    assert found["values"] == [item * item for item in range(50)]
    assert found["pids"] == [found["parent"]]


def test_children_are_stopped_and_reaped_when_the_parent_fails() -> None:
    assert json.loads(run(MAP, "parent-fails")[0]) == {"children left": 0}


def test_forked_map_stays_in_process_with_threads_or_few_items() -> None:
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    here = os.getpid()
    try:  # enough items for four processes, but another thread is running
        assert set(parallel.forked_map(lambda item: os.getpid(), list(range(5000)), processes=4)) == {here}
    finally:
        stop.set()
        helper.join()
    if threading.active_count() == 1:  # pytest's own threads aside: too few items to be worth a fork
        assert set(parallel.forked_map(lambda item: os.getpid(), [1, 2, 3], processes=4)) == {here}
    assert parallel.forked_map(lambda item: item, [1, 2, 3], processes=4) == [1, 2, 3]


CALL = """
import json, os, sys
from blog.content import parallel
parent = os.getpid()
def pid():
    if sys.argv[1] == "fail" and os.getpid() != parent:
        os._exit(3)
    return os.getpid()
result = parallel.forked_call(pid)
print(json.dumps({"pid": result(), "parent": parent}))
"""


@pytest.mark.parametrize("mode", ["ok", "fail"])
def test_forked_call_computes_in_a_child_or_else_here(mode: str) -> None:
    found = json.loads(run(CALL, mode)[0])
    assert (found["pid"] == found["parent"]) == (mode == "fail")


LOAD = """
import json, sys
from blog import create_app
from blog.content import parallel
spawned = []
if sys.argv[2] == "parallel":
    parallel.MIN_ITEMS_PER_PROCESS = 1
    parallel.usable_cpus = lambda: 3
    spawn = parallel._spawn
    parallel._spawn = lambda *args: spawned.append(1) or spawn(*args)
app = create_app({"BLOG_POSTS_DIR": sys.argv[1], "BLOG_WATCH": "off", "BLOG_URL": "https://blog.example.com"})
store = app.extensions["quire"]
client = app.test_client()
print(json.dumps({
    "posts": [[post.url, post.title, post.date.isoformat(), [term.slug for term in post.tags]]
              for post in store.snapshot.posts],
    "problems": sorted(str(problem) for problem in store.problems()),
    "pages": {post.url: client.get(post.url).get_data(as_text=True).count("<p>") for post in store.snapshot.posts},
    "index": client.get("/").status_code,
}))
print(len(spawned), file=sys.stderr)
"""


def test_a_parallel_load_equals_a_serial_one(posts_dir: Path, write_post: WritePost) -> None:
    for day in range(1, 29):
        write_post(f"2020-02-{day:02d}-post-{day}.md", f"Paragraph one of {day}.\n\nParagraph two.",
                   title=f"Post {day}", tags=["a", f"t{day % 3}"])
    write_post("2020-03-01-broken.md", raw="---\ntitle: [unclosed\n---\nBody\n")
    write_post("2020-03-02-impossible.md", raw="---\ntitle: X\ndate: 2020-02-30\n---\nBody\n")
    write_post("2020-03-03-deep.md", raw="---\ntitle: Deep\n---\n" + "[" * 5000 + "\n")
    write_post("nested/2020-03-04-liquid.md", raw="---\ntitle: Liquid\n---\n{% gist 123 %}\n")
    serial, serial_log = run(LOAD, str(posts_dir), "serial")
    forked, forked_log = run(LOAD, str(posts_dir), "parallel")
    assert (serial_log.split()[-1], forked_log.split()[-1]) == ("0", "2")  # two children forked, or none
    serial, forked = json.loads(serial), json.loads(forked)
    assert forked == serial
    assert len(serial["posts"]) == 30 and serial["index"] == 200
    assert any("2020-03-02-impossible.md:3: error" in problem for problem in serial["problems"])
    assert any("2020-03-03-deep.md: error" in problem and "not rendered" in problem for problem in serial["problems"])
    assert all(count >= 1 for count in serial["pages"].values())
