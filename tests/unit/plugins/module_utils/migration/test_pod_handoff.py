# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the pure parts of the pod hand-off (module_utils/migration/pod_handoff.py)."""

from __future__ import annotations

import os
import shlex
import socket

import pytest

from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.migration.pod_handoff import (
    checkpoint_params, free_ports, freeze, lazy_daemon_command, page_server_port, pod_freezer_dir)

POD = "/kubepods/besteffort/pod6b1d"


def test_the_pod_freezer_is_the_common_parent_of_its_containers():
    found = pod_freezer_dir([{"freezer": POD + "/aaa", "memory": "/x"}, {"freezer": POD + "/bbb/"}], root="/cg/freezer")
    assert found == "/cg/freezer" + POD


@pytest.mark.parametrize("mappings,message", [
    ([{"freezer": POD + "/a"}, {"freezer": "/kubepods/besteffort/podOTHER/b"}], "not in one pod cgroup"),
    ([{"memory": "/x"}], "no freezer cgroup"),
    ([{"freezer": "/"}], "no freezer cgroup"),
    ([{"freezer": "/lonely"}], "root freezer cgroup"),
])
def test_a_pod_freezer_that_is_not_one_pod_is_refused(mappings, message):
    with pytest.raises(PodmigError, match=message):
        pod_freezer_dir(mappings)


def test_freeze_writes_the_state_and_reads_it_back(tmp_path):
    (tmp_path / "freezer.state").write_text("THAWED\n")
    freeze(str(tmp_path), "FROZEN")
    assert (tmp_path / "freezer.state").read_text() == "FROZEN"


def test_freeze_gives_up_when_the_kernel_never_reports_the_state(tmp_path, monkeypatch):
    (tmp_path / "freezer.state").write_text("FREEZING")
    real_open = open

    def stuck_open(path, mode="r", **kwargs):  # a freezer that ignores the write and stays FREEZING
        return real_open(os.devnull if "w" in mode else path, mode, **kwargs)

    monkeypatch.setattr("builtins.open", stuck_open)
    with pytest.raises(PodmigError, match="stayed FREEZING instead of FROZEN"):
        freeze(str(tmp_path), "FROZEN", timeout=0.05)


def test_the_lazy_daemon_serves_from_the_work_dir_the_restore_uses():
    argv = shlex.split(lazy_daemon_command("/usr/local/sbin/criu", "/var/lib/podmig/in/m1/app/", "10.89.7.11", 27101))
    assert "lazy-pages" in argv and "--page-server" in argv
    assert argv[argv.index("--address") + 1] == "10.89.7.11" and argv[argv.index("--port") + 1] == "27101"
    assert argv[argv.index("--images-dir") + 1] == "/var/lib/podmig/in/m1/app/images"
    assert argv[argv.index("--work-dir") + 1] == "/var/lib/podmig/in/m1/app/work"
    assert argv[-3:] == ["10.89.7.11:27101", ">", "/var/lib/podmig/in/m1/app/lazy-pages"]


def test_each_container_is_dumped_held_frozen_into_its_own_directory():
    params = {"strategy": "cold", "work_dir": "/var/lib/podmig/out/m1", "runtime_root": "/run/containerd/runc/k8s.io",
              "page_server_address": "10.0.0.1", "page_server_port": 27100}
    ck = checkpoint_params(params, {"name": "app", "id": "c1"}, 0)
    assert ck["container"] == "c1" and ck["image_dir"] == "/var/lib/podmig/out/m1/app/images"
    assert ck["mode"] == "dump" and ck["hold_frozen"] and not ck["leave_running"] and ck["page_server"] is None
    lazy = checkpoint_params(dict(params, strategy="postcopy"), {"name": "side", "id": "c2"}, 1)
    assert lazy["mode"] == "lazy" and lazy["page_server"] == "10.0.0.1:27101"
    # kubelet must keep seeing it RUNNING after the last page was served: never killed by the dump
    assert lazy["hold_frozen"]


def test_free_ports_skip_a_port_in_use_and_page_server_port_uses_them():
    """A page server still serving an earlier post-copy migration holds the first port: the next
    free ones are taken, and each container's checkpoint and lazy daemon use its own."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = held.getsockname()[1]
        ports = free_ports("127.0.0.1", busy, 2)
        assert busy not in ports and len(set(ports)) == 2 and all(p > busy for p in ports)
    params = {"page_server_port": busy, "page_server_ports": ports}
    assert [page_server_port(params, i) for i in (0, 1)] == ports
    assert page_server_port({"page_server_port": 27100}, 1) == 27101


def test_free_ports_refuses_when_none_is_left():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = held.getsockname()[1]
        with pytest.raises(PodmigError, match="no 1 free page-server port"):
            free_ports("127.0.0.1", busy, 1, limit=1)


class FakeRunc:
    """runc as the hand-off sees it: two running containers that pause and resume."""

    status: dict = {}

    def __init__(self, *args, **kwargs):
        pass

    def require(self, cid, states):
        return {"status": self.status[cid], "pid": 100 + len(cid)}

    def state(self, cid):
        return {"status": self.status[cid]}

    def pause(self, cid):
        self.status[cid] = "paused"

    def resume(self, cid):
        self.status[cid] = "running"


class FakeSender:
    """The transfer to the target; fails at the step named by ``fail``."""

    fail = None

    def __init__(self, module, runner, params):
        self.ssh, self.master_error, self.signalled = ["ssh"], None, []

    def open(self):
        pass

    def close(self):
        pass

    def send(self, src, dest, what, **kwargs):
        if FakeSender.fail == "send":
            raise PodmigError("sending %s failed" % what)
        return {"bytes_sent": 10}

    def signal(self, dest, lines=()):
        if FakeSender.fail == "second signal" and self.signalled:
            raise PodmigError("signalling %s failed" % dest)
        self.signalled.append(dest)


@pytest.fixture
def handoff_with_fakes(monkeypatch):
    from ansible_collections.podmig.live.plugins.module_utils.migration import pod_handoff as ph
    monkeypatch.setattr(ph, "RuncClient", FakeRunc)
    monkeypatch.setattr(ph, "Sender", FakeSender)
    monkeypatch.setattr(ph, "find_binary", lambda *a, **k: "runc")
    monkeypatch.setattr(ph, "freeze", lambda path, state, timeout=10.0: None)
    monkeypatch.setattr(ph, "take_checkpoint", lambda module, runner, ck: {"image_bytes": 1})

    class Module:
        check_mode = False

    params = {"containers": [{"name": "a", "id": "id-a"}, {"name": "b", "id": "id-b"}], "strategy": "cold",
              "runtime_root": "/run/x", "work_dir": "/tmp/w", "dest_dir": "/in/m1", "dest_host": "10.0.0.2",
              "shell_pod": "default/app-mig/uid", "pod_freezer": "/cg/freezer/kubepods/podX", "volumes": []}
    FakeRunc.status = {"id-a": "running", "id-b": "running"}
    return lambda: ph.pod_handoff(Module(), None, params)


def test_a_failure_before_any_ready_resumes_the_pod_at_once(handoff_with_fakes):
    FakeSender.fail = "send"
    with pytest.raises(PodmigError, match="sending the images of a failed") as err:
        handoff_with_fakes()
    assert FakeRunc.status == {"id-a": "running", "id-b": "running"}
    assert err.value.details["rolled_back"] == ["a: resumed", "b: resumed"] and "held_frozen" not in err.value.details


def test_a_failure_after_a_ready_keeps_the_pod_frozen_for_the_fence(handoff_with_fakes):
    FakeSender.fail = "second signal"
    with pytest.raises(PodmigError, match="READY was given for a: the pod stays frozen") as err:
        handoff_with_fakes()
    assert FakeRunc.status == {"id-a": "paused", "id-b": "paused"}
    assert err.value.details["held_frozen"] is True and err.value.details["signalled"] == ["a"]
    assert "rolled_back" not in err.value.details
