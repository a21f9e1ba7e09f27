# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the migration report and its summary (module_utils/migration/report.py)."""

from __future__ import annotations

import pytest

from ansible_collections.podmig.live.plugins.module_utils.migration.report import build_report, summary

MiB = 1024 * 1024
T0 = 1_700_000_000.0

HANDOFF = {
    "frozen_at": T0,
    "dumped_at": T0 + 0.200,
    "captured_at": T0 + 0.250,
    "signalled_at": T0 + 0.400,
    "bytes_sent": 3 * MiB,
    "checkpoint": {"stats": {"frozen_time_s": 0.180, "bytes_written": 5 * MiB}},
}
LANDING = {"ready_at": T0 + 0.410, "applied_at": T0 + 0.460, "restored_at": T0 + 0.700}
PLAN = {"strategy": "precopy", "reason": "auto picked precopy", "risk": "pause grows with the dirty rate"}


def migrated(**overrides):
    inputs = {
        "container": "web1",
        "source": "node1",
        "target": "node2",
        "outcome": "migrated",
        "plan": PLAN,
        "rounds": [
            {"dirty_bytes": 100 * MiB, "bytes_sent": 60 * MiB, "duration_s": 1.23456},
            {"dirty_bytes": 10 * MiB, "bytes_sent": 8 * MiB, "duration_s": 0.5},
        ],
        "handoff": HANDOFF,
        "landing": LANDING,
        "started_at": T0 - 10,
        "finished_at": T0 + 2.5,
        "presync_bytes": 2 * MiB,
        "convergence": {"stop": True, "reason": "below the threshold"},
        "target_bundle": "/run/podmig/bundles/web1",
    }
    inputs.update(overrides)
    return inputs


# --------------------------------------------------------------------------- build_report


def test_identity_and_plan_fields():
    report = build_report(migrated())
    assert report["container"] == "web1"
    assert report["source"] == "node1"
    assert report["target"] == "node2"
    assert report["outcome"] == "migrated"
    assert report["strategy"] == "precopy"
    assert report["strategy_reason"] == "auto picked precopy"
    assert report["risk"] == PLAN["risk"]
    assert report["convergence"] == {"stop": True, "reason": "below the threshold"}
    assert report["target_bundle"] == "/run/podmig/bundles/web1"
    assert "error" not in report and "refusals" not in report


def test_pause_and_breakdown_from_timestamps():
    report = build_report(migrated())
    assert report["pause_s"] == pytest.approx(0.700, abs=1e-3)
    assert report["pause_breakdown_s"] == pytest.approx({
        "dump": 0.200,
        "writable_layer_delta": 0.050,
        "send": 0.150,
        "signal_to_target": 0.010,
        "apply_and_mount": 0.050,
        "restore": 0.240,
    }, abs=1e-3)
    # the parts add up to the pause
    assert sum(report["pause_breakdown_s"].values()) == pytest.approx(report["pause_s"], abs=5e-3)


def test_total_time():
    assert build_report(migrated())["total_s"] == pytest.approx(12.5)


def test_no_pause_without_restore():
    report = build_report(migrated(landing={"ready_at": T0 + 0.41}))
    assert "pause_s" not in report
    assert "pause_breakdown_s" not in report


def test_no_total_without_finish():
    assert "total_s" not in build_report(migrated(finished_at=None))


def test_criu_stats_copied():
    report = build_report(migrated())
    assert report["criu_frozen_s"] == 0.180
    assert report["final_dump_bytes_written"] == 5 * MiB


def test_no_criu_stats_no_keys():
    report = build_report(migrated(handoff={"bytes_sent": 0}))
    assert "criu_frozen_s" not in report
    assert "final_dump_bytes_written" not in report


def test_rounds_are_numbered_and_rounded():
    report = build_report(migrated())
    assert report["rounds"] == [
        {"round": 1, "dirty_bytes": 100 * MiB, "bytes_sent": 60 * MiB, "duration_s": 1.235},
        {"round": 2, "dirty_bytes": 10 * MiB, "bytes_sent": 8 * MiB, "duration_s": 0.5},
    ]


def test_round_with_missing_or_bad_values_counts_zero():
    report = build_report(migrated(rounds=[{"duration_s": "n/a"}]))
    assert report["rounds"] == [{"round": 1, "dirty_bytes": 0, "bytes_sent": 0, "duration_s": 0.0}]


def test_bytes_totals_include_presync():
    report = build_report(migrated())
    assert report["bytes_sent"] == {
        "rounds": 68 * MiB,
        "final": 3 * MiB,
        "total": 68 * MiB + 3 * MiB + 2 * MiB,
        "writable_layer_presync": 2 * MiB,
    }


def test_bytes_totals_without_anything_are_zero():
    report = build_report({})
    assert report["bytes_sent"] == {"rounds": 0, "final": 0, "total": 0, "writable_layer_presync": 0}
    assert report["outcome"] == "failed"
    assert report["rounds"] == []


def test_refused_outcome():
    report = build_report({"container": "web1", "source": "node1", "target": "node1", "outcome": "refused",
                           "refusals": ["different nodes: source and target are both node1"]})
    assert report["outcome"] == "refused"
    assert report["refusals"] == ["different nodes: source and target are both node1"]
    assert report["strategy"] is None
    assert "pause_s" not in report


def test_failed_outcome_keeps_error():
    report = build_report(migrated(outcome="failed", error="runc checkpoint failed", landing={}))
    assert report["outcome"] == "failed"
    assert report["error"] == "runc checkpoint failed"
    assert "pause_s" not in report


def test_observed_is_kept():
    assert build_report(migrated(observed={"downtime_s": 0.8}))["observed"] == {"downtime_s": 0.8}
    assert "observed" not in build_report(migrated())


# --------------------------------------------------------------------------- summary


def test_summary_of_a_migration():
    lines = summary(build_report(migrated(observed={"downtime_s": 0.812})))
    assert lines[0] == "podmig: web1 node1 -> node2: MIGRATED"
    assert lines[1] == "strategy precopy (auto picked precopy)"
    assert lines[2] == "copy rounds: #1 60.0 MiB in 1.24 s, #2 8.0 MiB in 0.50 s"
    assert lines[3].startswith("pause 0.700 s (dump 0.200, writable_layer_delta 0.050, send 0.150, ")
    assert lines[3].endswith("restore 0.240)")
    assert lines[4] == "the workload saw a 0.812 s gap"
    assert lines[5] == "total 12.50 s, 73.0 MiB sent"
    assert lines[6] == "risk of this strategy: " + PLAN["risk"]
    assert len(lines) == 7
    assert not any(line.startswith(("error:", "refused:")) for line in lines)


def test_summary_of_a_refusal():
    report = build_report({"container": "web1", "source": "node1", "target": "node2", "outcome": "refused",
                           "refusals": ["CPU features: target lacks avx2", "container id free on target: taken"]})
    lines = summary(report)
    assert lines[0] == "podmig: web1 node1 -> node2: REFUSED"
    assert "refused: CPU features: target lacks avx2" in lines
    assert "refused: container id free on target: taken" in lines
    assert not any(line.startswith(("pause", "strategy", "copy rounds")) for line in lines)


def test_summary_of_a_failure():
    report = build_report(migrated(outcome="rolled_back", error="rsync failed: connection reset", landing={}))
    lines = summary(report)
    assert lines[0].endswith(": ROLLED_BACK")
    assert lines[-1] == "error: rsync failed: connection reset"
    assert not any(line.startswith("pause") for line in lines)


def test_summary_of_an_empty_report():
    assert summary({}) == ["podmig: None None -> None: ?"]


def test_a_pod_report_lists_the_copy_rounds_of_delta_and_why_they_stopped():
    from ansible_collections.podmig.live.plugins.module_utils.migration.report import build_pod_report, pod_summary

    rounds = [{"round": 1, "dirty_bytes": 64 * 2**20, "bytes_sent": 30 * 2**20, "duration_s": 1.25},
              {"round": 2, "dirty_bytes": 2 * 2**20, "bytes_sent": 2**20, "duration_s": 0.5}]
    report = build_pod_report({"namespace": "default", "pod": "app", "strategy": "delta", "outcome": "migrated",
                               "started_at": T0, "finished_at": T0 + 9, "bytes_sent": 33 * 2**20,
                               "rounds": rounds, "convergence": "dirty set 2097152 B is below the threshold"})
    assert report["rounds"] == rounds and report["convergence"].startswith("dirty set")
    lines = pod_summary(report)
    assert "round 1 while running: 64.0 MiB changed, 30.0 MiB sent, 1.25 s" in lines
    assert "round 2 while running: 2.0 MiB changed, 1.0 MiB sent, 0.50 s" in lines
    assert "rounds stopped: dirty set 2097152 B is below the threshold" in lines
    assert "rounds" not in build_pod_report({"strategy": "cold", "outcome": "migrated"})


def test_a_pod_rollback_reports_the_fence_before_the_resume():
    from ansible_collections.podmig.live.plugins.module_utils.migration.report import build_pod_report, pod_summary

    fence = {"changed": True, "clean": True, "confirmed_at": T0 + 3.0, "killed": [4242], "withdrawn": [],
             "consumed": ["app"], "processes_left": [], "waited_s": 2.5}
    report = build_pod_report({"namespace": "default", "pod": "app", "target_node": "w2", "outcome": "rolled_back",
                               "fence": fence, "rolled_back": {"rolled_back": ["app: resumed"], "resumed_at": T0 + 4}})
    assert report["rollback"] == {"target_fenced": True, "confirmed_at": T0 + 3.0, "killed": [4242], "withdrawn": [],
                                  "consumed": ["app"], "processes_left": [], "waited_s": 2.5,
                                  "source": ["app: resumed"], "resumed_at": T0 + 4}
    lines = pod_summary(report)
    assert "rollback: no copy ran on w2 when the source resumed (1 left-over processes killed)" in lines
    assert "rollback: app: resumed" in lines


def test_a_fence_that_could_not_confirm_the_target_is_a_warning():
    from ansible_collections.podmig.live.plugins.module_utils.migration.report import build_pod_report, pod_summary

    report = build_pod_report({"target_node": "w2", "outcome": "rolled_back",
                               "fence": {"unreachable": True, "msg": "ssh: connect to host w2: No route"},
                               "rolled_back": {"rolled_back": ["app: resumed"]}})
    assert report["rollback"]["target_fenced"] is False
    assert report["rollback"]["fence_error"] == "ssh: connect to host w2: No route"
    assert any(line.startswith("rollback: WARNING - w2 was not seen free") for line in pod_summary(report))
    assert "rollback" not in build_pod_report({"outcome": "migrated"})
