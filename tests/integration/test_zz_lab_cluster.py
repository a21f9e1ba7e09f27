# -*- coding: utf-8 -*-
"""The lab as a Kubernetes cluster: ``playbooks/lab_cluster.yml`` (``make cluster-up``).

The module runs the playbook once as a user does (lab up or reused, components built or reused,
PKI, control plane, workers), checks the control plane from the controller and from podmig-cp,
then runs it again in check mode and for real: nothing may change. It never takes the lab down
(``test_lab.py`` and ``test_zz_pod_migration.py`` own that) and never recreates nodes.

Parts that need the workers (``podmig.live.node``) are marked ``needs_node_role``. With
``PODMIG_CLUSTER_SKIP_NODES=1`` the playbook runs with ``--skip-tags node`` (the control plane
alone) and those tests are skipped.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time

import pytest

from support.ansible_runner import BIN, REPO, ansible_env, ensure_collection_link

PLAYBOOK = os.path.join(REPO, "playbooks", "lab_cluster.yml")
LAB_DIR = os.path.join(REPO, "inventories", "lab")
KEY = os.path.join(LAB_DIR, ".ssh", "id_ed25519")
KNOWN_HOSTS = os.path.join(LAB_DIR, ".ssh", "known_hosts")
KUBECONFIG = os.path.join(LAB_DIR, "kubeconfig")
KUBECTL = os.path.join(REPO, ".build", "bin", "kubectl")
PKI_DIR = os.path.join(REPO, ".build", "clusters", "podmig-lab")
CONTROL_PLANE = {"podmig-cp": "10.89.7.10"}
WORKERS = {"podmig-w1": "10.89.7.11", "podmig-w2": "10.89.7.12"}
SERVICES = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
# Task name prefixes of the roles this playbook adds (cluster_pki, control_plane, the final play).
OWN_PREFIXES = ("Cluster PKI |", "Control plane |", "Cluster |")

SKIP_NODES = os.environ.get("PODMIG_CLUSTER_SKIP_NODES", "") == "1"
needs_node_role = pytest.mark.skipif(SKIP_NODES, reason="PODMIG_CLUSTER_SKIP_NODES=1: workers (podmig.live.node) not set up")

RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?:[^\]:]+ : )?(.*)\] \**$")


def cluster_playbook(*args: str, timeout: int = 5400) -> subprocess.CompletedProcess:
    """`ansible-playbook -i inventories/lab playbooks/lab_cluster.yml` from the repository root."""
    ensure_collection_link()
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", LAB_DIR, PLAYBOOK] + list(args)
    if SKIP_NODES:
        argv += ["--skip-tags", "node"]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=ansible_env(),
                          check=False)


def recap(proc: subprocess.CompletedProcess) -> dict[str, dict[str, int]]:
    return {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)), "unreachable": int(m.group(4)),
                         "failed": int(m.group(5))} for m in RECAP.finditer(proc.stdout)}


def changed_tasks(proc: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    """(task name, result line) for every `changed:` result the default callback printed."""
    out, task = [], ""
    for line in proc.stdout.splitlines():
        match = TASK.match(line)
        if match:
            task = match.group(1)
        elif line.startswith("changed:"):
            out.append((task, line))
    return out


def explain(proc: subprocess.CompletedProcess) -> str:
    return "rc=%d\n%s\n%s" % (proc.returncode, proc.stdout[-8000:], proc.stderr[-3000:])


def sh(*argv: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)


def kubectl(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return sh(KUBECTL, "--kubeconfig", KUBECONFIG, *args, timeout=timeout)


def ssh(node: str, command: str, timeout: int = 120) -> subprocess.CompletedProcess:
    address = {**CONTROL_PLANE, **WORKERS}[node]
    return sh("ssh", "-i", KEY, "-o", "UserKnownHostsFile=" + KNOWN_HOSTS, "-o", "StrictHostKeyChecking=yes",
              "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", "root@" + address,
              command, timeout=timeout)


@pytest.fixture(scope="module")
def cluster():
    start = time.monotonic()
    proc = cluster_playbook()
    seconds = time.monotonic() - start
    print("\nlab_cluster.yml, first run in this module: %.1f s" % seconds)
    assert proc.returncode == 0, explain(proc)
    return {"first": proc, "first_seconds": seconds}


@pytest.fixture(scope="module")
def check_run(cluster):
    proc = cluster_playbook("--check")
    assert proc.returncode == 0, explain(proc)
    return proc


@pytest.fixture(scope="module")
def second_run(cluster):
    start = time.monotonic()
    proc = cluster_playbook()
    print("\nlab_cluster.yml, second run: %.1f s" % (time.monotonic() - start))
    assert proc.returncode == 0, explain(proc)
    return proc


# ---- control plane (cluster_pki, control_plane) ------------------------------------------------

def test_first_run_reaches_every_host(cluster):
    hosts = recap(cluster["first"])
    expected = ["localhost"] + list(CONTROL_PLANE) + ([] if SKIP_NODES else list(WORKERS))
    for host in expected:
        assert host in hosts, explain(cluster["first"])
        assert hosts[host]["failed"] == 0 and hosts[host]["unreachable"] == 0, explain(cluster["first"])


def test_control_plane_services_run_on_podmig_cp(cluster):
    proc = ssh("podmig-cp", "systemctl is-active %s; systemctl is-enabled %s" % (" ".join(SERVICES), " ".join(SERVICES)))
    assert proc.stdout.split() == ["active"] * 4 + ["enabled"] * 4, proc.stdout + proc.stderr


def test_etcd_is_healthy(cluster):
    proc = ssh("podmig-cp", "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt"
                            " --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt"
                            " --key=/etc/kubernetes/pki/etcd/healthcheck-client.key endpoint health")
    assert proc.returncode == 0 and "is healthy" in proc.stdout, proc.stdout + proc.stderr


def test_apiserver_is_ready_and_live_from_the_controller(cluster):
    for path in ("/readyz", "/livez"):
        proc = kubectl("get", "--raw", path)
        assert proc.returncode == 0 and proc.stdout.strip() == "ok", (path, proc.stdout, proc.stderr)
    version = json.loads(kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == "v1.35.4"


def test_component_statuses_are_healthy(cluster):
    proc = kubectl("get", "componentstatuses", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    statuses = {item["metadata"]["name"]: item["conditions"][0]["status"] for item in json.loads(proc.stdout)["items"]}
    assert statuses == {"controller-manager": "True", "scheduler": "True", "etcd-0": "True"}


def test_controller_manager_and_scheduler_answer_healthz(cluster):
    for port in (10257, 10259):
        proc = ssh("podmig-cp", "curl -sk https://127.0.0.1:%d/healthz" % port)
        assert proc.stdout.strip() == "ok", (port, proc.stdout, proc.stderr)


def test_apiserver_may_use_the_kubelet_api(cluster):
    proc = kubectl("auth", "can-i", "get", "nodes/proxy", "--as", "kube-apiserver-kubelet-client")
    assert proc.stdout.strip() == "yes", proc.stdout + proc.stderr


def test_pki_is_private_and_kubeconfig_is_ignored_by_git(cluster):
    assert stat.S_IMODE(os.stat(PKI_DIR).st_mode) == 0o700
    for root, _dirs, files in os.walk(PKI_DIR):
        for name in files:
            path = os.path.join(root, name)
            if name.endswith((".key", ".conf")):
                assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert stat.S_IMODE(os.stat(KUBECONFIG).st_mode) == 0o600
    assert sh("git", "-C", REPO, "check-ignore", "-q", KUBECONFIG).returncode == 0
    assert sh("git", "-C", REPO, "check-ignore", "-q", PKI_DIR).returncode == 0
    keys = ssh("podmig-cp", "stat -c '%a %n' /etc/kubernetes/pki/*.key /etc/kubernetes/pki/etcd/*.key /etc/kubernetes/*.conf")
    assert keys.returncode == 0 and keys.stdout.strip(), keys.stderr
    assert all(line.startswith("600 ") for line in keys.stdout.splitlines()), keys.stdout


def test_apiserver_certificate_names(cluster):
    proc = sh("openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", os.path.join(PKI_DIR, "pki", "apiserver.crt"))
    for san in ("IP Address:10.89.7.10", "DNS:podmig-cp", "IP Address:10.96.0.1", "DNS:kubernetes",
                "DNS:kubernetes.default", "DNS:kubernetes.default.svc", "DNS:kubernetes.default.svc.cluster.local",
                "DNS:localhost", "IP Address:127.0.0.1"):
        assert san in proc.stdout, proc.stdout
    served = sh("/bin/sh", "-c", "openssl s_client -connect 10.89.7.10:6443 -CAfile %s </dev/null 2>/dev/null"
                                 " | openssl x509 -noout -fingerprint -sha256" % os.path.join(PKI_DIR, "pki", "ca.crt"))
    on_disk = sh("openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", os.path.join(PKI_DIR, "pki", "apiserver.crt"))
    assert served.stdout.strip() and served.stdout == on_disk.stdout


def test_check_mode_changes_nothing(check_run):
    changed = [(task, line) for task, line in changed_tasks(check_run) if task.startswith(OWN_PREFIXES)]
    assert changed == [], explain(check_run)


def test_second_run_changes_nothing_in_the_cluster_roles(second_run):
    changed = [(task, line) for task, line in changed_tasks(second_run) if task.startswith(OWN_PREFIXES)]
    assert changed == [], explain(second_run)
    assert recap(second_run)["podmig-cp"]["changed"] == 0, explain(second_run)


# ---- workers (need podmig.live.node) ------------------------------------------------------------

@needs_node_role
def test_workers_are_ready(cluster):
    nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    ready = {n["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
             for n in nodes}
    assert all(ready.get(name) for name in WORKERS), ready
    addresses = {n["metadata"]["name"]: [a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"]
                 for n in nodes}
    for name, address in WORKERS.items():
        assert address in addresses[name], addresses


@needs_node_role
def test_apiserver_reaches_each_kubelet_through_its_serving_cert(cluster):
    # apiserver -> kubelet: the kubelet client cert (RBAC: system:kubelet-api-admin) and the
    # kubelet's serving cert, verified against the cluster CA (--kubelet-certificate-authority).
    for name in WORKERS:
        proc = kubectl("get", "--raw", "/api/v1/nodes/%s/proxy/healthz" % name)
        assert proc.returncode == 0 and proc.stdout.strip() == "ok", (name, proc.stdout, proc.stderr)


@needs_node_role
def test_second_run_changes_nothing_at_all(second_run):
    hosts = recap(second_run)
    assert all(counts["changed"] == 0 for counts in hosts.values()), (changed_tasks(second_run), explain(second_run))


@needs_node_role
def test_zz_molecule_verifies_the_cluster_node_role_on_the_workers(second_run):
    """`molecule test -s cluster_node`: converge, a second converge that changes nothing, testinfra."""
    env = ansible_env()
    env["ANSIBLE_CONFIG"] = os.path.join(REPO, "ansible.cfg")
    env["PATH"] = BIN + os.pathsep + env.get("PATH", os.environ.get("PATH", ""))
    proc = subprocess.run([os.path.join(BIN, "molecule"), "test", "-s", "cluster_node"], cwd=REPO,
                          capture_output=True, text=True, timeout=1800, env=env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    summary = re.search(r"=+ (\d+) passed", out)
    assert summary and int(summary.group(1)) >= 2 * 10, out[-3000:]
    assert " skipped" not in out.split("Executing Testinfra tests")[-1].split("Verifier completed")[0], out[-3000:]
