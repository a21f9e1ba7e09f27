# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Decode CRIU's ``stats-dump`` / ``stats-restore`` images into numbers.

CRIU writes them next to its log (runc: in the work directory). Layout: a u32
service magic, the u32 STATS magic, a u32 payload size, then a protobuf
``stats_entry`` (criu/images/stats.proto). The decoder below understands the
little protobuf subset those messages use (varints and one nested message),
so no generated code or pycriu is needed on the node.
"""

from __future__ import annotations

import os
import struct

from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError

IMG_SERVICE_MAGIC = 0x55105940
STATS_MAGIC = 0x57093306

DUMP_FIELDS = {
    1: "freezing_time_us",
    2: "frozen_time_us",
    3: "memdump_time_us",
    4: "memwrite_time_us",
    5: "pages_scanned",
    6: "pages_skipped_parent",
    7: "pages_written",
    8: "irmap_resolve_us",
    9: "pages_lazy",
    10: "page_pipes",
    11: "page_pipe_bufs",
    12: "shpages_scanned",
    13: "shpages_skipped_parent",
    14: "shpages_written",
}
RESTORE_FIELDS = {
    1: "pages_compared",
    2: "pages_skipped_cow",
    3: "forking_time_us",
    4: "restore_time_us",
    5: "pages_restored",
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def decode_message(data: bytes) -> dict[int, object]:
    """Field number -> int (varint) or bytes (length-delimited)."""
    fields: dict[int, object] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            fields[number] = value
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field %d" % number)
            fields[number] = data[pos:pos + length]
            pos += length
        elif wire == 5:
            fields[number] = struct.unpack_from("<I", data, pos)[0]
            pos += 4
        elif wire == 1:
            fields[number] = struct.unpack_from("<Q", data, pos)[0]
            pos += 8
        else:
            raise ValueError("unsupported protobuf wire type %d" % wire)
    return fields


def decode_stats(raw: bytes) -> dict[str, dict[str, int]]:
    """Decode a whole stats image; returns {"dump": {...}} and/or {"restore": {...}}."""
    if len(raw) < 12:
        raise ValueError("stats image too short (%d bytes)" % len(raw))
    magic, stats_magic, size = struct.unpack_from("<III", raw, 0)
    if magic != IMG_SERVICE_MAGIC or stats_magic != STATS_MAGIC:
        raise ValueError("not a CRIU stats image (magic %#x/%#x)" % (magic, stats_magic))
    if len(raw) < 12 + size:
        raise ValueError("stats image truncated (%d of %d bytes)" % (len(raw) - 12, size))
    entry = decode_message(raw[12:12 + size])
    result: dict[str, dict[str, int]] = {}
    for number, name, names in ((1, "dump", DUMP_FIELDS), (2, "restore", RESTORE_FIELDS)):
        nested = entry.get(number)
        if isinstance(nested, bytes):
            fields = decode_message(nested)
            result[name] = {names[k]: int(v) for k, v in fields.items() if k in names and isinstance(v, int)}
    return result


def read_stats(directory: str, kind: str = "dump") -> dict[str, int] | None:
    """Stats of the last dump/restore in ``directory`` (None if CRIU wrote none)."""
    path = os.path.join(directory, "stats-%s" % kind)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PodmigError("cannot read CRIU statistics %s: %s" % (path, exc)) from exc
    try:
        return decode_stats(raw).get(kind)
    except ValueError as exc:
        raise PodmigError("cannot decode CRIU statistics %s: %s" % (path, exc)) from exc


def summarize_dump(stats: dict[str, int] | None, page_size: int = 4096) -> dict[str, float | int]:
    """The numbers a user reads: seconds and bytes rather than microseconds and pages."""
    if not stats:
        return {}
    summary: dict[str, float | int] = dict(stats)
    for key in ("freezing_time_us", "frozen_time_us", "memdump_time_us", "memwrite_time_us"):
        if key in stats:
            summary[key.replace("_us", "_s")] = round(stats[key] / 1e6, 6)
    for key in ("pages_scanned", "pages_skipped_parent", "pages_written", "pages_lazy"):
        if key in stats:
            summary[key.replace("pages_", "bytes_")] = stats[key] * page_size
    return summary
