# -*- coding: utf-8 -*-
"""Faults in the middle of migrate_container.yml: the source keeps running with its state every time.

Real faults on real processes: CRIU killed in the middle of the restore on the target, the link
to the target cut during a copy round, the target's disk filling up during the copy.
"""

from __future__ import annotations

import os
import stat
import subprocess

import pytest
from support.ansible_runner import RunningPlaybook
from support.migration import PLAYBOOK, migrate, source_still_serving, start_source_app, stop_source_app
from ticks import TickLog


@pytest.fixture
def source_app(test_network, rootfs, tmp_path):
    info = start_source_app(test_network, rootfs, tmp_path, mib=128, rate=0.05)
    yield info
    stop_source_app(info)


def assert_nothing_left_on_target(info):
    assert info["runc_b"].status(info["name"]) == "absent", "a half-restored copy was left on the target"


def extra_inventory(tmp_path, line: str) -> str:
    path = os.path.join(str(tmp_path), "faults.ini")
    with open(path, "w", encoding="ascii") as handle:
        handle.write("[nodes]\n%s\n" % line)
    return path


def test_criu_killed_midway_through_the_restore(source_app, tmp_path):
    """The target's CRIU dies while restoring: the source is resumed, the target cleaned."""
    wrapper_dir = os.path.join(str(tmp_path), "criu-killer")
    os.makedirs(wrapper_dir)
    real = "/usr/local/sbin/criu" if os.path.exists("/usr/local/sbin/criu") else subprocess.check_output(
        ["which", "criu"], text=True).strip()
    wrapper = os.path.join(wrapper_dir, "criu")
    with open(wrapper, "w", encoding="ascii") as handle:
        # The whole tree dies: CRIU's restore forks helpers, and one left behind keeps runc waiting forever.
        handle.write("#!/bin/sh\n# test fault: CRIU is killed 50 ms into every restore (runc runs `criu swrk`)\n"
                     "tree() { for c in $(pgrep -P \"$1\"); do tree \"$c\"; done; kill -9 \"$1\" 2>/dev/null; }\n"
                     "if [ \"$1\" = swrk ]; then %s \"$@\" & p=$!; sleep 0.05; kill -STOP $p 2>/dev/null;"
                     " tree $p; tree $p; wait $p; exit 137; fi\n"
                     "exec %s \"$@\"\n" % (real, real))
    os.chmod(wrapper, stat.S_IRWXU)
    inventories = [source_app["net"].inventory,
                   extra_inventory(tmp_path, "node-b podmig_criu_path=%s" % wrapper)]
    counter = TickLog.read(source_app["log"]).last_counter
    # Killing CRIU mid-restore sometimes leaves a "criu: restore" helper that runc waits for forever:
    # the landing's restore timeout must then kill the whole tree. Short here to keep the test short.
    proc, report = migrate(source_app, tmp_path, "cold", inventory=inventories, podmig_restore_timeout=20)
    assert proc.returncode != 0
    assert report["outcome"] == "rolled_back", report
    assert "runc restore failed" in report["error"], report["error"]
    assert_nothing_left_on_target(source_app)
    assert not criu_restore_helpers(source_app), "a CRIU restore helper outlived the rollback"
    target_dir = source_app["net"].hosts["node-b"].workdir.rstrip("/") + "/"
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        left = [line.split()[4] for line in handle if line.split()[4].startswith(target_dir)]
    assert not left, "the killed restore left mounts on the target: %s" % left
    source_still_serving(source_app, counter)


def criu_restore_helpers(info) -> list[str]:
    """Command lines of CRIU processes still restoring from images on this test's target node."""
    target_dir = info["net"].hosts["node-b"].workdir
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if "restore" in cmdline and "criu" in cmdline and target_dir in cmdline:
            found.append(cmdline)
    return found


def test_link_cut_during_a_copy_round(source_app, tmp_path):
    """The link to the target goes down while a round is being sent: rollback, source serving."""
    node_b = source_app["net"].hosts["node-b"]
    veth = "pmt-" + node_b.name[-6:]
    counter = TickLog.read(source_app["log"]).last_counter
    run = RunningPlaybook(PLAYBOOK, {
        "podmig_container": source_app["name"], "podmig_source": "node-a", "podmig_target": "node-b",
        "podmig_strategy": "delta", "podmig_io_timeout": 8, "podmig_bwlimit_kib": 20000,
        "podmig_report_dir": os.path.join(str(tmp_path), "reports")}, inventory=source_app["net"].inventory)
    try:
        run.wait_for_line("Round 1 | Send it")
        subprocess.run(["ip", "link", "set", veth, "down"], check=True)
        rc, output = run.finish()
    finally:
        subprocess.run(["ip", "link", "set", veth, "up"], check=True)
    assert rc != 0, output[-3000:]
    assert "ROLLED_BACK" in output, output[-4000:]
    source_still_serving(source_app, counter)
    assert_nothing_left_on_target(source_app)


def test_target_disk_fills_up_during_the_copy(source_app, tmp_path):
    """The target's disk fills between the plan and the copy: the copy fails, the source goes on."""
    node_b = source_app["net"].hosts["node-b"]
    target_dir = os.path.join(node_b.workdir, "podmig-small")
    os.makedirs(target_dir, exist_ok=True)
    # Room for the plan (128 MiB RSS needs ~256 MiB) but not once something else takes it.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300m,mode=0700", "tmpfs", target_dir], check=True)
    try:
        inventories = [source_app["net"].inventory, extra_inventory(tmp_path, "node-b podmig_dir=%s" % target_dir)]
        counter = TickLog.read(source_app["log"]).last_counter
        run = RunningPlaybook(PLAYBOOK, {
            "podmig_container": source_app["name"], "podmig_source": "node-a", "podmig_target": "node-b",
            "podmig_strategy": "delta", "podmig_report_dir": os.path.join(str(tmp_path), "reports")},
            inventory=inventories)
        run.wait_for_line("Writable layer | Capture the pre-sync delta")
        # Another tenant of the disk takes most of it.
        subprocess.run(["dd", "if=/dev/zero", "of=%s/filler" % target_dir, "bs=1M", "count=280"],
                       stderr=subprocess.DEVNULL, check=False)
        rc, output = run.finish()
        assert rc != 0
        assert "ROLLED_BACK" in output, output[-4000:]
        assert "No space left on device" in output, output[-4000:]
        source_still_serving(source_app, counter)
        assert_nothing_left_on_target(source_app)
    finally:
        subprocess.run(["umount", "-l", target_dir], check=False)
