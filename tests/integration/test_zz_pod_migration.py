# -*- coding: utf-8 -*-
"""playbooks/migrate.yml on the lab cluster: a stateful pod moves from worker 1 to worker 2.

Real kube-apiserver, kubelets and podmig's patched containerd (built by component_build, installed
by the node role), brought up by playbooks/lab_cluster.yml exactly as `make cluster-up` does. The
workload (tools/workload) keeps a counter and a checksum of its memory and writes a tick log into an
emptyDir volume: after the move its counter goes on from where it was (one start line in the log, no
reset), its memory checksum still matches, the source pod is gone and exactly one copy runs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time

import pytest

from support.ansible_runner import REPO, RunningPlaybook, run_playbook
from test_lab import explain, lab_playbook, ssh

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config  # noqa: E402  (after the importorskip)
from kubernetes.client.rest import ApiException  # noqa: E402

LAB_INVENTORY = os.path.join(REPO, "inventories", "lab")
CLUSTER = os.path.join(REPO, "playbooks", "lab_cluster.yml")
MIGRATE = os.path.join(REPO, "playbooks", "migrate.yml")
KUBECONFIG = os.path.join(REPO, "inventories", "lab", "kubeconfig")
TICKS = os.path.join(REPO, "tools", "workload", "ticks.py")
NS = "default"
SOURCE, TARGET = "podmig-w1", "podmig-w2"
RUNC_ROOT = "/run/containerd/runc/k8s.io"


def workers_ready() -> bool:
    """Whether the lab cluster is up already (test_zz_lab_cluster.py brought it up and checked it)."""
    try:
        config.load_kube_config(config_file=KUBECONFIG)
        nodes = client.CoreV1Api().list_node(_request_timeout=10).items
    except Exception:  # noqa: BLE001 - any failure means: bring it up
        return False
    ready = {n.metadata.name for n in nodes for c in n.status.conditions or [] if c.type == "Ready" and c.status == "True"}
    return {SOURCE, TARGET} <= ready


@pytest.fixture(scope="module")
def api():
    if not workers_ready():
        start = time.monotonic()
        proc = run_playbook(CLUSTER, inventory=LAB_INVENTORY, timeout=3600)
        print("\nlab cluster up: %.1f s" % (time.monotonic() - start))
        assert proc.returncode == 0, explain(proc)
    config.load_kube_config(config_file=KUBECONFIG)
    return client.CoreV1Api()


def image_named(api, node: str, repository: str) -> str:
    """The full reference of a locally built image on a node (its tag is a content hash)."""
    for image in api.read_node(node).status.images or []:
        for name in image.names or []:
            if name.startswith(repository + ":"):
                return name
    raise AssertionError("%s has no %s image" % (node, repository))


def workload_pod(api, name: str, mib: int = 64, rate: float = 0.1, node: str = SOURCE) -> dict:
    manifest = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "app", "image": image_named(api, node, "localhost/podmig/workload"),
                "imagePullPolicy": "Never",
                "args": ["-m", str(mib), "-r", str(rate), "-t", "10", "-l", "/data/tick.log"],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }
    api.create_namespaced_pod(NS, manifest)
    return wait_running(api, name)


def wait_running(api, name: str, namespace: str = NS, timeout: float = 120):
    """The pod once it runs with every container running (its IP assigned)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = api.read_namespaced_pod(name, namespace)
        if pod.status.phase == "Running" and pod.status.pod_ip and \
                all(s.state.running for s in pod.status.container_statuses or []):
            return pod
        time.sleep(1)
    raise AssertionError("pod %s did not run: %s" % (name, api.read_namespaced_pod(name, namespace).status))


def tick_log(pod) -> str:
    return "/var/lib/kubelet/pods/%s/volumes/kubernetes.io~empty-dir/data/tick.log" % pod.metadata.uid


def read_ticks(node: str, path: str) -> dict:
    with open(TICKS, encoding="utf-8") as handle:
        return json.loads(ssh(node, "python3 - %s" % path, input=handle.read()).stdout)


def wait_ticks(node: str, path: str, at_least: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        ticks = read_ticks(node, path)
        if ticks.get("ticks", 0) >= at_least or time.monotonic() > deadline:
            return ticks
        time.sleep(0.5)


def container_id(pod) -> str:
    return re.sub("^[a-z]+://", "", pod.status.container_statuses[0].container_id)


class NodeWatcher:
    """A shell loop of a test, run in the background on a node; its files are /run/<name>.*.

    ``{b}`` in ``loop`` and ``setup`` stands for that path prefix. It runs until stop() (by its pid).
    """

    def __init__(self, node: str, name: str, loop: str, setup: str = "") -> None:
        self.node, self.base = node, "/run/" + name
        ssh(node, "rm -f {b}.*; %s nohup sh -c %s >/dev/null 2>&1 </dev/null & echo $! > {b}.pid".format(
            b=self.base) % (setup.format(b=self.base), shlex.quote(loop.format(b=self.base))))

    def read(self, suffix: str) -> str:
        return ssh(self.node, "cat %s.%s 2>/dev/null || true" % (self.base, suffix)).stdout.strip()

    def stop(self, then: str = "") -> None:
        ssh(self.node, "kill $(cat {b}.pid) 2>/dev/null; rm -f {b}.*; {then}".format(b=self.base, then=then),
            check=False)


def verify_memory(node: str, pod, path: str) -> dict:
    """SIGUSR1 makes the workload recompute its memory checksum and log it (a V line)."""
    before = len(read_ticks(node, path)["verifies"])
    ssh(node, "runc --root %s kill %s USR1" % (RUNC_ROOT, container_id(pod)))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        verifies = read_ticks(node, path)["verifies"]
        if len(verifies) > before:
            return verifies[-1]
        time.sleep(0.3)
    raise AssertionError("the workload did not verify its memory on %s" % node)


def pods_of(api, app: str) -> list:
    return [p for p in api.list_namespaced_pod(NS, label_selector="app=%s" % app).items
            if not p.metadata.deletion_timestamp]


def delete_quietly(api, name: str) -> None:
    for pod in pods_of(api, name):
        try:
            api.delete_namespaced_pod(pod.metadata.name, NS, grace_period_seconds=0)
        except ApiException:
            pass


def migrate(**extra) -> subprocess.CompletedProcess:
    return run_playbook(MIGRATE, extra_vars=extra, inventory=LAB_INVENTORY, timeout=900)


def report_of(proc: subprocess.CompletedProcess) -> dict:
    match = re.search(r"report: (\S+\.json)", proc.stdout)
    assert match, explain(proc)
    with open(match.group(1), encoding="utf-8") as handle:
        return json.load(handle)


@pytest.mark.parametrize("strategy", ["cold", "delta", "postcopy"])
def test_a_stateful_pod_moves_to_another_worker_and_carries_on(api, strategy):
    name = "pm-%s-%d" % (strategy, os.getpid() % 10000)
    try:
        source = workload_pod(api, name)
        before = wait_ticks(SOURCE, tick_log(source), 100)
        assert before["starts"] == 1
        proc = migrate(pod=name, target_node=TARGET, strategy=strategy)
        assert proc.returncode == 0, explain(proc)
        report = report_of(proc)
        assert report["outcome"] == "migrated" and report["strategy"] == strategy, report

        # Exactly one copy runs, on the target, restored (never restarted) under the shell's name.
        running = pods_of(api, name)
        assert [p.metadata.name for p in running] == [report["shell_pod"]], running
        moved = running[0]
        assert moved.spec.node_name == TARGET and moved.status.phase == "Running"
        assert moved.status.container_statuses[0].restart_count == 0
        with pytest.raises(ApiException) as gone:
            api.read_namespaced_pod(name, NS)
        assert gone.value.status == 404
        # Its readiness gate was opened: Services may send it traffic.
        conditions = {c.type: c.status for c in moved.status.conditions}
        assert conditions.get("podmig.live/restored") == "True", conditions

        # The state went with it: the same process (one start line), the counter never reset, the
        # memory checksum still right, and the tick log (an emptyDir) kept growing on the target.
        after = wait_ticks(TARGET, tick_log(moved), before["ticks"] + 100)
        assert after["starts"] == 1 and after["counter_resets"] == [], after
        assert after["ticks"] > before["ticks"]
        assert verify_memory(TARGET, moved, tick_log(moved))["ok"]
        print("\n%s: workload gap %.3f s, podmig pause %s s, %d bytes sent" % (
            strategy, after["max_gap_s"], report.get("pause_s"), report["bytes_sent"]))
        # Nothing of the process image is left behind on either node.
        for node in (SOURCE, TARGET):
            leftovers = ssh(node, "ls /var/lib/podmig/in /var/lib/podmig/out 2>/dev/null | grep -c %s || true"
                            % report["migration_id"]).stdout.strip()
            assert leftovers == "0", "%s keeps staged images of %s" % (node, report["migration_id"])
    finally:
        delete_quietly(api, name)


@pytest.mark.parametrize("change,expect", [
    ({"pod": "no-such-pod"}, "pod exists: pod default/no-such-pod does not exist"),
    ({"target_node": SOURCE}, "already runs on podmig-w1: choose another target node"),
    ({"target_node": "podmig-w9"}, "node podmig-w9: no such node"),
    ({"strategy": "precopy"}, "precopy is not available for pods yet"),
])
def test_bad_requests_are_refused_before_anything_is_frozen(api, change, expect):
    name = "pm-refuse-%d" % (os.getpid() % 10000)
    try:
        source = workload_pod(api, name)
        before = wait_ticks(SOURCE, tick_log(source), 50)
        request = dict({"pod": name, "target_node": TARGET, "strategy": "auto"}, **change)
        proc = migrate(**request)
        assert proc.returncode != 0
        report = report_of(proc)
        assert report["outcome"] == "refused", report
        assert any(expect in r for r in report["refusals"]), report["refusals"]
        # Untouched: still running, not locked, never frozen, no shell pod.
        pod = api.read_namespaced_pod(name, NS)
        assert "podmig.live/migration" not in (pod.metadata.annotations or {})
        assert [p.metadata.name for p in pods_of(api, name)] == [name]
        after = wait_ticks(SOURCE, tick_log(source), before["ticks"] + 50)
        assert after["starts"] == 1 and after["max_gap_s"] < 1.0, after
    finally:
        delete_quietly(api, name)


def test_the_targets_containerd_killed_mid_migration_loses_nothing(api):
    """containerd on the target dies while the shell pod waits for READY and the source is frozen.

    Either the migration rolls back (the source resumes where it stopped) or, when containerd came
    back in time and kubelet's retried start restored the staged images, it completes: in both
    cases exactly one copy runs and it carries the workload's state on.
    """
    name = "pm-fault-%d" % (os.getpid() % 10000)
    try:
        source = workload_pod(api, name)
        before = wait_ticks(SOURCE, tick_log(source), 50)
        run = RunningPlaybook(MIGRATE, extra_vars={"pod": name, "target_node": TARGET, "strategy": "cold",
                                                   "podmig_restore_timeout": 40},
                              inventory=LAB_INVENTORY)
        run.wait_for_line("Hand-off | Freeze the pod")
        ssh(TARGET, "systemctl kill --signal=KILL containerd")
        rc, out = run.finish(timeout=600)
        report = json.load(open(re.search(r"report: (\S+\.json)", out).group(1), encoding="utf-8"))
        assert report["outcome"] in ("rolled_back", "migrated"), report
        assert (rc == 0) == (report["outcome"] == "migrated"), out[-4000:]
        running = pods_of(api, name)
        assert len(running) == 1, [p.metadata.name for p in running]
        pod = running[0]
        node = SOURCE if report["outcome"] == "rolled_back" else TARGET
        assert pod.spec.node_name == node and pod.status.container_statuses[0].restart_count == 0
        if report["outcome"] == "rolled_back":
            assert pod.metadata.name == name
            assert "podmig.live/migration" not in (pod.metadata.annotations or {})
        print("\ncontainerd killed on the target: %s" % report["outcome"])
        after = wait_ticks(node, tick_log(pod), before["ticks"] + 200)
        assert after["starts"] == 1 and after["counter_resets"] == [], after
        assert verify_memory(node, pod, tick_log(pod))["ok"]
    finally:
        ssh(TARGET, "systemctl start containerd", check=False)
        delete_quietly(api, name)


def test_the_targets_kubelet_killed_mid_restore_loses_nothing(api):
    """kubelet on the target is killed the moment the staged images are READY, while containerd restores.

    kubelet's held StartContainer call dies with it; systemd starts kubelet again 5 s later and it
    syncs the shell pod anew. Either the restore is seen through (migrated) or the migration rolls
    back (the source resumes where it stopped): exactly one copy runs, never restarted, and the
    workload's counter goes on from where it was.
    """
    name = "pm-kubelet-%d" % (os.getpid() % 10000)
    workloads = "pgrep -x podmig-workload || true"
    killer = None
    try:
        source = workload_pod(api, name, mib=32)
        before = wait_ticks(SOURCE, tick_log(source), 50)
        on_target_before = set(ssh(TARGET, workloads).stdout.split())
        # On the target: wait (up to 3 min) for this pod's READY marker, then kill kubelet at once.
        killer = NodeWatcher(TARGET, "podmig-test-kubelet-killer",
                             "for i in $(seq 3600); do if ls /var/lib/podmig/in/*/app/READY >/dev/null 2>&1; then "
                             "systemctl kill --signal=KILL kubelet; date +%s.%N > {b}.done; exit 0; fi; sleep 0.05; done")
        proc = migrate(pod=name, target_node=TARGET, strategy="cold", podmig_restore_timeout=60)
        killed = killer.read("done")
        assert killed, "the watcher never saw READY: the fault was not injected\n" + explain(proc)
        report = report_of(proc)
        assert report["outcome"] in ("rolled_back", "migrated"), report
        assert (proc.returncode == 0) == (report["outcome"] == "migrated"), explain(proc)
        # kubelet is back (systemd) and the pod settles: one copy, on the node the outcome says.
        node = SOURCE if report["outcome"] == "rolled_back" else TARGET
        deadline = time.monotonic() + 90
        while True:
            running = pods_of(api, name)
            if len(running) == 1 and running[0].spec.node_name == node and running[0].status.container_statuses \
                    and running[0].status.container_statuses[0].state.running:
                break
            assert time.monotonic() < deadline, [(p.metadata.name, p.spec.node_name) for p in running]
            time.sleep(1)
        pod = running[0]
        assert pod.status.container_statuses[0].restart_count == 0
        if report["outcome"] == "rolled_back":
            assert pod.metadata.name == name
            assert "podmig.live/migration" not in (pod.metadata.annotations or {})
            # Seen here: containerd's StartContainer failed when kubelet went, but the task CRIU had
            # restored kept running (CRI state EXITED, "cannot delete running task"). The rollback
            # fences the target before it resumes the source: no workload process of this test is
            # left there once the playbook is done.
            assert report["rollback"]["target_fenced"] is True, report["rollback"]
            assert report["rollback"]["confirmed_at"] < report["rollback"]["resumed_at"], report["rollback"]
            left = set(ssh(TARGET, workloads).stdout.split()) - on_target_before
            assert not left, "a restored copy was left running on %s: %s" % (
                TARGET, ssh(TARGET, "ps -o pid,args -p %s" % ",".join(left), check=False).stdout)
        else:
            assert pod.metadata.name == report["shell_pod"]
        print("\nkubelet killed on the target %.2f s after the freeze: %s (%s)" % (
            float(killed) - report["frozen_at"], report["outcome"], report.get("error", "")[:200]))
        after = wait_ticks(node, tick_log(pod), before["ticks"] + 200)
        assert after["starts"] == 1 and after["counter_resets"] == [], after
        assert verify_memory(node, pod, tick_log(pod))["ok"]
    finally:
        if killer:
            killer.stop()
        ssh(TARGET, "systemctl start kubelet", check=False)
        delete_quietly(api, name)


def test_kubelet_killed_while_runc_restores_leaves_no_restored_process(api):
    """containerd patch 0003: a StartContainer that fails mid-restore kills the task it restored.

    kubelet on the target is killed while `runc restore` runs (256 MiB, so the restore lasts long
    enough to be caught): its StartContainer request is cancelled while the shim goes on restoring.
    Upstream containerd then skipped the kill (the restore's task had pid 0) and the restored
    process ran on, unseen, while CRI said EXITED. A watcher notes each new workload pid on the
    target and when it was last seen: the restored one must be gone within 4 s of the kill, before
    kubelet is even back (systemd restarts it after 5 s) and long before the rollback's fence.
    """
    name = "pm-restoring-%d" % (os.getpid() % 10000)
    watch = None
    try:
        source = workload_pod(api, name, mib=256)
        before = wait_ticks(SOURCE, tick_log(source), 50)
        # Every 20 ms: each new workload pid and when it was seen; kubelet killed once runc restores.
        watch = NodeWatcher(TARGET, "podmig-test-restoring",
                            "while :; do for p in $(pgrep -x podmig-workload); do grep -qx $p {b}.before "
                            "|| echo $p $(date +%s.%N) >> {b}.seen; done; "
                            "if [ ! -e {b}.killed ] && pgrep -f '[r]unc .*k8s.io.* restore ' >/dev/null; then "
                            "systemctl kill --signal=KILL kubelet; date +%s.%N > {b}.killed; fi; sleep 0.02; done",
                            setup="pgrep -x podmig-workload > {b}.before || true;")
        proc = migrate(pod=name, target_node=TARGET, strategy="cold", podmig_restore_timeout=60)
        killed = watch.read("killed")
        assert killed, "the watcher never saw runc restore: the fault was not injected\n" + explain(proc)
        killed_at = float(killed)
        report = report_of(proc)
        log = ssh(TARGET, "journalctl -u containerd --since @%d --no-pager | grep -E 'StartContainer|podmig' || true"
                  % int(killed_at - 30)).stdout
        assert report["outcome"] == "rolled_back", (report, log[-3000:])
        seen: dict[str, list[float]] = {}
        for line in watch.read("seen").split("\n"):
            if line.strip():
                pid, at = line.split()
                seen.setdefault(pid, []).append(float(at))
        restored = {pid: (min(t), max(t)) for pid, t in seen.items() if min(t) < killed_at + 3}
        assert restored, "no restored process was seen on the target (%s)\n%s" % (seen.keys(), log[-3000:])
        for pid, (first, last) in restored.items():
            assert last - killed_at < 4.0, "restored pid %s lived %.2f s after kubelet was killed:\n%s" % (
                pid, last - killed_at, log[-3000:])
        running = pods_of(api, name)
        assert [(p.metadata.name, p.spec.node_name) for p in running] == [(name, SOURCE)]
        after = wait_ticks(SOURCE, tick_log(running[0]), before["ticks"] + 100)
        assert after["starts"] == 1 and after["counter_resets"] == [], after
        print("\nkubelet killed while runc restored: restored pid(s) gone %s s after the kill" % (
            ", ".join("%.2f" % (last - killed_at) for _first, last in restored.values())))
    finally:
        if watch:
            watch.stop()
        ssh(TARGET, "systemctl start kubelet", check=False)
        delete_quietly(api, name)


def node_gated_pod(api, name: str, node: str = SOURCE, mib: int = 32):
    """The workload, and beside it a container that is ready only on ``node`` (its config names the node).

    A realistic way for a restored pod to never get ready on the target: a readiness probe that
    depends on the node (here the downward API's spec.nodeName, fixed in the container's env).
    """
    api.create_namespaced_pod(NS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [
            {"name": "app", "image": image_named(api, node, "localhost/podmig/workload"), "imagePullPolicy": "Never",
             "args": ["-m", str(mib), "-r", "0.1", "-t", "10", "-l", "/data/tick.log"],
             "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            {"name": "gate", "image": image_named(api, node, "localhost/podmig/debug"), "imagePullPolicy": "Never",
             "command": ["/bin/sleep", "100000"],
             "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
             "readinessProbe": {"exec": {"command": ["/bin/sh", "-c", '[ "$NODE" = %s ]' % node]},
                                "periodSeconds": 1, "failureThreshold": 1}}],
            "volumes": [{"name": "data", "emptyDir": {}}]}})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pod = api.read_namespaced_pod(name, NS)
        if any(c.type == "ContainersReady" and c.status == "True" for c in pod.status.conditions or []):
            return pod
        time.sleep(1)
    raise AssertionError("pod %s did not get ready: %s" % (name, api.read_namespaced_pod(name, NS).status))


def test_a_restored_copy_that_never_gets_ready_is_gone_before_the_source_resumes(api):
    """The restore works but the shell pod never gets ready: the migration rolls back, never two copies.

    A watcher on the target notes, every 20 ms, the last moment a restored workload process exists
    there; the source's own tick log says when it ran again. The copy on the target must be gone
    before the source's first tick after the freeze, and the rollback's report must say it fenced
    the target (pod_fence) before it resumed the source.
    """
    name = "pm-unready-%d" % (os.getpid() % 10000)
    watch = None
    try:
        source = node_gated_pod(api, name)
        before = wait_ticks(SOURCE, tick_log(source), 50)
        # Every 20 ms: the last moment a workload process that was not there before exists on the target.
        watch = NodeWatcher(TARGET, "podmig-test-copy-watch",
                            "while :; do pgrep -x podmig-workload | grep -qvxF -f {b}.before "
                            "&& date +%s.%N > {b}.seen; sleep 0.02; done",
                            setup="pgrep -x podmig-workload > {b}.before || true;")
        proc = migrate(pod=name, target_node=TARGET, strategy="cold", podmig_restore_timeout=15)
        report = report_of(proc)
        assert report["outcome"] == "rolled_back" and proc.returncode != 0, explain(proc)
        assert "containers were not ready within 15 s" in report["error"] and "gate: running, not ready" in \
            report["error"], report["error"]
        last_seen = watch.read("seen")
        assert last_seen, "no restored copy ever ran on the target: the case was not exercised\n" + explain(proc)
        rollback = report["rollback"]
        assert rollback["target_fenced"] is True and rollback["consumed"] == ["app", "gate"], rollback
        assert rollback["confirmed_at"] < rollback["resumed_at"], rollback
        running = pods_of(api, name)
        assert [(p.metadata.name, p.spec.node_name) for p in running] == [(name, SOURCE)]
        after = wait_ticks(SOURCE, tick_log(running[0]), before["ticks"] + 200)
        assert after["starts"] == 1 and after["counter_resets"] == [], after
        ran_again = after["gap_from"] + after["max_gap_s"]
        assert after["gap_from"] <= report["frozen_at"] + 0.25, (after, report["frozen_at"])
        # the one check that matters: the target's copy was gone before the source ticked again
        assert float(last_seen) < ran_again, (float(last_seen), ran_again, rollback)
        assert verify_memory(SOURCE, running[0], tick_log(running[0]))["ok"]
        print("\nunready shell: the target's copy last seen %.2f s before the source ran again "
              "(fence %.2f s, %d killed); source paused %.2f s" % (
                  ran_again - float(last_seen), rollback.get("waited_s", 0), len(rollback.get("killed", [])),
                  after["max_gap_s"]))
    finally:
        if watch:
            watch.stop()
        delete_quietly(api, name)


def test_pods_on_different_workers_reach_each_other(api):
    """The CNI bridge on each worker plus the routes between the workers' pod subnets."""
    server, client_pod = "pm-net-server-%d" % (os.getpid() % 10000), "pm-net-client-%d" % (os.getpid() % 10000)
    debug = image_named(api, TARGET, "localhost/podmig/debug")
    try:
        api.create_namespaced_pod(NS, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": server, "labels": {"app": server}},
            "spec": {"nodeName": TARGET, "terminationGracePeriodSeconds": 0, "containers": [{
                "name": "web", "image": debug, "imagePullPolicy": "Never",
                "command": ["sh", "-c", "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && "
                                        "exec httpd -f -p 8080 -h /www"]}]}})
        deadline = time.monotonic() + 60
        while not (api.read_namespaced_pod(server, NS).status.pod_ip and
                   api.read_namespaced_pod(server, NS).status.phase == "Running"):
            assert time.monotonic() < deadline, "the server pod did not run"
            time.sleep(1)
        address = api.read_namespaced_pod(server, NS).status.pod_ip
        api.create_namespaced_pod(NS, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": client_pod, "labels": {"app": client_pod}},
            "spec": {"nodeName": SOURCE, "terminationGracePeriodSeconds": 0, "restartPolicy": "Never",
                     "containers": [{"name": "get", "image": image_named(api, SOURCE, "localhost/podmig/debug"),
                                     "imagePullPolicy": "Never",
                                     "command": ["sh", "-c", "for i in $(seq 30); do timeout 5 wget -qO- "
                                                 "http://%s:8080/ && exit 0; sleep 1; done; exit 1" % address]}]}})
        deadline = time.monotonic() + 90
        while api.read_namespaced_pod(client_pod, NS).status.phase not in ("Succeeded", "Failed"):
            assert time.monotonic() < deadline, "the client pod did not finish"
            time.sleep(1)
        log = api.read_namespaced_pod_log(client_pod, NS)
        assert api.read_namespaced_pod(client_pod, NS).status.phase == "Succeeded", log
        assert "hello-from-%s" % server in log, log
    finally:
        delete_quietly(api, server)
        delete_quietly(api, client_pod)


def ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def test_a_deployment_pod_moves_and_its_replicaset_adopts_it(api):
    """A 1-replica Deployment's pod moves: its ReplicaSet adopts the moved pod, never starts another."""
    name = "pm-deploy-%d" % (os.getpid() % 10000)
    apps = client.AppsV1Api()
    image = image_named(api, SOURCE, "localhost/podmig/workload")
    apps.create_namespaced_deployment(NS, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                # nodeName, not the scheduler: a cordon of worker 1 by a drain test must not move it
                "nodeName": SOURCE, "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "app", "image": image, "imagePullPolicy": "Never",
                                "args": ["-m", "32", "-r", "0.1", "-t", "10", "-l", "/data/tick.log"],
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "emptyDir": {}}]}}}})
    try:
        deadline = time.monotonic() + 120
        while True:
            pods = pods_of(api, name)
            if len(pods) == 1 and pods[0].status.phase == "Running" and ready(pods[0]):
                break
            assert time.monotonic() < deadline, "the Deployment's pod did not run: %s" % pods
            time.sleep(1)
        source = pods[0]
        rs_ref = [r for r in source.metadata.owner_references if r.controller][0]
        assert rs_ref.kind == "ReplicaSet"
        before = wait_ticks(SOURCE, tick_log(source), 100)
        proc = migrate(pod=source.metadata.name, target_node=TARGET, strategy="cold")
        assert proc.returncode == 0, explain(proc)
        report = report_of(proc)
        assert report["outcome"] == "migrated" and not report.get("error"), report

        # For some seconds after the commit: exactly one pod of the ReplicaSet, the moved one,
        # Running and Ready on worker 2 (the ReplicaSet neither added a replica nor deleted it).
        watched_until = time.monotonic() + 15
        while time.monotonic() < watched_until:
            pods = api.list_namespaced_pod(NS, label_selector="app=%s" % name).items
            assert [p.metadata.name for p in pods] == [report["shell_pod"]], [
                (p.metadata.name, p.spec.node_name, p.metadata.deletion_timestamp) for p in pods]
            moved = pods[0]
            assert moved.spec.node_name == TARGET and moved.status.phase == "Running" and ready(moved)
            assert [(r.kind, r.uid) for r in moved.metadata.owner_references or [] if r.controller] == [
                ("ReplicaSet", rs_ref.uid)]
            assert moved.status.container_statuses[0].restart_count == 0
            time.sleep(1)
        rs = apps.read_namespaced_replica_set(rs_ref.name, NS)
        assert (rs.status.replicas, rs.status.ready_replicas) == (1, 1), rs.status
        with pytest.raises(ApiException) as gone:
            api.read_namespaced_pod(source.metadata.name, NS)
        assert gone.value.status == 404

        after = wait_ticks(TARGET, tick_log(moved), before["ticks"] + 100)
        assert after["starts"] == 1 and after["counter_resets"] == [], after
        assert after["last_counter"] > before["last_counter"]
        print("\nDeployment pod: workload gap %.3f s, podmig pause %s s" % (after["max_gap_s"], report.get("pause_s")))
    finally:
        try:
            apps.delete_namespaced_deployment(name, NS, propagation_policy="Background")
        except ApiException:
            pass
        delete_quietly(api, name)


def two_container_pod(api, name: str, mib: int = 16, node: str = SOURCE):
    """A pod of two stateful workload containers, each with its own tick log in one emptyDir."""
    image = image_named(api, node, "localhost/podmig/workload")
    api.create_namespaced_pod(NS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [
            {"name": c, "image": image, "imagePullPolicy": "Never",
             "args": ["-m", str(mib), "-r", "0.1", "-t", "10", "-l", "/data/%s.log" % c],
             "volumeMounts": [{"name": "data", "mountPath": "/data"}]} for c in ("first", "second")],
            "volumes": [{"name": "data", "emptyDir": {}}]}})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pod = api.read_namespaced_pod(name, NS)
        statuses = pod.status.container_statuses or []
        if pod.status.phase == "Running" and len(statuses) == 2 and all(s.state.running for s in statuses):
            return pod
        time.sleep(1)
    raise AssertionError("pod %s did not run: %s" % (name, api.read_namespaced_pod(name, NS).status))


def volume_file(pod, file: str) -> str:
    return "/var/lib/kubelet/pods/%s/volumes/kubernetes.io~empty-dir/data/%s" % (pod.metadata.uid, file)


def test_a_pod_of_two_stateful_containers_moves_frozen_at_one_point(api):
    """Both containers are restored (not restarted), both counters go on, and both stopped together."""
    name = "pm-two-%d" % (os.getpid() % 10000)
    try:
        source = two_container_pod(api, name)
        before = {c: wait_ticks(SOURCE, volume_file(source, c + ".log"), 100) for c in ("first", "second")}
        proc = migrate(pod=name, target_node=TARGET)  # auto: post-copy here, one page server per container
        assert proc.returncode == 0, explain(proc)
        report = report_of(proc)
        assert report["outcome"] == "migrated" and sorted(report["containers"]) == ["first", "second"], report
        running = pods_of(api, name)
        assert [p.metadata.name for p in running] == [report["shell_pod"]], running
        moved = running[0]
        assert moved.spec.node_name == TARGET
        assert sorted((s.name, s.restart_count, bool(s.state.running)) for s in moved.status.container_statuses) == [
            ("first", 0, True), ("second", 0, True)]
        gaps = {}
        for c in ("first", "second"):
            after = wait_ticks(TARGET, volume_file(moved, c + ".log"), before[c]["ticks"] + 100)
            # restored, not started again: one start line, the counter never went back
            assert after["starts"] == 1 and after["counter_resets"] == [], (c, after)
            assert after["last_counter"] > before[c]["last_counter"], (c, after)
            gaps[c] = after
        # One consistent point: each container's longest gap is the migration's pause, and each
        # ticked (every 10 ms) until the moment the pod cgroup froze - not one of them frozen or
        # dumped while the other ran on.
        frozen_at = report["frozen_at"]
        for c, after in gaps.items():
            assert after["gap_from"] <= frozen_at <= after["gap_from"] + after["max_gap_s"], (c, after, frozen_at)
            assert frozen_at - after["gap_from"] < 0.25, (c, after, frozen_at)
            assert after["max_gap_s"] <= report["pause_s"] + 0.5, (c, after, report["pause_s"])
        assert abs(gaps["first"]["gap_from"] - gaps["second"]["gap_from"]) < 0.25, gaps
        print("\ntwo containers (%s): gaps %.3f / %.3f s, last ticks %.3f s apart, podmig pause %s s" % (
            report["strategy"], gaps["first"]["max_gap_s"], gaps["second"]["max_gap_s"],
            abs(gaps["first"]["gap_from"] - gaps["second"]["gap_from"]), report["pause_s"]))
    finally:
        delete_quietly(api, name)


def test_the_demo_moves_a_pod_between_the_workers_and_shows_it_carried_on(api):
    """playbooks/demo.yml, the README's demo (`make demo` runs it after `make cluster-up`)."""
    name = "pm-demo-%d" % (os.getpid() % 10000)
    demo = os.path.join(REPO, "playbooks", "demo.yml")
    try:
        proc = run_playbook(demo, extra_vars={"demo_pod": name, "demo_mib": 32}, inventory=LAB_INVENTORY, timeout=900)
        assert proc.returncode == 0, explain(proc)
        report = report_of(proc)
        assert report["outcome"] == "migrated" and report["source_node"] == SOURCE, report
        # What it prints: the report summary and what the workload saw, checked by the playbook itself.
        for line in ("podmig: pod default/%s podmig-w1 -> podmig-w2: MIGRATED" % name,
                     "%s runs on podmig-w2" % report["shell_pod"], "longest pause between ticks",
                     "memory checksum after the move: ok", "the workload carried on with its state"):
            assert line in proc.stdout, (line, proc.stdout[-4000:])
        assert re.search(r"counter went on from \d+ without a reset: True", proc.stdout), proc.stdout[-4000:]
        # And independently of the playbook's own check: one copy, on worker 2, restored.
        running = pods_of(api, name)
        assert [(p.metadata.name, p.spec.node_name) for p in running] == [(report["shell_pod"], TARGET)]
        after = read_ticks(TARGET, tick_log(running[0]))
        assert after["starts"] == 1 and after["counter_resets"] == [] and after["verifies"][-1]["ok"], after
        print("\ndemo: workload gap %.3f s, podmig pause %s s" % (after["max_gap_s"], report.get("pause_s")))
    finally:
        delete_quietly(api, name)


def test_zz_the_lab_goes_down_after_the_cluster_tests(api):
    """Last in the suite's use of the lab: the nodes, network and volumes go; the image stays cached."""
    proc = lab_playbook(lab_state="down")
    assert proc.returncode == 0, explain(proc)
    assert subprocess.run(["podman", "ps", "--all", "--quiet", "--filter", "label=io.podmig.lab=podmig"],
                          capture_output=True, text=True, check=False).stdout.strip() == ""
