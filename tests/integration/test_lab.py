# -*- coding: utf-8 -*-
"""The local lab: real Debian nodes (podman containers with systemd and sshd) on this machine.

The module brings the lab up once with ``playbooks/lab.yml`` exactly as a user does (the first run
on a fresh machine builds the node image), checks that every node is a host of its own that can
checkpoint, restore and receive checkpoints, shapes the links, and finally takes the lab down.
Only the lab's own containers, network and volumes (label io.podmig.lab=podmig) are touched.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from support.ansible_runner import BIN, REPO, ansible_env, ensure_collection_link, run_module

LAB = os.path.join(REPO, "playbooks", "lab.yml")
SHAPE = os.path.join(REPO, "playbooks", "lab_shape.yml")
LAB_DIR = os.path.join(REPO, "inventories", "lab")
INVENTORY = os.path.join(LAB_DIR, "hosts.yml")
KEY = os.path.join(LAB_DIR, ".ssh", "id_ed25519")
KNOWN_HOSTS = os.path.join(LAB_DIR, ".ssh", "known_hosts")
LABEL = "io.podmig.lab=podmig"
NETWORK = "podmig-lab"
NODES = {"podmig-cp": "10.89.7.10", "podmig-w1": "10.89.7.11", "podmig-w2": "10.89.7.12"}
NODE_SSH = ["-i", "/root/.ssh/podmig_ed25519", "-o", "UserKnownHostsFile=/etc/podmig/known_hosts",
            "-o", "BatchMode=yes", "-o", "Compression=no"]
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def lab_playbook(playbook: str = LAB, timeout: int = 1800, **extra_vars) -> subprocess.CompletedProcess:
    """`ansible-playbook playbooks/lab*.yml -e ...` from the repository root, as `make lab-up` runs it."""
    ensure_collection_link()
    argv = [os.path.join(BIN, "ansible-playbook"), playbook]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    env = ansible_env()
    env["ANSIBLE_CONFIG"] = os.path.join(REPO, "ansible.cfg")
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def recap(proc: subprocess.CompletedProcess) -> dict[str, dict[str, int]]:
    return {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)), "unreachable": int(m.group(4)),
                         "failed": int(m.group(5))} for m in RECAP.finditer(proc.stdout)}


def said(proc: subprocess.CompletedProcess, text: str) -> bool:
    """Whether the playbook printed text (the YAML callback folds long messages over lines)."""
    return " ".join(text.split()) in " ".join(proc.stdout.replace("'", "").split())


def explain(proc: subprocess.CompletedProcess) -> str:
    return "rc=%d\n%s\n%s" % (proc.returncode, proc.stdout[-6000:], proc.stderr[-3000:])


def sh(*argv: str, check: bool = False, timeout: int = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=timeout, **kwargs)


def ssh(node: str, command: str, check: bool = True, timeout: int = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run a shell command on a node over SSH, with the lab's key and the collected host keys only."""
    proc = sh("ssh", "-i", KEY, "-o", "UserKnownHostsFile=" + KNOWN_HOSTS, "-o", "StrictHostKeyChecking=yes",
              "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10",
              "root@" + NODES[node], command, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError("on %s: %s\nrc=%d\n%s\n%s" % (node, command, proc.returncode, proc.stdout, proc.stderr))
    return proc


def scp(node: str, local: str, remote: str) -> None:
    sh("scp", "-q", "-i", KEY, "-o", "UserKnownHostsFile=" + KNOWN_HOSTS, "-o", "StrictHostKeyChecking=yes",
       "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", local, "root@%s:%s" % (NODES[node], remote), check=True)


def timed_transfer(source: str, target: str, mib: int) -> float:
    """Seconds to push MiB of zeros from source to target over SSH with the nodes' own trust keys."""
    command = ("set -o pipefail; s=$(date +%%s.%%N); dd if=/dev/zero bs=1M count=%d status=none | ssh %s root@%s "
               "'cat > /dev/null'; e=$(date +%%s.%%N); echo \"$s $e\"" % (mib, " ".join(NODE_SSH), NODES[target]))
    out = ssh(source, command, timeout=300).stdout.split()
    return float(out[1]) - float(out[0])


@pytest.fixture(scope="module")
def lab():
    start = time.monotonic()
    proc = lab_playbook()
    seconds = time.monotonic() - start
    print("\nlab up (first in this module): %.1f s" % seconds)
    assert proc.returncode == 0, explain(proc)
    info = {"first_up": proc, "first_up_seconds": seconds}
    yield info
    # Normally test_zz_down has done this already; a failed run must not leave the lab behind.
    if sh("podman", "ps", "--all", "--quiet", "--filter", "label=" + LABEL).stdout.strip():
        lab_playbook(lab_state="down")


def test_first_up_starts_every_node_from_the_current_image(lab):
    proc = lab["first_up"]
    hosts = recap(proc)
    for node in NODES:
        assert hosts[node]["failed"] == 0 and hosts[node]["unreachable"] == 0, explain(proc)
    image = re.search(r"(localhost/podmig-node:[0-9a-f]{12}) is (up to date|missing)", proc.stdout)
    assert image, explain(proc)
    assert sh("podman", "image", "exists", image.group(1)).returncode == 0
    for node in NODES:
        inspect = json.loads(sh("podman", "container", "inspect", node, check=True).stdout)[0]
        assert inspect["State"]["Status"] == "running"
        assert inspect["Config"]["Labels"]["io.podmig.lab"] == "podmig"
        assert inspect["HostConfig"]["Privileged"] is True
        assert inspect["NetworkSettings"]["Networks"][NETWORK]["IPAddress"] == NODES[node]


def test_second_up_changes_nothing(lab):
    start = time.monotonic()
    proc = lab_playbook()
    seconds = time.monotonic() - start
    print("\nlab up (second, nothing to do): %.1f s" % seconds)
    assert proc.returncode == 0, explain(proc)
    hosts = recap(proc)
    assert set(NODES) <= set(hosts), explain(proc)
    for host, counts in hosts.items():
        assert counts["changed"] == 0 and counts["failed"] == 0, "%s changed on a second up\n%s" % (host, explain(proc))
    assert "is up to date" in proc.stdout
    assert seconds < 120, "a second up took %.0f s" % seconds


def test_inventory_groups_the_nodes(lab):
    proc = sh(os.path.join(BIN, "ansible-inventory"), "-i", INVENTORY, "--list", env=ansible_env(), check=True)
    inventory = json.loads(proc.stdout)
    assert inventory["lab_control_plane"]["hosts"] == ["podmig-cp"]
    assert sorted(inventory["lab_workers"]["hosts"]) == ["podmig-w1", "podmig-w2"]
    assert set(inventory["nodes"]["children"]) == {"lab_control_plane", "lab_workers"}
    for node, address in NODES.items():
        hostvars = inventory["_meta"]["hostvars"][node]
        assert hostvars["ansible_host"] == address
        assert hostvars["ansible_user"] == "root"
        assert hostvars["ansible_ssh_private_key_file"] == KEY
        assert "UserKnownHostsFile=" + KNOWN_HOSTS in hostvars["ansible_ssh_common_args"]
    # The key and the generated files stay out of git.
    ignored = sh("git", "-C", REPO, "check-ignore", KEY, KNOWN_HOSTS, INVENTORY).stdout.split()
    assert sorted(ignored) == sorted([KEY, KNOWN_HOSTS, INVENTORY])


def test_each_node_is_an_ssh_host_of_its_own(lab):
    machine_ids = set()
    for node, address in NODES.items():
        result = run_module("ansible.builtin.setup", {"filter": ["ansible_hostname", "ansible_default_ipv4",
                                                                 "ansible_machine_id"]},
                            host=node, inventory=INVENTORY)
        assert not result.failed, result.get("ansible_output")
        facts = result["ansible_facts"]
        assert facts["ansible_hostname"] == node
        assert facts["ansible_default_ipv4"]["address"] == address
        machine_ids.add(facts["ansible_machine_id"])
        # Strict host key checking against the keys read through podman, and the node's own address.
        assert ssh(node, "hostname").stdout.strip() == node
        assert address in ssh(node, "ip -4 -o addr show dev eth0").stdout
    assert len(machine_ids) == len(NODES)
    with open(KNOWN_HOSTS, encoding="utf-8") as handle:
        ed25519 = [line.split()[2] for line in handle if " ssh-ed25519 " in line]
    assert len(ed25519) == len(NODES) == len(set(ed25519)), "nodes must not share SSH host keys"


def test_systemd_runs_as_on_a_real_host(lab):
    for node in NODES:
        state = ssh(node, "systemctl is-system-running", check=False).stdout.strip()
        assert state in ("running", "degraded"), "%s: %s" % (node, state)
        assert ssh(node, "systemctl is-active ssh").stdout.strip() == "active"
        assert ssh(node, "readlink /proc/1/exe").stdout.strip().endswith("/systemd")


def test_state_directories_are_volumes_not_overlayfs(lab):
    for node in NODES:
        for path in ("/var/lib/podmig", "/var/lib/containerd", "/var/lib/kubelet"):
            fstype = ssh(node, "findmnt -n -o FSTYPE --target " + path).stdout.strip()
            assert fstype and fstype != "overlay", "%s:%s is on %s" % (node, path, fstype)
        # The check tells the two apart: the node's root file system is the image's overlay.
        assert ssh(node, "findmnt -n -o FSTYPE /").stdout.strip() == "overlay"
        assert ssh(node, "stat -c %a /var/lib/podmig").stdout.strip() == "700"
    volumes = sh("podman", "volume", "ls", "--filter", "label=" + LABEL, "--format", "{{.Name}}").stdout.split()
    assert "podmig-w1-podmig" in volumes and len(volumes) == 3 * len(NODES)


def test_criu_check_passes_inside_a_node(lab):
    for node in NODES:
        version = ssh(node, "criu --version").stdout
        assert "Version: 4.2.1" in version
        check = ssh(node, "criu check 2>&1")
        assert "Looks good" in check.stdout
        assert "cgroup-dump-controller freezer" in ssh(node, "cat /etc/criu/runc.conf").stdout


BUNDLE_SCRIPT = r"""
set -e
T=/var/lib/podmig/lab-test; B=$T/bundle
runc kill labtest KILL >/dev/null 2>&1 || true; runc delete -f labtest >/dev/null 2>&1 || true
rm -rf $T; mkdir -p $B/rootfs/bin $B/rootfs/tmp $B/rootfs/proc $B/rootfs/dev $B/rootfs/sys $T/images
cp /root/busybox $B/rootfs/bin/busybox
for a in sh sleep cat mv; do ln -s busybox $B/rootfs/bin/$a; done
cd $B && runc spec
python3 - <<'EOF'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
# (written aside and renamed: a dump between the truncation and the write would read as 0)
c["process"]["args"] = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.01; done"]
c["root"]["readonly"] = False
json.dump(c, open("config.json", "w"))
EOF
runc run -d --bundle $B labtest </dev/null >/dev/null 2>&1
"""


def read_counter(node: str) -> int:
    return int(ssh(node, "cat /var/lib/podmig/lab-test/bundle/rootfs/tmp/count").stdout.strip() or 0)


def wait_counter(node: str, above: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read_counter(node)
        if value > above:
            return value
        time.sleep(0.3)
    raise AssertionError("the counter on %s did not pass %d" % (node, above))


def test_runc_and_criu_checkpoint_and_restore_inside_a_node(lab):
    node = "podmig-w1"
    scp(node, "/bin/busybox", "/root/busybox")  # busybox-static on the controller
    assert ssh(node, "/root/busybox true; echo $?").stdout.strip() == "0"
    try:
        ssh(node, BUNDLE_SCRIPT)
        assert "running" in ssh(node, "runc state labtest").stdout
        before = wait_counter(node, 200)
        ssh(node, "runc checkpoint --image-path /var/lib/podmig/lab-test/images labtest")
        dumped = read_counter(node)
        assert dumped >= before
        assert ssh(node, "runc state labtest", check=False).returncode != 0, "the container must exit after a dump"
        assert ssh(node, "ls /var/lib/podmig/lab-test/images").stdout.count("pages-") >= 1
        time.sleep(1)
        assert read_counter(node) == dumped, "nothing runs between dump and restore"
        # (runc restore changes into the bundle first: paths must be absolute)
        ssh(node, "runc restore -d --bundle /var/lib/podmig/lab-test/bundle --image-path /var/lib/podmig/lab-test/images"
                  " labtest </dev/null >/dev/null 2>&1")
        assert "running" in ssh(node, "runc state labtest").stdout
        # Restored, not restarted: the counter goes on from where it was (a restart counts from 1).
        after = wait_counter(node, dumped)
        assert after > dumped
    finally:
        ssh(node, "runc kill labtest KILL; sleep 0.5; runc delete -f labtest; rm -rf /var/lib/podmig/lab-test",
            check=False)


def test_checkpoint_transfer_between_nodes_over_ssh_trust(lab):
    source, target = "podmig-w1", "podmig-w2"
    ssh(source, "rm -rf /var/lib/podmig/lab-xfer && mkdir -p -m 0700 /var/lib/podmig/lab-xfer/src && "
                "head -c 8M /dev/urandom > /var/lib/podmig/lab-xfer/src/pages-1.img && "
                "echo inventory > /var/lib/podmig/lab-xfer/src/inventory.img")
    ssh(target, "rm -rf /var/lib/podmig/lab-xfer")
    args = {"src": "/var/lib/podmig/lab-xfer/src", "dest": "/var/lib/podmig/lab-xfer/dest",
            "dest_host": NODES[target], "ssh_private_key": "/root/.ssh/podmig_ed25519",
            "known_hosts_file": "/etc/podmig/known_hosts"}
    try:
        sent = run_module("checkpoint_transfer", args, host=source, inventory=INVENTORY)
        assert not sent.failed, sent.get("ansible_output")
        assert sent["changed"] and sent["bytes_sent"] >= 8 * 1024 * 1024
        digest = "sha256sum {0}/pages-1.img | cut -d' ' -f1"
        assert (ssh(target, digest.format("/var/lib/podmig/lab-xfer/dest")).stdout
                == ssh(source, digest.format("/var/lib/podmig/lab-xfer/src")).stdout)
        assert ssh(target, "stat -c %a /var/lib/podmig/lab-xfer/dest").stdout.strip() == "700"
        again = run_module("checkpoint_transfer", args, host=source, inventory=INVENTORY)
        assert not again.failed and not again["changed"], again.get("ansible_output")
        # The host key is checked: without the nodes' known_hosts the transfer is refused.
        refused = run_module("checkpoint_transfer", dict(args, known_hosts_file="/dev/null"), host=source,
                             inventory=INVENTORY)
        assert refused.failed and "Host key verification failed" in json.dumps(refused)
    finally:
        ssh(source, "rm -rf /var/lib/podmig/lab-xfer", check=False)
        ssh(target, "rm -rf /var/lib/podmig/lab-xfer", check=False)
    # Other nodes' keys are authorized only from their own address, in the block marked podmig.
    authorized = ssh(target, "cat /root/.ssh/authorized_keys").stdout
    assert "# BEGIN podmig.live.ssh_trust" in authorized
    assert re.search(r'^restrict,from="%s" ssh-ed25519 \S+ podmig-node %s$' % (re.escape(NODES[source]), source),
                     authorized, re.M)
    assert "podmig-node %s" % target not in authorized


def test_demo_moves_the_workload_between_workers_with_its_state(lab):
    """`make demo-container` on the lab: the workload moves from worker 1 to worker 2 and carries on."""
    ensure_collection_link()
    env = ansible_env()
    env["ANSIBLE_CONFIG"] = os.path.join(REPO, "ansible.cfg")
    name = "lab-demo-%d" % os.getpid()
    proc = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", LAB_DIR, os.path.join(REPO, "playbooks", "demo_container.yml"),
         "-e", json.dumps({"demo_container": name, "demo_mib": 64, "demo_rate": 0.1})],
        cwd=REPO, capture_output=True, text=True, timeout=1200, env=env, check=False)
    try:
        assert proc.returncode == 0, explain(proc)
        report_path = re.search(r"report: (\S+\.json)", proc.stdout).group(1)
        with open(report_path, encoding="utf-8") as handle:
            report = json.load(handle)
        assert report["outcome"] == "migrated", report
        # The state went with it: one start, no counter reset, the memory checksum verified after the move.
        found = report["target_bundle"] + "/rootfs/var/lib/app/ticks"
        ticks = json.loads(ssh("podmig-w2", "python3 - %s" % found,
                               input=open(os.path.join(REPO, "tools", "workload", "ticks.py"), encoding="utf-8").read()
                               ).stdout)
        assert ticks["starts"] == 1 and ticks["counter_resets"] == [], ticks
        assert ticks["verifies"] and ticks["verifies"][-1]["ok"], ticks
        # Exactly one copy runs: on worker 2, none left on worker 1.
        assert name in ssh("podmig-w2", "runc list -q").stdout.split()
        assert name not in ssh("podmig-w1", "runc list -q").stdout.split()
    finally:
        for node in ("podmig-w1", "podmig-w2"):
            ssh(node, "runc delete -f %s 2>/dev/null; true" % name, check=False)


@pytest.mark.parametrize("strategy", ["cold", "delta"])
def test_a_container_moves_between_workers_with_each_strategy(lab, strategy):
    """migrate_container.yml between the lab's workers (the demo above covers auto, i.e. postcopy here)."""
    ensure_collection_link()
    env = ansible_env()
    env["ANSIBLE_CONFIG"] = os.path.join(REPO, "ansible.cfg")
    name = "lab-%s-%d" % (strategy, os.getpid())

    def play(playbook, extra):
        return subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", LAB_DIR,
                               os.path.join(REPO, "playbooks", playbook), "-e", json.dumps(extra)],
                              cwd=REPO, capture_output=True, text=True, timeout=900, env=env, check=False)

    try:
        proc = play("lab_workload.yml", {"workload_node": "podmig-w1", "workload_name": name, "workload_mib": 64,
                                         "workload_rate": 0.1})
        assert proc.returncode == 0, explain(proc)
        time.sleep(2)
        proc = play("migrate_container.yml", {"podmig_container": name, "podmig_source": "podmig-w1",
                                              "podmig_target": "podmig-w2", "podmig_strategy": strategy})
        assert proc.returncode == 0, explain(proc)
        report_path = re.search(r"report: (\S+\.json)", proc.stdout).group(1)
        with open(report_path, encoding="utf-8") as handle:
            report = json.load(handle)
        assert report["outcome"] == "migrated" and report["strategy"] == strategy, report
        if strategy == "delta":
            assert report["rounds"], "delta copies in rounds while the container runs"
        log = report["target_bundle"] + "/rootfs/var/lib/app/ticks"
        ssh("podmig-w2", "runc kill %s USR1" % name)
        with open(os.path.join(REPO, "tools", "workload", "ticks.py"), encoding="utf-8") as handle:
            reader = handle.read()
        deadline = time.monotonic() + 30
        while True:  # the workload checks its memory on SIGUSR1 and logs a V line
            ticks = json.loads(ssh("podmig-w2", "python3 - %s" % log, input=reader).stdout)
            if ticks["verifies"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert ticks["starts"] == 1 and ticks["counter_resets"] == [], ticks
        assert ticks["verifies"] and ticks["verifies"][-1]["ok"], ticks
        assert name in ssh("podmig-w2", "runc list -q").stdout.split()
        assert name not in ssh("podmig-w1", "runc list -q").stdout.split()
        print("\n%s on the lab: workload gap %.3f s, pause %s s" % (strategy, ticks["max_gap_s"], report.get("pause_s")))
    finally:
        for node in ("podmig-w1", "podmig-w2"):
            ssh(node, "runc delete -f %s 2>/dev/null; true" % name, check=False)


def test_molecule_verifies_the_node_roles_on_the_workers(lab):
    """`make molecule`: converge, a second converge that changes nothing, then testinfra on each worker."""
    env = ansible_env()
    env["ANSIBLE_CONFIG"] = os.path.join(REPO, "ansible.cfg")
    env["PATH"] = BIN + os.pathsep + env.get("PATH", os.environ.get("PATH", ""))
    proc = subprocess.run([os.path.join(BIN, "molecule"), "test", "-s", "node"], cwd=REPO, capture_output=True,
                          text=True, timeout=1200, env=env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    # Every testinfra test ran on both workers (none skipped for want of hosts).
    summary = re.search(r"=+ (\d+) passed", out)
    assert summary and int(summary.group(1)) >= 2 * 7, out[-3000:]
    assert "skipped" not in out.split("Executing Testinfra tests")[-1].split("Verifier completed")[0], out[-3000:]


def test_shaping_limits_the_rate_between_nodes(lab):
    unshaped = timed_transfer("podmig-w1", "podmig-w2", 50)
    try:
        proc = lab_playbook(SHAPE, lab_link_rate="100mbit")
        assert proc.returncode == 0, explain(proc)
        assert all(recap(proc)[node]["changed"] > 0 for node in NODES), explain(proc)
        assert "rate 100Mbit" in ssh("podmig-w1", "tc qdisc show dev eth0").stdout
        again = lab_playbook(SHAPE, lab_link_rate="100mbit")
        assert again.returncode == 0 and all(c["changed"] == 0 for c in recap(again).values()), explain(again)
        shaped = timed_transfer("podmig-w1", "podmig-w2", 50)
        print("\n50 MiB w1 -> w2 over SSH: %.2f s unshaped, %.2f s at 100mbit" % (unshaped, shaped))
        # 50 MiB at 100 Mbit/s is 4.2 s on the wire.
        assert 3.0 <= shaped <= 20.0
        assert unshaped < shaped / 2
    finally:
        proc = lab_playbook(SHAPE, lab_link_rate="none")
    assert proc.returncode == 0, explain(proc)
    assert "tbf" not in ssh("podmig-w1", "tc qdisc show dev eth0").stdout


def test_latency_needs_netem(lab):
    probe = ssh("podmig-w2", "tc qdisc add dev lo root netem delay 1ms && tc qdisc del dev lo root", check=False)
    try:
        proc = lab_playbook(SHAPE, lab_link_rate="1gbit", lab_link_delay="5ms")
        if probe.returncode == 0:
            assert proc.returncode == 0, explain(proc)
            assert "netem" in ssh("podmig-w1", "tc qdisc show dev eth0").stdout
        else:
            assert proc.returncode != 0
            assert said(proc, "needs the netem qdisc, which this kernel does not have"), explain(proc)
            optional = lab_playbook(SHAPE, lab_link_rate="1gbit", lab_link_delay="5ms", lab_link_delay_optional=True)
            assert optional.returncode == 0, explain(optional)
            assert said(optional, "is not applied, only the rate"), explain(optional)
            assert "rate 1Gbit" in ssh("podmig-w1", "tc qdisc show dev eth0").stdout
    finally:
        lab_playbook(SHAPE, lab_link_rate="none")


def test_status_reports_each_node_and_up_restarts_a_stopped_one(lab):
    proc = lab_playbook(lab_state="status")
    assert proc.returncode == 0, explain(proc)
    for node, address in NODES.items():
        assert re.search(r"%s\s+running\s+%s\s+ssh ok \(hostname %s\)" % (node, re.escape(address), node),
                         proc.stdout), explain(proc)
    assert said(proc, "network podmig-lab (10.89.7.0/24): present"), explain(proc)
    sh("podman", "stop", "--time", "10", "podmig-w2", check=True)
    proc = lab_playbook(lab_state="status")
    assert re.search(r"podmig-w2\s+exited\s+", proc.stdout), explain(proc)
    proc = lab_playbook()
    assert proc.returncode == 0, explain(proc)
    assert ssh("podmig-w2", "hostname").stdout.strip() == "podmig-w2"
    # The node kept its key and its peers' trust: a transfer to it needs nothing new.
    assert recap(proc)["podmig-w1"]["changed"] == 0, explain(proc)


def test_zz_down_removes_only_what_the_lab_made(lab):
    start = time.monotonic()
    proc = lab_playbook(lab_state="down", lab_keep_volumes=True)
    print("\nlab down: %.1f s" % (time.monotonic() - start))
    assert proc.returncode == 0, explain(proc)
    assert sh("podman", "ps", "--all", "--quiet", "--filter", "label=" + LABEL).stdout.strip() == ""
    assert sh("podman", "network", "exists", NETWORK).returncode != 0
    assert len(sh("podman", "volume", "ls", "--quiet", "--filter", "label=" + LABEL).stdout.split()) == 3 * len(NODES)
    assert not os.path.exists(INVENTORY) and not os.path.exists(KNOWN_HOSTS)
    assert os.path.exists(KEY), "the controller's key is generated once and kept"

    proc = lab_playbook(lab_state="down")
    assert proc.returncode == 0, explain(proc)
    assert sh("podman", "volume", "ls", "--quiet", "--filter", "label=" + LABEL).stdout.strip() == ""
    assert said(proc, "Removed 0 node(s)"), explain(proc)
    # The image stays cached for the next `up`.
    assert sh("podman", "images", "--quiet", "localhost/podmig-node").stdout.strip()
