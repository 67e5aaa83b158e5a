"""Realistic Jekyll posts for benchmarks: front matter, prose, headings, code, a table, a list, a footnote.

Run from the checkout: ``.venv/bin/python bench/generate.py DIR N``.
"""

from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

CATEGORIES = ("python", "web", "ops", "design", "data", "security", "tools", "books", "travel", "science",
              "career", "news")
TAGS = tuple(f"{word}" for word in (
    "flask", "django", "asyncio", "testing", "pytest", "nginx", "linux", "docker", "git", "sql", "sqlite",
    "postgres", "redis", "http", "css", "html", "javascript", "typescript", "rust", "go", "performance",
    "caching", "security", "privacy", "design", "typography", "writing", "reading", "career", "remote",
    "teaching", "open-source", "markdown", "jekyll", "hugo", "static-sites", "feeds", "search", "unicode",
    "accessibility"))
AUTHORS = ("Ada Lindqvist", "Tomás Ferreira", "Mei Chen", "Olu Adeyemi", "Priya Nair", "Jonas Weber",
           "Sara Costa", "Liam O'Brien")
WORDS = ("the of and to in a is that for it as with was on be by this are from at or an have not which but "
         "server request response cache worker process thread memory latency index page post feed category "
         "tag author archive search query render template markdown python flask gunicorn nginx file folder "
         "change update deploy release test benchmark measure result figure table code function module "
         "package library reader writer editor draft publish schedule time date zone season garden river "
         "mountain city street window light colour paper ink letter word sentence paragraph chapter story").split()


def sentence(rng: random.Random) -> str:
    """Return one sentence of 8 to 20 words."""
    words = rng.choices(WORDS, k=rng.randint(8, 20))
    return " ".join(words).capitalize() + rng.choice((".", ".", ".", "?", "!"))


def headline(rng: random.Random) -> str:
    """Return a title of 3 to 9 whole words."""
    return " ".join(rng.choices(WORDS, k=rng.randint(3, 9))).capitalize()


def paragraph(rng: random.Random) -> str:
    """Return a paragraph of 3 to 6 sentences."""
    return " ".join(sentence(rng) for _ in range(rng.randint(3, 6)))


def body(rng: random.Random) -> str:
    """Return a 4–6 KB Markdown body with the constructs real posts use."""
    parts = [paragraph(rng), paragraph(rng), f"## {sentence(rng)[:-1]}", paragraph(rng)]
    parts.append("```python\ndef handler(request):\n    \"\"\"Answer one request.\"\"\"\n"
                 f"    total = sum(range({rng.randint(10, 999)}))\n    return {{'total': total}}\n```")
    parts.append(paragraph(rng) + "[^1]")
    parts.append("| Setting | Value | Note |\n|---|---:|---|\n" + "\n".join(
        f"| {rng.choice(WORDS)} | {rng.randint(1, 500)} | {rng.choice(WORDS)} {rng.choice(WORDS)} |" for _ in range(4)))
    parts.append("\n".join(f"- {sentence(rng)}" for _ in range(rng.randint(3, 5))))
    parts.append(f"### {sentence(rng)[:-1]}")
    target = rng.randint(4000, 5600)  # drawn once: a fresh draw per paragraph would bias bodies towards the top
    while sum(len(part) for part in parts) < target:
        parts.append(paragraph(rng))
    parts.append(f"[^1]: {sentence(rng)}")
    return "\n\n".join(parts)


def post_text(rng: random.Random, number: int, year: int, month: int, day: int, title: str) -> str:
    """Return the whole text of post ``number``."""
    categories = ", ".join(rng.sample(CATEGORIES, rng.randint(1, 2)))
    tags = ", ".join(rng.sample(TAGS, rng.randint(2, 4)))
    cover = f"cover: https://images.example.com/covers/{number}.jpg\n" if rng.random() < 0.3 else ""
    return (f"---\nlayout: post\ntitle: \"{title.replace(chr(34), '')} ({number})\"\n"
            f"date: {year}-{month:02d}-{day:02d} {rng.randint(6, 22):02d}:{rng.randint(0, 59):02d}:00 +0100\n"
            f"categories: [{categories}]\ntags: [{tags}]\nauthor: {rng.choice(AUTHORS)}\n{cover}---\n\n{body(rng)}\n")


def slug(title: str, number: int) -> str:
    """Return a file-name slug from the title's first words; the number keeps every slug unique."""
    words = re.findall(r"[a-z]+", title.lower())[:5]
    return "-".join([*words, str(number)])


def generate(folder: Path, count: int, seed: int = 2024) -> list[Path]:
    """Write ``count`` posts into ``folder``, the same ones for the same seed, and return their paths."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        year, month, day = 2012 + number % 13, 1 + (number // 13) % 12, 1 + (number // 156) % 28
        title = headline(rng)
        path = folder / f"{year}-{month:02d}-{day:02d}-{slug(title, number)}.md"
        path.write_text(post_text(rng, number, year, month, day, title), encoding="utf-8")
        paths.append(path)
    return paths


def main() -> None:
    """Write N generated posts into DIR."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--seed", type=int, default=2024)
    arguments = parser.parse_args()
    generate(arguments.folder, arguments.count, arguments.seed)


if __name__ == "__main__":
    main()
