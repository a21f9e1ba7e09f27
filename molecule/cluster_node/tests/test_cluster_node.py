# -*- coding: utf-8 -*-
"""What a podmig Kubernetes worker must have after podmig.live.node ran (testinfra, through Ansible)."""

from __future__ import annotations

import json
import os

import pytest
import testinfra.utils.ansible_runner

# MOLECULE_INVENTORY_FILE is molecule's own ansible_inventory.yml, which knows the platforms but
# not the lab's groups; its directory also holds the linked inventories/lab/hosts.yml.
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]))
testinfra_hosts = RUNNER.get_hosts("lab_workers")
# An empty host list would skip every test and verify nothing.
assert testinfra_hosts, "no lab_workers in the inventory of %s" % os.environ["MOLECULE_INVENTORY_FILE"]

CRICTL = "/usr/local/bin/crictl --config /etc/crictl.yaml"
CTR = "/usr/local/bin/ctr --address /run/containerd/containerd.sock"


def _pod_cidr(host):
    """The role's static subnet of this worker: 10.244.<position in lab_workers + 1>.0/24."""
    return "10.244.%d.0/24" % (testinfra_hosts.index(host.backend.get_hostname()) + 1)


def test_containerd_is_the_patched_build(host):
    version = host.run("/usr/local/bin/containerd --version")
    assert version.rc == 0
    assert " v2.2.9+podmig." in version.stdout, version.stdout
    server = host.run(CTR + " version")
    assert server.rc == 0, server.stderr
    assert server.stdout.split("Server:")[1].split()[1].startswith("v2.2.9+podmig."), server.stdout
    assert host.file("/usr/local/bin/containerd-shim-runc-v2").mode == 0o755


def test_containerd_runs_its_own_unit_and_config(host):
    service = host.service("containerd")
    assert service.is_running and service.is_enabled
    unit = host.run("systemctl show -p FragmentPath -p ExecStart -p Environment containerd").stdout
    assert "FragmentPath=/etc/systemd/system/containerd.service" in unit
    assert "/usr/local/bin/containerd --config /etc/containerd/podmig.toml" in unit
    assert "PODMIG_RESTORE_ROOTS=/var/lib/podmig" in unit
    pid = host.run("systemctl show -p MainPID --value containerd").stdout.strip()
    environ = host.file("/proc/%s/environ" % pid).content_string.split("\0")
    assert "PODMIG_RESTORE_ROOTS=/var/lib/podmig" in environ


def test_containerd_config(host):
    config = host.file("/etc/containerd/podmig.toml")
    assert config.user == "root" and config.mode == 0o644
    text = config.content_string
    assert "version = 3" in text
    assert "restrict_oom_score_adj = true" in text
    assert "SystemdCgroup = false" in text  # cgroup v1 here: cgroupfs
    assert 'sandbox = "localhost/podmig/pause:3.10"' in text
    assert 'snapshotter = "overlayfs"' in text
    assert 'env = ["PATH=/usr/local/sbin:' in text
    # the daemon runs with what the file says
    info = json.loads(host.run(CRICTL + " info").stdout)
    assert info["config"]["restrictOOMScoreAdj"] is True
    assert info["config"]["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert info["config"]["cni"]["binDirs"] == ["/opt/cni/bin"]


def test_containerd_root_is_not_overlayfs(host):
    assert host.run("stat -fc %T /var/lib/containerd").stdout.strip() != "overlayfs"


def test_cri_runtime_and_network_ready(host):
    info = json.loads(host.run(CRICTL + " info").stdout)
    conditions = {c["type"]: c["status"] for c in info["status"]["conditions"]}
    assert conditions["RuntimeReady"] is True
    assert conditions["NetworkReady"] is True, info.get("lastCNILoadStatus")
    assert info["lastCNILoadStatus"] == "OK"


def test_cni_config(host):
    conflist = host.file("/etc/cni/net.d/10-podmig.conflist")
    assert conflist.exists and conflist.mode == 0o644
    network = json.loads(conflist.content_string)
    bridge = network["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["bridge"] == "cni0"
    assert bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["ranges"][0][0]["subnet"] == _pod_cidr(host)
    for plugin in ("bridge", "host-local", "loopback", "portmap"):
        assert host.file("/opt/cni/bin/" + plugin).mode == 0o755, plugin


def test_routes_to_the_other_workers_pod_subnets(host):
    routes = host.run("ip -4 route show").stdout
    for other in testinfra_hosts:
        if other == host.backend.get_hostname():
            continue
        subnet = "10.244.%d.0/24" % (testinfra_hosts.index(other) + 1)
        address = RUNNER.get_variables(other)["ansible_host"]
        assert "%s via %s " % (subnet, address) in routes, routes
    assert host.service("podmig-pod-routes").is_enabled
    assert host.file("/proc/sys/net/ipv4/ip_forward").content_string.strip() == "1"


@pytest.mark.parametrize("image", ["localhost/podmig/pause:3.10", "localhost/podmig/workload:", "localhost/podmig/debug:"])
def test_images_imported_and_pinned(host, image):
    listing = host.run(CTR + " -n k8s.io images ls").stdout.splitlines()[1:]
    lines = [line for line in listing if line.split()[0].startswith(image)]
    assert lines, "%s is not in containerd's k8s.io namespace" % image
    assert "io.cri-containerd.pinned=pinned" in lines[0]


def test_kubelet_runs_and_is_healthy(host):
    kubelet = host.service("kubelet")
    assert kubelet.is_running and kubelet.is_enabled
    healthz = host.run("python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:10248/healthz').read().decode())\"")
    assert healthz.rc == 0 and healthz.stdout.strip() == "ok"
    version = host.run("/usr/local/bin/kubelet --version")
    assert version.stdout.strip() == "Kubernetes v1.35.4"


def test_kubelet_config(host):
    config = host.file("/var/lib/kubelet/config.yaml").content_string
    for line in ("cgroupDriver: cgroupfs", "failCgroupV1: false", "failSwapOn: false",
                 "containerRuntimeEndpoint: unix:///run/containerd/containerd.sock",
                 "clientCAFile: /etc/kubernetes/pki/ca.crt", "mode: Webhook",
                 "protectKernelDefaults: true", "clusterDomain: cluster.local", "- 10.96.0.10"):
        assert line in config, line
    cmdline = host.file("/proc/%s/cmdline" % host.run("systemctl show -p MainPID --value kubelet").stdout.strip())
    args = cmdline.content_string.split("\0")
    assert "--hostname-override=%s" % host.backend.get_hostname() in args
    assert "--node-ip=%s" % RUNNER.get_variables(host.backend.get_hostname())["ansible_host"] in args


def test_kubelet_sees_its_kernel_settings_without_changing_the_hosts(host):
    # the node is a podman container: the masks are bind mounts in its own mount namespace
    mounts = host.file("/proc/self/mountinfo").content_string
    for key, value in (("vm/overcommit_memory", "1"), ("kernel/panic", "10"), ("kernel/panic_on_oops", "1")):
        assert " /proc/sys/%s " % key in mounts, key
        assert host.file("/proc/sys/" + key).content_string.strip() == value
    # a fresh procfs (what every pod gets) shows the kernel's own values
    real = host.run("unshare --mount --pid --fork --mount-proc cat /proc/sys/kernel/panic")
    assert real.rc == 0 and real.stdout.strip().lstrip("-").isdigit()


@pytest.mark.parametrize("path,mode", [
    ("/etc/kubernetes/kubelet.conf", 0o600),
    ("/var/lib/kubelet/pki/kubelet.key", 0o600),
    ("/var/lib/kubelet/pki", 0o700),
    ("/var/lib/podmig", 0o700),
    ("/var/cache/podmig/images", 0o700),
])
def test_private_files_are_private(host, path, mode):
    f = host.file(path)
    assert f.exists, path
    assert f.user == "root" and f.mode == mode, "%s: %o" % (path, f.mode)


def test_public_certificates(host):
    for path in ("/etc/kubernetes/pki/ca.crt", "/var/lib/kubelet/pki/kubelet.crt"):
        f = host.file(path)
        assert f.mode == 0o644 and "BEGIN CERTIFICATE" in f.content_string, path


def test_node_is_registered_ready_with_its_static_subnet(host):
    # as the node itself (its kubeconfig, system:node:<name>)
    name = host.backend.get_hostname()
    node = host.run("/usr/local/bin/kubectl --kubeconfig /etc/kubernetes/kubelet.conf get node %s -o json" % name)
    assert node.rc == 0, node.stderr
    obj = json.loads(node.stdout)
    assert obj["spec"]["podCIDR"] == _pod_cidr(host)
    ready = [c for c in obj["status"]["conditions"] if c["type"] == "Ready"][0]
    assert ready["status"] == "True", ready
    assert obj["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://2.2.9+podmig.")
