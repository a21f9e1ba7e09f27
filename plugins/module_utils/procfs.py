# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""What /proc says about a container's processes: cgroups, namespaces, memory."""

from __future__ import annotations

import os

NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")


def parse_cgroup_file(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup -> {controller: path}; cgroup v2's entry is keyed "unified"."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _hid, controllers, path = parts
        if not controllers:
            paths["unified"] = path
            continue
        for controller in controllers.split(","):
            paths[controller] = path
    return paths


def cgroups(pid: int) -> dict[str, str]:
    with open("/proc/%d/cgroup" % pid, encoding="utf-8") as handle:
        return parse_cgroup_file(handle.read())


def namespaces(pid: int) -> dict[str, str]:
    result = {}
    for name in NAMESPACES:
        try:
            result[name] = os.readlink("/proc/%d/ns/%s" % (pid, name))
        except OSError:
            continue
    return result


def parse_status_kib(text: str, field: str) -> int:
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def rss_bytes(pids: list[int]) -> int:
    """Sum of VmRSS over the processes (shared pages are counted once per process)."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid, encoding="utf-8") as handle:
                total += parse_status_kib(handle.read(), "VmRSS") * 1024
        except OSError:
            continue
    return total


def mountinfo_text(pid: int | str = "self") -> str:
    with open("/proc/%s/mountinfo" % pid, encoding="utf-8") as handle:
        return handle.read()
