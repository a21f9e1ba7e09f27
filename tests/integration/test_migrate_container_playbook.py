# -*- coding: utf-8 -*-
"""playbooks/migrate_container.yml between two SSH test hosts, for every strategy this machine has.

The workload keeps its tick log in its writable layer, so the log itself proves that the
writable layer moved (CRIU refuses to restore an open file whose size differs).
"""

from __future__ import annotations

import pytest
from support.migration import check_moved, migrate, source_still_serving, start_source_app, stop_source_app
from ticks import TickLog


@pytest.fixture
def source_app(test_network, rootfs, tmp_path):
    info = start_source_app(test_network, rootfs, tmp_path)
    yield info
    stop_source_app(info)


@pytest.mark.parametrize("strategy", ["cold", "delta", "postcopy"])
def test_migrate_container_keeps_state(source_app, tmp_path, strategy):
    counter_before = TickLog.read(source_app["log"]).last_counter
    proc, report = migrate(source_app, tmp_path, strategy)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert report["strategy"] == strategy
    log = check_moved(source_app, report, counter_before)
    gap = log.max_gap()
    print("%s: pause %.3f s (podmig), workload gap %.3f s, %s" % (strategy, report["pause_s"], gap["gap_s"],
                                                                 report["pause_breakdown_s"]))
    assert report["pause_s"] > 0
    if strategy == "delta":
        assert len(report["rounds"]) >= 1
        assert report["convergence"]["stop"] is True or len(report["rounds"]) == 5
    assert "PLAY RECAP" in proc.stdout and "podmig: %s node-a -> node-b: MIGRATED" % source_app["name"] in proc.stdout


def test_auto_picks_a_strategy_this_machine_supports(source_app, tmp_path):
    counter_before = TickLog.read(source_app["log"]).last_counter
    proc, report = migrate(source_app, tmp_path, "auto")
    assert proc.returncode == 0, proc.stdout[-6000:]
    # No soft-dirty here: auto must not pick precopy, and says why.
    assert report["strategy"] == "postcopy" and "precopy" in report["strategy_reason"]
    check_moved(source_app, report, counter_before)


def test_refusals_freeze_nothing(source_app, tmp_path):
    counter = TickLog.read(source_app["log"]).last_counter
    cases = [
        ({"podmig_strategy": "precopy"}, "dirty tracking"),
        ({"podmig_target": "node-a"}, "different nodes"),
        ({"podmig_container": "no-such-app"}, "does not exist"),
    ]
    for extra, expected in cases:
        proc, report = migrate(source_app, tmp_path, extra.pop("podmig_strategy", "auto"), **extra)
        assert proc.returncode != 0
        assert report["outcome"] == "refused", report
        assert any(expected in r for r in report["refusals"]), (expected, report["refusals"])
    source_still_serving(source_app, counter)
