# -*- coding: utf-8 -*-
"""Test hosts on this machine: network namespaces joined by a bridge, each with its own sshd.

Ansible reaches each one over real SSH at its own address, so modules run "on a
node" exactly as they would on another machine (the filesystem is shared, so
tests give every node its own directories). Only addresses of these test hosts
are used, and teardown stops only the sshd processes started here, by pid.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time

BRIDGE = "pmtbr0"
SUBNET = "10.231.7"
GATEWAY = SUBNET + ".254"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check)


@dataclasses.dataclass
class NetnsHost:
    name: str
    address: str
    workdir: str
    sshd_pid: int | None = None

    @property
    def runtime_root(self) -> str:
        return os.path.join(self.workdir, "runc")

    @property
    def netns(self) -> str:
        return "pmt-" + self.name

    def exec(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        # nsenter joins only the network namespace; `ip netns exec` would also remount /sys
        # in a new mount namespace, hiding the cgroup mounts runc needs.
        return sh("nsenter", "--net=/run/netns/" + self.netns, *argv, check=check)


class TestNetwork:
    """Creates the bridge, the hosts and an inventory; ``close()`` removes them."""

    def __init__(self, workdir: str, names: tuple[str, ...] = ("node-a", "node-b")) -> None:
        self.workdir = workdir
        self.hosts: dict[str, NetnsHost] = {}
        os.makedirs(workdir, exist_ok=True)
        self.key = os.path.join(workdir, "id_ed25519")
        self.known_hosts = os.path.join(workdir, "known_hosts")
        self.inventory = os.path.join(workdir, "inventory.ini")
        self._remove_leftovers(names)
        try:
            self._bridge()
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key)
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
            for index, name in enumerate(names, start=1):
                self.hosts[name] = self._host(name, "%s.%d" % (SUBNET, index))
            self._write_inventory()
        except BaseException:
            self.close()  # stop the sshd processes already started here
            raise

    @staticmethod
    def _remove_leftovers(names: tuple[str, ...]) -> None:
        # A previous run killed hard may have left our namespaces and bridge (names are ours alone).
        for name in names:
            sh("ip", "netns", "del", "pmt-" + name, check=False)
            sh("ip", "link", "del", "pmt-" + name[-6:], check=False)
        sh("ip", "link", "del", BRIDGE, check=False)

    def _bridge(self) -> None:
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", GATEWAY + "/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")

    def _host(self, name: str, address: str) -> NetnsHost:
        host = NetnsHost(name, address, os.path.join(self.workdir, name))
        self.hosts[name] = host  # known to close() from here on
        os.makedirs(host.workdir, exist_ok=True)
        veth = "pmt-" + name[-6:]
        sh("ip", "netns", "add", host.netns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        sh("ip", "link", "set", veth, "master", BRIDGE, "up")
        host.exec("ip", "link", "set", "lo", "up")
        host.exec("ip", "addr", "add", address + "/24", "dev", "eth0")
        host.exec("ip", "link", "set", "eth0", "up")
        host.exec("ip", "route", "add", "default", "via", GATEWAY)
        hostkey = os.path.join(host.workdir, "ssh_host_ed25519_key")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostkey)
        authorized = os.path.join(host.workdir, "authorized_keys")
        with open(self.key + ".pub", encoding="ascii") as src, open(authorized, "w", encoding="ascii") as dst:
            dst.write(src.read())
        config = os.path.join(host.workdir, "sshd_config")
        pidfile = os.path.join(host.workdir, "sshd.pid")
        with open(config, "w", encoding="ascii") as handle:
            handle.write(
                "ListenAddress %s\nPort 22\nHostKey %s\nPidFile %s\nAuthorizedKeysFile %s\n"
                "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                "UsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\nMaxStartups 50\nMaxSessions 50\n"
                % (address, hostkey, pidfile, authorized)
            )
        host.exec("/usr/sbin/sshd", "-f", config, "-E", os.path.join(host.workdir, "sshd.log"))
        for _ in range(200):
            # sshd creates the file, then writes the pid: wait for the number.
            if os.path.exists(pidfile) and open(pidfile, encoding="ascii").read().strip():
                break
            time.sleep(0.05)
        with open(pidfile, encoding="ascii") as handle:
            host.sshd_pid = int(handle.read().strip())
        with open(hostkey + ".pub", encoding="ascii") as handle:
            keytype, keydata = handle.read().split()[:2]
        with open(self.known_hosts, "a", encoding="ascii") as handle:
            handle.write("%s %s %s\n" % (address, keytype, keydata))
        return host

    def _write_inventory(self) -> None:
        lines = ["[nodes]"]
        for name, host in self.hosts.items():
            # Each test host keeps its podmig files in its own directory: the filesystem is shared.
            # ... and its own cgroup prefix: the cgroup tree is shared too.
            lines.append("%s ansible_host=%s podmig_dir=%s podmig_runtime_root=%s podmig_cgroups_prefix=/pmt-%s"
                         % (name, host.address, os.path.join(host.workdir, "podmig"), host.runtime_root, name))
        lines += [
            "",
            "[nodes:vars]",
            "ansible_user=root",
            "ansible_ssh_private_key_file=%s" % self.key,
            "ansible_ssh_common_args='-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes'" % self.known_hosts,
            "ansible_python_interpreter=/usr/bin/python3",
            "podmig_ssh_key=%s" % self.key,
            "podmig_known_hosts=%s" % self.known_hosts,
        ]
        with open(self.inventory, "w", encoding="ascii") as handle:
            handle.write("\n".join(lines) + "\n")

    def transfer_args(self) -> dict:
        """What checkpoint_transfer needs to push from one test host to another."""
        return {"ssh_private_key": self.key, "known_hosts_file": self.known_hosts}

    def close(self) -> None:
        for host in self.hosts.values():
            if host.sshd_pid:
                try:
                    os.kill(host.sshd_pid, 15)
                except ProcessLookupError:
                    pass
            sh("ip", "netns", "del", host.netns, check=False)
            sh("ip", "link", "del", "pmt-" + host.name[-6:], check=False)
        sh("ip", "link", "del", BRIDGE, check=False)
