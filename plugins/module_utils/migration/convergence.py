# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""When to stop copying memory while the container runs (P.Haul-style rules).

Each round reports how much had to be sent since the previous one (the dirty
set). Rounds go on while the dirty set shrinks; they stop when it is small
enough to send while frozen, when it stops shrinking (the workload dirties
memory as fast as it is copied), or when rounds or time run out.
"""

from __future__ import annotations

from typing import Any

DEFAULT_RULES = {
    "max_rounds": 5,
    "min_rounds": 1,
    # Stop when a round had to send less than this: the rest fits in a short freeze.
    "dirty_bytes_threshold": 8 * 1024 * 1024,
    # Stop when a round sent this factor times the previous one or more (1.0: no longer shrinking).
    "max_growth": 1.0,
    # Stop when the rounds have taken this long in all.
    "time_budget_s": 60.0,
}


def rules_with_defaults(rules: dict[str, Any] | None) -> dict[str, Any]:
    merged = dict(DEFAULT_RULES)
    for key, value in (rules or {}).items():
        if key not in DEFAULT_RULES:
            raise ValueError("unknown convergence rule %r (known: %s)" % (key, ", ".join(DEFAULT_RULES)))
        if value is not None:
            try:
                merged[key] = type(DEFAULT_RULES[key])(value)  # "3" from the command line -> 3
            except (TypeError, ValueError) as exc:
                raise ValueError("convergence rule %s must be a number, got %r" % (key, value)) from exc
    return merged


def decide(rounds: list[dict[str, Any]], rules: dict[str, Any] | None = None) -> dict[str, Any]:
    """Whether to stop after ``rounds`` (each with ``dirty_bytes`` and ``duration_s``).

    Returns {"stop": bool, "reason": str, "rounds": n, "elapsed_s": float}.
    """
    rules = rules_with_defaults(rules)
    count = len(rounds)
    elapsed = sum(float(r.get("duration_s", 0)) for r in rounds)
    result = {"rounds": count, "elapsed_s": round(elapsed, 3)}
    if count == 0:
        return dict(result, stop=False, reason="no round yet")
    last = int(rounds[-1]["dirty_bytes"])
    if count >= int(rules["max_rounds"]):
        return dict(result, stop=True, reason="reached max_rounds=%d" % rules["max_rounds"])
    if elapsed >= float(rules["time_budget_s"]):
        return dict(result, stop=True, reason="time budget of %.1f s used (%.1f s)" % (rules["time_budget_s"], elapsed))
    if count < int(rules["min_rounds"]):
        return dict(result, stop=False, reason="min_rounds=%d not reached" % rules["min_rounds"])
    if last <= int(rules["dirty_bytes_threshold"]):
        return dict(result, stop=True, reason="dirty set %d B is below the threshold %d B"
                    % (last, rules["dirty_bytes_threshold"]))
    if count >= 2:
        previous = int(rounds[-2]["dirty_bytes"])
        if previous > 0 and last >= previous * float(rules["max_growth"]):
            return dict(result, stop=True, reason="dirty set stopped shrinking (%d B after %d B)" % (last, previous))
    return dict(result, stop=False, reason="dirty set %d B, still shrinking" % last)
