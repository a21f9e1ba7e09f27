# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the migration filters (plugins/filter/migration.py)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.podmig.live.plugins.filter.migration import FilterModule


@pytest.fixture
def filters():
    return FilterModule().filters()


def test_filter_names(filters):
    assert set(filters) == {"convergence", "migration_report", "migration_summary", "pod_migration_plan",
                            "pod_shell_manifest", "pod_migration_id"}
    assert all(callable(f) for f in filters.values())


def test_convergence_unknown_rule_is_a_filter_error(filters):
    with pytest.raises(AnsibleFilterError, match=r"podmig\.live\.convergence: unknown convergence rule 'rounds'"):
        filters["convergence"]([{"dirty_bytes": 1, "duration_s": 1}], {"rounds": 3})


def test_convergence_round_without_dirty_bytes_is_a_filter_error(filters):
    with pytest.raises(AnsibleFilterError, match="podmig.live.convergence"):
        filters["convergence"]([{"duration_s": 1}])


def test_convergence_none_inputs(filters):
    result = filters["convergence"](None, None)
    assert result["stop"] is False
    assert result["reason"] == "no round yet"


def test_convergence_decides(filters):
    result = filters["convergence"]([{"dirty_bytes": 1024, "duration_s": 0.5}], {"min_rounds": 1})
    assert result["stop"] is True
    assert "below the threshold" in result["reason"]


def test_report_and_summary_filters(filters):
    report = filters["migration_report"]({"container": "web1", "source": "a", "target": "b", "outcome": "migrated"})
    assert report["outcome"] == "migrated"
    assert filters["migration_summary"](report)[0] == "podmig: web1 a -> b: MIGRATED"
    assert filters["migration_report"](None)["outcome"] == "failed"
    assert filters["migration_summary"](None) == ["podmig: None None -> None: ?"]


def test_pod_filters_wrap_the_pod_plan():
    from ansible_collections.podmig.live.plugins.filter.migration import FilterModule
    filters = FilterModule().filters()
    pod = {"metadata": {"name": "app", "namespace": "default", "uid": "u"},
           "spec": {"nodeName": "w1", "containers": [{"name": "c", "image": "i"}]}}
    mig = filters["pod_migration_id"](pod, "t0")
    assert len(mig) == 8
    shell = filters["pod_shell_manifest"](pod, "w2", mig, "/var/lib/podmig/in/" + mig)
    assert shell["metadata"]["name"] == "app-mig-" + mig and shell["spec"]["nodeName"] == "w2"
    plan = filters["pod_migration_plan"]({"namespace": "default", "pod": "app", "target_node": "w2"}, {"pod": pod})
    assert not plan["ok"] and "target node ready: node w2: no such node" in plan["refusals"]
    with pytest.raises(AnsibleFilterError, match="missing or bad input"):
        filters["pod_migration_plan"]({}, {})
