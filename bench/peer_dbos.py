"""Peer: DBOS on SQLite, the same sequential workflow as W1.

    python bench/peer_dbos.py STEPS DIR

Prints the median steps per second of three runs; exits 3 when DBOS is not installed
(``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

try:
    from dbos import DBOS
except ImportError:
    print('DBOS is not installed: pip install -e ".[bench]"')
    sys.exit(3)


@DBOS.step()
def noop(i: int) -> int:
    return i


@DBOS.workflow()
def sequential(steps: int) -> int:
    total = 0
    for i in range(steps):
        total += noop(i)
    return total


def main() -> None:
    steps, folder = int(sys.argv[1]), Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    DBOS(
        config={"name": "wfrun-bench", "system_database_url": f"sqlite:///{folder / 'dbos.sqlite'}"}
    )
    DBOS.launch()
    try:
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            assert sequential(steps) == sum(range(steps))
            runs.append(time.perf_counter() - start)
    finally:
        DBOS.destroy()
    print(steps / statistics.median(runs))


if __name__ == "__main__":
    main()
