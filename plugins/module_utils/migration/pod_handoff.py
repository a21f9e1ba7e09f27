# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""The frozen part of a pod migration on the source node, in one process.

All application containers of the pod stop at one point: the pod's freezer cgroup is frozen as a
whole, each container is then paused through runc (so runc and CRIU see it held), and the pod
cgroup is thawed again (each container stays frozen by its own freezer state). Each container is
dumped with --leave-running, so it stays frozen and kubelet still sees it RUNNING: never restarted,
and a rollback is a `runc resume`. Images and the raw writable layer go to the staging directory
that podmig's containerd patch restores from on the target (docs/containerd-patch.md):

    <dest_dir>/<container>/images/  CRIU images      <dest_dir>/<container>/upper/  raw upper dir
    <dest_dir>/<container>/lazy-pages (post-copy)    <dest_dir>/<container>/READY   dropped last

The pod's emptyDir volumes are copied into the new pod's own volume directories (given by the
caller) before READY: the restored processes find the files they hold open.

For post-copy, the target's `criu lazy-pages` daemon is started (over the same SSH connection)
before READY, so that the restore finds it. On a failure before the first READY every container is
resumed here before the error is returned; after it, the pod stays held frozen (``held_frozen``):
the target may be restoring already, so the caller fences the target (pod_fence) and then resumes.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import time
from typing import Any

from ansible_collections.podmig.live.plugins.module_utils.checkpoint import abort_lazy_dump, take_checkpoint
from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner, find_binary
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.migration import convergence
from ansible_collections.podmig.live.plugins.module_utils.migration.handoff import READY, Sender
from ansible_collections.podmig.live.plugins.module_utils.procfs import cgroups
from ansible_collections.podmig.live.plugins.module_utils.runc import RuncClient

FREEZER_ROOT = "/sys/fs/cgroup/freezer"
LAZY_MARKER = "lazy-pages"


def pod_freezer_dir(container_cgroups: list[dict[str, str]], root: str = FREEZER_ROOT) -> str:
    """The freezer cgroup directory of the pod: the common parent of its containers' freezer cgroups.

    container_cgroups: one /proc/<pid>/cgroup mapping per container (controller -> path).
    """
    parents = set()
    for mapping in container_cgroups:
        path = mapping.get("freezer")
        if not path or path == "/":
            raise PodmigError("a container of the pod has no freezer cgroup of its own (cgroup v1 freezer needed)",
                              cgroups=mapping)
        parents.add(os.path.dirname(path.rstrip("/")))
    if len(parents) != 1:
        raise PodmigError("the containers are not in one pod cgroup: %s" % ", ".join(sorted(parents)))
    parent = parents.pop()
    if parent in ("", "/"):
        raise PodmigError("refusing to freeze the root freezer cgroup")
    return root.rstrip("/") + parent


def freeze(cgroup_dir: str, state: str, timeout: float = 10.0) -> None:
    """Write FROZEN or THAWED into a v1 freezer and wait until the kernel reports it."""
    path = os.path.join(cgroup_dir, "freezer.state")
    deadline = time.monotonic() + timeout
    while True:
        with open(path, "w", encoding="ascii") as handle:
            handle.write(state)
        with open(path, encoding="ascii") as handle:
            now = handle.read().strip()
        if now == state:
            return
        if time.monotonic() > deadline:
            raise PodmigError("freezer %s stayed %s instead of %s" % (cgroup_dir, now, state))
        time.sleep(0.005)


def lazy_daemon_command(criu: str, container_dir: str, source_address: str, port: int) -> str:
    """Shell command (run on the target) starting CRIU's lazy-pages daemon for one container.

    Its socket is the relative `lazy-pages.socket` in the work dir the restore uses (<dir>/work).
    """
    d = shlex.quote(container_dir.rstrip("/"))
    return ("umask 077 && mkdir -p {d}/work && {criu} lazy-pages --page-server --address {a} --port {p} "
            "--images-dir {d}/images --work-dir {d}/work -o lazy-pages.log -d && echo {a}:{p} > {d}/{m}").format(
        d=d, criu=shlex.quote(criu), a=shlex.quote(source_address), p=int(port), m=LAZY_MARKER)


def free_ports(address: str, first: int, count: int, limit: int = 64) -> list[int]:
    """``count`` ports from ``first`` upwards that can be bound on ``address`` now: a page server
    of an earlier post-copy migration may still serve pages from this node, or another migration
    from this node may run at the same time."""
    ports: list[int] = []
    for port in range(first, first + limit):
        with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((address, port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise PodmigError("no %d free page-server port(s) on %s in %d-%d" % (count, address, first, first + limit - 1))


def page_server_port(params: dict[str, Any], index: int) -> int:
    """The page-server port of the index-th container: the free ones found before the freeze."""
    ports = params.get("page_server_ports")
    return ports[index] if ports else params["page_server_port"] + index


def round_params(params: dict[str, Any], container: dict[str, Any], index: int, number: int) -> dict[str, Any]:
    """container_checkpoint parameters for one copy round (delta) of one container: a full dump
    with --leave-running into its own directory, while the pod runs on."""
    ck = checkpoint_params(dict(params, strategy="cold"), container, index)
    ck.update(image_dir=os.path.join(params["work_dir"], container["name"], "rounds", "r%d" % number),
              leave_running=True, hold_frozen=False)
    return ck


def copy_rounds(module: Any, runner: CommandRunner, params: dict[str, Any], containers: list[dict[str, Any]],
                sender: Sender) -> dict[str, Any]:
    """delta: rounds of full dumps with --leave-running while the pod runs, each synced onto the
    target's copy of the previous round, so that only the 4 KiB blocks that changed cross the link
    (CRIU pre-dump needs soft-dirty tracking, which this kernel lacks). The rounds stop by the
    convergence rules (convergence.py); the final dump, frozen, then sends only what changed since.
    Every container's round is one dump each, not one consistent point: only the final dump is."""
    rounds: list[dict[str, Any]] = []
    while True:
        number = len(rounds) + 1
        start = time.monotonic()
        dirty = sent = 0
        for index, container in enumerate(containers):
            ck = round_params(params, container, index, number)
            take_checkpoint(module, runner, ck)
            stats = sender.send(ck["image_dir"], os.path.join(params["dest_dir"], container["name"], "images"),
                                "round %d of %s" % (number, container["name"]))
            dirty += int(stats.get("literal_bytes", 0))
            sent += int(stats.get("bytes_sent", 0))
            shutil.rmtree(ck["image_dir"], ignore_errors=True)  # the target holds it now
        rounds.append({"round": number, "dirty_bytes": dirty, "bytes_sent": sent,
                       "duration_s": round(time.monotonic() - start, 3)})
        state = convergence.decide(rounds, params.get("convergence"))
        if state["stop"]:
            return {"rounds": rounds, "convergence": state["reason"]}


def checkpoint_params(params: dict[str, Any], container: dict[str, Any], index: int) -> dict[str, Any]:
    """container_checkpoint parameters for one container's final dump."""
    lazy = params["strategy"] == "postcopy"
    image_dir = os.path.join(params["work_dir"], container["name"], "images")
    return {
        "container": container["id"],
        "runtime_root": params["runtime_root"],
        "runc_path": params.get("runc_path"),
        "criu_path": params.get("criu_path"),
        "image_dir": image_dir,
        "work_dir": None,
        "mode": "lazy" if lazy else "dump",
        "parent_dir": None,
        # Held frozen after the dump (also after the last page was served): kubelet sees it RUNNING.
        "leave_running": False,
        "hold_frozen": True,
        "page_server": "%s:%d" % (params["page_server_address"], page_server_port(params, index)) if lazy else None,
        "lazy_ready_timeout": 120,
        "force": True,
        "tcp_established": params.get("tcp_established", False),
        "file_locks": params.get("file_locks", False),
        "ext_unix_sk": params.get("ext_unix_sk", False),
        "manage_cgroups_mode": params.get("manage_cgroups_mode"),
    }


def rollback(module: Any, runner: CommandRunner, params: dict[str, Any], freezer_dir: str | None) -> list[str]:
    """Resume every container of the pod after a failed hand-off; returns what was done."""
    done = []
    if freezer_dir:
        try:
            freeze(freezer_dir, "THAWED")
        except (OSError, PodmigError) as err:
            done.append("pod freezer: %s" % err)
    runc = RuncClient(runner, find_binary(module, "runc", params.get("runc_path")), params["runtime_root"])
    for index, container in enumerate(params["containers"]):
        if params["strategy"] == "postcopy":
            aborted = abort_lazy_dump(checkpoint_params(params, container, index)["image_dir"].rstrip("/") + ".work")
            if aborted and aborted.get("aborted"):
                done.append("%s: lazy dump aborted" % container["name"])
        state = runc.state(container["id"])
        if state and state.get("status") == "paused":
            runc.resume(container["id"])
            done.append("%s: resumed" % container["name"])
        else:
            done.append("%s: %s" % (container["name"], state.get("status") if state else "absent"))
    return done


def pod_handoff(module: Any, runner: CommandRunner, params: dict[str, Any]) -> dict[str, Any]:
    """Freeze the pod, dump each container, send images and upper layers, start lazy daemons, signal."""
    runc = RuncClient(runner, find_binary(module, "runc", params.get("runc_path")), params["runtime_root"])
    containers = params["containers"]
    pids = {}
    for container in containers:
        state = runc.require(container["id"], ("running",))
        pids[container["name"]] = int(state["pid"])
    freezer_dir = params.get("pod_freezer") or pod_freezer_dir([cgroups(pid) for pid in pids.values()])
    result: dict[str, Any] = {"strategy": params["strategy"], "pod_freezer": freezer_dir, "containers": {}}
    if module.check_mode:
        result["changed"] = True
        return result

    if params["strategy"] == "postcopy":
        params = dict(params, page_server_ports=free_ports(
            params["page_server_address"], params["page_server_port"], len(containers)))
        result["page_server_ports"] = params["page_server_ports"]
    sender = Sender(module, runner, params)
    sender.open()
    if sender.master_error:
        result["warnings"] = ["no shared SSH connection (%s): each send connects on its own" % sender.master_error]
    target = "%s@%s" % (params.get("ssh_user", "root"), params["dest_host"])
    frozen_here = None
    signalled: list[str] = []
    try:
        if params["strategy"] == "delta":
            result.update(copy_rounds(module, runner, params, containers, sender))
        result["frozen_at"] = time.time()
        freeze(freezer_dir, "FROZEN")
        frozen_here = freezer_dir
        for container in containers:
            runc.pause(container["id"])  # already frozen by the pod cgroup: marks it held for runc and CRIU
        freeze(freezer_dir, "THAWED")  # each container stays FROZEN by its own freezer state
        frozen_here = None
        result["pod_frozen_s"] = round(time.time() - result["frozen_at"], 6)

        for index, container in enumerate(containers):
            ck = checkpoint_params(params, container, index)
            entry = result["containers"].setdefault(container["name"], {"id": container["id"]})
            entry["checkpoint"] = take_checkpoint(module, runner, ck)
        result["dumped_at"] = time.time()

        bytes_sent = 0
        for index, container in enumerate(containers):
            entry = result["containers"][container["name"]]
            dest = os.path.join(params["dest_dir"], container["name"])
            ck = checkpoint_params(params, container, index)
            entry["images_sent"] = sender.send(ck["image_dir"], os.path.join(dest, "images"),
                                               "the images of %s" % container["name"])
            bytes_sent += int(entry["images_sent"].get("bytes_sent", 0))
            if container.get("upperdir"):
                entry["upper_sent"] = sender.send(container["upperdir"], os.path.join(dest, "upper"),
                                                  "the writable layer of %s" % container["name"], keep_modes=True)
                bytes_sent += int(entry["upper_sent"].get("bytes_sent", 0))
            if params["strategy"] == "postcopy":
                runner.run(sender.ssh + [target, lazy_daemon_command(
                    params.get("target_criu_path") or "criu", dest, params["page_server_address"],
                    page_server_port(params, index))], "starting the lazy-pages daemon of %s" % container["name"])
        result["volumes"] = {}
        for volume in params.get("volumes") or []:
            # emptyDir content: the new pod's own directory, made by kubelet before its containers start
            sent = sender.send(volume["src"], volume["dest"], "volume %s" % volume["name"], keep_modes=True)
            result["volumes"][volume["name"]] = sent
            bytes_sent += int(sent.get("bytes_sent", 0))
        result["sent_at"] = time.time()
        for container in containers:
            # containerd restores these images only into the pod READY names (the shell pod)
            sender.signal(os.path.join(params["dest_dir"], container["name"]), ("pod=%s" % params["shell_pod"],))
            signalled.append(container["name"])
        result["signalled_at"] = time.time()
        result["final_bytes_sent"] = bytes_sent
        result["bytes_sent"] = bytes_sent + sum(r["bytes_sent"] for r in result.get("rounds") or [])
    except (PodmigError, OSError) as err:
        if not isinstance(err, PodmigError):
            err = PodmigError("pod hand-off failed: %s" % err)
        if signalled:
            # The target may be restoring what READY released already: resuming here could run the
            # pod twice. It stays held frozen; the caller fences the target first (pod_fence), then
            # resumes it (state=rolled_back).
            err.details.update(held_frozen=True, signalled=signalled)
            err.msg += " (READY was given for %s: the pod stays frozen until the target is fenced)" % (
                ", ".join(signalled))
            err.args = (err.msg,)
            raise err from None
        try:
            err.details["rolled_back"] = rollback(module, runner, params, frozen_here)
        except PodmigError as rb_err:
            err.details["rollback_error"] = rb_err.msg
        raise err from None
    finally:
        sender.close()
    result["source_frozen_s"] = round(result["signalled_at"] - result["frozen_at"], 6)
    result["changed"] = True
    return result


def pod_rollback(module: Any, runner: CommandRunner, params: dict[str, Any]) -> dict[str, Any]:
    """Resume a pod held frozen by pod_handoff (the playbook's rollback after a failed restore)."""
    done = rollback(module, runner, params, None)
    return {"changed": True, "rolled_back": done, "resumed_at": time.time()}
