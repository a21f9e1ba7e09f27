# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the post-copy rollback (checkpoint.abort_lazy_dump) with a fake page server.

The "lazy dump" is a child process this test starts (a sleeping python); the fake page
server is a thread listening on 127.0.0.1 that ends that child when it receives bytes,
as CRIU's page server does on a request it cannot parse.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading

import pytest

from ansible_collections.podmig.live.plugins.module_utils.checkpoint import (
    LAZY_STATE,
    abort_lazy_dump,
    record_lazy_dump,
)
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError

SLEEPER = [sys.executable, "-c", "import time; time.sleep(30)"]


@pytest.fixture
def lazy_dump():
    """A child standing in for the lazy `runc checkpoint`; killed and reaped at the end."""
    proc = subprocess.Popen(SLEEPER)  # noqa: S603
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=5)


class FakePageServer:
    """Listens on 127.0.0.1:<free port>; on the first bytes received, optionally terminates ``victim``."""

    def __init__(self, victim=None):
        self.victim = victim
        self.received = b""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _addr = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            try:
                self.received = conn.recv(64)
            except OSError:
                return
            if self.received and self.victim is not None:
                self.victim.terminate()

    def close(self):
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def page_server_factory():
    servers = []

    def make(victim=None):
        server = FakePageServer(victim)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_state_file_means_nothing_pending(tmp_path):
    assert abort_lazy_dump(str(tmp_path)) is None


def test_unreadable_state_file_means_nothing_pending(tmp_path):
    (tmp_path / LAZY_STATE).write_text("{not json")
    assert abort_lazy_dump(str(tmp_path)) is None


def test_record_writes_pid_and_page_server(tmp_path):
    record_lazy_dump(str(tmp_path), 1234, "0.0.0.0:27000")
    state = json.loads((tmp_path / LAZY_STATE).read_text())
    assert state["pid"] == 1234
    assert state["page_server"] == "0.0.0.0:27000"
    assert state["started"] > 0


def test_dead_pid_is_not_aborted_and_state_removed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])  # noqa: S603
    proc.wait(timeout=10)  # reaped: the pid is gone
    record_lazy_dump(str(tmp_path), proc.pid, "127.0.0.1:%d" % free_port())
    result = abort_lazy_dump(str(tmp_path))
    assert result["aborted"] is False
    assert "already ended" in result["reason"]
    assert not (tmp_path / LAZY_STATE).exists()


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_live_lazy_dump_is_aborted_through_its_page_server(tmp_path, lazy_dump, page_server_factory, host):
    server = page_server_factory(victim=lazy_dump)
    # 0.0.0.0 (CRIU listening on every address) is reached through 127.0.0.1
    record_lazy_dump(str(tmp_path), lazy_dump.pid, "%s:%d" % (host, server.port))
    result = abort_lazy_dump(str(tmp_path), timeout=5)
    assert result == {"aborted": True, "pid": lazy_dump.pid}
    assert server.received  # something that is not a page request was sent
    assert lazy_dump.wait(timeout=5) == -signal.SIGTERM  # ended by the fake page server
    assert not (tmp_path / LAZY_STATE).exists()


def test_lazy_dump_that_does_not_stop_cannot_be_rolled_back(tmp_path, lazy_dump, page_server_factory):
    server = page_server_factory(victim=None)  # receives the abort, but the dump goes on
    record_lazy_dump(str(tmp_path), lazy_dump.pid, "127.0.0.1:%d" % server.port)
    with pytest.raises(PodmigError, match="post-copy cannot be rolled back") as info:
        abort_lazy_dump(str(tmp_path), timeout=0.2)
    assert "pid %d" % lazy_dump.pid in info.value.msg
    assert lazy_dump.poll() is None
    # the state stays, so that a later rollback still knows about the dump
    assert (tmp_path / LAZY_STATE).exists()


def test_unreachable_page_server_is_an_error(tmp_path, lazy_dump):
    address = "127.0.0.1:%d" % free_port()
    record_lazy_dump(str(tmp_path), lazy_dump.pid, address)
    with pytest.raises(PodmigError, match="cannot reach the page server") as info:
        abort_lazy_dump(str(tmp_path), timeout=0.2)
    assert address in info.value.msg
    assert lazy_dump.poll() is None
    assert (tmp_path / LAZY_STATE).exists()
