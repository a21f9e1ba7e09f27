# -*- coding: utf-8 -*-
"""What a podmig node must have after the node roles ran (testinfra, through Ansible)."""

from __future__ import annotations

import os

import testinfra.utils.ansible_runner

# The inventory directory molecule builds: its own file plus links to the lab's hosts.yml and
# group_vars (MOLECULE_INVENTORY_FILE alone lists the platforms without their groups).
INVENTORY = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("lab_workers")
# An empty host list would skip every test and verify nothing.
assert testinfra_hosts, "no lab_workers in %s" % INVENTORY


def test_criu_is_new_enough_and_passes_its_check(host):
    version = host.run("/usr/local/sbin/criu --version")
    assert version.rc == 0
    major_minor = tuple(int(x) for x in version.stdout.split("Version:")[1].split()[0].split(".")[:2])
    assert major_minor >= (4, 1)
    check = host.run("/usr/local/sbin/criu check")
    assert check.rc == 0 and "Looks good" in check.stdout + check.stderr


def test_lazy_pages_have_a_large_enough_pipe(host):
    assert int(host.file("/proc/sys/fs/pipe-max-size").content_string.strip()) >= 4194304
    assert "fs.pipe-max-size = 4194304" in host.file("/etc/sysctl.d/90-podmig-criu.conf").content_string


def test_criu_is_limited_to_the_real_cgroup_controllers(host):
    conf = host.file("/etc/criu/runc.conf")
    assert conf.exists
    for controller in ("cpu", "memory", "freezer", "pids"):
        assert "cgroup-dump-controller %s" % controller in conf.content_string


def test_runtime_tools_are_installed(host):
    for package in ("runc", "rsync", "openssh-client", "iptables"):
        assert host.package(package).is_installed, package
    assert host.run("runc --version").rc == 0


def test_checkpoint_staging_is_private(host):
    staging = host.file("/var/lib/podmig")
    assert staging.is_directory and staging.user == "root" and staging.mode == 0o700


def test_nodes_trust_each_other_for_image_transfer(host):
    key = host.file("/root/.ssh/podmig_ed25519")
    assert key.exists and key.mode == 0o600
    known = host.file("/etc/podmig/known_hosts").content_string
    runner = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
    me = host.backend.get_hostname()
    for other in testinfra_hosts:
        if other == me:
            continue
        address = runner.get_variables(other)["ansible_host"]
        assert address in known, "%s's host key is not in /etc/podmig/known_hosts" % other
        login = host.run("ssh -i /root/.ssh/podmig_ed25519 -o BatchMode=yes -o StrictHostKeyChecking=yes "
                         "-o UserKnownHostsFile=/etc/podmig/known_hosts root@%s hostname" % address)
        assert login.rc == 0 and login.stdout.strip() == other, login.stderr


def test_containerd_runs_with_cgroupfs_and_runc(host):
    assert host.service("containerd").is_running
    assert host.service("containerd").is_enabled
    config = host.file("/etc/containerd/config.toml")
    assert config.mode == 0o644
    assert "SystemdCgroup = false" in config.content_string
    version = host.run("ctr --address /run/containerd/containerd.sock version")
    assert version.rc == 0 and "Server:" in version.stdout, version.stderr
