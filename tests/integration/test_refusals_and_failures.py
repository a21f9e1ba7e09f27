# -*- coding: utf-8 -*-
"""Bad input is refused with a clear message before anything is frozen; a CRIU failure leaves the
source running with its state."""

from __future__ import annotations

import os

from support.ansible_runner import run_module
from support.containers import make_bundle
from ticks import TickLog, wait_for


def advancing(log_path: str, by: int = 100) -> bool:
    start = TickLog.read(log_path).last_counter
    wait_for(lambda: TickLog.read(log_path).last_counter > start + by, timeout=10, what="the source to tick on")
    return True


def test_criu_info_reports_strategies_with_reasons():
    facts = run_module("criu_info", {})
    assert not facts.failed, facts.msg
    criu = facts["ansible_facts"]["podmig_criu"]
    assert criu["installed"] and criu["version_ok"] and criu["check"]["ok"]
    strategies = criu["strategies"]
    assert strategies["cold"]["supported"] and strategies["delta"]["supported"]
    # The project's machines: no soft-dirty tracking, working userfaultfd (GUIDE section 3).
    assert criu["features"]["mem_dirty_track"]["supported"] is False
    assert strategies["precopy"]["supported"] is False
    assert "dirty tracking" in strategies["precopy"]["reason"]
    assert criu["features"]["uffd_noncoop"]["supported"] is True
    assert criu["pipe_max_size"] >= 4194304, "the criu role should have raised fs.pipe-max-size"
    assert strategies["postcopy"]["supported"] is True
    assert "iptables" in criu["network_lock_backends"]


def test_precopy_refused_here_with_the_reason(runc_local, workloads, workdir):
    info = workloads.start(runc_local, mib=16)
    image_dir = os.path.join(workdir, "refuse-precopy", "pre1")
    result = run_module("container_checkpoint", {"container": info["container"], "runtime_root": runc_local.root,
                                                 "image_dir": image_dir, "mode": "predump"})
    assert result.failed
    assert "dirty tracking" in result.msg and "mem_dirty_track" in result.msg
    assert result["missing_feature"] == "mem_dirty_track"
    assert not os.path.exists(image_dir), "nothing may be written before the checks pass"
    assert runc_local.status(info["container"]) == "running" and advancing(info["log"])


def test_unknown_container_is_refused(runc_local, workdir):
    result = run_module("container_checkpoint", {"container": "no-such-ct", "runtime_root": runc_local.root,
                                                 "image_dir": os.path.join(workdir, "refuse-unknown")})
    assert result.failed and "no-such-ct does not exist" in result.msg
    info = run_module("container_info", {"container": "no-such-ct", "runtime_root": runc_local.root})
    assert info.failed and "does not exist" in info.msg
    soft = run_module("container_info", {"container": "no-such-ct", "runtime_root": runc_local.root,
                                         "must_exist": False})
    assert not soft.failed and soft["exists"] is False
    thaw = run_module("container_thaw", {"container": "no-such-ct", "runtime_root": runc_local.root})
    assert thaw.failed and "does not exist" in thaw.msg


def test_stopped_container_is_refused(runc_local, rootfs, workdir):
    bundle = make_bundle(os.path.join(workdir, "bundles", "stopped"), rootfs, ["/bin/true"])
    runc_local.run("stopped-ct", bundle["bundle"])
    wait_for(lambda: runc_local.status("stopped-ct") == "stopped", what="the container to exit")
    result = run_module("container_checkpoint", {"container": "stopped-ct", "runtime_root": runc_local.root,
                                                 "image_dir": os.path.join(workdir, "refuse-stopped")})
    assert result.failed and "stopped-ct is stopped" in result.msg


def test_restore_refuses_missing_images_and_taken_ids(runc_local, workloads, workdir):
    info = workloads.start(runc_local, mib=16)
    missing = run_module("container_restore", {"container": "new-ct", "runtime_root": runc_local.root,
                                               "bundle": info["bundle"],
                                               "image_dir": os.path.join(workdir, "no-images-here")})
    assert missing.failed and "holds no checkpoint" in missing.msg
    assert runc_local.state("new-ct") is None

    image_dir = os.path.join(workdir, "refuse-taken", "r1")
    dumped = run_module("container_checkpoint", {"container": info["container"], "runtime_root": runc_local.root,
                                                 "image_dir": image_dir, "leave_running": True})
    assert not dumped.failed, dumped.msg
    taken = run_module("container_restore", {"container": info["container"], "runtime_root": runc_local.root,
                                             "bundle": info["bundle"], "image_dir": image_dir})
    assert taken.failed and "already exists" in taken.msg
    assert runc_local.status(info["container"]) == "running" and advancing(info["log"])

    again = run_module("container_checkpoint", {"container": info["container"], "runtime_root": runc_local.root,
                                                "image_dir": image_dir, "leave_running": True})
    assert again.failed and "not empty" in again.msg


def test_criu_failure_is_explained_and_rolled_back(runc_local, workloads, workdir):
    """A dump that CRIU aborts (its page server is unreachable) after the container was frozen:
    the error names CRIU's reason and the container is thawed with its memory intact."""
    info = workloads.start(runc_local, mib=16, rate=0.5)
    image_dir = os.path.join(workdir, "criu-fails", "final")
    result = run_module("container_checkpoint", {"container": info["container"], "runtime_root": runc_local.root,
                                                 "image_dir": image_dir, "hold_frozen": True,
                                                 "page_server": "127.0.0.1:9"})
    assert result.failed
    assert "runc checkpoint (dump) failed" in result.msg
    assert result["log_path"].endswith("dump.log") and any("Error" in line for line in result["log_tail"])
    assert "connect" in result.msg.lower(), result.msg  # CRIU's own reason, not just "rc=1"
    assert result["rolled_back"] and result["status_after"] == "running"
    assert runc_local.status(info["container"]) == "running" and advancing(info["log"])
    log = TickLog.read(info["log"])
    assert log.counter_resets() == [] and len(log.starts) == 1
    before = len(log.verifies)
    runc_local.signal(info["container"], "USR1")
    verify = wait_for(lambda: TickLog.read(info["log"]).verifies[before:], what="memory check")[0]
    assert verify.ok


def test_bad_parameters_are_refused_before_anything_runs(runc_local, workloads, workdir):
    info = workloads.start(runc_local, mib=16)
    base = {"container": info["container"], "runtime_root": runc_local.root,
            "image_dir": os.path.join(workdir, "bad-params")}
    cases = [
        ({"mode": "lazy"}, "needs page_server"),
        ({"mode": "lazy", "page_server": "nohostport"}, "ADDRESS:PORT"),
        ({"mode": "predump", "hold_frozen": True}, "hold_frozen applies to mode=dump"),
        ({"leave_running": True, "hold_frozen": True}, "either leave_running"),
        ({"parent_dir": os.path.join(workdir, "nothing")}, "holds no completed checkpoint"),
    ]
    for extra, expected in cases:
        result = run_module("container_checkpoint", dict(base, **extra))
        assert result.failed and expected in result.msg, (extra, result.msg)
        assert result.get("commands", []) == [] or all("checkpoint" not in c for c in result["commands"])
    assert runc_local.status(info["container"]) == "running"
    assert not os.path.exists(base["image_dir"])
