# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Refuse early: every check a migration needs, on facts gathered from both nodes.

Nothing is frozen before this passes. Every failed check is reported at once,
each with its reason, so a user fixes them in one go.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.podmig.live.plugins.module_utils.strategy import DEFAULT_AUTO_ORDER, choose_strategy

# Images and the final dump need room on the target: RSS times this, plus a margin.
DISK_FACTOR = 1.5
DISK_MARGIN = 64 * 1024 * 1024


def _check(checks: list[dict[str, Any]], name: str, ok: bool, detail: str) -> None:
    checks.append({"name": name, "ok": bool(ok), "detail": detail})


def plan_migration(request: dict[str, Any], source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Check a container migration request against both nodes' facts.

    request: container, source_node, target_node, strategy, auto_order (optional)
    source:  criu (criu_info facts), container (container_info result), locked (bool)
    target:  criu, free_bytes, missing_lowerdirs (list), container_exists (bool)
    Returns {"ok", "strategy", "reason", "risk", "checks", "refusals"}.
    """
    checks: list[dict[str, Any]] = []
    container = source.get("container") or {}
    src_criu = source.get("criu") or {}
    dst_criu = target.get("criu") or {}

    _check(checks, "different nodes", request["source_node"] != request["target_node"],
           "source and target are both %s: choose another target node" % request["source_node"]
           if request["source_node"] == request["target_node"] else "%s -> %s" % (request["source_node"],
                                                                                   request["target_node"]))
    exists = bool(container.get("exists"))
    _check(checks, "container exists", exists,
           "container %s %s on %s" % (request["container"], "found" if exists else "does not exist",
                                      request["source_node"]))
    status = container.get("status")
    if exists:
        _check(checks, "container running", status == "running",
               "status is %s%s" % (status, "" if status != "paused" else
                                   " (frozen: is another migration holding it?)"))
    _check(checks, "not being migrated", not source.get("locked"),
           "a migration of %s is already in progress (lock %s)" % (request["container"], source.get("lock_path"))
           if source.get("locked") else "no other migration holds it")
    for side, facts in (("source", src_criu), ("target", dst_criu)):
        ok = bool(facts.get("installed")) and bool((facts.get("check") or {}).get("ok"))
        _check(checks, "CRIU usable on %s" % side, ok,
               (facts.get("check") or {}).get("message") or "criu_info gave no facts")
    same_arch = src_criu.get("arch") == dst_criu.get("arch") and src_criu.get("page_size") == dst_criu.get("page_size")
    _check(checks, "same architecture", same_arch, "source %s/%s, target %s/%s" % (
        src_criu.get("arch"), src_criu.get("page_size"), dst_criu.get("arch"), dst_criu.get("page_size")))
    missing_flags = sorted(set(src_criu.get("cpu_flags") or []) - set(dst_criu.get("cpu_flags") or []))
    _check(checks, "CPU features", not missing_flags,
           "target lacks CPU flags the process may use: %s" % " ".join(missing_flags) if missing_flags
           else "target has every CPU flag of the source")
    overlay = container.get("overlay") or {}
    if exists:
        _check(checks, "writable layer is an overlay", bool(overlay.get("upperdir")),
               "rootfs upper dir %s" % overlay.get("upperdir") if overlay.get("upperdir") else
               "the rootfs of %s is not an overlay mount: podmig moves the writable layer of overlay-backed "
               "containers (containerd, CRI-O, podman)" % request["container"])
    rss = int(container.get("rss_bytes") or 0)
    need = int(rss * DISK_FACTOR) + DISK_MARGIN
    free = int(target.get("free_bytes") or 0)
    _check(checks, "disk space on target", free >= need,
           "%d MiB free for images, %d MiB needed" % (free >> 20, need >> 20))
    missing = target.get("missing_lowerdirs") or []
    _check(checks, "image present on target", not missing,
           "missing on the target: %s" % ", ".join(missing) if missing else "every read-only layer is there")
    _check(checks, "container id free on target", not target.get("container_exists"),
           "a container %s already exists on the target" % request["container"]
           if target.get("container_exists") else "free")

    result: dict[str, Any] = {"checks": checks, "strategy": None, "reason": None, "risk": None}
    check_strategy(checks, result, request.get("strategy", "auto"), src_criu, dst_criu,
                   tuple(request.get("auto_order") or DEFAULT_AUTO_ORDER))
    return finish(checks, result)


def check_strategy(checks: list[dict[str, Any]], result: dict[str, Any], requested: str, src_criu: dict[str, Any],
                   dst_criu: dict[str, Any], order: tuple[str, ...]) -> None:
    """The "strategy" check: the choice and its reason into ``result``, or the refusal."""
    try:
        choice = choose_strategy(requested, src_criu, dst_criu, order)
        result.update(strategy=choice["strategy"], reason=choice["reason"], risk=choice["risk"],
                      refused_strategies=choice["refused"])
        _check(checks, "strategy", True, "%s: %s" % (choice["strategy"], choice["reason"]))
    except ValueError as exc:
        _check(checks, "strategy", False, str(exc))


def finish(checks: list[dict[str, Any]], result: dict[str, Any]) -> dict[str, Any]:
    """Every failed check as one refusal line; ok when there is none."""
    result["refusals"] = ["%s: %s" % (c["name"], c["detail"]) for c in checks if not c["ok"]]
    result["ok"] = not result["refusals"]
    return result

