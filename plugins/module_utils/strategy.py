# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Which migration strategies a node supports, and which one to use.

Pure functions over the facts that ``criu_info`` gathers, so that the choice
is unit-tested for kernels this project's machines do not have (soft-dirty
tracking, for one).

Strategies:
  cold      stop, dump everything, copy, restore. Always possible; the baseline.
  precopy   CRIU pre-dump rounds while running (needs soft-dirty tracking),
            then a final dump of the pages dirtied since the last round.
  delta     full dumps with --leave-running in rounds; only changed 4 KiB
            blocks of the page images are sent (rsync). Works without
            soft-dirty; the final dump still scans all memory.
  postcopy  CRIU lazy pages over userfaultfd: restore at once, fault the pages
            in from the source's page server. Shortest pause; the process is
            lost if the source dies before every page has arrived.
"""

from __future__ import annotations

from typing import Any

STRATEGIES = ("cold", "precopy", "delta", "postcopy")

# The order `auto` tries; a site may pass its own.
DEFAULT_AUTO_ORDER = ("precopy", "postcopy", "delta", "cold")

# Lazy-pages dumps fail with "page-pipe: splice: Bad file descriptor" below this
# (measured on the project's machines, see docs); the criu role raises it.
LAZY_MIN_PIPE_MAX_SIZE = 4 * 1024 * 1024

RISKS = {
    "cold": "longest pause (the whole memory is dumped, sent and restored while frozen)",
    "precopy": "pause grows with the dirty rate; rounds may not converge for write-heavy work",
    "delta": "the final dump scans all memory while frozen; only changed blocks are sent",
    "postcopy": "the process is lost if the source node or the link dies before all pages arrived; "
    "it runs slowly while faulting pages in",
}


def _supported(features: dict[str, Any], name: str) -> bool:
    value = features.get(name)
    if isinstance(value, dict):
        return bool(value.get("supported"))
    return bool(value)


def _message(features: dict[str, Any], name: str) -> str | None:
    value = features.get(name)
    return value.get("message") if isinstance(value, dict) else None


def node_strategies(facts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{strategy: {"supported": bool, "reason": str}} for one node's criu_info facts."""
    features = facts.get("features", {})
    check_ok = bool(facts.get("check", {}).get("ok"))
    result: dict[str, dict[str, Any]] = {}
    if not check_ok:
        reason = "criu check failed on %s: %s" % (
            facts.get("hostname", "this node"),
            facts.get("check", {}).get("message", "unknown reason"),
        )
        return {name: {"supported": False, "reason": reason} for name in STRATEGIES}

    result["cold"] = {"supported": True, "reason": "criu check passed"}
    result["delta"] = {"supported": True, "reason": "full dumps with --leave-running need no kernel extras"}
    if _supported(features, "mem_dirty_track"):
        result["precopy"] = {"supported": True, "reason": "soft-dirty memory tracking is available"}
    else:
        result["precopy"] = {
            "supported": False,
            "reason": "precopy needs memory dirty tracking (CONFIG_MEM_SOFT_DIRTY), which this kernel lacks "
            "(criu check --feature mem_dirty_track: %s)"
            % (_message(features, "mem_dirty_track") or "not supported"),
        }
    pipe_max = int(facts.get("pipe_max_size") or 0)
    if not _supported(features, "uffd_noncoop"):
        result["postcopy"] = {
            "supported": False,
            "reason": "postcopy needs non-cooperative userfaultfd (criu check --feature uffd-noncoop: %s)"
            % (_message(features, "uffd_noncoop") or "not supported"),
        }
    elif pipe_max < LAZY_MIN_PIPE_MAX_SIZE:
        result["postcopy"] = {
            "supported": False,
            "reason": "postcopy needs fs.pipe-max-size >= %d (it is %d; the podmig.live.criu role sets it)"
            % (LAZY_MIN_PIPE_MAX_SIZE, pipe_max),
        }
    else:
        result["postcopy"] = {"supported": True, "reason": "userfaultfd (uffd-noncoop) works for lazy pages"}
    return result


def choose_strategy(
    requested: str,
    source: dict[str, Any],
    target: dict[str, Any],
    auto_order: tuple[str, ...] | list[str] = DEFAULT_AUTO_ORDER,
) -> dict[str, Any]:
    """Pick the strategy for a migration from ``source`` to ``target`` facts.

    Returns {"strategy", "reason", "risk", "refused": {strategy: reason}}.
    Raises ValueError with the reason when the requested strategy cannot run.
    """
    src = node_strategies(source)
    dst = node_strategies(target)
    refused: dict[str, str] = {}
    for name in STRATEGIES:
        reasons = []
        if not src[name]["supported"]:
            reasons.append("source: " + src[name]["reason"])
        if not dst[name]["supported"]:
            reasons.append("target: " + dst[name]["reason"])
        if reasons:
            refused[name] = "; ".join(reasons)

    if requested == "auto":
        unknown = [name for name in auto_order if name not in STRATEGIES]
        if unknown or not auto_order:
            raise ValueError("the auto order must list known strategies (%s), got %r" % (", ".join(STRATEGIES),
                                                                                      list(auto_order)))
        for name in auto_order:
            if name not in refused:
                skipped = ["%s (%s)" % (n, refused[n]) for n in auto_order[: list(auto_order).index(name)] if n in refused]
                reason = "auto picked %s, the first of %s that both nodes support" % (name, "/".join(auto_order))
                if skipped:
                    reason += "; skipped " + ", ".join(skipped)
                return {"strategy": name, "reason": reason, "risk": RISKS[name], "refused": refused}
        raise ValueError("no migration strategy works between these nodes: " + "; ".join(
            "%s: %s" % (k, v) for k, v in refused.items()))
    if requested not in STRATEGIES:
        raise ValueError("unknown strategy %r (choose auto, %s)" % (requested, ", ".join(STRATEGIES)))
    if requested in refused:
        raise ValueError("strategy %s is refused: %s" % (requested, refused[requested]))
    return {"strategy": requested, "reason": "requested", "risk": RISKS[requested], "refused": refused}
