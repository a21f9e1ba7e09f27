# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""The runc command line: state, pause/resume, checkpoint and restore argv.

runc drives CRIU (``criu swrk``) for checkpoint and restore and knows the
container's bundle, cgroups and namespaces, so podmig checkpoints through runc
rather than calling ``criu dump`` on a pid. containerd's CRI containers live
under runc root ``/run/containerd/runc/k8s.io``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError, ToolError

CGROUP_MODES = ("soft", "full", "strict", "ignore")


def base_argv(binary: str, root: str) -> list[str]:
    return [binary, "--root", root]


def relative_parent(image_dir: str, parent_dir: str) -> str:
    """runc wants --parent-path relative to --image-path (checkpoint.go prepareImagePaths);
    CRIU then writes a relative ``parent`` symlink that survives copying the tree."""
    return os.path.relpath(os.path.abspath(parent_dir), os.path.abspath(image_dir))


def checkpoint_argv(
    binary: str,
    root: str,
    container: str,
    image_dir: str,
    work_dir: str,
    mode: str = "dump",
    parent_dir: str | None = None,
    leave_running: bool = False,
    page_server: str | None = None,
    status_fd: int | None = None,
    tcp_established: bool = False,
    file_locks: bool = False,
    ext_unix_sk: bool = False,
    shell_job: bool = False,
    manage_cgroups_mode: str | None = None,
) -> list[str]:
    """argv of ``runc checkpoint`` for a pre-dump, a dump or a lazy (post-copy) dump."""
    if mode not in ("predump", "dump", "lazy"):
        raise ValueError("mode must be predump, dump or lazy, not %r" % mode)
    if mode == "lazy" and not page_server:
        raise ValueError("a lazy dump needs page_server (ADDRESS:PORT the target's lazy-pages daemon connects to)")
    if mode == "lazy" and status_fd is None:
        raise ValueError("a lazy dump needs status_fd to learn when the dump is ready")
    if manage_cgroups_mode and manage_cgroups_mode not in CGROUP_MODES:
        raise ValueError("manage_cgroups_mode must be one of %s" % ", ".join(CGROUP_MODES))
    argv = base_argv(binary, root) + ["checkpoint", "--image-path", image_dir, "--work-path", work_dir]
    if mode == "predump":
        argv.append("--pre-dump")
    if parent_dir:
        argv += ["--parent-path", relative_parent(image_dir, parent_dir)]
    if leave_running and mode in ("dump", "lazy"):
        # lazy: a container paused before the dump stays frozen after its last page was served
        # (a pod's source: kubelet must keep seeing it RUNNING, and a rollback resumes it)
        argv.append("--leave-running")
    if mode == "lazy":
        argv.append("--lazy-pages")
    if page_server:
        argv += ["--page-server", page_server]
    if status_fd is not None:
        argv += ["--status-fd", str(status_fd)]
    if tcp_established:
        argv.append("--tcp-established")
    if file_locks:
        argv.append("--file-locks")
    if ext_unix_sk:
        argv.append("--ext-unix-sk")
    if shell_job:
        argv.append("--shell-job")
    if manage_cgroups_mode:
        argv += ["--manage-cgroups-mode", manage_cgroups_mode]
    argv.append(container)
    return argv


def restore_argv(
    binary: str,
    root: str,
    container: str,
    bundle: str,
    image_dir: str,
    work_dir: str,
    lazy_pages: bool = False,
    tcp_established: bool = False,
    file_locks: bool = False,
    ext_unix_sk: bool = False,
    shell_job: bool = False,
    manage_cgroups_mode: str | None = None,
    pid_file: str | None = None,
) -> list[str]:
    """argv of a detached ``runc restore``. Pre-dump parents need no option:
    CRIU follows the ``parent`` symlink in the image directory."""
    if manage_cgroups_mode and manage_cgroups_mode not in CGROUP_MODES:
        raise ValueError("manage_cgroups_mode must be one of %s" % ", ".join(CGROUP_MODES))
    argv = base_argv(binary, root) + [
        "restore",
        "--detach",
        "--bundle",
        bundle,
        "--image-path",
        image_dir,
        "--work-path",
        work_dir,
    ]
    if lazy_pages:
        argv.append("--lazy-pages")
    if tcp_established:
        argv.append("--tcp-established")
    if file_locks:
        argv.append("--file-locks")
    if ext_unix_sk:
        argv.append("--ext-unix-sk")
    if shell_job:
        argv.append("--shell-job")
    if manage_cgroups_mode:
        argv += ["--manage-cgroups-mode", manage_cgroups_mode]
    if pid_file:
        argv += ["--pid-file", pid_file]
    argv.append(container)
    return argv


def is_missing_container(text: str) -> bool:
    return "does not exist" in text or "container not found" in text.lower()


class RuncClient:
    """One runc binary and runtime root."""

    def __init__(self, runner: CommandRunner, binary: str, root: str) -> None:
        self.runner = runner
        self.binary = binary
        self.root = root

    def argv(self, *args: str) -> list[str]:
        return base_argv(self.binary, self.root) + list(args)

    def state(self, container: str) -> dict[str, Any] | None:
        """runc's state JSON, or None when runc does not know the container."""
        rc, out, err = self.runner.run(self.argv("state", container), "runc state", check=False)
        if rc != 0:
            if is_missing_container(out + err):
                return None
            raise ToolError("runc state %s failed" % container, cmd=self.argv("state", container), rc=rc, stdout=out, stderr=err)
        try:
            return json.loads(out)
        except ValueError as exc:
            raise PodmigError("runc state %s printed no JSON: %s" % (container, out[:200])) from exc

    def require(self, container: str, statuses: tuple[str, ...] = ("running",)) -> dict[str, Any]:
        """The container's state, or a clear refusal naming what is wrong."""
        state = self.state(container)
        if state is None:
            raise self.missing(container)
        if state.get("status") not in statuses:
            raise PodmigError(
                "container %s is %s; this needs it %s" % (container, state.get("status"), " or ".join(statuses)),
                container=container,
                status=state.get("status"),
            )
        return state

    def missing(self, container: str) -> PodmigError:
        return PodmigError(
            "container %s does not exist under runtime root %s (for containerd's Kubernetes containers use "
            "runtime_root=/run/containerd/runc/k8s.io)" % (container, self.root),
            container=container,
            runtime_root=self.root,
        )

    def pause(self, container: str) -> None:
        self.runner.run(self.argv("pause", container), "runc pause")

    def resume(self, container: str) -> None:
        self.runner.run(self.argv("resume", container), "runc resume")

    def kill(self, container: str, signal: str = "KILL") -> None:
        self.runner.run(self.argv("kill", container, signal), "runc kill")

    def delete(self, container: str, force: bool = True) -> None:
        argv = self.argv("delete") + (["--force"] if force else []) + [container]
        self.runner.run(argv, "runc delete")

    def pids(self, container: str) -> list[int]:
        _rc, out, _err = self.runner.run(self.argv("ps", "--format", "json", container), "runc ps")
        try:
            return [int(pid) for pid in json.loads(out or "[]")]
        except ValueError as exc:
            raise PodmigError("runc ps printed no JSON: %s" % out[:200]) from exc
