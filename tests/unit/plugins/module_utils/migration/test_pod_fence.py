# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the rollback's fence on the target (module_utils/migration/pod_fence.py).

The cgroup trees are directories made here in the layouts kubelet uses (cgroupfs and systemd
drivers, v1 and v2); the process that is killed is a real child of this test.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.migration import pod_fence

UID = "6b1d2c3e-aaaa-bbbb-cccc-0123456789ab"


def cgroup(path, pids=()):
    path.mkdir(parents=True, exist_ok=True)
    (path / "cgroup.procs").write_text("".join("%d\n" % p for p in pids))
    return path


def v1_tree(tmp_path, app_pids=(4242,), pause_pids=(4241,)):
    root = tmp_path / "cg"
    freezer = cgroup(root / "freezer")
    pod = cgroup(freezer / "kubepods" / "besteffort" / ("pod" + UID))
    (pod / "freezer.state").write_text("THAWED\n")
    cgroup(pod / "sandbox", pause_pids)
    cgroup(pod / "app", app_pids)
    cgroup(freezer / "kubepods" / "besteffort" / "podOTHER" / "x", (777,))
    return root, pod


def test_the_pod_cgroup_names_of_both_drivers():
    assert pod_fence.pod_cgroup_names(UID) == ("pod" + UID, "pod" + UID.replace("-", "_") + ".slice")


@pytest.mark.parametrize("uid", ["", "..", "a/b"])
def test_a_uid_that_could_name_another_directory_is_refused(uid):
    with pytest.raises(PodmigError, match="not a pod uid"):
        pod_fence.pod_cgroup_names(uid)


def test_the_pod_is_found_by_uid_in_the_cgroupfs_layout_and_only_it(tmp_path):
    root, pod = v1_tree(tmp_path)
    base, kind = pod_fence.hierarchy(str(root))
    assert (base, kind) == (str(root / "freezer"), "v1")
    assert pod_fence.find_pod_cgroups(base, UID) == [str(pod)]
    assert pod_fence.pids_in([str(pod)]) == [4241, 4242]


def test_the_pod_is_found_in_the_systemd_driver_layout_on_cgroup_v2(tmp_path):
    root = tmp_path / "cg"
    cgroup(root)
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    slice_dir = root / "kubepods.slice" / "kubepods-besteffort.slice"
    pod = cgroup(slice_dir / ("kubepods-besteffort-pod%s.slice" % UID.replace("-", "_")), (11,))
    cgroup(pod / "cri-containerd-abc.scope", (12, 13))
    base, kind = pod_fence.hierarchy(str(root))
    assert (base, kind) == (str(root), "v2")
    assert pod_fence.find_pod_cgroups(base, UID) == [str(pod)]
    assert pod_fence.pids_in(pod_fence.find_pod_cgroups(base, UID)) == [11, 12, 13]


def test_no_cgroup_hierarchy_is_an_error(tmp_path):
    with pytest.raises(PodmigError, match="no cgroup v1 freezer"):
        pod_fence.hierarchy(str(tmp_path))


def test_withdraw_renames_ready_and_tells_what_was_restored_already(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "READY").write_text("pod=default/x-mig/uid\n")
    (tmp_path / "side").mkdir()
    (tmp_path / "side" / "CONSUMED").write_text("")
    assert pod_fence.withdrawable(str(tmp_path)) == ["app"]
    assert pod_fence.withdraw(str(tmp_path)) == {"withdrawn": ["app"], "consumed": ["side"]}
    assert not (tmp_path / "app" / "READY").exists()
    assert (tmp_path / "app" / "WITHDRAWN").read_text() == "pod=default/x-mig/uid\n"
    assert pod_fence.withdraw(str(tmp_path)) == {"withdrawn": [], "consumed": ["side"]}  # idempotent
    assert pod_fence.withdraw(str(tmp_path / "absent")) == {"withdrawn": [], "consumed": []}


def params(root, staging=None, timeout=0.3):
    return {"pod_uid": UID, "staging_dir": staging, "timeout": timeout, "kill": True, "kill_timeout": 2,
            "cgroup_root": str(root)}


def test_a_pod_that_is_gone_already_is_clean_at_once(tmp_path):
    root, pod = v1_tree(tmp_path, app_pids=(), pause_pids=())
    result = pod_fence.fence(params(root))
    assert result["clean"] and result["killed"] == [] and result["processes_before"] == []
    assert result["confirmed_at"] and not result["changed"]


def test_processes_that_kubelet_stops_while_the_fence_waits_are_not_killed(tmp_path, monkeypatch):
    root, pod = v1_tree(tmp_path)
    waits = []

    def kubelet_stops_them(seconds):
        waits.append(seconds)
        if len(waits) == 2:
            (pod / "app" / "cgroup.procs").write_text("")
            (pod / "sandbox" / "cgroup.procs").write_text("")

    monkeypatch.setattr(pod_fence.time, "sleep", kubelet_stops_them)
    result = pod_fence.fence(params(root, timeout=30), kill=lambda pid, sig: pytest.fail("killed %d" % pid))
    assert result["clean"] and result["killed"] == [] and len(waits) == 2
    assert [p["pid"] for p in result["processes_before"]] == [4241, 4242]


def test_processes_left_after_the_timeout_are_killed_frozen_then_thawed(tmp_path):
    child = subprocess.Popen(["sleep", "60"])  # a process of this test stands for the restored copy
    try:
        root, pod = v1_tree(tmp_path, app_pids=(child.pid,), pause_pids=())
        states = []

        def kill(pid, sig):
            states.append((pod / "freezer.state").read_text())
            os.kill(pid, sig)
            child.wait(timeout=10)
            (pod / "app" / "cgroup.procs").write_text("")  # what the kernel does once it exited

        staging = tmp_path / "in"
        (staging / "app").mkdir(parents=True)
        (staging / "app" / "READY").write_text("pod=x\n")
        result = pod_fence.fence(params(root, staging=str(staging), timeout=0.2), kill=kill)
        assert result["clean"] and result["killed"] == [child.pid] and result["withdrawn"] == ["app"]
        assert states == ["FROZEN"] and (pod / "freezer.state").read_text() == "THAWED"
        assert child.returncode == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_processes_that_survive_the_kill_fail_the_fence_with_their_pids(tmp_path):
    root, pod = v1_tree(tmp_path, app_pids=(4242,), pause_pids=())
    with pytest.raises(PodmigError, match=r"still has processes on this node .*4242") as err:
        pod_fence.fence(dict(params(root, timeout=0.1), kill_timeout=0.1), kill=lambda pid, sig: None)
    assert err.value.details["clean"] is False and err.value.details["killed"] == [4242]


def test_without_kill_the_fence_only_waits_and_reports(tmp_path):
    root, pod = v1_tree(tmp_path, app_pids=(4242,), pause_pids=())
    with pytest.raises(PodmigError, match="still has processes"):
        pod_fence.fence(dict(params(root, timeout=0.1), kill=False), kill=lambda pid, sig: pytest.fail("killed"))


def test_check_mode_changes_nothing(tmp_path):
    root, pod = v1_tree(tmp_path)
    staging = tmp_path / "in"
    (staging / "app").mkdir(parents=True)
    (staging / "app" / "READY").write_text("")
    result = pod_fence.fence(params(root, staging=str(staging)), check_mode=True,
                             kill=lambda pid, sig: pytest.fail("killed"))
    assert result["changed"] and result["withdrawn"] == ["app"] and not result["clean"]
    assert (staging / "app" / "READY").exists() and (pod / "freezer.state").read_text() == "THAWED\n"
