"""Your own theme: templates and static files that override the default theme's file by file, live."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from bs4 import BeautifulSoup
from flask.testing import FlaskClient

from blog import config
from tests.conftest import AppFactory, WritePost, eventually

THEMING = config.PROJECT_ROOT / "docs" / "theming.md"


def soup(client: FlaskClient, path: str) -> BeautifulSoup:
    response = client.get(path)
    assert response.status_code == 200, path
    return BeautifulSoup(response.data, "html.parser")


def fingerprint(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=6).hexdigest()


def worked_example() -> dict[str, str]:
    """Return the worked example of docs/theming.md: each file it names (`theme/…`:) and the code block after it."""
    text = THEMING.read_text(encoding="utf-8")
    return dict(re.findall(r"`(theme/[^`]+)`:\n\n```[^\n]*\n(.*?)```", text, re.DOTALL))


def test_the_theming_guide_worked_example_works(make_app: AppFactory, write_post: WritePost, posts_dir: Path) -> None:
    files = worked_example()
    assert sorted(files) == ["theme/static/css/custom.css", "theme/templates/_footer.html",
                             "theme/templates/_head_extra.html"]
    for relative, text in files.items():
        path = posts_dir.parent / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    write_post("2024-01-01-hello.md", "Hello.", title="Hello", author="Ada")
    client = make_app().test_client()
    custom = files["theme/static/css/custom.css"].encode()
    for path in ("/", "/posts/hello/", "/archive/", "/missing/"):
        response = client.get(path)
        page = BeautifulSoup(response.data, "html.parser")
        sheets = [link["href"] for link in page.find_all("link", rel="stylesheet")]
        assert f"/static/css/custom.css?v={fingerprint(custom)}" in sheets, path
        assert sheets[0].startswith("/static/css/site.css?v=")  # the default stylesheet still comes first
        assert page.footer.p.text == "Written by hand, by Quire."
        assert page.select_one("header nav a").text == "Home"  # every other partial is the default one
    response = client.get("/static/css/custom.css")
    assert response.status_code == 200 and response.data == custom


def test_every_default_template_says_what_it_draws_and_the_guide_lists_it() -> None:
    guide = THEMING.read_text(encoding="utf-8")
    for template in sorted((config.PROJECT_ROOT / "templates").glob("*.html")):
        assert template.read_text(encoding="utf-8").startswith("{#-"), template.name
        assert f"`{template.name}`" in guide, template.name


def test_a_theme_stylesheet_overrides_the_default_one_and_its_fingerprint(make_app: AppFactory,
                                                                          posts_dir: Path) -> None:
    default = (config.PROJECT_ROOT / "static" / "css" / "site.css").read_bytes()
    client = make_app().test_client()
    href = soup(client, "/").find("link", rel="stylesheet")["href"]
    assert href == f"/static/css/site.css?v={fingerprint(default)}"
    css = posts_dir.parent / "theme" / "static" / "css"
    css.mkdir(parents=True)
    (css / "site.css").write_bytes(b"body { color: rebeccapurple; }\n")
    client = make_app().test_client()
    href = soup(client, "/").find("link", rel="stylesheet")["href"]
    assert href == f"/static/css/site.css?v={fingerprint(b'body { color: rebeccapurple; }' + chr(10).encode())}"
    assert client.get(href).data == b"body { color: rebeccapurple; }\n"
    assert client.get("/static/css/pygments-dark.css").status_code == 200  # not overridden: Quire's


def test_theme_overrides_are_live(make_app: AppFactory, posts_dir: Path) -> None:
    theme = posts_dir.parent / "theme"
    client = make_app().test_client()
    assert "Subscribe" in soup(client, "/").footer.text
    (theme / "templates").mkdir(parents=True)
    (theme / "templates" / "_footer.html").write_text("<footer><p>Fresh footer</p></footer>\n", encoding="utf-8")
    eventually(lambda: soup(client, "/").footer.text.strip() == "Fresh footer")
    (theme / "templates" / "_footer.html").write_text("<footer><p>Edited footer</p></footer>\n", encoding="utf-8")
    eventually(lambda: soup(client, "/").footer.text.strip() == "Edited footer")
    (theme / "static" / "css").mkdir(parents=True)
    (theme / "static" / "css" / "site.css").write_bytes(b"main { margin: 0; }\n")
    eventually(lambda: soup(client, "/").find("link", rel="stylesheet")["href"].endswith(fingerprint(b"main { margin: 0; }\n")))
    (theme / "templates" / "_footer.html").unlink()
    eventually(lambda: "Subscribe" in soup(client, "/").footer.text)


def test_a_theme_static_file_cannot_reach_outside_its_folder(make_app: AppFactory, posts_dir: Path) -> None:
    static = posts_dir.parent / "theme" / "static"
    static.mkdir(parents=True)
    (posts_dir.parent / "secret.txt").write_text("secret", encoding="utf-8")
    (static / "leak.txt").symlink_to(posts_dir.parent / "secret.txt")
    client = make_app().test_client()
    assert client.get("/static/leak.txt").status_code == 404
    assert client.get("/static/../secret.txt").status_code == 404
