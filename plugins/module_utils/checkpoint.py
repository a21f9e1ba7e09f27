# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Checkpoint a runc container: the logic behind container_checkpoint and the migration hand-off.

Order matters for "nothing lost": every check runs before anything is paused
or dumped, and a failure after the pause resumes the container.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import time
from typing import Any

from ansible_collections.podmig.live.plugins.module_utils import image_dir as images
from ansible_collections.podmig.live.plugins.module_utils.args_common import criu_options
from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner, find_binary, tail_lines
from ansible_collections.podmig.live.plugins.module_utils.criu import CriuClient
from ansible_collections.podmig.live.plugins.module_utils.criu_stats import read_stats, summarize_dump
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError, ToolError
from ansible_collections.podmig.live.plugins.module_utils.runc import RuncClient, checkpoint_argv
from ansible_collections.podmig.live.plugins.module_utils.strategy import LAZY_MIN_PIPE_MAX_SIZE


def validate_params(params: dict) -> None:
    """Refusals that need no look at the node."""
    mode = params["mode"]
    if params["hold_frozen"] and mode not in ("dump", "lazy"):
        raise PodmigError("hold_frozen applies to mode=dump or lazy only (a %s leaves the container running)" % mode)
    if params["leave_running"] and mode != "dump":
        raise PodmigError("leave_running applies to mode=dump only")
    if params["hold_frozen"] and params["leave_running"]:
        raise PodmigError("choose either leave_running (keeps running) or hold_frozen (keeps it frozen)")
    if mode == "lazy" and not params["page_server"]:
        raise PodmigError("mode=lazy needs page_server: the ADDRESS:PORT this node serves pages on")
    if params["page_server"]:
        host, sep, port = params["page_server"].rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise PodmigError("page_server must be ADDRESS:PORT, got %r" % params["page_server"])
    if mode == "lazy" and params["parent_dir"]:
        raise PodmigError("a lazy dump cannot have a parent_dir (its pages are served, not written)")
    if params["parent_dir"] and not images.has_dump(params["parent_dir"]):
        raise PodmigError("parent_dir %s holds no completed checkpoint (no inventory.img)" % params["parent_dir"])


def require_features(criu: CriuClient, mode: str) -> None:
    """Refuse before freezing anything when the kernel cannot do what the mode needs."""
    if mode == "predump":
        feature = criu.feature("mem_dirty_track")
        if not feature["supported"]:
            raise PodmigError(
                "precopy (mode=predump) needs memory dirty tracking (CONFIG_MEM_SOFT_DIRTY), which this kernel "
                "lacks: criu check --feature mem_dirty_track says %r. Use the delta or postcopy strategy."
                % feature["message"],
                missing_feature="mem_dirty_track",
            )
    if mode == "lazy":
        feature = criu.feature("uffd-noncoop")
        if not feature["supported"]:
            raise PodmigError(
                "lazy pages need non-cooperative userfaultfd: criu check --feature uffd-noncoop says %r"
                % feature["message"],
                missing_feature="uffd-noncoop",
            )
        try:
            with open("/proc/sys/fs/pipe-max-size", encoding="ascii") as handle:
                pipe_max = int(handle.read())
        except (OSError, ValueError):
            pipe_max = 0
        if pipe_max < LAZY_MIN_PIPE_MAX_SIZE:
            raise PodmigError(
                "lazy pages need fs.pipe-max-size >= %d (it is %d): CRIU's page pipe fails with 'splice: Bad file "
                "descriptor' otherwise. The podmig.live.criu role sets it." % (LAZY_MIN_PIPE_MAX_SIZE, pipe_max),
                missing_feature="fs.pipe-max-size",
            )


def prepare_dirs(params: dict, check_mode: bool) -> str:
    image_dir = params["image_dir"]
    work_dir = params["work_dir"] or image_dir.rstrip("/") + ".work"
    if not images.is_empty(image_dir):
        if not params["force"]:
            raise PodmigError(
                "image_dir %s is not empty; give a new directory per round (or force=true to empty it)" % image_dir
            )
        if not check_mode:
            shutil.rmtree(image_dir)
    if not check_mode:
        images.ensure_private_dir(image_dir)
        images.ensure_private_dir(work_dir)
    return work_dir


def run_lazy(runner: CommandRunner, argv_for_fd, work_dir: str, timeout: int) -> int:
    """Start `runc checkpoint --lazy-pages` in the background; return its pid once the images are ready."""
    read_fd, write_fd = os.pipe()
    argv = argv_for_fd(write_fd)
    runner.commands.append(argv)
    log_path = os.path.join(work_dir, "runc-checkpoint.out")
    env = dict(os.environ)
    env.update(runner.environ)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            start_new_session=True,  # keep serving pages after this module exits
            env=env,
        )
    os.close(write_fd)
    try:
        ready, _w, _x = select.select([read_fd], [], [], timeout)
        data = os.read(read_fd, 1) if ready else b""
    finally:
        os.close(read_fd)
    if data:
        return proc.pid
    if proc.poll() is None:
        proc.kill()
    rc = proc.wait()
    raise ToolError(
        "lazy checkpoint did not become ready%s" % ("" if ready else " within %d s" % timeout),
        cmd=argv,
        rc=rc,
        stderr="".join(tail_lines(log_path, 10) or []),
        log_path=os.path.join(work_dir, "dump.log"),
        log_tail=tail_lines(os.path.join(work_dir, "dump.log")),
    )


def take_checkpoint(module: Any, runner: CommandRunner, params: dict) -> dict:
    """Validate, refuse early, checkpoint; on failure resume what this paused. ``params`` as the module's."""
    validate_params(params)
    criu_bin = find_binary(module, "criu", params["criu_path"])
    runner.prefer_path(os.path.dirname(criu_bin))
    runc = RuncClient(runner, find_binary(module, "runc", params["runc_path"]), params["runtime_root"])
    criu = CriuClient(runner, criu_bin)

    container = params["container"]
    runc.require(container, ("running", "paused"))
    require_features(criu, params["mode"])
    work_dir = prepare_dirs(params, module.check_mode)
    log_path = os.path.join(work_dir, "dump.log")

    def argv_for(status_fd=None) -> list[str]:
        return checkpoint_argv(
            runc.binary,
            runc.root,
            container,
            params["image_dir"],
            work_dir,
            mode=params["mode"],
            parent_dir=params["parent_dir"],
            leave_running=params["leave_running"] or params["hold_frozen"],
            page_server=params["page_server"],
            status_fd=status_fd,
            **criu_options(params),
        )

    result = {"mode": params["mode"], "image_dir": params["image_dir"], "work_dir": work_dir, "log": log_path}
    if module.check_mode:
        planned = []
        if params["hold_frozen"]:
            planned.append(runc.argv("pause", container))
        planned.append(argv_for(3 if params["mode"] == "lazy" else None))
        runner.commands.extend(planned)
        return result

    paused_here = False
    start = time.monotonic()
    try:
        if params["hold_frozen"] and runc.state(container).get("status") != "paused":
            runc.pause(container)
            paused_here = True
        if params["mode"] == "lazy":
            result["checkpoint_pid"] = run_lazy(runner, argv_for, work_dir, params["lazy_ready_timeout"])
            record_lazy_dump(work_dir, result["checkpoint_pid"], params["page_server"])
        else:
            runner.run(argv_for(), "runc checkpoint (%s)" % params["mode"], log_path=log_path)
    except PodmigError as err:
        # Nothing lost: a container this module paused is resumed; CRIU resumes the tasks of a failed dump.
        if paused_here:
            try:
                runc.resume(container)
                err.details["rolled_back"] = "container resumed after the failed checkpoint"
            except PodmigError as resume_err:
                err.details["rollback_error"] = resume_err.msg
        after = runc.state(container)
        err.details["status_after"] = after.get("status") if after else "absent"
        raise
    result["duration_s"] = round(time.monotonic() - start, 6)
    images.make_private(params["image_dir"])
    result["image_bytes"] = images.tree_bytes(params["image_dir"])
    result["stats"] = summarize_dump(read_stats(work_dir, "dump"))
    after = runc.state(container)
    result["status_after"] = after.get("status") if after else "absent"
    # (a lazy dump holds the tasks itself, seized, until the last page was served, and freezes the
    # paused container's cgroup again afterwards: runc may say "running" meanwhile)
    if params["hold_frozen"] and params["mode"] == "dump" and result["status_after"] != "paused":
        raise PodmigError(
            "the container should be held frozen after the dump but runc reports %s" % result["status_after"],
            **result,
        )
    return result


LAZY_STATE = "lazy-dump.json"


def record_lazy_dump(work_dir: str, pid: int, page_server: str) -> None:
    """Remember a lazy dump that is serving pages, so that it can be aborted (rollback)."""
    with open(os.path.join(work_dir, LAZY_STATE), "w", encoding="utf-8") as handle:
        json.dump({"pid": pid, "page_server": page_server, "started": time.time()}, handle)


def _alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii") as handle:
            return handle.read().split(") ", 1)[1][:1] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def abort_lazy_dump(work_dir: str, timeout: float = 10.0) -> dict | None:
    """Roll back a post-copy before the target has connected: the source resumes with its state.

    A lazy dump keeps the container frozen while its page server waits for the target's
    lazy-pages daemon. A request CRIU cannot parse makes the page server fail, and CRIU then
    unfreezes the tasks ("Lazy pages transfer FAILED. Unfreezing tasks", criu/cr-dump.c).
    Once the target is fetching pages this is impossible: post-copy's documented risk.
    Returns None when no lazy dump is pending in ``work_dir``.
    """
    path = os.path.join(work_dir, LAZY_STATE)
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
        pid = int(state["pid"])
        page_server = str(state["page_server"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(pid):
        os.unlink(path)
        return {"aborted": False, "reason": "the lazy dump had already ended"}
    host, _sep, port = page_server.rpartition(":")
    if host in ("0.0.0.0", "", "::", "[::]"):
        host = "127.0.0.1"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5) as sock:
            sock.sendall(b"podmig-abort")  # not a page_server_iov: the page server gives up
    except OSError as exc:
        raise PodmigError("cannot reach the page server %s to abort the lazy dump: %s" % (page_server, exc))
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        raise PodmigError(
            "the lazy dump (pid %d) did not stop: the target is probably fetching pages already, and post-copy "
            "cannot be rolled back once it has started" % pid
        )
    os.unlink(path)
    return {"aborted": True, "pid": pid}
