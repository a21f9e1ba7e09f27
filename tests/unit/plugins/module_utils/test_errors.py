# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of PodmigError / ToolError: what the user sees in fail_json."""

from __future__ import annotations

import pytest

from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError, ToolError


def test_podmig_error_result_has_msg_and_details_without_none():
    err = PodmigError("it broke", container="web", status=None, rc=0)
    assert str(err) == "it broke"
    assert err.msg == "it broke"
    # None details are dropped, falsy non-None ones (rc=0) are kept.
    assert err.to_result() == {"msg": "it broke", "container": "web", "rc": 0}


def test_podmig_error_result_is_a_fresh_dict():
    err = PodmigError("x", a=1)
    result = err.to_result()
    result["a"] = 2
    assert err.to_result()["a"] == 1


def test_tool_error_is_a_podmig_error():
    with pytest.raises(PodmigError):
        raise ToolError("runc state failed", rc=1)


def test_tool_error_appends_first_error_line_of_log_tail():
    tail = [
        "(00.001) Warn  (criu/kerndat.c:1) something harmless",
        "(00.120) Error (criu/cr-dump.c:2045): Dumping FAILED.",
        "(00.121) Error (criu/cr-dump.c:2050): second error",
    ]
    err = ToolError(
        "runc checkpoint failed (rc=1)", cmd=["runc", "checkpoint"], rc=1, stderr="ignored",
        log_path="/w/dump.log", log_tail=tail,
    )
    assert err.msg == "runc checkpoint failed (rc=1): (00.120) Error (criu/cr-dump.c:2045): Dumping FAILED."
    result = err.to_result()
    assert result["cmd"] == ["runc", "checkpoint"]
    assert result["rc"] == 1
    assert result["stderr"] == "ignored"
    assert result["log_path"] == "/w/dump.log"
    assert result["log_tail"] == tail
    assert "stdout" not in result  # None is dropped


def test_tool_error_uses_last_stderr_line_without_log():
    err = ToolError("rsync failed (rc=23)", rc=23, stderr="first line\nrsync error: some files could not be transferred\n")
    assert err.msg == "rsync failed (rc=23): rsync error: some files could not be transferred"


def test_tool_error_blank_stderr_keeps_message():
    err = ToolError("runc pause failed (rc=1)", rc=1, stderr="  \n")
    assert err.msg == "runc pause failed (rc=1)"
    assert err.to_result()["stderr"] == "  \n"


def test_tool_error_extra_details_are_kept():
    err = ToolError("x failed", rc=2, container="web", runtime_root=None)
    assert err.to_result() == {"msg": "x failed", "rc": 2, "container": "web"}


def test_first_cause_skips_harmless_rlimit_and_finds_unprefixed_cause():
    from ansible_collections.podmig.live.plugins.module_utils.errors import first_cause

    lines = [
        "(00.038493) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted",
        "(00.039448) Can't connect to server 127.0.0.1:9",
        "(00.039476) Error (compel/src/lib/infect.c:418): Unable to detach from 27313: No such process",
    ]
    assert first_cause(lines) == "(00.039448) Can't connect to server 127.0.0.1:9"
    assert first_cause(["(00.1) Dumping finished successfully"]) is None
    assert first_cause(None) is None


def test_tool_error_prefers_log_lines_over_tail():
    err = ToolError("runc checkpoint (dump) failed (rc=1)", log_tail=["(9) Error (x): late symptom"],
                    log_lines=["(1) Error (files-reg.c:1790): Can't lookup mount=27", "(9) Error (x): late symptom"])
    assert err.msg.endswith("Can't lookup mount=27")
    assert err.details["log_tail"] == ["(9) Error (x): late symptom"]
