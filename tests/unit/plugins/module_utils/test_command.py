# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of CommandRunner, tail_lines and find_binary with a fake module."""

from __future__ import annotations

import os

import pytest

from ansible_collections.podmig.live.plugins.module_utils import command
from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner, find_binary, tail_lines
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError, ToolError


class FakeModule:
    """Records run_command calls and answers from a queue of (rc, out, err)."""

    def __init__(self, results=None, bin_paths=None):
        self.results = list(results or [])
        self.calls = []
        self.bin_paths = bin_paths or {}
        self.bin_calls = []

    def run_command(self, argv, **kwargs):
        # Copy the environ: the runner may mutate its dict later.
        kwargs = dict(kwargs)
        kwargs["environ_update"] = dict(kwargs["environ_update"])
        self.calls.append((list(argv), kwargs))
        return self.results.pop(0) if self.results else (0, "", "")

    def get_bin_path(self, name, required=False, opt_dirs=None):
        self.bin_calls.append((name, opt_dirs))
        return self.bin_paths.get(name)


# --------------------------------------------------------------------------- CommandRunner


def test_run_passes_argv_c_locale_and_options():
    module = FakeModule([(0, "out", "err")])
    runner = CommandRunner(module)
    rc, out, err = runner.run(["criu", "--version"], "criu --version", data="stdin", cwd="/tmp")
    assert (rc, out, err) == (0, "out", "err")
    argv, kwargs = module.calls[0]
    assert argv == ["criu", "--version"]
    assert kwargs["check_rc"] is False
    assert kwargs["data"] == "stdin"
    assert kwargs["cwd"] == "/tmp"
    assert kwargs["expand_user_and_vars"] is False
    assert kwargs["environ_update"] == {"LC_ALL": "C", "LANG": "C"}


def test_run_records_commands_and_durations_as_copies():
    module = FakeModule([(0, "", ""), (3, "", "")])
    runner = CommandRunner(module)
    argv = ["runc", "state", "a"]
    runner.run(argv, "runc state")
    argv.append("mutated")
    runner.run(["runc", "pause", "a"], "runc pause", check=False)
    assert runner.commands == [["runc", "state", "a"], ["runc", "pause", "a"]]
    assert len(runner.durations) == 2
    assert all(d >= 0 for d in runner.durations)


def test_run_check_false_returns_failure():
    runner = CommandRunner(FakeModule([(1, "o", "e")]))
    assert runner.run(["false"], "false", check=False) == (1, "o", "e")


def test_run_failure_raises_tool_error_with_details():
    runner = CommandRunner(FakeModule([(2, "some out", "boom\nreal reason\n")]))
    with pytest.raises(ToolError) as info:
        runner.run(["runc", "pause", "web"], "runc pause")
    err = info.value
    assert err.msg == "runc pause failed (rc=2): real reason"
    result = err.to_result()
    assert result["cmd"] == ["runc", "pause", "web"]
    assert result["rc"] == 2
    assert result["stdout"] == "some out"
    assert result["stderr"] == "boom\nreal reason\n"
    assert "log_tail" not in result


def test_run_failure_includes_criu_log_tail(tmp_path):
    log = tmp_path / "dump.log"
    log.write_text(
        "(00.000) Version: 4.1.1\n"
        "(00.010) Error (criu/cr-dump.c:1): Can't dump: tcp connection\n"
        "(00.011) Dumping FAILED.\n"
    )
    runner = CommandRunner(FakeModule([(1, "", "criu failed: type NOTIFY errno 0")]))
    with pytest.raises(ToolError) as info:
        runner.run(["runc", "checkpoint", "web"], "runc checkpoint", log_path=str(log))
    err = info.value
    assert err.msg == "runc checkpoint failed (rc=1): (00.010) Error (criu/cr-dump.c:1): Can't dump: tcp connection"
    assert err.details["log_path"] == str(log)
    assert err.details["log_tail"][-1] == "(00.011) Dumping FAILED."


def test_prefer_path_puts_directory_first(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    module = FakeModule()
    runner = CommandRunner(module)
    runner.prefer_path("/opt/criu/sbin")
    runner.run(["runc", "checkpoint"], "runc checkpoint")
    env = module.calls[0][1]["environ_update"]
    assert env["PATH"] == "/opt/criu/sbin" + os.pathsep + "/usr/bin:/bin"
    assert env["LC_ALL"] == "C"


# --------------------------------------------------------------------------- tail_lines


def test_tail_lines_none_and_missing(tmp_path):
    assert tail_lines(None) is None
    assert tail_lines("") is None
    assert tail_lines(str(tmp_path / "nope.log")) is None


def test_tail_lines_returns_last_lines(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("".join("line %d\n" % i for i in range(100)))
    assert tail_lines(str(log), 3) == ["line 97", "line 98", "line 99"]
    assert len(tail_lines(str(log))) == command.LOG_TAIL_LINES
    assert tail_lines(str(log))[-1] == "line 99"


def test_tail_lines_short_file_and_bad_utf8(tmp_path):
    log = tmp_path / "x.log"
    log.write_bytes(b"a\nb\xff\n")
    assert tail_lines(str(log)) == ["a", "b\ufffd"]


def test_tail_lines_reads_only_the_end_of_big_files(tmp_path):
    log = tmp_path / "big.log"
    with open(log, "w") as handle:
        handle.write("FIRST\n")
        for i in range(2000):
            handle.write("%05d %s\n" % (i, "y" * 60))
    lines = tail_lines(str(log), 10000)
    assert "FIRST" not in lines
    assert lines[-1].startswith("01999 ")
    assert sum(len(line) + 1 for line in lines) <= 64 * 1024


# --------------------------------------------------------------------------- find_binary


def test_find_binary_explicit_executable(tmp_path):
    tool = tmp_path / "criu"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    module = FakeModule()
    assert find_binary(module, "criu", str(tool)) == str(tool)
    assert module.bin_calls == []


def test_find_binary_explicit_not_executable(tmp_path):
    tool = tmp_path / "criu"
    tool.write_text("")
    tool.chmod(0o644)
    with pytest.raises(PodmigError, match="criu was given as .*not an executable file"):
        find_binary(FakeModule(), "criu", str(tool))


def test_find_binary_explicit_directory_refused(tmp_path):
    with pytest.raises(PodmigError, match="not an executable file"):
        find_binary(FakeModule(), "runc", str(tmp_path))


def test_find_binary_searches_sbin_dirs():
    module = FakeModule(bin_paths={"criu": "/usr/local/sbin/criu"})
    assert find_binary(module, "criu") == "/usr/local/sbin/criu"
    name, opt_dirs = module.bin_calls[0]
    assert name == "criu"
    assert "/usr/local/sbin" in opt_dirs and "/usr/sbin" in opt_dirs and "/sbin" in opt_dirs


def test_find_binary_missing_names_host_and_hint():
    with pytest.raises(PodmigError) as info:
        find_binary(FakeModule(), "rsync", hint="apt-get install rsync")
    msg = info.value.msg
    assert msg.startswith("rsync was not found on %s." % os.uname()[1])
    assert msg.endswith("apt-get install rsync")


def test_find_binary_missing_default_hint_names_role():
    with pytest.raises(PodmigError, match="podmig.live.criu role"):
        find_binary(FakeModule(), "criu")


# --------------------------------------------------------------------------- run_bounded (real processes)

def _alive(pid):
    return command._proc_stat(pid) is not None


def test_run_bounded_kills_a_hung_command_and_every_helper_it_left(tmp_path):
    """A command that never ends, with a child, a subshell and the subshell's own child: after the
    deadline none of them is left and the error says what happened."""
    pids = tmp_path / "pids"
    script = ("sleep 300 & echo $! >> %s; (sleep 300 & echo $! >> %s; wait) & echo $! >> %s; "
              "echo started >&2; wait" % (pids, pids, pids))
    runner = CommandRunner(FakeModule())
    with pytest.raises(ToolError) as caught:
        runner.run_bounded(["sh", "-c", script], "hanging tool", 1.5, str(tmp_path))
    err = caught.value
    assert "hanging tool failed: no end after 1.5 s" in err.msg
    assert err.details["timed_out"] is True
    helpers = [int(line) for line in pids.read_text().split()]
    assert len(helpers) == 3
    assert not [pid for pid in helpers if _alive(pid)], "helpers survived the kill"
    assert set(helpers) <= set(err.details["killed_pids"])
    assert "started" in err.details["stderr"]
    assert runner.commands == [["sh", "-c", script]]


def test_run_bounded_cleans_up_what_a_failed_command_left_in_its_session(tmp_path):
    """The command exits non-zero at once; a helper it started in the background is killed too."""
    pid_file = tmp_path / "helper"
    script = "sleep 300 & echo $! > %s; echo broken >&2; exit 3" % pid_file
    runner = CommandRunner(FakeModule())
    with pytest.raises(ToolError) as caught:
        runner.run_bounded(["sh", "-c", script], "failing tool", 30, str(tmp_path))
    assert caught.value.details["rc"] == 3
    assert "broken" in caught.value.details["stderr"]
    helper = int(pid_file.read_text())
    assert not _alive(helper)
    assert helper in caught.value.details["killed_pids"]


def test_run_bounded_leaves_a_successful_command_s_detached_work_alone(tmp_path):
    """Success: what the command started (a restored container) keeps running, output is returned."""
    pid_file = tmp_path / "helper"
    script = "setsid sleep 30 < /dev/null > /dev/null 2>&1 & echo $! > %s; echo done" % pid_file
    runner = CommandRunner(FakeModule())
    rc, out, _err = runner.run_bounded(["sh", "-c", script], "good tool", 30, str(tmp_path))
    helper = int(pid_file.read_text())
    try:
        assert (rc, out) == (0, "done")
        assert _alive(helper)
    finally:
        os.kill(helper, 9)
