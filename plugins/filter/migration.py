# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Filters the migration playbooks use to decide and to report (logic in module_utils/migration)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.podmig.live.plugins.module_utils.migration import convergence, report


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


class FilterModule:
    def filters(self):
        return {
            "convergence": podmig_convergence,
            "migration_report": podmig_migration_report,
            "migration_summary": podmig_migration_summary,
        }
