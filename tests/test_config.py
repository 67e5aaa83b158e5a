"""Settings: defaults, environment variables, clear errors for bad values, and all of them documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from blog import config, create_app

ROOT = Path(__file__).resolve().parent.parent


def test_defaults() -> None:
    settings = config.load({})
    assert settings["BLOG_POSTS_DIR"] == str(ROOT / "posts")
    assert settings["BLOG_PER_PAGE"] == 10
    assert settings["BLOG_PERMALINK"] == "/posts/:slug/"
    assert settings["BLOG_EXTENSIONS"] == (".md", ".markdown")
    assert settings["BLOG_SHOW_FUTURE"] is False


def test_environment_values_are_parsed() -> None:
    settings = config.load({"BLOG_PER_PAGE": "3", "BLOG_SHOW_FUTURE": "yes", "BLOG_PERMALINK": "pretty",
                            "BLOG_URL": "https://example.com/blog/", "BLOG_EXTENSIONS": ".md, .TEXT",
                            "BLOG_MAX_POST_SIZE": "1MB", "BLOG_POSTS_DIR": "relative/posts"})
    assert settings["BLOG_PER_PAGE"] == 3 and settings["BLOG_SHOW_FUTURE"] is True
    assert settings["BLOG_PERMALINK"] == config.PERMALINK_STYLES["pretty"]
    assert settings["BLOG_URL"] == "https://example.com/blog"
    assert settings["BLOG_EXTENSIONS"] == (".md", ".text")
    assert settings["BLOG_MAX_POST_SIZE"] == 1024**2
    assert settings["BLOG_POSTS_DIR"] == str(Path("relative/posts").resolve())


@pytest.mark.parametrize("name", sorted(config.SITE_PARTS))
@pytest.mark.parametrize("given", ["relative/my posts", "~/site/posts", "/srv/my blog/posts"])
def test_a_site_folder_or_file_is_a_path_on_this_machine(name: str, given: str) -> None:
    # Relative to the working folder, "~" expanded, spaces kept: not a URL path (a BLOG_FEED_PATH-like
    # check once turned "posts" into /posts and refused a folder with a space in its name).
    assert config.load({name: given})[name] == str(Path(given).expanduser().resolve())


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BLOG_PER_PAGE", "ten", "BLOG_PER_PAGE must be a whole number, got 'ten'"),
        ("BLOG_PER_PAGE", "0", "BLOG_PER_PAGE must be at least 1"),
        ("BLOG_URL", "example.com", "BLOG_URL must be an absolute http(s) URL"),
        ("BLOG_TIMEZONE", "Mars/Olympus", "BLOG_TIMEZONE must be an IANA time zone"),
        ("BLOG_SHOW_FUTURE", "maybe", "BLOG_SHOW_FUTURE must be one of"),
        ("BLOG_PERMALINK", "/:year/:bogus/", "unknown placeholder(s) :bogus"),
        ("BLOG_PERMALINK", "/:year/", "must contain :slug or :title"),
        ("BLOG_EXTENSIONS", "md", "BLOG_EXTENSIONS must be a comma-separated list"),
        ("BLOG_WATCH", "sometimes", "BLOG_WATCH must be auto, inotify, poll or off"),
        ("BLOG_MAX_POST_SIZE", "huge", "BLOG_MAX_POST_SIZE must be a size"),
        ("BLOG_RESPONSE_SECONDS", "0", "BLOG_RESPONSE_SECONDS must be more than 0"),
    ],
)
def test_bad_values_give_a_clear_error(name: str, value: str, message: str) -> None:
    with pytest.raises(config.ConfigError, match=None) as raised:
        config.load({name: value})
    assert message in str(raised.value)
    with pytest.raises(SystemExit) as stopped:
        create_app({name: value})
    assert str(stopped.value).startswith("quire: configuration error: ") and message in str(stopped.value)


def test_flask_cli_reports_bad_config_without_traceback() -> None:
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "blog", "list"], cwd=ROOT,
                            env={"BLOG_PER_PAGE": "x", "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == "quire: configuration error: BLOG_PER_PAGE must be a whole number, got 'x'"


def test_gunicorn_config_reports_bad_config_without_traceback() -> None:
    result = subprocess.run([sys.executable, "-c", "import runpy; runpy.run_path('gunicorn.conf.py')"], cwd=ROOT,
                            env={"BLOG_URL": "nope", "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "quire: configuration error: BLOG_URL must be an absolute http(s) URL" in result.stderr


def test_gunicorn_refuses_a_response_budget_its_timeout_would_cut_short() -> None:
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--timeout", "4",
                             "--bind", "127.0.0.1:0", "wsgi:app"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"BLOG_RESPONSE_SECONDS": "3.5", "BLOG_CACHE_DIR": "off", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "quire: configuration error: BLOG_RESPONSE_SECONDS (3.5) must be at least 1 s less than gunicorn's " \
           "timeout (4 s)" in result.stderr


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [setting.name for setting in config.SETTINGS if f"`{setting.name}`" not in readme]
    assert missing == []
