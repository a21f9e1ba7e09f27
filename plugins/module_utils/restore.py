# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Restore a runc container from CRIU images: the logic behind container_restore and the
target side of a migration. A failed restore leaves nothing half-made on the node."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from typing import Any

from ansible_collections.podmig.live.plugins.module_utils import image_dir as images
from ansible_collections.podmig.live.plugins.module_utils import mountinfo, procfs
from ansible_collections.podmig.live.plugins.module_utils.args_common import criu_options
from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner, find_binary, tail_lines
from ansible_collections.podmig.live.plugins.module_utils.criu import lazy_pages_argv
from ansible_collections.podmig.live.plugins.module_utils.criu_stats import read_stats
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError, ToolError
from ansible_collections.podmig.live.plugins.module_utils.runc import RuncClient, restore_argv
from ansible_collections.podmig.live.plugins.module_utils.strategy import LAZY_MIN_PIPE_MAX_SIZE

MARKER = "podmig-restored.json"


def split_address(value: str) -> tuple[str, int]:
    host, sep, port = (value or "").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PodmigError("page_server must be ADDRESS:PORT, got %r" % value)
    return host.strip("[]"), int(port)


def validate(params: dict) -> None:
    if not images.has_dump(params["image_dir"]):
        raise PodmigError(
            "image_dir %s holds no checkpoint (no inventory.img): was the dump taken and copied here?"
            % params["image_dir"]
        )
    if not os.path.isfile(os.path.join(params["bundle"], "config.json")):
        raise PodmigError("bundle %s has no config.json" % params["bundle"])
    if params["lazy"]:
        if not params["page_server"]:
            raise PodmigError("lazy restore needs page_server: the source's ADDRESS:PORT")
        split_address(params["page_server"])
        try:
            with open("/proc/sys/fs/pipe-max-size", encoding="ascii") as handle:
                pipe_max = int(handle.read())
        except (OSError, ValueError):
            pipe_max = 0
        if pipe_max < LAZY_MIN_PIPE_MAX_SIZE:
            raise PodmigError(
                "lazy pages need fs.pipe-max-size >= %d (it is %d); the podmig.live.criu role sets it"
                % (LAZY_MIN_PIPE_MAX_SIZE, pipe_max)
            )


def already_restored(runc: RuncClient, params: dict, work_dir: str) -> dict | None:
    """The container's state if it runs and was restored from these same images by podmig."""
    state = runc.state(params["container"])
    if state is None:
        return None
    try:
        with open(os.path.join(work_dir, MARKER), encoding="utf-8") as handle:
            marker = json.load(handle)
    except (OSError, ValueError):
        marker = {}
    if marker.get("container") == params["container"] and marker.get("image_dir") == params["image_dir"] \
            and state.get("status") in ("running", "paused"):
        return state
    raise PodmigError(
        "container %s already exists under %s (status %s) and was not restored from %s; remove it first"
        % (params["container"], runc.root, state.get("status"), params["image_dir"])
    )


def set_cgroups_path(bundle: str, cgroups_path: str) -> bool:
    path = os.path.join(bundle, "config.json")
    with open(path, encoding="utf-8") as handle:
        config = json.load(handle)
    linux = config.setdefault("linux", {})
    if linux.get("cgroupsPath") == cgroups_path:
        return False
    linux["cgroupsPath"] = cgroups_path
    tmp = path + ".podmig-tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2)
    os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
    os.replace(tmp, path)
    return True


def start_lazy_daemon(runner: CommandRunner, argv: list[str], work_dir: str, timeout: int) -> subprocess.Popen:
    """Start `criu lazy-pages` detached and wait for its socket in the work dir."""
    runner.commands.append(argv)
    socket_path = os.path.join(work_dir, "lazy-pages.socket")
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    env = dict(os.environ)
    env.update(runner.environ)
    with open(os.path.join(work_dir, "lazy-pages.out"), "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # keeps fetching pages after this module exits
            env=env,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(socket_path):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.005)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log = os.path.join(work_dir, "lazy-pages.log")
    raise ToolError(
        "the lazy-pages daemon did not come up",
        cmd=argv,
        rc=proc.returncode,
        log_path=log,
        log_tail=tail_lines(log),
    )


def mounts_under(prefixes: list[str], mountinfo_text: str) -> list[str]:
    """Mount points at or below any of ``prefixes``, deepest first (the order to unmount them)."""
    roots = [p.rstrip("/") for p in prefixes if p]
    points = {
        m["mount_point"] for m in mountinfo.parse(mountinfo_text)
        if any(m["mount_point"] == r or m["mount_point"].startswith(r + "/") for r in roots)
    }
    return sorted(points, key=lambda point: (-point.count("/"), point))


def release_leftovers(runc: RuncClient, container: str, work_dir: str) -> dict:
    """What a killed CRIU leaves of a failed restore: its cgroup yard mounted in the work dir, runc's
    criu-root mount, and runc's state directory without a state (``runc delete`` cannot remove it,
    and the next restore under this name would find the name taken)."""
    state_dir = os.path.join(runc.root, container)
    unmounted = []
    for point in mounts_under([work_dir, state_dir], procfs.mountinfo_text()):
        if subprocess.run(["umount", "-l", point], check=False, capture_output=True).returncode == 0:
            unmounted.append(point)
    released: dict = {"unmounted": unmounted} if unmounted else {}
    if os.path.isdir(state_dir) and not os.path.exists(os.path.join(state_dir, "state.json")):
        shutil.rmtree(state_dir, ignore_errors=True)
        released["removed_state_dir"] = state_dir
    return released


def restore_container(module: Any, runner: CommandRunner, params: dict) -> tuple[bool, dict]:
    """Validate, restore, clean up a half-restored container on failure. ``params`` as the module's."""
    validate(params)
    criu_bin = find_binary(module, "criu", params["criu_path"])
    runner.prefer_path(os.path.dirname(criu_bin))
    runc = RuncClient(runner, find_binary(module, "runc", params["runc_path"]), params["runtime_root"])
    work_dir = params["work_dir"] or params["image_dir"].rstrip("/") + ".restore"
    log_path = os.path.join(work_dir, "restore.log")
    result: dict = {"image_dir": params["image_dir"], "work_dir": work_dir, "log": log_path}

    existing = already_restored(runc, params, work_dir)
    if existing:
        result.update(pid=existing.get("pid"), status=existing.get("status"))
        return False, result

    restore_cmd = restore_argv(
        runc.binary,
        runc.root,
        params["container"],
        params["bundle"],
        params["image_dir"],
        work_dir,
        lazy_pages=params["lazy"],
        **criu_options(params),
    )
    lazy_cmd = None
    if params["lazy"]:
        address, port = split_address(params["page_server"])
        lazy_cmd = lazy_pages_argv(criu_bin, params["image_dir"], work_dir, address, port)
    if module.check_mode:
        runner.commands.extend([c for c in (lazy_cmd, restore_cmd) if c])
        return True, result

    images.ensure_private_dir(work_dir)
    if params["cgroups_path"]:
        set_cgroups_path(params["bundle"], params["cgroups_path"])
    daemon = None
    start = time.monotonic()
    try:
        if lazy_cmd:
            daemon = start_lazy_daemon(runner, lazy_cmd, work_dir, params["lazy_socket_timeout"])
        # Bounded: CRIU killed mid-restore can leave a helper that keeps runc waiting forever.
        runner.run_bounded(restore_cmd, "runc restore", params["restore_timeout"], work_dir, log_path=log_path)
    except PodmigError as err:
        # Leave nothing half-restored behind on this node.
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if runc.state(params["container"]) is not None:
            try:
                runc.delete(params["container"], force=True)
                err.details["cleaned_up"] = "removed the half-restored container"
            except PodmigError as cleanup:
                err.details["cleanup_error"] = cleanup.msg
        err.details.update(release_leftovers(runc, params["container"], work_dir))
        raise
    result["duration_s"] = round(time.monotonic() - start, 6)
    state = runc.state(params["container"]) or {}
    result.update(pid=state.get("pid"), status=state.get("status", "absent"))
    result["stats"] = read_stats(work_dir, "restore") or {}
    if daemon is not None:
        result["lazy_pages_pid"] = daemon.pid
    with open(os.path.join(work_dir, MARKER), "w", encoding="utf-8") as handle:
        json.dump({"container": params["container"], "image_dir": params["image_dir"], "pid": result["pid"]}, handle)
    if result["status"] not in ("running", "paused"):
        raise PodmigError(
            "runc restore returned but the container is %s; see %s" % (result["status"], log_path),
            log_tail=tail_lines(log_path),
            **result,
        )
    return True, result
