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
                            "pod_shell_manifest", "pod_migration_id", "pod_migration_report",
                            "pod_migration_summary", "check_line", "pod_container_entry",
                            "pod_container_states"}
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


def test_pod_report_and_small_filters():
    from ansible_collections.podmig.live.plugins.filter.migration import FilterModule
    filters = FilterModule().filters()
    report = filters["pod_migration_report"]({
        "namespace": "default", "pod": "app", "shell_pod": "app-mig-1", "source_node": "w1", "target_node": "w2",
        "strategy": "cold", "reason": "asked", "outcome": "migrated", "started_at": 100.0, "finished_at": 112.5,
        "frozen_at": 105.0, "restored_at": 105.75, "source_frozen_s": 0.5, "bytes_sent": 3 * 2**20,
        "containers": {"main": {"checkpoint": {"image_bytes": 2**20, "stats": {"frozen_time_s": 0.2}},
                                "images_sent": {"bytes_sent": 2**20}, "upper_sent": {"bytes_sent": 10}}}})
    assert report["pause_s"] == 0.75 and report["total_s"] == 12.5 and report["handoff_s"] == 0.5
    assert report["frozen_at"] == 105.0
    assert report["containers"]["main"] == {"image_bytes": 2**20, "criu_frozen_s": 0.2,
                                            "images_sent_bytes": 2**20, "upper_sent_bytes": 10}
    lines = filters["pod_migration_summary"](report)
    assert lines[0] == "podmig: pod default/app w1 -> w2: MIGRATED"
    assert "pause 0.750 s" in " ".join(lines)
    refused = filters["pod_migration_summary"](filters["pod_migration_report"](
        {"namespace": "d", "pod": "p", "outcome": "refused", "refusals": ["pod exists: no"]}))
    assert "refused: pod exists: no" in refused and "pause_s" not in refused
    assert filters["check_line"]({"ok": False, "name": "pod running", "detail": "Pending"}) == "NO   pod running: Pending"
    assert filters["pod_container_entry"](("c", "id1", {"upperdir": "/u"})) == {"name": "c", "id": "id1", "upperdir": "/u"}
    assert filters["pod_container_entry"](("c", "id1", None)) == {"name": "c", "id": "id1"}


def test_pod_container_states_say_what_each_container_does(filters):
    status = {"containerStatuses": [
        {"name": "app", "ready": True, "restartCount": 0, "state": {"running": {"startedAt": "t"}}},
        {"name": "gate", "ready": False, "restartCount": 0, "state": {"running": {}}},
        {"name": "side", "ready": False, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
    assert filters["pod_container_states"](status) == (
        "app: running, ready, 0 restarts; gate: running, not ready, 0 restarts; "
        "side: waiting (CrashLoopBackOff), not ready, 2 restarts")
    assert filters["pod_container_states"](None) == "no container status yet"
