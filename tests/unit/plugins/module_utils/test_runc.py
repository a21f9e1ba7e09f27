# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of runc argv builders and RuncClient with a fake runner."""

from __future__ import annotations

import json

import pytest

from ansible_collections.podmig.live.plugins.module_utils import runc
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError, ToolError
from ansible_collections.podmig.live.plugins.module_utils.runc import (
    RuncClient,
    checkpoint_argv,
    is_missing_container,
    relative_parent,
    restore_argv,
)

ROOT = "/run/runc"


class FakeRunner:
    def __init__(self, answers=None, default=(0, "", "")):
        self.answers = answers or {}
        self.default = default
        self.calls = []

    def run(self, argv, what, check=True, log_path=None, data=None, cwd=None):
        self.calls.append({"argv": list(argv), "what": what, "check": check})
        rc, out, err = self.answers.get(tuple(argv), self.default)
        if check and rc != 0:
            raise ToolError("%s failed (rc=%s)" % (what, rc), cmd=list(argv), rc=rc, stderr=err)
        return rc, out, err


def state_json(status="running", pid=1234):
    return json.dumps({"ociVersion": "1.0.2", "id": "web", "pid": pid, "status": status,
                       "bundle": "/b", "rootfs": "/b/rootfs", "created": "2025-01-01T00:00:00Z"})


# --------------------------------------------------------------------------- checkpoint_argv


def test_checkpoint_argv_plain_dump():
    argv = checkpoint_argv("/usr/sbin/runc", ROOT, "web", "/img/1", "/img/1.work")
    assert argv == ["/usr/sbin/runc", "--root", ROOT, "checkpoint",
                    "--image-path", "/img/1", "--work-path", "/img/1.work", "web"]


def test_checkpoint_argv_predump_with_relative_parent():
    argv = checkpoint_argv("runc", ROOT, "web", "/img/round2", "/img/round2.work", mode="predump",
                           parent_dir="/img/round1")
    assert argv == ["runc", "--root", ROOT, "checkpoint", "--image-path", "/img/round2",
                    "--work-path", "/img/round2.work", "--pre-dump", "--parent-path", "../round1", "web"]


def test_checkpoint_argv_dump_with_every_option():
    argv = checkpoint_argv(
        "runc", ROOT, "web", "/img/final", "/img/final.work", mode="dump", parent_dir="/img/round3",
        leave_running=True, page_server="10.0.0.2:27000", status_fd=5, tcp_established=True,
        file_locks=True, ext_unix_sk=True, shell_job=True, manage_cgroups_mode="ignore",
    )
    assert argv == [
        "runc", "--root", ROOT, "checkpoint", "--image-path", "/img/final", "--work-path", "/img/final.work",
        "--parent-path", "../round3", "--leave-running", "--page-server", "10.0.0.2:27000",
        "--status-fd", "5", "--tcp-established", "--file-locks", "--ext-unix-sk", "--shell-job",
        "--manage-cgroups-mode", "ignore", "web",
    ]
    assert "--pre-dump" not in argv and "--lazy-pages" not in argv


def test_checkpoint_argv_lazy():
    argv = checkpoint_argv("runc", ROOT, "web", "/img/lazy", "/img/lazy.work", mode="lazy",
                           page_server="0.0.0.0:27000", status_fd=3, tcp_established=True)
    assert argv == [
        "runc", "--root", ROOT, "checkpoint", "--image-path", "/img/lazy", "--work-path", "/img/lazy.work",
        "--lazy-pages", "--page-server", "0.0.0.0:27000", "--status-fd", "3", "--tcp-established", "web",
    ]


def test_checkpoint_argv_status_fd_zero_is_passed():
    argv = checkpoint_argv("runc", ROOT, "web", "/i", "/w", mode="lazy", page_server="h:1", status_fd=0)
    assert argv[argv.index("--status-fd") + 1] == "0"


def test_checkpoint_argv_leave_running_not_for_a_predump():
    argv = checkpoint_argv("runc", ROOT, "web", "/i", "/w", mode="predump", leave_running=True)
    assert "--leave-running" not in argv


def test_checkpoint_argv_lazy_dump_can_leave_a_paused_container_frozen():
    argv = checkpoint_argv("runc", ROOT, "web", "/i", "/w", mode="lazy", leave_running=True,
                           page_server="h:1", status_fd=3)
    assert "--leave-running" in argv and "--lazy-pages" in argv


def test_checkpoint_argv_container_is_last():
    argv = checkpoint_argv("runc", ROOT, "my-container", "/i", "/w", shell_job=True)
    assert argv[-1] == "my-container"


def test_checkpoint_argv_unknown_mode():
    with pytest.raises(ValueError, match="mode must be predump, dump or lazy"):
        checkpoint_argv("runc", ROOT, "web", "/i", "/w", mode="full")


def test_checkpoint_argv_lazy_needs_page_server():
    with pytest.raises(ValueError, match="page_server"):
        checkpoint_argv("runc", ROOT, "web", "/i", "/w", mode="lazy", status_fd=3)


def test_checkpoint_argv_lazy_needs_status_fd():
    with pytest.raises(ValueError, match="status_fd"):
        checkpoint_argv("runc", ROOT, "web", "/i", "/w", mode="lazy", page_server="h:1")


def test_checkpoint_argv_bad_cgroup_mode():
    with pytest.raises(ValueError, match="soft, full, strict, ignore"):
        checkpoint_argv("runc", ROOT, "web", "/i", "/w", manage_cgroups_mode="loose")


@pytest.mark.parametrize(
    "image_dir, parent_dir, expected",
    [
        ("/img/2", "/img/1", "../1"),
        ("/img/2/", "/img/1/", "../1"),
        ("/a/b/c", "/a/x", "../../x"),
        ("/img/2", "/img/2/sub", "sub"),
    ],
)
def test_relative_parent(image_dir, parent_dir, expected):
    assert relative_parent(image_dir, parent_dir) == expected


def test_relative_parent_of_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert relative_parent("rounds/2", str(tmp_path / "rounds" / "1")) == "../1"


# --------------------------------------------------------------------------- restore_argv


def test_restore_argv_minimal():
    argv = restore_argv("runc", ROOT, "web", "/bundle", "/img", "/img.work")
    assert argv == ["runc", "--root", ROOT, "restore", "--detach", "--bundle", "/bundle",
                    "--image-path", "/img", "--work-path", "/img.work", "web"]


def test_restore_argv_every_option():
    argv = restore_argv("runc", ROOT, "web", "/bundle", "/img", "/img.work", lazy_pages=True,
                        tcp_established=True, file_locks=True, ext_unix_sk=True, shell_job=True,
                        manage_cgroups_mode="soft", pid_file="/run/web.pid")
    assert argv == [
        "runc", "--root", ROOT, "restore", "--detach", "--bundle", "/bundle", "--image-path", "/img",
        "--work-path", "/img.work", "--lazy-pages", "--tcp-established", "--file-locks", "--ext-unix-sk",
        "--shell-job", "--manage-cgroups-mode", "soft", "--pid-file", "/run/web.pid", "web",
    ]


def test_restore_argv_bad_cgroup_mode():
    with pytest.raises(ValueError, match="manage_cgroups_mode"):
        restore_argv("runc", ROOT, "web", "/b", "/i", "/w", manage_cgroups_mode="hard")


def test_cgroup_modes_match_module_choices():
    from ansible_collections.podmig.live.plugins.module_utils.args_common import CRIU_OPTION_ARGS

    assert list(runc.CGROUP_MODES) == CRIU_OPTION_ARGS["manage_cgroups_mode"]["choices"]


# --------------------------------------------------------------------------- RuncClient


@pytest.mark.parametrize(
    "text, expected",
    [
        ('time="2026-11-23T18:42:59Z" level=error msg="container does not exist"\n', True),
        ("Container Not Found", True),
        ("permission denied", False),
        ("", False),
    ],
)
def test_is_missing_container(text, expected):
    assert is_missing_container(text) is expected


def test_client_argv_prefixes_root():
    client = RuncClient(FakeRunner(), "/usr/sbin/runc", "/run/containerd/runc/k8s.io")
    assert client.argv("ps", "x") == ["/usr/sbin/runc", "--root", "/run/containerd/runc/k8s.io", "ps", "x"]


def test_state_returns_json():
    runner = FakeRunner({("runc", "--root", ROOT, "state", "web"): (0, state_json("paused"), "")})
    state = RuncClient(runner, "runc", ROOT).state("web")
    assert state["status"] == "paused"
    assert state["pid"] == 1234
    assert runner.calls[0]["check"] is False


def test_state_missing_container_is_none():
    err = 'time="2026-11-23T18:42:59Z" level=error msg="container does not exist"\n'
    runner = FakeRunner(default=(1, "", err))
    assert RuncClient(runner, "runc", ROOT).state("nosuch") is None


def test_state_other_failure_raises_tool_error():
    runner = FakeRunner(default=(1, "", 'level=error msg="open /run/runc/web/state.json: permission denied"\n'))
    with pytest.raises(ToolError) as info:
        RuncClient(runner, "runc", ROOT).state("web")
    assert info.value.details["cmd"] == ["runc", "--root", ROOT, "state", "web"]
    assert info.value.details["rc"] == 1
    assert "permission denied" in info.value.msg


def test_state_bad_json():
    runner = FakeRunner(default=(0, "not json", ""))
    with pytest.raises(PodmigError, match="runc state web printed no JSON: not json"):
        RuncClient(runner, "runc", ROOT).state("web")


def test_require_running():
    runner = FakeRunner(default=(0, state_json("running"), ""))
    assert RuncClient(runner, "runc", ROOT).require("web")["status"] == "running"


def test_require_wrong_status_names_it():
    runner = FakeRunner(default=(0, state_json("stopped"), ""))
    with pytest.raises(PodmigError) as info:
        RuncClient(runner, "runc", ROOT).require("web", ("running", "paused"))
    assert info.value.msg == "container web is stopped; this needs it running or paused"
    assert info.value.details == {"container": "web", "status": "stopped"}


def test_require_paused_accepted_when_allowed():
    runner = FakeRunner(default=(0, state_json("paused"), ""))
    assert RuncClient(runner, "runc", ROOT).require("web", ("running", "paused"))["status"] == "paused"


def test_require_missing_names_root_and_k8s_hint():
    runner = FakeRunner(default=(1, "", 'level=error msg="container does not exist"'))
    with pytest.raises(PodmigError) as info:
        RuncClient(runner, "runc", "/run/runc").require("web")
    assert "container web does not exist under runtime root /run/runc" in info.value.msg
    assert "runtime_root=/run/containerd/runc/k8s.io" in info.value.msg
    assert info.value.details == {"container": "web", "runtime_root": "/run/runc"}


def test_missing_returns_error_not_raises():
    err = RuncClient(FakeRunner(), "runc", "/r").missing("c")
    assert isinstance(err, PodmigError)
    assert err.details["runtime_root"] == "/r"


def test_pause_resume_kill_delete_argv():
    runner = FakeRunner()
    client = RuncClient(runner, "runc", ROOT)
    client.pause("web")
    client.resume("web")
    client.kill("web")
    client.kill("web", "TERM")
    client.delete("web")
    client.delete("web", force=False)
    assert [c["argv"][3:] for c in runner.calls] == [
        ["pause", "web"], ["resume", "web"], ["kill", "web", "KILL"], ["kill", "web", "TERM"],
        ["delete", "--force", "web"], ["delete", "web"],
    ]
    assert all(c["check"] for c in runner.calls)


def test_pause_failure_propagates():
    runner = FakeRunner(default=(1, "", "container not running"))
    with pytest.raises(ToolError):
        RuncClient(runner, "runc", ROOT).pause("web")


def test_pids():
    runner = FakeRunner({("runc", "--root", ROOT, "ps", "--format", "json", "web"): (0, "[101,102]\n", "")})
    assert RuncClient(runner, "runc", ROOT).pids("web") == [101, 102]


def test_pids_empty_output():
    assert RuncClient(FakeRunner(default=(0, "", "")), "runc", ROOT).pids("web") == []


def test_pids_bad_json():
    with pytest.raises(PodmigError, match="runc ps printed no JSON"):
        RuncClient(FakeRunner(default=(0, "PID\n1\n", "")), "runc", ROOT).pids("web")
