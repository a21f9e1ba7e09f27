# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Read podmig-workload's tick log: counters, verification lines, downtime.

Downtime is what the application saw: the largest gap between consecutive
ticks across the migration (GUIDE section 5).
"""

from __future__ import annotations

import dataclasses
import time


@dataclasses.dataclass
class Tick:
    counter: int
    time: float
    pages: int


@dataclasses.dataclass
class Verify:
    counter: int
    ok: bool
    incremental: str
    full: str


@dataclasses.dataclass
class TickLog:
    starts: list[dict]
    ticks: list[Tick]
    verifies: list[Verify]

    @classmethod
    def read(cls, path: str) -> "TickLog":
        starts, ticks, verifies = [], [], []
        with open(path, encoding="ascii", errors="replace") as handle:
            for line in handle:
                parts = line.split()
                if not parts:
                    continue
                try:
                    if parts[0] == "T" and len(parts) == 4:
                        ticks.append(Tick(int(parts[1]), float(parts[2]), int(parts[3])))
                    elif parts[0] == "V" and len(parts) == 5:
                        verifies.append(Verify(int(parts[1]), parts[2] == "ok", parts[3], parts[4]))
                    elif parts[0] == "S" and len(parts) == 6:
                        starts.append({"pid": int(parts[1]), "mib": int(parts[2]), "rate": float(parts[3]),
                                       "pattern": parts[4], "time": float(parts[5])})
                except ValueError:
                    continue  # a line torn by a kill: ignore it
        return cls(starts, ticks, verifies)

    @property
    def last_counter(self) -> int:
        return self.ticks[-1].counter if self.ticks else 0

    def max_gap(self, since: float | None = None, until: float | None = None) -> dict:
        """Largest gap between consecutive ticks in [since, until]: {"gap_s", "from", "to", "counter_before"}."""
        best = {"gap_s": 0.0, "from": None, "to": None, "counter_before": None}
        prev = None
        for tick in self.ticks:
            if since is not None and tick.time < since:
                prev = tick
                continue
            if until is not None and tick.time > until:
                break
            if prev is not None and tick.time - prev.time > best["gap_s"]:
                best = {"gap_s": tick.time - prev.time, "from": prev.time, "to": tick.time,
                        "counter_before": prev.counter}
            prev = tick
        return best

    def counter_resets(self) -> list[tuple[int, int]]:
        """(before, after) pairs where the counter did not go up: a restart instead of a restore."""
        return [(a.counter, b.counter) for a, b in zip(self.ticks, self.ticks[1:]) if b.counter <= a.counter]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    """`python3 ticks.py LOG [SINCE_EPOCH]`: a JSON summary of a tick log (used by the demo on a node)."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: ticks.py LOG [SINCE_EPOCH]", file=sys.stderr)
        return 2
    log = TickLog.read(args[0])
    since = float(args[1]) if len(args) > 1 else None
    gap = log.max_gap(since=since)
    print(json.dumps({
        "ticks": len(log.ticks),
        "starts": len(log.starts),
        "first_counter": log.ticks[0].counter if log.ticks else None,
        "last_counter": log.last_counter,
        "counter_resets": log.counter_resets(),
        "max_gap_s": round(gap["gap_s"], 4),
        "gap_from": gap["from"],
        "counter_before_gap": gap["counter_before"],
        "verifies": [{"counter": v.counter, "ok": v.ok} for v in log.verifies],
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
