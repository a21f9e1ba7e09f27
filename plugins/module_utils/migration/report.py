# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""The migration report: one JSON document and a short human summary."""

from __future__ import annotations

from typing import Any


def _num(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def build_report(inputs: dict[str, Any]) -> dict[str, Any]:
    """Combine what the phases returned.

    inputs: container, source, target, plan (migration_plan), rounds (list of round dicts),
    handoff (migration_handoff result), landing (migration_landing result), outcome
    (migrated | rolled_back | refused | failed), error, started_at, finished_at,
    observed (optional: what the workload itself saw, e.g. {"downtime_s": ...}).
    """
    plan = inputs.get("plan") or {}
    handoff = inputs.get("handoff") or {}
    landing = inputs.get("landing") or {}
    rounds = inputs.get("rounds") or []
    report: dict[str, Any] = {
        "container": inputs.get("container"),
        "source": inputs.get("source"),
        "target": inputs.get("target"),
        "outcome": inputs.get("outcome", "failed"),
        "strategy": plan.get("strategy"),
        "strategy_reason": plan.get("reason"),
        "risk": plan.get("risk"),
        "rounds": [
            {
                "round": i + 1,
                "dirty_bytes": int(r.get("dirty_bytes", 0)),
                "bytes_sent": int(r.get("bytes_sent", 0)),
                "duration_s": round(_num(r.get("duration_s")), 3),
            }
            for i, r in enumerate(rounds)
        ],
        "convergence": inputs.get("convergence"),
        "target_bundle": inputs.get("target_bundle"),
    }
    if inputs.get("error"):
        report["error"] = inputs["error"]
    if inputs.get("refusals"):
        report["refusals"] = inputs["refusals"]
    started, finished = _num(inputs.get("started_at")), _num(inputs.get("finished_at"))
    if started and finished:
        report["total_s"] = round(finished - started, 3)
    frozen_at = _num(handoff.get("frozen_at"))
    restored_at = _num(landing.get("restored_at"))
    if frozen_at and restored_at:
        report["pause_s"] = round(restored_at - frozen_at, 3)
        report["pause_breakdown_s"] = {
            "dump": round(_num(handoff.get("dumped_at")) - frozen_at, 3),
            "writable_layer_delta": round(_num(handoff.get("captured_at")) - _num(handoff.get("dumped_at")), 3),
            "send": round(_num(handoff.get("signalled_at")) - _num(handoff.get("captured_at")), 3),
            "signal_to_target": round(_num(landing.get("ready_at")) - _num(handoff.get("signalled_at")), 3),
            "apply_and_mount": round(_num(landing.get("applied_at")) - _num(landing.get("ready_at")), 3),
            "restore": round(restored_at - _num(landing.get("applied_at")), 3),
        }
    if handoff.get("command_durations_s"):
        report["pause_commands_s"] = handoff["command_durations_s"]
    checkpoint = handoff.get("checkpoint") or {}
    stats = checkpoint.get("stats") or {}
    if stats:
        report["criu_frozen_s"] = stats.get("frozen_time_s")
        report["final_dump_bytes_written"] = stats.get("bytes_written")
    rounds_bytes = sum(r["bytes_sent"] for r in report["rounds"])
    report["bytes_sent"] = {
        "rounds": rounds_bytes,
        "final": int(handoff.get("bytes_sent", 0)),
        "total": rounds_bytes + int(handoff.get("bytes_sent", 0)) + int(inputs.get("presync_bytes", 0)),
        "writable_layer_presync": int(inputs.get("presync_bytes", 0)),
    }
    if inputs.get("observed"):
        report["observed"] = inputs["observed"]
    return report


def summary(report: dict[str, Any]) -> list[str]:
    """A few lines a person reads first."""
    lines = ["podmig: %s %s -> %s: %s" % (report.get("container"), report.get("source"), report.get("target"),
                                            str(report.get("outcome", "?")).upper())]
    if report.get("strategy"):
        lines.append("strategy %s (%s)" % (report["strategy"], report.get("strategy_reason")))
    if report.get("rounds"):
        lines.append("copy rounds: " + ", ".join("#%d %.1f MiB in %.2f s" % (r["round"], r["bytes_sent"] / 2**20,
                                                                            r["duration_s"])
                                                for r in report["rounds"]))
    if "pause_s" in report:
        parts = ", ".join("%s %.3f" % (k, v) for k, v in report["pause_breakdown_s"].items())
        lines.append("pause %.3f s (%s)" % (report["pause_s"], parts))
    if report.get("observed", {}).get("downtime_s") is not None:
        lines.append("the workload saw a %.3f s gap" % report["observed"]["downtime_s"])
    total = report.get("bytes_sent", {}).get("total", 0)
    if "total_s" in report:
        lines.append("total %.2f s, %.1f MiB sent" % (report["total_s"], total / 2**20))
    if report.get("risk"):
        lines.append("risk of this strategy: %s" % report["risk"])
    for refusal in report.get("refusals") or []:
        lines.append("refused: %s" % refusal)
    if report.get("error"):
        lines.append("error: %s" % report["error"])
    return lines


def build_pod_report(inputs: dict[str, Any]) -> dict[str, Any]:
    """The report of a pod migration (playbooks/migrate.yml).

    inputs: namespace, pod, shell_pod, migration_id, source_node, target_node, strategy, reason, outcome,
    error, refusals, started_at, finished_at, frozen_at (pod_handoff), restored_at (when the shell's
    containers ran), source_frozen_s, bytes_sent, containers (pod_handoff's per-container results),
    fence (pod_fence's result on the target) and rolled_back (pod_handoff state=rolled_back's result).
    """
    report = {key: inputs.get(key) for key in ("namespace", "pod", "shell_pod", "migration_id", "source_node",
                                               "target_node", "strategy", "reason")}
    report["kind"] = "pod"
    report["outcome"] = inputs.get("outcome", "failed")
    for key in ("error", "refusals"):
        if inputs.get(key):
            report[key] = inputs[key]
    started, finished = _num(inputs.get("started_at")), _num(inputs.get("finished_at"))
    if started and finished:
        report["total_s"] = round(finished - started, 3)
    frozen_at, restored_at = _num(inputs.get("frozen_at")), _num(inputs.get("restored_at"))
    if frozen_at:
        report["frozen_at"] = frozen_at  # when the pod cgroup froze (epoch, the source node's clock)
    if frozen_at and restored_at:
        # From the freeze to the end of the last restore on the target (CRIU's restore log): what
        # the workload was stopped for, give or take clock skew (its own tick log gives the exact gap).
        report["pause_s"] = round(restored_at - frozen_at, 3)
    ready_at = _num(inputs.get("reported_ready_at"))
    if frozen_at and ready_at:
        # The API reports the restored containers ready only after kubelet's next pod sync.
        report["api_ready_s"] = round(ready_at - frozen_at, 3)
    if inputs.get("source_frozen_s") is not None:
        report["handoff_s"] = round(_num(inputs.get("source_frozen_s")), 3)
    report["bytes_sent"] = int(inputs.get("bytes_sent") or 0)
    if inputs.get("rounds"):
        report["rounds"] = inputs["rounds"]
        report["convergence"] = inputs.get("convergence")
    containers = {}
    for name, entry in (inputs.get("containers") or {}).items():
        checkpoint = entry.get("checkpoint") or {}
        stats = checkpoint.get("stats") or {}
        containers[name] = {
            "image_bytes": checkpoint.get("image_bytes"),
            "criu_frozen_s": stats.get("frozen_time_s"),
            "images_sent_bytes": int((entry.get("images_sent") or {}).get("bytes_sent", 0)),
            "upper_sent_bytes": int((entry.get("upper_sent") or {}).get("bytes_sent", 0)),
        }
    report["containers"] = containers
    rollback = pod_rollback_report(inputs.get("fence"), inputs.get("rolled_back"))
    if rollback:
        report["rollback"] = rollback
    if inputs.get("observed"):
        report["observed"] = inputs["observed"]
    return report


def pod_rollback_report(fence: dict[str, Any] | None, rolled_back: dict[str, Any] | None) -> dict[str, Any]:
    """What a rollback did: the target's fence (pod_fence's result) and the source's resume."""
    out: dict[str, Any] = {}
    if fence:
        out["target_fenced"] = bool(fence.get("clean"))
        for key in ("confirmed_at", "killed", "withdrawn", "consumed", "processes_left", "waited_s"):
            if fence.get(key) is not None:
                out[key] = fence[key]
        if not fence.get("clean"):
            out["fence_error"] = fence.get("msg") or "the fence did not run to its end"
    if rolled_back:
        out["source"] = rolled_back.get("rolled_back") or []
        if rolled_back.get("resumed_at"):
            out["resumed_at"] = rolled_back["resumed_at"]
        if rolled_back.get("failed"):
            out["resume_error"] = rolled_back.get("msg")
    return out


def pod_summary(report: dict[str, Any]) -> list[str]:
    """A few lines a person reads first, for a pod migration."""
    lines = ["podmig: pod %s/%s %s -> %s: %s" % (report.get("namespace"), report.get("pod"), report.get("source_node"),
                                                   report.get("target_node"), str(report.get("outcome", "?")).upper())]
    if report.get("shell_pod"):
        lines.append("now running as %s/%s" % (report.get("namespace"), report["shell_pod"]))
    if report.get("strategy"):
        lines.append("strategy %s (%s)" % (report["strategy"], report.get("reason")))
    if "pause_s" in report:
        lines.append("pause %.3f s (freeze to restored; hand-off on the source %.3f s; the API showed it ready "
                     "after %.3f s)" % (report["pause_s"], report.get("handoff_s") or 0.0, report.get("api_ready_s") or 0.0))
    for name, entry in (report.get("containers") or {}).items():
        lines.append("container %s: %.1f MiB of images, %.1f MiB sent" % (
            name, (entry.get("image_bytes") or 0) / 2**20,
            (entry["images_sent_bytes"] + entry["upper_sent_bytes"]) / 2**20))
    for entry in report.get("rounds") or []:
        lines.append("round %d while running: %.1f MiB changed, %.1f MiB sent, %.2f s" % (
            entry["round"], entry["dirty_bytes"] / 2**20, entry["bytes_sent"] / 2**20, entry["duration_s"]))
    if report.get("rounds"):
        lines.append("rounds stopped: %s" % report.get("convergence"))
    if "total_s" in report:
        lines.append("total %.2f s, %.1f MiB sent" % (report["total_s"], report.get("bytes_sent", 0) / 2**20))
    rollback = report.get("rollback") or {}
    if "target_fenced" in rollback:
        if rollback["target_fenced"]:
            lines.append("rollback: no copy ran on %s when the source resumed%s" % (
                report.get("target_node"), " (%d left-over processes killed)" % len(rollback["killed"])
                if rollback.get("killed") else ""))
        else:
            lines.append("rollback: WARNING - %s was not seen free of a restored copy before the source resumed: %s"
                         % (report.get("target_node"), rollback.get("fence_error")))
    if rollback.get("source"):
        lines.append("rollback: %s" % ", ".join(rollback["source"]))
    for refusal in report.get("refusals") or []:
        lines.append("refused: %s" % refusal)
    if report.get("error"):
        lines.append("error: %s" % report["error"])
    return lines


def pod_container_states(status: dict[str, Any] | None) -> str:
    """What each container of a pod does, from the pod's status: 'app: running, ready; gate: running, not ready'."""
    parts = []
    for entry in (status or {}).get("containerStatuses") or []:
        state = entry.get("state") or {}
        what = next(iter(state), "unknown")
        detail = (state.get(what) or {}).get("reason")
        parts.append("%s: %s%s, %s, %d restarts" % (
            entry.get("name"), what, " (%s)" % detail if detail else "",
            "ready" if entry.get("ready") else "not ready", int(entry.get("restartCount") or 0)))
    return "; ".join(parts) if parts else "no container status yet"
