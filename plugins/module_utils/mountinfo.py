# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Parse /proc/<pid>/mountinfo and overlayfs options.

A container's writable layer is the ``upperdir=`` of the overlay mounted at
its rootfs (containerd's shim mounts it at ``<bundle>/rootfs`` in the host's
mount namespace).
"""

from __future__ import annotations

import re
from typing import Any

_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape(text: str) -> str:
    """Undo the kernel's octal escapes (\\040 for space, \\054 for comma, ...)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), text)


def split_options(text: str) -> list[str]:
    """Split a mount option string on commas the kernel did not escape."""
    parts: list[str] = []
    current = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p]


def parse_line(line: str) -> dict[str, Any]:
    fields = line.split()
    try:
        sep = fields.index("-", 6)
    except ValueError as exc:
        raise ValueError("malformed mountinfo line: %r" % line) from exc
    major, minor = fields[2].split(":")
    return {
        "mount_id": int(fields[0]),
        "parent_id": int(fields[1]),
        "major": int(major),
        "minor": int(minor),
        "root": unescape(fields[3]),
        "mount_point": unescape(fields[4]),
        "mount_options": fields[5].split(","),
        "optional": fields[6:sep],
        "fstype": fields[sep + 1],
        "source": unescape(fields[sep + 2]) if len(fields) > sep + 2 else "",
        "super_options": fields[sep + 3] if len(fields) > sep + 3 else "",
    }


def parse(text: str) -> list[dict[str, Any]]:
    return [parse_line(line) for line in text.splitlines() if line.strip()]


def _split_lowerdirs(value: str) -> list[str]:
    """lowerdir=a:b:c with ':' inside a path escaped by a backslash."""
    dirs: list[str] = []
    current = []
    escaped = False
    for char in value:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            dirs.append("".join(current))
            current = []
        else:
            current.append(char)
    dirs.append("".join(current))
    return [d for d in dirs if d]


def overlay_layers(super_options: str) -> dict[str, Any]:
    """upperdir, workdir and the lowerdirs (top first) of an overlay mount."""
    result: dict[str, Any] = {"upperdir": None, "workdir": None, "lowerdirs": [], "userxattr": False}
    for option in split_options(super_options):
        key, _sep, value = option.partition("=")
        value = unescape(value)
        if key == "upperdir":
            result["upperdir"] = value
        elif key == "workdir":
            result["workdir"] = value
        elif key == "lowerdir":
            result["lowerdirs"].extend(_split_lowerdirs(value))
        elif key == "lowerdir+":
            # Kernels >= 6.7 with fsconfig(): one lower layer per option.
            result["lowerdirs"].append(value)
        elif key == "userxattr":
            result["userxattr"] = True
    return result


def find_mount(mounts: list[dict[str, Any]], mount_point: str) -> dict[str, Any] | None:
    """The topmost mount at ``mount_point`` (the last one listed wins)."""
    found = None
    for mount in mounts:
        if mount["mount_point"] == mount_point:
            found = mount
    return found
