# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""The target side of a pod migration's rollback: no restored copy may run when the source resumes.

A rollback can start while the target already runs a restored copy: the restore worked but the
shell pod never became ready (a readiness probe that fails on the new node), the commit's API calls
failed, or kubelet went away mid-restore and containerd's failed start left the restored task
running. Resuming the source then would run the pod twice - two copies of an in-memory database,
both serving, both writing to a shared volume. So the rollback fences the target first:

1. withdraw the staged checkpoint: each container's READY marker is renamed WITHDRAWN, so a start
   that podmig's containerd still holds never restores it;
2. (the playbook has asked the API to delete the shell pod: kubelet stops its containers;)
3. wait, bounded, until no process is left in the shell pod's cgroups, found by the pod's uid
   (cgroupfs: ``pod<uid>``; systemd driver: ``...-pod<uid with _>.slice``) in the cgroup v1 freezer
   hierarchy, or the unified one on cgroup v2;
4. if processes are still there (kubelet down, containerd confused), kill them: freeze the pod
   cgroup, SIGKILL every process in it, thaw (cgroup v2: ``cgroup.kill``), and wait again briefly.

Only then does the playbook resume the source.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any, Callable

from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.migration.handoff import READY

WITHDRAWN = "WITHDRAWN"
CONSUMED = "CONSUMED"
CGROUP_ROOT = "/sys/fs/cgroup"


def pod_cgroup_names(uid: str) -> tuple[str, str]:
    """The names kubelet gives a pod's cgroup: cgroupfs driver, systemd driver (a .slice suffix)."""
    if not uid or "/" in uid or uid in (".", ".."):
        raise PodmigError("not a pod uid: %r" % uid)
    return "pod" + uid, "pod" + uid.replace("-", "_") + ".slice"


def hierarchy(root: str = CGROUP_ROOT) -> tuple[str, str]:
    """(directory to search, kind): the v1 freezer hierarchy, else the unified (v2) one."""
    freezer = os.path.join(root, "freezer")
    if os.path.isfile(os.path.join(freezer, "freezer.state")) or os.path.isdir(os.path.join(freezer, "kubepods")) \
            or os.path.isfile(os.path.join(freezer, "cgroup.procs")):
        return freezer, "v1"
    if os.path.isfile(os.path.join(root, "cgroup.controllers")):
        return root, "v2"
    raise PodmigError("no cgroup v1 freezer and no cgroup v2 hierarchy under %s" % root)


def find_pod_cgroups(base: str, uid: str) -> list[str]:
    """Every directory below ``base`` that is this pod's cgroup (normally one)."""
    names = pod_cgroup_names(uid)
    found = []
    for current, dirs, _files in os.walk(base):
        for name in list(dirs):
            if name in names or name.endswith("-" + names[1]):
                found.append(os.path.join(current, name))
                dirs.remove(name)  # its own subtree is the pod's: no need to look further
    return sorted(found)


def pids_in(cgroup_dirs: list[str]) -> list[int]:
    """The processes in these cgroups and all their children."""
    pids: set[int] = set()
    for top in cgroup_dirs:
        for current, _dirs, files in os.walk(top):
            if "cgroup.procs" not in files:
                continue
            try:
                with open(os.path.join(current, "cgroup.procs"), encoding="ascii") as handle:
                    pids.update(int(line) for line in handle if line.strip())
            except (FileNotFoundError, ProcessLookupError):
                continue  # the cgroup went away while we read it
    return sorted(pids)


def withdraw(staging_dir: str) -> dict[str, list[str]]:
    """Rename each container's READY marker to WITHDRAWN; say which were withdrawn and which consumed."""
    out: dict[str, list[str]] = {"withdrawn": [], "consumed": []}
    if not staging_dir or not os.path.isdir(staging_dir):
        return out
    for name in sorted(os.listdir(staging_dir)):
        container = os.path.join(staging_dir, name)
        try:
            os.rename(os.path.join(container, READY), os.path.join(container, WITHDRAWN))
            out["withdrawn"].append(name)
        except (FileNotFoundError, NotADirectoryError):
            pass
        if os.path.exists(os.path.join(container, CONSUMED)):
            out["consumed"].append(name)
    return out


def comm(pid: int) -> str:
    try:
        with open("/proc/%d/comm" % pid, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return "?"


def wait_empty(cgroup_dirs: list[str], timeout: float, poll: float = 0.1) -> list[int]:
    """Wait until no process is left in the cgroups (or the time is up); return what is left."""
    deadline = time.monotonic() + timeout
    while True:
        left = pids_in(cgroup_dirs)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(poll)


def kill_all(cgroup_dirs: list[str], kind: str, kill: Callable[[int, int], None] | None = None) -> list[int]:
    """SIGKILL every process of the pod's cgroups, frozen first so that none forks in between."""
    kill = kill or os.kill
    killed: list[int] = []
    for top in cgroup_dirs:
        if kind == "v2" and os.path.exists(os.path.join(top, "cgroup.kill")):
            killed.extend(pids_in([top]))
            with open(os.path.join(top, "cgroup.kill"), "w", encoding="ascii") as handle:
                handle.write("1")
            continue
        state = os.path.join(top, "freezer.state")
        frozen = False
        if os.path.exists(state):
            try:
                with open(state, "w", encoding="ascii") as handle:
                    handle.write("FROZEN")
                frozen = True
            except OSError:
                frozen = False
        try:
            for pid in pids_in([top]):
                try:
                    kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
        finally:
            if frozen:
                with open(state, "w", encoding="ascii") as handle:
                    handle.write("THAWED")  # SIGKILL is delivered once the tasks run again
    return sorted(set(killed))


def fence(params: dict[str, Any], check_mode: bool = False,
          kill: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Withdraw the staged checkpoint, wait for the shell pod's processes to go, kill what stays."""
    started = time.monotonic()
    base, kind = hierarchy(params.get("cgroup_root") or CGROUP_ROOT)
    cgroup_dirs = find_pod_cgroups(base, params["pod_uid"])
    before = pids_in(cgroup_dirs)
    result: dict[str, Any] = {
        "cgroups": cgroup_dirs, "cgroup_version": kind,
        "processes_before": [{"pid": pid, "comm": comm(pid)} for pid in before],
    }
    if check_mode:
        pending = withdrawable(params.get("staging_dir"))
        result.update(changed=bool(before or pending), withdrawn=pending, killed=[], clean=not before)
        return result
    markers = withdraw(params.get("staging_dir"))
    result.update(withdrawn=markers["withdrawn"], consumed=markers["consumed"])
    left = wait_empty(cgroup_dirs, float(params["timeout"])) if before else []
    killed: list[int] = []
    if left and params["kill"]:
        killed = kill_all(cgroup_dirs, kind, kill)
        left = wait_empty(cgroup_dirs, float(params["kill_timeout"]))
    result.update(
        killed=killed,
        processes_left=[{"pid": pid, "comm": comm(pid)} for pid in left],
        clean=not left,
        confirmed_at=time.time() if not left else None,
        waited_s=round(time.monotonic() - started, 3),
        changed=bool(markers["withdrawn"]) or bool(killed),
    )
    if left:
        raise PodmigError(
            "the shell pod %s still has processes on this node after %s s: %s" % (
                params["pod_uid"], params["timeout"],
                ", ".join("%d (%s)" % (p["pid"], p["comm"]) for p in result["processes_left"])),
            **{k: v for k, v in result.items() if k != "changed"})
    return result


def withdrawable(staging_dir: str | None) -> list[str]:
    """The containers whose READY marker a fence would withdraw (check mode)."""
    if not staging_dir or not os.path.isdir(staging_dir):
        return []
    return sorted(n for n in os.listdir(staging_dir) if os.path.exists(os.path.join(staging_dir, n, READY)))
