"""Per-sample latency of the code reward, serial and with 4 concurrent workers (as GRPO scores code).

Usage: ``python tests/security/latency.py [N] [--torch]`` (``--torch`` imports torch first, so the parent
is trainer-sized). Not collected by pytest; prints two lines.
"""

from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def main(argv: list[str]) -> None:
    if "--torch" in argv:
        import torch  # noqa: F401

        argv = [a for a in argv if a != "--torch"]
    from posttrain.rewards import code

    n = int(argv[0]) if argv else 20
    meta = {"entry_point": "add", "tests": [f"assert add({i}, {i + 1}) == {2 * i + 1}" for i in range(8)]}
    answer = "```python\ndef add(a, b):\n    return a + b\n```"
    assert code.score(answer, meta) == 1.0
    times = []
    for _ in range(n):
        start = time.perf_counter()
        code.score(answer, meta)
        times.append(time.perf_counter() - start)
    p90 = sorted(times)[int(0.9 * n)]
    print(f"serial: median {statistics.median(times) * 1e3:.0f} ms, p90 {p90 * 1e3:.0f} ms (n={n})")
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        assert all(r == 1.0 for r in pool.map(lambda _: code.score(answer, meta), range(n)))
    print(f"4 workers: {(time.perf_counter() - start) / n * 1e3:.0f} ms/sample amortised (n={n})")


if __name__ == "__main__":
    main(sys.argv[1:])
