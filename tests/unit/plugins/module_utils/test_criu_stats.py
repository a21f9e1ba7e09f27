# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the CRIU stats image decoder with hand-built and real images."""

from __future__ import annotations

import os
import struct

import pytest

from ansible_collections.podmig.live.plugins.module_utils import criu_stats as cs
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError

# stats-dump written by CRIU 4.1.1 (runc checkpoint of a ~64 MiB process) on
# the project's machine. Decoded independently by hand: the payload is one
# field 1 (0x0a, length 0x27) holding 14 varint fields.
REAL_STATS_DUMP = bytes.fromhex(
    "405910550633095729000000"
    "0a2708ab1010e4e41318beca052099ac0328958001300038"
    "8e80014000480050085808600068007000"
)
REAL_DUMP = {
    "freezing_time_us": 2091,
    "frozen_time_us": 324196,
    "memdump_time_us": 91454,
    "memwrite_time_us": 54809,
    "pages_scanned": 16405,
    "pages_skipped_parent": 0,
    "pages_written": 16398,
    "irmap_resolve_us": 0,
    "pages_lazy": 0,
    "page_pipes": 8,
    "page_pipe_bufs": 8,
    "shpages_scanned": 0,
    "shpages_skipped_parent": 0,
    "shpages_written": 0,
}


# --------------------------------------------------------------------------- a tiny protobuf encoder


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3 | 0) + varint(value)


def field_bytes(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def stats_image(entry: bytes, magic=cs.IMG_SERVICE_MAGIC, stats_magic=cs.STATS_MAGIC, size=None) -> bytes:
    return struct.pack("<III", magic, stats_magic, len(entry) if size is None else size) + entry


def test_encoder_matches_protobuf_examples():
    # The protobuf docs' examples: 1 -> 01, 150 -> 96 01, 300 -> ac 02.
    assert varint(1) == b"\x01"
    assert varint(150) == b"\x96\x01"
    assert varint(300) == b"\xac\x02"
    assert field_varint(1, 150) == b"\x08\x96\x01"


# --------------------------------------------------------------------------- decoding


def test_real_criu_image_decodes():
    assert cs.decode_stats(REAL_STATS_DUMP) == {"dump": REAL_DUMP}


def test_real_criu_image_header():
    magic, stats_magic, size = struct.unpack_from("<III", REAL_STATS_DUMP)
    assert (magic, stats_magic) == (0x55105940, 0x57093306)
    assert size == len(REAL_STATS_DUMP) - 12 == 41


def test_hand_built_dump_entry_round_trips():
    values = {1: 7, 2: 1_000_000, 3: 300, 5: 2**33 + 5, 7: 150, 9: 0, 14: 1}
    dump = b"".join(field_varint(k, v) for k, v in values.items())
    raw = stats_image(field_bytes(1, dump))
    decoded = cs.decode_stats(raw)
    assert decoded == {"dump": {cs.DUMP_FIELDS[k]: v for k, v in values.items()}}
    assert decoded["dump"]["pages_scanned"] == 2**33 + 5


def test_restore_entry():
    restore = field_varint(1, 10) + field_varint(3, 2000) + field_varint(4, 123456) + field_varint(5, 99)
    raw = stats_image(field_bytes(2, restore))
    assert cs.decode_stats(raw) == {
        "restore": {"pages_compared": 10, "forking_time_us": 2000, "restore_time_us": 123456, "pages_restored": 99}
    }


def test_unknown_fields_and_other_wire_types_are_skipped():
    dump = (
        field_varint(1, 5)
        + field_varint(99, 1)  # unknown number
        + varint(20 << 3 | 5) + struct.pack("<I", 0xDEADBEEF)  # fixed32
        + varint(21 << 3 | 1) + struct.pack("<Q", 2**40)  # fixed64
        + field_bytes(22, b"xyz")  # bytes
        + field_bytes(6, b"no")  # known number, wrong type: dropped
        + field_varint(7, 3)
    )
    decoded = cs.decode_stats(stats_image(field_bytes(1, dump)))
    assert decoded == {"dump": {"freezing_time_us": 5, "pages_written": 3}}


def test_decode_message_wire_types():
    data = (
        field_varint(1, 300)
        + varint(2 << 3 | 5) + struct.pack("<I", 0x01020304)
        + varint(3 << 3 | 1) + struct.pack("<Q", 2**50)
        + field_bytes(4, b"abc")
    )
    assert cs.decode_message(data) == {1: 300, 2: 0x01020304, 3: 2**50, 4: b"abc"}


def test_decode_message_unsupported_wire_type():
    with pytest.raises(ValueError, match="wire type 3"):
        cs.decode_message(varint(1 << 3 | 3))


def test_decode_message_truncated_varint():
    with pytest.raises(ValueError, match="truncated varint"):
        cs.decode_message(b"\x08\x96")


def test_size_field_limits_payload():
    dump = field_varint(1, 5)
    entry = field_bytes(1, dump)
    raw = stats_image(entry) + b"\xff\xff\xff"  # trailing garbage after `size` bytes is ignored
    assert cs.decode_stats(raw) == {"dump": {"freezing_time_us": 5}}


def test_empty_entry():
    assert cs.decode_stats(stats_image(b"")) == {}


def test_bad_service_magic():
    raw = stats_image(field_bytes(1, field_varint(1, 1)), magic=0x54564319)
    with pytest.raises(ValueError, match="not a CRIU stats image"):
        cs.decode_stats(raw)


def test_bad_stats_magic():
    raw = stats_image(field_bytes(1, field_varint(1, 1)), stats_magic=0x58313116)
    with pytest.raises(ValueError, match="not a CRIU stats image"):
        cs.decode_stats(raw)


def test_too_short_header():
    with pytest.raises(ValueError, match="too short"):
        cs.decode_stats(REAL_STATS_DUMP[:11])


def test_truncated_payload():
    # Cut inside the last varint of the nested message.
    with pytest.raises(ValueError):
        cs.decode_stats(REAL_STATS_DUMP[:12] + REAL_STATS_DUMP[12:30])


# --------------------------------------------------------------------------- read_stats


def test_read_stats_missing_file_is_none(tmp_path):
    assert cs.read_stats(str(tmp_path)) is None
    assert cs.read_stats(str(tmp_path), "restore") is None


def test_read_stats_real_file(tmp_path):
    (tmp_path / "stats-dump").write_bytes(REAL_STATS_DUMP)
    assert cs.read_stats(str(tmp_path)) == REAL_DUMP
    # A dump image holds no restore entry.
    (tmp_path / "stats-restore").write_bytes(REAL_STATS_DUMP)
    assert cs.read_stats(str(tmp_path), "restore") is None


def test_read_stats_restore(tmp_path):
    (tmp_path / "stats-restore").write_bytes(stats_image(field_bytes(2, field_varint(5, 42))))
    assert cs.read_stats(str(tmp_path), "restore") == {"pages_restored": 42}


def test_read_stats_corrupt_file_raises_podmig_error(tmp_path):
    path = tmp_path / "stats-dump"
    path.write_bytes(b"\x00" * 16)
    with pytest.raises(PodmigError, match="cannot decode CRIU statistics .*stats-dump"):
        cs.read_stats(str(tmp_path))


def test_read_stats_truncated_file_raises_podmig_error(tmp_path):
    (tmp_path / "stats-dump").write_bytes(REAL_STATS_DUMP[:6])
    with pytest.raises(PodmigError, match="too short"):
        cs.read_stats(str(tmp_path))


def test_read_stats_unreadable_raises_podmig_error(tmp_path):
    os.mkdir(tmp_path / "stats-dump")  # a directory: IsADirectoryError, an OSError
    with pytest.raises(PodmigError, match="cannot read CRIU statistics"):
        cs.read_stats(str(tmp_path))


# --------------------------------------------------------------------------- summarize_dump


def test_summarize_dump_empty():
    assert cs.summarize_dump(None) == {}
    assert cs.summarize_dump({}) == {}


def test_summarize_dump_real_numbers():
    summary = cs.summarize_dump(REAL_DUMP)
    # raw numbers are kept
    for key, value in REAL_DUMP.items():
        assert summary[key] == value
    assert summary["freezing_time_s"] == 0.002091
    assert summary["frozen_time_s"] == 0.324196
    assert summary["memdump_time_s"] == 0.091454
    assert summary["memwrite_time_s"] == 0.054809
    assert summary["bytes_scanned"] == 16405 * 4096
    assert summary["bytes_written"] == 16398 * 4096
    assert summary["bytes_skipped_parent"] == 0
    assert summary["bytes_lazy"] == 0
    # not converted: no time/page suffix to translate
    assert "irmap_resolve_s" not in summary
    assert "shbytes_scanned" not in summary


def test_summarize_dump_page_size_and_partial():
    summary = cs.summarize_dump({"pages_written": 3, "frozen_time_us": 1_500_000}, page_size=65536)
    assert summary == {"pages_written": 3, "frozen_time_us": 1_500_000, "bytes_written": 3 * 65536,
                       "frozen_time_s": 1.5}
