"""Render isolation's overhead: one post rendered in a render child (round trip) against in-process, side by side.

    python bench/render_pool_bench.py [--rounds 200]

Prints the median time per post of each way, interleaved in one run so both see the same machine load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blog.content.markup import Renderer  # noqa: E402

POST = ("# A post\n\nSome *text* with a [link](/posts/x/) and `code`.\n\n```python\ndef f(x):\n    return x + 1\n```\n\n"
        + "A paragraph of ordinary prose, long enough to be a post. " * 40 + "\n") * 3


def main() -> None:
    """Time both ways and print their medians and ratio."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    rounds = parser.parse_args().rounds
    isolated, here = Renderer({}), Renderer({}, isolated=False)
    isolated.render(POST, lambda name: None, {})  # fork the child outside the timing
    times: dict[str, list[float]] = {"in-process": [], "render child": []}
    for _ in range(rounds):
        for name, renderer in (("in-process", here), ("render child", isolated)):
            started = time.perf_counter()
            if renderer.isolated:
                renderer.render(POST, lambda name: None, {})
            else:
                renderer.convert(POST, lambda name: None, {})
            times[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:>13}: {value:.2f} ms per post (median of {rounds})")
    print(f"   round trip: {medians['render child'] - medians['in-process']:+.2f} ms "
          f"({medians['render child'] / medians['in-process']:.2f}x), {len(POST):,}-character post")


if __name__ == "__main__":
    main()
