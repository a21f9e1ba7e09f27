# -*- coding: utf-8 -*-
"""Fixtures for integration tests against real runc, CRIU, rsync and sshd (run as root)."""

from __future__ import annotations

import os
import shutil
import uuid

import pytest

from support.containers import Runc, build_rootfs, make_bundle, unmount_bundle, workload_args
from support.hosts import TestNetwork
from ticks import TickLog, wait_for


def pytest_collection_modifyitems(config, items):
    problems = []
    if os.geteuid() != 0:
        problems.append("integration tests need root (runc, CRIU, mounts, network namespaces)")
    for tool in ("runc", "rsync", "sshd", "ip"):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin"):
            problems.append("%s is not installed (run the setup playbook: make setup)" % tool)
    if not (shutil.which("criu") or os.path.exists("/usr/local/sbin/criu")):
        problems.append("criu is not installed (run the setup playbook: make setup)")
    if problems:
        # Fail loudly: a silent skip would let CI pass without exercising anything.
        raise pytest.UsageError("; ".join(problems))


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("podmig"))


@pytest.fixture(scope="session")
def rootfs(workdir):
    return build_rootfs(os.path.join(workdir, "rootfs"))


@pytest.fixture
def runc_local(workdir):
    runc = Runc(os.path.join(workdir, "runc-local"))
    yield runc
    runc.cleanup()


class WorkloadContainers:
    """Starts podmig-workload containers and cleans them up."""

    def __init__(self, workdir: str, rootfs: str) -> None:
        self.workdir = workdir
        self.rootfs = rootfs
        self.bundles: list[dict] = []

    def bundle(self, name: str, log_dir: str, overlay: bool = False, mib: int = 32, rate: float = 0.2) -> dict:
        os.makedirs(log_dir, exist_ok=True)
        info = make_bundle(os.path.join(self.workdir, "bundles", name), self.rootfs, workload_args(mib, rate),
                           binds={"/log": log_dir}, overlay=overlay)
        info["log"] = os.path.join(log_dir, "ticks")
        self.bundles.append(info)
        return info

    def start(self, runc: Runc, name: str | None = None, overlay: bool = False, mib: int = 32,
              rate: float = 0.2) -> dict:
        name = name or "ct-" + uuid.uuid4().hex[:8]
        log_dir = os.path.join(self.workdir, "logs", name)
        info = self.bundle(name, log_dir, overlay=overlay, mib=mib, rate=rate)
        runc.run(name, info["bundle"])
        wait_for(lambda: os.path.exists(info["log"]) and TickLog.read(info["log"]).last_counter > 50,
                 timeout=20, what="the workload's first ticks")
        info["container"] = name
        return info

    def cleanup(self) -> None:
        for info in self.bundles:
            unmount_bundle(info)


@pytest.fixture
def workloads(workdir, rootfs):
    containers = WorkloadContainers(os.path.join(workdir, uuid.uuid4().hex[:6]), rootfs)
    yield containers
    containers.cleanup()


@pytest.fixture(scope="module")
def test_network(tmp_path_factory):
    net = TestNetwork(str(tmp_path_factory.mktemp("net")))
    yield net
    net.close()
