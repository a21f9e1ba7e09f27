# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""The frozen part of a migration on the target node.

Started (as an async Ansible task) before the source is frozen, it waits for
READY from ``handoff``, then applies the final writable-layer delta, mounts the
container's rootfs overlay and restores the container, all in one process, so
the pause holds no Ansible round trips. A failure removes what it made here;
the playbook then resumes the source.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

from ansible_collections.podmig.live.plugins.module_utils import mountinfo, rootfs_delta
from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.restore import restore_container

READY = "READY"
ABORT = "ABORT"
POLL_S = 0.005


def wait_ready(signal_dir: str, timeout: float) -> float:
    """Block until ``signal_dir``/READY exists; returns when it was seen (epoch).

    ABORT in the same directory (written by the playbook's rollback) ends the wait.
    """
    path = os.path.join(signal_dir, READY)
    abort = os.path.join(signal_dir, ABORT)
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if os.path.exists(abort):
            raise PodmigError("the migration was aborted before the source was ready", aborted=True)
        if time.monotonic() > deadline:
            raise PodmigError("no READY from the source within %g s (%s)" % (timeout, path), timed_out=True)
        time.sleep(POLL_S)
    return time.time()


def overlay_options(lowerdirs: list[str], upperdir: str, workdir: str) -> str:
    for path in list(lowerdirs) + [upperdir, workdir]:
        if "," in path or (path in lowerdirs and ":" in path):
            raise PodmigError("overlay layer path %r contains ',' (or ':' in a lower layer)" % path)
    return "lowerdir=%s,upperdir=%s,workdir=%s" % (":".join(lowerdirs), upperdir, workdir)


def is_mounted(path: str) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        return mountinfo.find_mount(mountinfo.parse(handle.read()), os.path.realpath(path)) is not None


def mount_overlay(runner: CommandRunner, spec: dict[str, Any]) -> bool:
    """Mount the rootfs overlay; False when it was mounted already."""
    if is_mounted(spec["target"]):
        return False
    for path in (spec["upperdir"], spec["workdir"], spec["target"]):
        os.makedirs(path, exist_ok=True)
    runner.run(["mount", "-t", "overlay", "overlay", "-o",
                overlay_options(spec["lowerdirs"], spec["upperdir"], spec["workdir"]), spec["target"]],
               "mounting the rootfs overlay")
    return True


def restore_params(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "container": params["container"],
        "runtime_root": params["runtime_root"],
        "runc_path": params.get("runc_path"),
        "criu_path": params.get("criu_path"),
        "bundle": params["bundle"],
        "image_dir": params["image_dir"],
        "work_dir": params.get("work_dir"),
        "lazy": params.get("lazy", False),
        "page_server": params.get("page_server"),
        "cgroups_path": params.get("cgroups_path"),
        "lazy_socket_timeout": 30,
        "restore_timeout": params.get("restore_timeout", 300),
        "tcp_established": params.get("tcp_established", False),
        "file_locks": params.get("file_locks", False),
        "ext_unix_sk": params.get("ext_unix_sk", False),
        "manage_cgroups_mode": params.get("manage_cgroups_mode"),
    }


def land(module: Any, runner: CommandRunner, params: dict[str, Any]) -> dict[str, Any]:
    """Wait for READY, apply the final deltas, mount, restore. Returns timings (epoch seconds)."""
    if params.get("rootfs_deltas") and not params.get("rootfs_upperdir"):
        raise PodmigError("rootfs_deltas need rootfs_upperdir: the writable layer to apply them to")
    result: dict[str, Any] = {"started_at": time.time()}
    result["ready_at"] = wait_ready(params["signal_dir"], params.get("wait_timeout", 600))
    mounted_here = False
    try:
        applied = []
        for delta_dir in params.get("rootfs_deltas") or []:
            applied.append(rootfs_delta.apply(delta_dir, params["rootfs_upperdir"]))
        result["rootfs_applied"] = applied
        if params.get("rootfs_mount"):
            mounted_here = mount_overlay(runner, params["rootfs_mount"])
        result["applied_at"] = time.time()
        _changed, restored = restore_container(module, runner, restore_params(params))
        result["restore"] = restored
        result["restored_at"] = time.time()
    except PodmigError:
        if mounted_here:
            subprocess.run(["umount", params["rootfs_mount"]["target"]], check=False)
        raise
    result["target_pause_s"] = round(result["restored_at"] - result["ready_at"], 6)
    return result
