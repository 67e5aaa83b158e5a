"""Front matter: the fast path for simple lines gives exactly what PyYAML gives, and defers everything else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from blog.content.source import SourceError, parse_simple_front_matter, split
from tests.conftest import CORPUS, ROOT, SEED_AS_WRITTEN

SIMPLE = [
    "title: Hello world",
    "title: \"Quoted: with colon\"\ndate: 2013-09-14 20:40:00 -04:00",
    "title: 'single'\ncategories: [a, b, c]\ntags: []",
    "date: 2020-01-02\npublished: false\nweight: 3\nratio: 1.5\nempty:\nnothing: ~\nflag: yes",
    "title: C# tips\nurl: http://example.com/x?y=1",
    "categories: [2019, true, null, word]",
    "# a comment\ntitle: T\n\nlayout: post",
    "title: Ünïcode — dash",
    "title: x\ntitle: y",
]
DEFERRED = [
    "tags:\n  - a\n  - b",
    "title: a # comment",
    "title: \"esc\\\"aped\"",
    "title: 'it''s'",
    "author:\n  name: A",
    "x: &a 1\ny: *a",
    "title: key: value",
    "title: >\n  folded",
    "title: !!str 12",
    "list: [a, [b]]",
    "list: ['q', b]",
    "  indented: 1",
    "on: 1",
]


@pytest.mark.parametrize("raw", SIMPLE)
def test_simple_front_matter_equals_yaml(raw: str) -> None:
    fast = parse_simple_front_matter(raw)
    assert fast is not None
    expected = yaml.safe_load(raw) or {}
    assert fast == {str(key): value for key, value in expected.items()}
    assert [type(value) for value in fast.values()] == [type(value) for value in expected.values()]


@pytest.mark.parametrize("raw", DEFERRED)
def test_other_front_matter_goes_to_yaml(raw: str) -> None:
    assert parse_simple_front_matter(raw) is None


def shipped_front_matters() -> list[Path]:
    return [*sorted((ROOT / "posts").glob("*.md")), *sorted((ROOT / "pages").glob("*.md")), SEED_AS_WRITTEN]


def corpus_front_matters() -> list[Path]:
    return sorted(path for path in CORPUS.rglob("*") if path.is_file()) if CORPUS.is_dir() else []


@pytest.mark.parametrize("files", [
    pytest.param(shipped_front_matters, id="shipped"),
    pytest.param(corpus_front_matters, id="corpus", marks=pytest.mark.skipif(
        not CORPUS.is_dir(), reason="../shared/corpus is not beside the checkout")),
])
def test_fast_path_agrees_with_yaml(files: Callable[[], list[Path]]) -> None:
    checked = 0
    paths = files()
    for path in paths:
        text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
        if not text.startswith("---\n") or "\n---" not in text[3:]:
            continue
        raw = text[4:text.index("\n---", 3) + 1]
        fast = parse_simple_front_matter(raw)
        if fast is None:
            continue
        try:
            expected = yaml.safe_load(raw) or {}
        except yaml.YAMLError:
            continue
        assert fast == {str(key): value for key, value in expected.items()}, path
        checked += 1
    assert checked > min(100, len(paths) // 2)  # most real front matter takes the fast path


def test_split_reports_the_body_line() -> None:
    source = split("---\ntitle: T\ntags: [a]\n---\n\nBody\n")
    assert source.meta == {"title": "T", "tags": ["a"]}
    assert source.body == "\nBody\n" and source.body_line == 5 and source.line_of("tags") == 3


@pytest.mark.parametrize("raw", ["date: 2020-02-30\n", "tags:\n  - a\ndate: 2020-02-30\n", "t: 2020-01-01 25:00:00\n"])
def test_values_yaml_recognises_but_cannot_build_are_source_errors(raw: str) -> None:
    with pytest.raises(SourceError, match="invalid front matter"):
        split(f"---\n{raw}---\nBody\n")


@pytest.mark.parametrize("shape", ["title: {n}\ntags: [a, b]\n", "title: {n}\ntags:\n  - a\n  - b\n"])
def test_posts_share_one_string_per_front_matter_key(shape: str) -> None:
    """By the simple path and by YAML alike: 100,000 posts' keys are a few strings, not 100,000 copies each."""
    from blog.content.source import parse_front_matter

    first, second = (parse_front_matter(shape.format(n=number)) for number in (1, 2))
    assert list(first) == list(second) == ["title", "tags"]
    for one, other in zip(first, second):
        assert one is other
