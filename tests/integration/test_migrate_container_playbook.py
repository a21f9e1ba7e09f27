# -*- coding: utf-8 -*-
"""playbooks/migrate_container.yml between two SSH test hosts, for every strategy this machine has.

The workload keeps its tick log in its writable layer, so the log itself proves that the
writable layer moved (CRIU refuses to restore an open file whose size differs).
"""

from __future__ import annotations

import glob
import json
import os
import subprocess

import pytest
from support.ansible_runner import REPO, run_playbook
from support.containers import Runc, make_bundle, unmount_bundle, workload_args
from ticks import TickLog, wait_for

PLAYBOOK = os.path.join(REPO, "playbooks", "migrate_container.yml")
LOG_IN_CONTAINER = "/var/lib/app/ticks"


@pytest.fixture
def source_app(test_network, rootfs, tmp_path):
    """A workload container with an overlay rootfs on node-a, with files written and deleted in it."""
    node_a = test_network.hosts["node-a"]
    node_b = test_network.hosts["node-b"]
    runc_a = Runc(node_a.runtime_root, netns=node_a.netns)
    runc_b = Runc(node_b.runtime_root, netns=node_b.netns)
    name = "app-" + os.path.basename(str(tmp_path))[-6:].replace("_", "")
    bundle = make_bundle(os.path.join(node_a.workdir, "podmig", "bundles", name), rootfs,
                         workload_args(mib=64, rate=0.05, log=LOG_IN_CONTAINER), overlay=True)
    runc_a.run(name, bundle["bundle"])
    log = os.path.join(bundle["rootfs"], LOG_IN_CONTAINER.lstrip("/"))
    wait_for(lambda: os.path.exists(log) and TickLog.read(log).last_counter > 300, what="workload ticks")
    runc_a.cmd("exec", name, "/bin/sh", "-c",
               "echo written-before > /data/new-file && rm /etc/app.conf && rm -rf /srv/old && mkdir -p /srv/old "
               "&& echo fresh > /srv/old/only")
    info = {"name": name, "bundle": bundle, "log": log, "runc_a": runc_a, "runc_b": runc_b, "net": test_network}
    yield info
    runc_b.remove(name)
    runc_a.remove(name)
    for mount in glob.glob(os.path.join(node_b.workdir, "podmig", "migrations", name + "-*", "bundle", "rootfs")):
        subprocess.run(["umount", "-l", mount], check=False)
    unmount_bundle(bundle)


def migrate(info, tmp_path, strategy, **extra):
    report_dir = os.path.join(str(tmp_path), "reports")
    extra_vars = {"podmig_container": info["name"], "podmig_source": "node-a", "podmig_target": "node-b",
                  "podmig_strategy": strategy, "podmig_report_dir": report_dir}
    extra_vars.update(extra)
    proc = run_playbook(PLAYBOOK, extra_vars, inventory=info["net"].inventory)
    reports = sorted(glob.glob(os.path.join(report_dir, "migration-*.json")))
    report = json.load(open(reports[-1], encoding="utf-8")) if reports else None
    return proc, report


def target_rootfs(info):
    mounts = glob.glob(os.path.join(info["net"].hosts["node-b"].workdir, "podmig", "migrations",
                                    info["name"] + "-*", "bundle", "rootfs"))
    assert len(mounts) == 1, mounts
    return mounts[0]


def check_moved(info, report, counter_before):
    assert report["outcome"] == "migrated", report
    assert info["runc_a"].status(info["name"]) == "absent", "the source must be gone after the commit"
    assert info["runc_b"].status(info["name"]) == "running"
    rootfs = target_rootfs(info)
    log_path = os.path.join(rootfs, LOG_IN_CONTAINER.lstrip("/"))
    wait_for(lambda: TickLog.read(log_path).last_counter > counter_before + 300, what="ticks on the target")
    log = TickLog.read(log_path)
    assert len(log.starts) == 1, "the workload started again instead of continuing"
    assert log.counter_resets() == []
    before = len(log.verifies)
    info["runc_b"].signal(info["name"], "USR1")
    verify = wait_for(lambda: TickLog.read(log_path).verifies[before:], what="memory check")[0]
    assert verify.ok, verify
    # The writable layer moved: written file there, deleted files still deleted, opaque dir honoured.
    assert open(os.path.join(rootfs, "data", "new-file"), encoding="ascii").read() == "written-before\n"
    assert not os.path.exists(os.path.join(rootfs, "etc", "app.conf"))
    assert sorted(os.listdir(os.path.join(rootfs, "srv", "old"))) == ["only"]
    return log


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
    assert source_app["runc_a"].status(source_app["name"]) == "running"
    wait_for(lambda: TickLog.read(source_app["log"]).last_counter > counter + 300, what="the source ticking on")
    assert TickLog.read(source_app["log"]).counter_resets() == []
