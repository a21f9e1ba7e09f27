# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Filters the migration playbooks use to decide and to report (logic in module_utils/migration)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.podmig.live.plugins.module_utils.migration import convergence, pod_plan, report


def podmig_convergence(rounds, rules=None):
    """{{ rounds | podmig.live.convergence(rules) }} -> {stop, reason, rounds, elapsed_s}."""
    try:
        return convergence.decide(list(rounds or []), dict(rules or {}))
    except (ValueError, KeyError, TypeError) as exc:
        raise AnsibleFilterError("podmig.live.convergence: %s" % exc) from exc


def podmig_migration_report(inputs):
    """{{ inputs | podmig.live.migration_report }} -> the report dict."""
    return report.build_report(dict(inputs or {}))


def podmig_migration_summary(report_dict):
    """{{ report | podmig.live.migration_summary }} -> list of lines."""
    return report.summary(dict(report_dict or {}))


def podmig_pod_migration_plan(request, facts):
    """{{ request | podmig.live.pod_migration_plan(facts) }} -> {ok, checks, refusals, strategy, ...}."""
    try:
        return pod_plan.plan_pod_migration(dict(request or {}), dict(facts or {}))
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("podmig.live.pod_migration_plan: missing or bad input %s" % exc) from exc


def podmig_pod_shell_manifest(pod, target_node, mig_id, staging_dir, owner=None):
    """{{ pod | podmig.live.pod_shell_manifest(target, id, staging_dir, owner) }} -> the shell Pod."""
    return pod_plan.shell_pod_manifest(dict(pod or {}), target_node, mig_id, staging_dir, owner)


def podmig_pod_migration_id(pod, started):
    """{{ pod | podmig.live.pod_migration_id(started) }} -> 8 hex characters."""
    meta = (pod or {}).get("metadata") or {}
    return pod_plan.migration_id(meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", ""), str(started))


def podmig_pod_migration_report(inputs):
    """{{ inputs | podmig.live.pod_migration_report }} -> the pod report dict."""
    return report.build_pod_report(dict(inputs or {}))


def podmig_pod_migration_summary(report_dict):
    """{{ report | podmig.live.pod_migration_summary }} -> list of lines."""
    return report.pod_summary(dict(report_dict or {}))


def podmig_check_line(check):
    """{{ check | podmig.live.check_line }} -> 'ok   name: detail' or 'NO   name: detail'."""
    check = dict(check or {})
    return "%-4s %s: %s" % ("ok" if check.get("ok") else "NO", check.get("name"), check.get("detail"))


def podmig_pod_container_entry(item):
    """(name, id, overlay) -> {name, id, upperdir} for podmig.live.pod_handoff's containers."""
    name, container_id, overlay = item
    entry = {"name": name, "id": container_id}
    if overlay and overlay.get("upperdir"):
        entry["upperdir"] = overlay["upperdir"]
    return entry


def podmig_pod_container_states(status):
    """{{ pod.status | podmig.live.pod_container_states }} -> 'app: running, ready, 0 restarts; ...'."""
    return report.pod_container_states(dict(status or {}))


class FilterModule:
    def filters(self):
        return {
            "convergence": podmig_convergence,
            "migration_report": podmig_migration_report,
            "migration_summary": podmig_migration_summary,
            "pod_migration_plan": podmig_pod_migration_plan,
            "pod_shell_manifest": podmig_pod_shell_manifest,
            "pod_migration_id": podmig_pod_migration_id,
            "pod_migration_report": podmig_pod_migration_report,
            "pod_migration_summary": podmig_pod_migration_summary,
            "check_line": podmig_check_line,
            "pod_container_entry": podmig_pod_container_entry,
            "pod_container_states": podmig_pod_container_states,
        }
