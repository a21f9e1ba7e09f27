# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Filters playbooks/drain.yml uses to plan a node's drain and to report it (logic in module_utils/migration)."""

from __future__ import annotations

from ansible_collections.podmig.live.plugins.module_utils.filters import wrap_filter
from ansible_collections.podmig.live.plugins.module_utils.migration import drain_plan


def podmig_drain_plan(request, facts):
    """{{ request | podmig.live.drain_plan(facts) }} -> {ok, node, pods, migrate, evict, leave, refused, refusals}."""
    return drain_plan.plan_drain(dict(request or {}), dict(facts or {}))


def podmig_drain_report(plan, migrations, evictions, run):
    """{{ plan | podmig.live.drain_report(migrations, evictions, run) }} -> the drain report dict."""
    return drain_plan.drain_report(dict(plan or {}), list(migrations or []), list(evictions or []), dict(run or {}))


def podmig_drain_summary(report):
    """{{ report | podmig.live.drain_summary }} -> list of lines."""
    return drain_plan.drain_summary(dict(report or {}))


def podmig_drain_line(entry):
    """{{ pod_entry | podmig.live.drain_line }} -> 'migrate  ns/name -> node: reason'."""
    entry = dict(entry or {})
    return "%-8s %s/%s%s: %s" % (entry.get("action"), entry.get("namespace"), entry.get("name"),
                                 " -> %s" % entry["target"] if entry.get("target") else "", entry.get("reason"))


def podmig_drain_move(entry):
    """{{ migrate_entry | podmig.live.drain_move }} -> 'ns/name -> node'."""
    entry = dict(entry or {})
    return "%s/%s -> %s" % (entry.get("namespace"), entry.get("name"), entry.get("target"))


def podmig_drain_refs(entries):
    """{{ plan.evict | podmig.live.drain_refs }} -> [{namespace, name}] (podmig.live.pod_eviction's pods)."""
    return [{"namespace": e["namespace"], "name": e["name"]} for e in entries or []]


class FilterModule:
    def filters(self):
        return {name: wrap_filter(func, name) for name, func in (
            ("drain_plan", podmig_drain_plan),
            ("drain_report", podmig_drain_report),
            ("drain_summary", podmig_drain_summary),
            ("drain_line", podmig_drain_line),
            ("drain_refs", podmig_drain_refs),
            ("drain_move", podmig_drain_move),
        )}
