# -*- coding: utf-8 -*-
"""Checkpoint and restore of a real runc container through the modules: state survives."""

from __future__ import annotations

import os
import stat
import time

from support.ansible_runner import run_module
from ticks import TickLog, wait_for


def ck_args(runc, info, image_dir, **extra):
    args = {"container": info["container"], "runtime_root": runc.root, "image_dir": image_dir}
    args.update(extra)
    return args


def verify_memory(runc, container, log):
    """Ask the workload to recompute its memory checksum; return the V line it writes."""
    before = len(TickLog.read(log).verifies)
    runc.signal(container, "USR1")
    return wait_for(lambda: TickLog.read(log).verifies[before:], timeout=10, what="the memory check")[0]


def test_dump_and_restore_keeps_memory_state(runc_local, workloads, workdir):
    info = workloads.start(runc_local, mib=32, rate=0.5)
    image_dir = os.path.join(workdir, "ck-dump-restore", "final")

    dumped = run_module("container_checkpoint", ck_args(runc_local, info, image_dir))
    assert not dumped.failed, dumped.msg
    assert dumped["status_after"] == "absent"  # a plain dump ends the source
    assert dumped["stats"]["pages_written"] > 32 * 256 * 0.9  # ~32 MiB of 4 KiB pages
    assert dumped["stats"]["frozen_time_us"] > 0
    assert dumped["image_bytes"] >= 32 << 20
    # The images hold process memory: private directory and files.
    assert stat.S_IMODE(os.stat(image_dir).st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(os.path.join(image_dir, f)).st_mode) == 0o600
               for f in os.listdir(image_dir) if os.path.isfile(os.path.join(image_dir, f)))
    counter_at_dump = TickLog.read(info["log"]).last_counter

    restore_args = {"container": info["container"], "runtime_root": runc_local.root, "image_dir": image_dir,
                    "bundle": info["bundle"]}
    restored = run_module("container_restore", restore_args)
    assert not restored.failed, restored.msg
    runc_local.adopt(info["container"])
    assert restored["changed"] and restored["status"] == "running"
    assert restored["stats"]["pages_restored"] > 0

    # The counter continues from where it was, it does not start again at 1.
    wait_for(lambda: TickLog.read(info["log"]).last_counter > counter_at_dump + 200, what="ticks after restore")
    log = TickLog.read(info["log"])
    assert len(log.starts) == 1, "the workload was started again instead of restored"
    assert log.counter_resets() == []
    verify = verify_memory(runc_local, info["container"], info["log"])
    assert verify.ok, "memory checksum differs after restore: %s" % verify
    assert verify.counter > counter_at_dump

    # Idempotent: the same restore again changes nothing.
    again = run_module("container_restore", restore_args)
    assert not again.failed, again.msg
    assert again["changed"] is False
    assert again["pid"] == restored["pid"]


def test_hold_frozen_then_thaw_rolls_back(runc_local, workloads, workdir):
    info = workloads.start(runc_local, mib=16)
    image_dir = os.path.join(workdir, "ck-hold", "final")

    dumped = run_module("container_checkpoint", ck_args(runc_local, info, image_dir, hold_frozen=True))
    assert not dumped.failed, dumped.msg
    assert dumped["status_after"] == "paused"
    assert runc_local.status(info["container"]) == "paused"
    frozen_at = TickLog.read(info["log"]).last_counter
    time.sleep(0.5)
    assert TickLog.read(info["log"]).last_counter == frozen_at, "the source kept running while held frozen"

    thawed = run_module("container_thaw", {"container": info["container"], "runtime_root": runc_local.root})
    assert not thawed.failed, thawed.msg
    assert thawed["changed"] and thawed["status_before"] == "paused" and thawed["status"] == "running"
    wait_for(lambda: TickLog.read(info["log"]).last_counter > frozen_at + 100, what="ticks after thaw")
    assert TickLog.read(info["log"]).counter_resets() == []
    assert verify_memory(runc_local, info["container"], info["log"]).ok

    # Thawing a running container changes nothing.
    again = run_module("container_thaw", {"container": info["container"], "runtime_root": runc_local.root})
    assert not again.failed and again["changed"] is False


def test_check_mode_freezes_nothing(runc_local, workloads, workdir):
    info = workloads.start(runc_local, mib=16)
    image_dir = os.path.join(workdir, "ck-check", "final")
    result = run_module("container_checkpoint", ck_args(runc_local, info, image_dir, hold_frozen=True), check=True)
    assert not result.failed, result.msg
    assert result["changed"] is True
    planned = [" ".join(cmd) for cmd in result["commands"]]
    assert any(" pause " in cmd for cmd in planned) and any(" checkpoint " in cmd for cmd in planned)
    assert not os.path.exists(image_dir)
    assert runc_local.status(info["container"]) == "running"


def test_leave_running_rounds_write_full_images(runc_local, workloads, workdir):
    """The delta strategy's rounds: full dumps while the container keeps running."""
    info = workloads.start(runc_local, mib=16, rate=0.5)
    base = os.path.join(workdir, "ck-rounds")
    for round_no in (1, 2):
        result = run_module("container_checkpoint",
                            ck_args(runc_local, info, os.path.join(base, "r%d" % round_no), leave_running=True))
        assert not result.failed, result.msg
        assert result["status_after"] == "running"
        assert result["stats"]["pages_written"] > 16 * 256 * 0.9
    before = TickLog.read(info["log"]).last_counter
    wait_for(lambda: TickLog.read(info["log"]).last_counter > before + 100, what="ticks after the rounds")
