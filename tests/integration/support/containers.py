# -*- coding: utf-8 -*-
"""Real runc containers for the integration tests, from a rootfs built here (no registry).

The rootfs is busybox (Debian's busybox-static) plus podmig-workload, a static
program that keeps verifiable state in memory (tools/workload).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

from .ansible_runner import REPO

WORKLOAD_DIR = os.path.join(REPO, "tools", "workload")
WORKLOAD_BIN = os.path.join(WORKLOAD_DIR, "podmig-workload")
BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "ls", "cat", "echo", "sleep", "mkdir", "rm", "rmdir", "touch", "chmod", "ln", "mv", "cp",
           "mkfifo", "stat", "head", "tail", "grep", "wc", "sync", "true", "false", "kill", "ps", "env")


def build_workload() -> str:
    subprocess.run(["make", "-s", "-C", WORKLOAD_DIR], check=True)
    return WORKLOAD_BIN


def build_rootfs(dest: str) -> str:
    """A minimal root filesystem: busybox applets, the workload, /log and /data mount points."""
    if os.path.exists(os.path.join(dest, "bin", "podmig-workload")):
        return dest
    for sub in ("bin", "dev", "proc", "sys", "tmp", "etc", "log", "data", "var/lib/app", "srv/old/sub"):
        os.makedirs(os.path.join(dest, sub), exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(dest, "bin", "busybox"))
    for applet in APPLETS:
        link = os.path.join(dest, "bin", applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    shutil.copy2(build_workload(), os.path.join(dest, "bin", "podmig-workload"))
    with open(os.path.join(dest, "etc", "passwd"), "w", encoding="ascii") as handle:
        handle.write("root:x:0:0:root:/:/bin/sh\n")
    # Files that tests delete or replace inside the container's writable layer.
    with open(os.path.join(dest, "etc", "app.conf"), "w", encoding="ascii") as handle:
        handle.write("from-the-image\n")
    for name in ("a", "b"):
        with open(os.path.join(dest, "srv", "old", "sub", name), "w", encoding="ascii") as handle:
            handle.write("lower %s\n" % name)
    return dest


def workload_args(mib: int = 32, rate: float = 0.2, tick_ms: float = 1.0, log: str = "/log/ticks") -> list[str]:
    return ["/bin/podmig-workload", "-m", str(mib), "-r", str(rate), "-t", str(tick_ms), "-l", log]


def make_bundle(bundle: str, rootfs_src: str, args: list[str], binds: dict[str, str] | None = None,
                overlay: bool = False) -> dict:
    """An OCI bundle. With ``overlay`` the rootfs is an overlay mount whose lower layer is
    ``rootfs_src`` and whose upper layer is the container's writable layer, as containerd does."""
    os.makedirs(bundle, exist_ok=True)
    rootfs = os.path.join(bundle, "rootfs")
    info: dict = {"bundle": bundle, "rootfs": rootfs}
    if overlay:
        upper, work = os.path.join(bundle, "upper"), os.path.join(bundle, "ovl-work")
        for path in (rootfs, upper, work):
            os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        "lowerdir=%s,upperdir=%s,workdir=%s" % (rootfs_src, upper, work), rootfs], check=True)
        info.update(upper=upper, lower=rootfs_src, mounted=True)
    else:
        if not os.path.exists(rootfs):
            shutil.copytree(rootfs_src, rootfs, symlinks=True)
    subprocess.run(["runc", "spec", "--bundle", bundle], check=True)
    config_path = os.path.join(bundle, "config.json")
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    config["root"] = {"path": "rootfs", "readonly": False}
    for dest, src in (binds or {}).items():
        config["mounts"].append({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rw"]})
    with open(config_path, "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2)
    return info


def unmount_bundle(info: dict) -> None:
    if info.get("mounted"):
        subprocess.run(["umount", "-l", info["rootfs"]], check=False)
        info["mounted"] = False


class Runc:
    """runc under one runtime root; remembers the containers it made so teardown removes only those."""

    def __init__(self, root: str, netns: str | None = None) -> None:
        self.root = root
        self.netns = netns
        self.created: list[str] = []

    def _prefix(self) -> list[str]:
        # Only the network namespace: `ip netns exec` would remount /sys and hide the cgroup mounts.
        return ["nsenter", "--net=/run/netns/" + self.netns] if self.netns else []

    def cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(self._prefix() + ["runc", "--root", self.root] + list(args), capture_output=True,
                              text=True, check=check, stdin=subprocess.DEVNULL)

    def run(self, container: str, bundle: str) -> dict:
        self.created.append(container)
        # The container inherits runc's stdio: /dev/null, or CRIU could not dump it (and a pipe would never close).
        os.makedirs(self.root, exist_ok=True)
        log = os.path.join(self.root, container + ".runc.log")
        proc = subprocess.run(self._prefix() + ["runc", "--root", self.root, "--log", log, "run", "--detach",
                                                "--bundle", bundle, container],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              check=False)
        if proc.returncode != 0:
            with open(log, encoding="utf-8", errors="replace") as handle:
                raise RuntimeError("runc run %s failed (rc=%d): %s" % (container, proc.returncode, handle.read()[-2000:]))
        return self.state(container)

    def adopt(self, container: str) -> None:
        """Remember a container restored by the modules, for teardown."""
        if container not in self.created:
            self.created.append(container)

    def state(self, container: str) -> dict | None:
        proc = self.cmd("state", container, check=False)
        if proc.returncode != 0:
            return None
        return json.loads(proc.stdout)

    def status(self, container: str) -> str:
        state = self.state(container)
        return state["status"] if state else "absent"

    def signal(self, container: str, sig: str) -> None:
        self.cmd("kill", container, sig)

    def remove(self, container: str) -> None:
        state = self.state(container)
        if state is None:
            return
        if state["status"] == "paused":
            self.cmd("resume", container, check=False)
        self.cmd("kill", container, "KILL", check=False)
        for _ in range(50):
            if self.status(container) in ("stopped", "absent"):
                break
            time.sleep(0.05)
        self.cmd("delete", "--force", container, check=False)

    def cleanup(self) -> None:
        for container in reversed(self.created):
            self.remove(container)
        self.created.clear()


def kill_pid(pid: int | None) -> None:
    """End a process this test started (by its id), if it still runs."""
    if not pid:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
