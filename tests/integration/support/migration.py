# -*- coding: utf-8 -*-
"""Running migrate_container.yml between the SSH test hosts and checking what moved."""

from __future__ import annotations

import glob
import json
import os
import subprocess

from ticks import TickLog, wait_for

from .ansible_runner import REPO, run_playbook
from .containers import Runc, make_bundle, unmount_bundle, workload_args

PLAYBOOK = os.path.join(REPO, "playbooks", "migrate_container.yml")
LOG_IN_CONTAINER = "/var/lib/app/ticks"


def migrate(info, tmp_path, strategy, inventory=None, **extra):
    """Run the playbook; returns (completed process, report dict or None)."""
    report_dir = os.path.join(str(tmp_path), "reports")
    extra_vars = {"podmig_container": info["name"], "podmig_source": "node-a", "podmig_target": "node-b",
                  "podmig_strategy": strategy, "podmig_report_dir": report_dir}
    extra_vars.update(extra)
    proc = run_playbook(PLAYBOOK, extra_vars, inventory=inventory or info["net"].inventory)
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




def start_source_app(test_network, rootfs, tmp_path, mib: int = 64, rate: float = 0.05) -> dict:
    """A workload container with an overlay rootfs on node-a, with files written and deleted in it."""
    node_a = test_network.hosts["node-a"]
    node_b = test_network.hosts["node-b"]
    runc_a = Runc(node_a.runtime_root, netns=node_a.netns)
    runc_b = Runc(node_b.runtime_root, netns=node_b.netns)
    name = "app-" + os.path.basename(str(tmp_path))[-6:].replace("_", "")
    bundle = make_bundle(os.path.join(node_a.workdir, "podmig", "bundles", name), rootfs,
                         workload_args(mib=mib, rate=rate, log=LOG_IN_CONTAINER), overlay=True)
    runc_a.run(name, bundle["bundle"])
    log = os.path.join(bundle["rootfs"], LOG_IN_CONTAINER.lstrip("/"))
    wait_for(lambda: os.path.exists(log) and TickLog.read(log).last_counter > 300, what="workload ticks")
    runc_a.cmd("exec", name, "/bin/sh", "-c",
               "echo written-before > /data/new-file && rm /etc/app.conf && rm -rf /srv/old && mkdir -p /srv/old "
               "&& echo fresh > /srv/old/only")
    info = {"name": name, "bundle": bundle, "log": log, "runc_a": runc_a, "runc_b": runc_b, "net": test_network}
    return info


def stop_source_app(info: dict) -> None:
    name = info["name"]
    info["runc_b"].remove(name)
    info["runc_a"].remove(name)
    node_b = info["net"].hosts["node-b"]
    for mount in glob.glob(os.path.join(node_b.workdir, "podmig", "migrations", name + "-*", "bundle", "rootfs")):
        subprocess.run(["umount", "-l", mount], check=False)
    unmount_bundle(info["bundle"])


def source_still_serving(info: dict, counter_before: int) -> None:
    """The source runs on with its state: counter continues, memory intact, nothing restarted."""
    assert info["runc_a"].status(info["name"]) == "running"
    wait_for(lambda: TickLog.read(info["log"]).last_counter > counter_before + 300, what="the source ticking on")
    log = TickLog.read(info["log"])
    assert len(log.starts) == 1 and log.counter_resets() == []
    before = len(log.verifies)
    info["runc_a"].signal(info["name"], "USR1")
    verify = wait_for(lambda: TickLog.read(info["log"]).verifies[before:], what="memory check")[0]
    assert verify.ok, verify
