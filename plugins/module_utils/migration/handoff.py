# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""The frozen part of a migration on the source node, in one process.

Every Ansible task costs a few hundred milliseconds, so the pause is not spent
in tasks: one module freezes and dumps (held frozen, or lazy for post-copy),
captures the final writable-layer delta, sends both, and drops READY on the
target, where ``landing`` has been waiting since before the freeze. If any of
it fails, the container is resumed here before the error is returned.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from typing import Any

from ansible_collections.podmig.live.plugins.module_utils import rootfs_delta
from ansible_collections.podmig.live.plugins.module_utils.checkpoint import abort_lazy_dump, take_checkpoint
from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner, find_binary
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.rsync import parse_stats, ssh_command, transfer_argv
from ansible_collections.podmig.live.plugins.module_utils.runc import RuncClient

READY = "READY"

# How the final checkpoint is taken per strategy.
FINAL_MODE = {"cold": "dump", "delta": "dump", "precopy": "dump", "postcopy": "lazy"}


def checkpoint_params(params: dict[str, Any]) -> dict[str, Any]:
    """container_checkpoint parameters for the final dump of ``params['strategy']``."""
    mode = FINAL_MODE[params["strategy"]]
    return {
        "container": params["container"],
        "runtime_root": params["runtime_root"],
        "runc_path": params.get("runc_path"),
        "criu_path": params.get("criu_path"),
        "image_dir": params["image_dir"],
        "work_dir": None,
        "mode": mode,
        "parent_dir": params.get("parent_dir") if params["strategy"] == "precopy" else None,
        "leave_running": False,
        "hold_frozen": mode == "dump",
        "page_server": params.get("page_server") if mode == "lazy" else None,
        "lazy_ready_timeout": 120,
        "force": True,
        "tcp_established": params.get("tcp_established", False),
        "file_locks": params.get("file_locks", False),
        "ext_unix_sk": params.get("ext_unix_sk", False),
        "manage_cgroups_mode": params.get("manage_cgroups_mode"),
    }


class Sender:
    """rsync over SSH to the target node, one directory at a time, over one SSH connection.

    The connection (key exchange, authentication: ~0.3 s each) is opened before the freeze,
    so the sends during the pause reuse it.
    """

    def __init__(self, module: Any, runner: CommandRunner, params: dict[str, Any]) -> None:
        self.runner = runner
        self.params = params
        self.control_dir = tempfile.mkdtemp(prefix="podmig-ssh-")
        self.control_path = os.path.join(self.control_dir, "%C")
        ssh_args = {
            "port": params.get("ssh_port", 22),
            "private_key": params.get("ssh_private_key"),
            "known_hosts_file": params.get("known_hosts_file"),
            "ssh_binary": find_binary(module, "ssh"),
        }
        self.ssh = ssh_command(control_path=self.control_path, **ssh_args)
        self.master = ssh_command(**ssh_args) + [
            "-o", "ControlMaster=yes", "-o", "ControlPath=%s" % self.control_path, "-o", "ControlPersist=600",
            "-f", "-N", "%s@%s" % (params.get("ssh_user", "root"), params["dest_host"])]
        self.rsync = find_binary(module, "rsync")
        self.master_error: str | None = None

    def open(self) -> None:
        """Start the shared SSH connection (failure only costs speed: each send then connects itself)."""
        log = os.path.join(self.control_dir, "master.log")
        with open(log, "wb") as out:
            try:
                proc = subprocess.run(self.master, stdin=subprocess.DEVNULL, stdout=out, stderr=out,  # noqa: S603
                                      timeout=30, check=False)
                if proc.returncode != 0:
                    self.master_error = "ssh master exited with %d" % proc.returncode
            except subprocess.TimeoutExpired:
                self.master_error = "ssh master did not start within 30 s"

    def signal(self, dest: str, lines: tuple[str, ...] = ()) -> None:
        """Drop READY into ``dest`` on the target (atomically: written, then renamed).

        READY holds the time it was written and ``lines`` (for a pod: ``pod=<ns>/<name>/<uid>``
        of the shell pod, which podmig's containerd checks before restoring anything)."""
        target = "%s@%s" % (self.params.get("ssh_user", "root"), self.params["dest_host"])
        d = shlex.quote(dest)
        steps = ["umask 077", "mkdir -p -- %s" % d, "date +%%s.%%N > %s/.READY.tmp" % d]
        steps += ["printf '%%s\\n' %s >> %s/.READY.tmp" % (shlex.quote(line), d) for line in lines]
        steps.append("mv %s/.READY.tmp %s/%s" % (d, d, READY))
        remote = " && ".join(steps)
        self.runner.run(self.ssh + [target, remote], "signalling READY to %s" % self.params["dest_host"])

    def close(self) -> None:
        # ControlMaster=no (from self.ssh): with "yes", -O exit would try to become a master itself.
        exit_cmd = self.ssh + ["-O", "exit", self.master[-1]]
        subprocess.run(exit_cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # noqa: S603
                       stderr=subprocess.DEVNULL, timeout=10, check=False)
        shutil.rmtree(self.control_dir, ignore_errors=True)

    def send(self, src: str, dest: str, what: str, delete: bool = True, keep_modes: bool = False) -> dict[str, int]:
        argv = transfer_argv(
            src,
            self.params["dest_host"],
            dest,
            self.ssh,
            user=self.params.get("ssh_user", "root"),
            rsync_binary=self.rsync,
            delete=delete,
            bwlimit_kib=self.params.get("bwlimit_kib") or None,
            io_timeout=self.params.get("io_timeout", 30),
            excludes=[] if keep_modes else ["*.log", "stats-*", "*.work"],
            keep_modes=keep_modes,
        )
        _rc, out, _err = self.runner.run(argv, "sending %s to %s" % (what, self.params["dest_host"]))
        return parse_stats(out)


def rollback(module: Any, runner: CommandRunner, params: dict[str, Any], work_dir: str) -> str:
    """Resume the source after a failed hand-off; returns what was done."""
    runc = RuncClient(runner, find_binary(module, "runc", params.get("runc_path")), params["runtime_root"])
    if FINAL_MODE[params["strategy"]] == "lazy":
        aborted = abort_lazy_dump(work_dir)
        if aborted and aborted.get("aborted"):
            return "aborted the lazy dump; the container runs on"
    state = runc.state(params["container"])
    if state and state.get("status") == "paused":
        runc.resume(params["container"])
        return "resumed the container"
    return "container is %s" % (state.get("status") if state else "absent")


def handoff(module: Any, runner: CommandRunner, params: dict[str, Any]) -> dict[str, Any]:
    """Freeze, dump, send, signal. Returns timings (epoch seconds) and sizes."""
    ck_params = checkpoint_params(params)
    work_dir = params["image_dir"].rstrip("/") + ".work"
    result: dict[str, Any] = {"strategy": params["strategy"], "mode": ck_params["mode"]}
    sender = Sender(module, runner, params)
    sender.open()
    if sender.master_error:
        result["warnings"] = ["no shared SSH connection (%s): each send connects on its own" % sender.master_error]
    result["frozen_at"] = time.time()
    try:
        checkpoint = take_checkpoint(module, runner, ck_params)
        result["checkpoint"] = checkpoint
        result["dumped_at"] = time.time()

        if params.get("rootfs_upperdir"):
            previous = params.get("rootfs_previous")
            delta = rootfs_delta.capture(params["rootfs_upperdir"], params["rootfs_delta_dir"],
                                         rootfs_delta.load_manifest(previous) if previous else None)
            result["rootfs"] = delta
        result["captured_at"] = time.time()

        result["images_sent"] = sender.send(params.get("send_dir") or params["image_dir"], params["images_dest"],
                                            "the checkpoint images")
        if params.get("rootfs_upperdir"):
            result["rootfs_sent"] = sender.send(params["rootfs_delta_dir"], params["rootfs_dest"],
                                                "the writable-layer delta")
        sender.signal(params["signal_dest"])
        result["signalled_at"] = time.time()
    except PodmigError as err:
        try:
            err.details["rolled_back"] = rollback(module, runner, params, work_dir)
        except PodmigError as rb_err:
            err.details["rollback_error"] = rb_err.msg
        raise
    finally:
        sender.close()
    result["command_durations_s"] = [
        {"command": " ".join(cmd[:2]) + (" ... " + cmd[-1] if len(cmd) > 2 else ""), "seconds": round(sec, 4)}
        for cmd, sec in zip(runner.commands, runner.durations)
    ]
    result["bytes_sent"] = sum(int(result.get(k, {}).get("bytes_sent", 0)) for k in ("images_sent", "rootfs_sent"))
    result["source_frozen_s"] = round(result["signalled_at"] - result["frozen_at"], 6)
    return result
