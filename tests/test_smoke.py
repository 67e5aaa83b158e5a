"""The site serves its shipped posts."""

from __future__ import annotations

from bs4 import BeautifulSoup

from blog import create_app
from tests.conftest import SEED, SEED_AS_WRITTEN


def test_shipped_site_serves_index_and_seed() -> None:
    app = create_app({"BLOG_WATCH": "off"})
    client = app.test_client()
    index = BeautifulSoup(client.get("/").data, "html.parser")
    titles = [a.text for a in index.select(".card-title a")]
    assert any("HKVAEX" in title for title in titles)
    assert client.get("/posts/binance-hkvaex/").status_code == 200


def test_shipped_seed_keeps_its_front_matter_as_given() -> None:
    front = SEED_AS_WRITTEN.read_text(encoding="utf-8").split("---\n")[1]
    assert SEED.read_text(encoding="utf-8").split("---\n")[1] == front
