#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Benchmark: live pod migration on the lab cluster (playbooks/migrate.yml), delta and postcopy against cold.

For each workload size (RSS) and write rate, a fresh workload pod is created on the source worker
and moved to the target with playbooks/migrate.yml, once per strategy, `cold` always in the same run
(machines here are noisy: compare ratios, not absolute times across runs). A strategy the plan
refuses is recorded with its refusal. Downtime is what the workload saw: the largest gap in the tick
log in its emptyDir, read on the target after the move (GUIDE section 5). Each run also checks that
the workload carried on (one start, no counter reset) and that its memory checksum still holds
(SIGUSR1 -> a `V ... ok` line); the pod is deleted afterwards, also when something failed. A run
that migrate.yml reports failed after the restore while the restored pod runs on is measured too
(measured_after_failure), apart from the migrated ones.

    .venv/bin/python bench/pod_migration.py             # 64/256/1024 MiB x 0.02/0.5 x cold/delta/postcopy
    .venv/bin/python bench/pod_migration.py --smoke     # 32 MiB, one rate, cold + postcopy
    .venv/bin/python bench/pod_migration.py --replot bench/results/pod_migration-<time>.json

The lab links are shaped (--link-rate, default 1gbit) for the run and put back as they were found
(or to --restore-link-rate). Writes bench/results/pod_migration-<time>.json and .png, prints a table.
`bytes_sent` is what podmig's hand-off sent (images, writable layers, emptyDirs); the memory pages a
post-copy restore pulls from the source's page server are not in it: `wire_tx_bytes`, the source
node's lab interface counter over the migration, counts everything it sent.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.path.dirname(sys.executable)
LAB = os.path.join(REPO, "inventories", "lab")
KUBECONFIG = os.path.join(LAB, "kubeconfig")
SSH_KEY = os.path.join(LAB, ".ssh", "id_ed25519")
KNOWN_HOSTS = os.path.join(LAB, ".ssh", "known_hosts")
TICKS = os.path.join(REPO, "tools", "workload", "ticks.py")
WORKLOAD_IMAGE = "localhost/podmig/workload"
RUNC_ROOT = "/run/containerd/runc/k8s.io"
LINK_DEVICE = "eth0"
SHAPE_MARKER = "/run/podmig-link-shape"
QEMU_MAX_DOWNTIME_S = 0.3


# ---------------------------------------------------------------------------- pure helpers


def pod_name(size: int, rate: float, strategy: str, index: int, tag: str) -> str:
    """A DNS-1123 pod name for one run: pmb-<MiB>-<rate digits>-<strategy>-<repeat>-<tag>."""
    digits = ("%g" % rate).replace(".", "")
    return ("pmb-%d-r%s-%s-%d-%s" % (size, digits, strategy, index, tag)).lower()


def workload_manifest(name: str, image: str, node: str, mib: int, rate: float, tick_ms: int = 10) -> dict:
    """The benchmark's workload pod: pinned to node, tick log in an emptyDir, killed within 1 s."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name, "podmig.live/bench": "pod_migration"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "app", "image": image, "imagePullPolicy": "Never",
                "args": ["-m", str(mib), "-r", str(rate), "-t", str(tick_ms), "-l", "/data/tick.log"],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }


def report_path(stdout: str) -> str | None:
    """The JSON report migrate.yml wrote, from its `report: <path>` summary line."""
    match = re.search(r"report: (\S+?\.json)", stdout)
    return match.group(1) if match else None


def playbook_failure(stdout: str) -> str:
    """The last failure message of an ansible-playbook run (its first line), or its last output line."""
    messages = [m.strip().strip("'\"") for m in re.findall(r"^\s*msg: (.+)$", stdout, re.M)]
    messages = [m for m in messages if m]
    if messages:
        return messages[-1]
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def shaping_from_marker(marker: str | None, root_qdisc: str | None = None) -> dict:
    """lab_shape.yml's variables that reproduce a node's shaping, from its marker and root qdisc.

    The marker (/run/podmig-link-shape) reads `rate=<bits per second> delay=<delay or empty>`; no
    marker, or a root qdisc that is neither tbf nor netem, means unshaped: lab_link_rate=none.
    """
    if root_qdisc is not None and root_qdisc not in ("tbf", "netem"):
        return {"lab_link_rate": "none"}
    rate = re.search(r"rate=(\d+)", marker or "")
    delay = re.search(r"delay=(\S+)", marker or "")
    shaping = {"lab_link_rate": "%sbit" % rate.group(1) if rate and int(rate.group(1)) else "none"}
    if delay and delay.group(1) not in ("0", "none"):
        shaping["lab_link_delay"] = delay.group(1)
    return shaping


def ratio(value: float | None, base: float | None) -> float | None:
    """value / base rounded to 3 places, or None when either is missing or the base is not positive."""
    if value is None or base is None or base <= 0:
        return None
    return round(value / base, 3)


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 4) if values else None


def add_ratios(rows: list[dict]) -> list[dict]:
    """Set downtime/pause/total ratios to cold on each migrated row, in place (and return the rows).

    A run that failed after its restore but whose restored pod ran on (measured_after_failure) gets
    them too; the base is always a migrated cold run.

    Each row is compared with the cold run of the same size, rate and repetition (run next to it);
    when that one has no figure, with the median of the cold runs of that size and rate.
    """
    def key(row: dict) -> tuple:
        return row["rss_mib"], row["write_rate"]

    cold = [r for r in rows if r["strategy"] == "cold" and r.get("outcome") == "migrated"]
    for row in rows:
        if row.get("outcome") != "migrated" and not row.get("measured_after_failure"):
            continue
        same = [c for c in cold if key(c) == key(row)]
        paired = [c for c in same if c.get("repeat") == row.get("repeat")]
        for field in ("downtime_s", "pause_s", "total_s"):
            base = paired[0].get(field) if paired and paired[0].get(field) is not None else \
                _median([c.get(field) for c in same])
            value = ratio(row.get(field), base)
            if value is not None:
                row[field[:-2] + "_ratio_to_cold"] = value
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Medians per (RSS, rate, strategy) over the repetitions, cold first within each size and rate."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["rss_mib"], row["write_rate"], row["strategy"]), []).append(row)
    out = []
    for (size, rate, strategy), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                                                                   kv[0][2] != "cold", kv[0][2])):
        done = [m for m in members if m.get("outcome") == "migrated"]
        entry = {"rss_mib": size, "write_rate": rate, "strategy": strategy, "runs": len(members),
                 "migrated": len(done), "outcomes": sorted({m.get("outcome") or "error" for m in members})}
        for field in ("downtime_s", "pause_s", "handoff_s", "api_ready_s", "total_s", "bytes_sent", "wire_tx_bytes",
                      "downtime_ratio_to_cold", "pause_ratio_to_cold", "total_ratio_to_cold"):
            entry[field] = _median([m.get(field) for m in done])
        refusals = sorted({r for m in members for r in m.get("refusals") or []})
        if refusals:
            entry["refusals"] = refusals
        entry["checks_ok"] = bool(done) and all(row_checks_ok(m) for m in done)
        late = [m for m in members if m.get("measured_after_failure")]
        if late:  # failed after the restore, yet the workload ran on: what it saw, apart
            entry["downtime_after_failure_s"] = _median([m.get("downtime_s") for m in late])
            entry["downtime_after_failure_ratio_to_cold"] = _median([m.get("downtime_ratio_to_cold") for m in late])
        out.append(entry)
    return out


def row_checks_ok(row: dict) -> bool:
    """The workload carried on (one start, no counter reset) and its memory checksum held."""
    return bool(row.get("counter_continued")) and bool(row.get("memory_ok"))


def row_ok(row: dict) -> bool:
    """A run that went as it should: migrated with every check passed, or refused by the plan (recorded)."""
    if row.get("outcome") == "refused" and not row.get("error_local"):
        return True
    return row.get("outcome") == "migrated" and row_checks_ok(row)


def mib(value: float | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)


def _cell(value, fmt: str = "%s") -> str:
    return "-" if value is None else fmt % value


def format_table(rows: list[dict]) -> str:
    """A fixed-width table: one line per row (runs or summary medians), refusals and errors below it."""
    header = ("RSS MiB", "rate", "strategy", "outcome", "downtime s", "x cold", "pause s", "x cold", "total s",
              "MiB sent", "MiB wire", "checks")
    widths = (7, 5, 9, 9, 10, 6, 7, 6, 7, 8, 8, 6)
    lines = ["  ".join(h.rjust(w) if i not in (2, 3, 11) else h.ljust(w)
                       for i, (h, w) in enumerate(zip(header, widths))).rstrip()]
    notes = []
    for row in rows:
        outcome = row.get("outcome") or ("/".join(row["outcomes"]) if row.get("outcomes") else "error")
        if "checks_ok" in row:
            checks = "ok" if row["checks_ok"] else ("-" if not row.get("migrated") else "FAIL")
        elif row.get("outcome") == "migrated" or row.get("measured_after_failure"):
            checks = "ok" if row_checks_ok(row) else "FAIL"
        else:
            checks = "-"
        cells = ("%d" % row["rss_mib"], "%g" % row["write_rate"], row["strategy"], outcome,
                 _cell(row.get("downtime_s"), "%.3f"), _cell(row.get("downtime_ratio_to_cold"), "%.2f"),
                 _cell(row.get("pause_s"), "%.3f"), _cell(row.get("pause_ratio_to_cold"), "%.2f"),
                 _cell(row.get("total_s"), "%.2f"), _cell(mib(row.get("bytes_sent")), "%.1f"),
                 _cell(mib(row.get("wire_tx_bytes")), "%.1f"), checks)
        lines.append("  ".join(c.rjust(w) if i not in (2, 3, 11) else c.ljust(w)
                               for i, (c, w) in enumerate(zip(cells, widths))).rstrip())
        label = "%d MiB rate %g %s" % (row["rss_mib"], row["write_rate"], row["strategy"])
        for refusal in row.get("refusals") or []:
            notes.append("%s refused: %s" % (label, refusal))
        for field in ("error", "error_local"):
            if row.get(field):
                notes.append("%s: %s" % (label, str(row[field]).strip().splitlines()[-1][:300]))
        if row.get("measured_after_failure"):
            notes.append("%s: the playbook failed after the restore, the restored pod ran on: measured" % label)
        if (row.get("outcome") == "migrated" or row.get("measured_after_failure")) and "checks_ok" not in row \
                and not row_checks_ok(row):
            notes.append("%s: starts %s, counter resets %s, memory verify %s" % (
                label, row.get("starts"), row.get("counter_resets"), row.get("memory_ok")))
    return "\n".join(lines + notes)


def plot(summary: list[dict], path: str, title: str) -> bool:
    """Downtime (median) per RSS, one panel per write rate, a bar per strategy with its ratio to cold."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return False
    rates = sorted({r["write_rate"] for r in summary})
    sizes = sorted({r["rss_mib"] for r in summary})
    strategies = sorted({r["strategy"] for r in summary}, key=lambda s: (s != "cold", s))
    values = [r["downtime_s"] for r in summary if r.get("downtime_s")]
    log = bool(values) and max(values) / min(values) > 20
    fig, axes = plt.subplots(1, len(rates), figsize=(max(8.0, 6.5 * len(rates)), 5.2), squeeze=False, sharey=True)
    width = 0.8 / max(1, len(strategies))
    colours = {"cold": "#4c72b0", "delta": "#55a868", "postcopy": "#dd8452"}
    for ax, rate in zip(axes[0], rates):
        labelled = set()
        for i, strategy in enumerate(strategies):
            for j, size in enumerate(sizes):
                entry = next((r for r in summary if (r["rss_mib"], r["write_rate"], r["strategy"]) ==
                              (size, rate, strategy)), None)
                x = j + i * width
                if entry is None:
                    continue
                downtime = entry.get("downtime_s")
                if not downtime and entry.get("downtime_after_failure_s"):
                    late = entry["downtime_after_failure_s"]
                    ax.bar(x, late, width, color="none", edgecolor=colours.get(strategy, "grey"), hatch="//",
                           label=None if strategy + "!" in labelled else "%s, playbook failed late" % strategy)
                    labelled.add(strategy + "!")
                    text = "%.2f s" % late
                    if entry.get("downtime_after_failure_ratio_to_cold") is not None:
                        text += "\n%.2fx cold" % entry["downtime_after_failure_ratio_to_cold"]
                    ax.annotate(text + "\nFAILED", (x, late), xytext=(0, 2), textcoords="offset points",
                                ha="center", va="bottom", fontsize=7, color="firebrick")
                    continue
                if not downtime:
                    label = "refused" if entry.get("refusals") else "failed"
                    ax.annotate("%s\n%s" % (strategy, label), (x, 0), xycoords=("data", "axes fraction"),
                                xytext=(0, 4), textcoords="offset points", ha="center", va="bottom", fontsize=7,
                                color="firebrick")
                    continue
                ax.bar(x, downtime, width, color=colours.get(strategy),
                       label=None if strategy in labelled else strategy)
                labelled.add(strategy)
                text = "%.2f s" % downtime
                if strategy != "cold" and entry.get("downtime_ratio_to_cold") is not None:
                    text += "\n%.2fx cold" % entry["downtime_ratio_to_cold"]
                ax.annotate(text, (x, downtime), xytext=(0, 2), textcoords="offset points", ha="center",
                            va="bottom", fontsize=7)
        ax.axhline(QEMU_MAX_DOWNTIME_S, color="grey", linestyle=":", linewidth=1,
                   label="QEMU default max downtime (0.3 s)")
        ax.set_xlim(-width / 2 - 0.3, len(sizes) - 1 + (len(strategies) - 0.5) * width + 0.3)
        ax.set_xticks([j + width * (len(strategies) - 1) / 2 for j in range(len(sizes))])
        ax.set_xticklabels(["%d MiB" % s for s in sizes])
        ax.set_xlabel("workload RSS")
        ax.set_title("rewrites %g%% of its memory per second" % (rate * 100))
        if log:
            ax.set_yscale("log")
        ax.margins(y=0.25)
        ax.legend(fontsize=8, loc="upper left")
    axes[0][0].set_ylabel("downtime the workload saw (s)%s" % (", log scale" if log else ""))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------- the lab


def ansible_env() -> dict:
    env = dict(os.environ)
    env.update(ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".build", "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    return env


def playbook(name: str, extra: dict, timeout: float = 1800) -> subprocess.CompletedProcess:
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", LAB, os.path.join(REPO, "playbooks", name)]
    for key, value in extra.items():
        argv += ["-e", "%s=%s" % (key, value)]
    return subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), cwd=REPO, timeout=timeout,
                          check=False)


class Lab:
    """The cluster's API and SSH to its nodes (the lab key, the collected host keys only)."""

    def __init__(self, namespace: str):
        from kubernetes import client, config

        config.load_kube_config(config_file=KUBECONFIG)
        self.api = client.CoreV1Api()
        self.namespace = namespace
        self.addresses = {}
        for node in self.api.list_node().items:
            for address in node.status.addresses or []:
                if address.type == "InternalIP":
                    self.addresses[node.metadata.name] = address.address

    def ssh(self, node: str, command: str, stdin: str | None = None, timeout: float = 120,
            check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["ssh", "-i", SSH_KEY, "-o", "UserKnownHostsFile=" + KNOWN_HOSTS,
                               "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                               "-o", "ConnectTimeout=10", "root@" + self.addresses.get(node, node), command],
                              input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError("on %s: %s: rc=%d %s" % (node, command, proc.returncode, proc.stderr.strip()[-500:]))
        return proc

    def image(self, node: str, repository: str) -> str:
        for image in self.api.read_node(node).status.images or []:
            for name in image.names or []:
                if name.startswith(repository + ":"):
                    return name
        raise RuntimeError("%s has no %s image" % (node, repository))

    def node_info(self, node: str) -> dict:
        status = self.api.read_node(node).status
        info = status.node_info
        return {"kernel": info.kernel_version, "os": info.os_image, "container_runtime": info.container_runtime_version,
                "kubelet": info.kubelet_version, "memory": (status.capacity or {}).get("memory"),
                "cpu": (status.capacity or {}).get("cpu")}

    def pods_of(self, app: str) -> list:
        return self.api.list_namespaced_pod(self.namespace, label_selector="app=%s" % app).items

    def create_pod(self, manifest: dict, timeout: float = 180):
        name = manifest["metadata"]["name"]
        self.api.create_namespaced_pod(self.namespace, manifest)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pod = self.api.read_namespaced_pod(name, self.namespace)
            if pod.status.phase == "Running" and all(s.state.running for s in pod.status.container_statuses or []):
                return pod
            time.sleep(0.5)
        raise RuntimeError("pod %s did not run: %s" % (name, self.api.read_namespaced_pod(name, self.namespace).status))

    def delete_all(self, app: str, timeout: float = 90) -> None:
        """Delete every pod of the run (source, shell) and wait until kubelet has killed them."""
        from kubernetes.client.rest import ApiException

        for pod in self.pods_of(app):
            try:
                self.api.delete_namespaced_pod(pod.metadata.name, self.namespace, grace_period_seconds=1)
            except ApiException:
                pass
        deadline = time.monotonic() + timeout
        while self.pods_of(app) and time.monotonic() < deadline:
            time.sleep(0.5)
        for pod in self.pods_of(app):  # still there: force it out of the API
            try:
                self.api.delete_namespaced_pod(pod.metadata.name, self.namespace, grace_period_seconds=0)
            except ApiException:
                pass

    def read_ticks(self, node: str, path: str, since: float | None = None) -> dict:
        with open(TICKS, encoding="utf-8") as handle:
            script = handle.read()
        command = "python3 - %s%s" % (path, "" if since is None else " %.6f" % since)
        return json.loads(self.ssh(node, command, stdin=script).stdout)

    def wait_ticks(self, node: str, path: str, at_least: int, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                ticks = self.read_ticks(node, path)
            except (RuntimeError, ValueError):  # the log is not there yet
                ticks = {"ticks": 0}
            if ticks.get("ticks", 0) >= at_least or time.monotonic() > deadline:
                return ticks
            time.sleep(0.5)

    def verify_memory(self, node: str, pod, path: str, timeout: float = 120) -> dict:
        """SIGUSR1: the workload recomputes its memory checksum and logs a V line."""
        before = len(self.read_ticks(node, path)["verifies"])
        self.ssh(node, "runc --root %s kill %s USR1" % (RUNC_ROOT, container_id(pod)))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            verifies = self.read_ticks(node, path)["verifies"]
            if len(verifies) > before:
                return verifies[-1]
            time.sleep(0.3)
        raise RuntimeError("the workload did not verify its memory on %s within %d s" % (node, timeout))

    def tx_bytes(self, node: str) -> int | None:
        proc = self.ssh(node, "cat /sys/class/net/%s/statistics/tx_bytes" % LINK_DEVICE, check=False)
        return int(proc.stdout) if proc.returncode == 0 and proc.stdout.strip().isdigit() else None

    def shaping_now(self, node: str) -> dict:
        proc = self.ssh(node, "cat %s 2>/dev/null; echo; tc -json qdisc show dev %s" % (SHAPE_MARKER, LINK_DEVICE))
        marker, _, qdiscs = proc.stdout.partition("\n")
        try:
            root = next((q.get("kind") for q in json.loads(qdiscs) if q.get("root")), None)
        except ValueError:
            root = None
        return shaping_from_marker(marker, root)


def container_id(pod) -> str:
    return re.sub("^[a-z]+://", "", pod.status.container_statuses[0].container_id)


def survived(pod, node: str) -> bool:
    """The pod runs on node with every container running and never restarted."""
    statuses = pod.status.container_statuses or []
    return (pod.spec.node_name == node and pod.status.phase == "Running" and bool(statuses)
            and all(s.state.running and s.restart_count == 0 for s in statuses))


def tick_log(pod) -> str:
    return "/var/lib/kubelet/pods/%s/volumes/kubernetes.io~empty-dir/data/tick.log" % pod.metadata.uid


def run_one(lab: Lab, args, image: str, size: int, rate: float, strategy: str, index: int) -> dict:
    name = pod_name(size, rate, strategy, index, args.tag)
    row = {"rss_mib": size, "write_rate": rate, "strategy": strategy, "repeat": index, "pod": name}
    try:
        source = lab.create_pod(workload_manifest(name, image, args.source, size, rate))
        log = tick_log(source)
        first = lab.wait_ticks(args.source, log, 1)
        if not first.get("ticks"):
            raise RuntimeError("the workload wrote no tick on %s" % args.source)
        time.sleep(args.settle)
        before = lab.read_ticks(args.source, log)
        row.update(ticks_before=before["ticks"], gap_before_s=before["max_gap_s"])
        tx0 = lab.tx_bytes(args.source)
        t0 = time.time()
        proc = playbook("migrate.yml", {"pod": name, "target_node": args.target, "strategy": strategy},
                        timeout=args.migrate_timeout)
        row["wall_s"] = round(time.time() - t0, 3)
        tx1 = lab.tx_bytes(args.source)
        if tx0 is not None and tx1 is not None:
            row["wire_tx_bytes"] = tx1 - tx0
        path = report_path(proc.stdout)
        if not path:
            row["playbook_tail"] = proc.stdout[-6000:] + proc.stderr[-2000:]
            raise RuntimeError("migrate.yml wrote no report (rc=%d): %s" % (proc.returncode,
                                                                            playbook_failure(proc.stdout)))
        with open(path, encoding="utf-8") as handle:
            report = json.load(handle)
        row.update(report=os.path.normpath(path), outcome=report.get("outcome"),
                   strategy_used=report.get("strategy"), reason=report.get("reason"),
                   pause_s=report.get("pause_s"), handoff_s=report.get("handoff_s"),
                   api_ready_s=report.get("api_ready_s"), total_s=report.get("total_s"),
                   bytes_sent=report.get("bytes_sent"), containers=report.get("containers"))
        for key in ("refusals", "error"):
            if report.get(key):
                row[key] = report[key]
        left = {p.metadata.name: p for p in lab.pods_of(name) if not p.metadata.deletion_timestamp}
        row["pods_left"] = sorted(left)
        row["one_copy"] = sorted(left) == [report.get("shell_pod")]  # only the restored pod runs
        if report.get("outcome") != "migrated":
            if report.get("outcome") == "refused":
                return row
            row["playbook_tail"] = proc.stdout[-6000:]  # what went wrong, for the JSON
            moved = left.get(report.get("shell_pod") or "")
            if not (moved and survived(moved, args.target)):
                return row
            # Failed after the restore, yet the restored pod runs on: measure what the workload saw.
            row["measured_after_failure"] = True
        else:
            moved = lab.api.read_namespaced_pod(report["shell_pod"], lab.namespace)
            if moved.spec.node_name != args.target:
                raise RuntimeError("%s runs on %s, not %s" % (moved.metadata.name, moved.spec.node_name, args.target))
        row["target_restarts"] = moved.status.container_statuses[0].restart_count
        log = tick_log(moved)
        # One more second of ticks on the target, then the log across the whole migration.
        lab.wait_ticks(args.target, log, before["ticks"] + 100, timeout=120)
        after = lab.read_ticks(args.target, log, since=t0)
        row.update(downtime_s=after["max_gap_s"], starts=after["starts"], counter_resets=after["counter_resets"],
                   ticks_after=after["ticks"], last_counter=after["last_counter"],
                   counter_continued=after["starts"] == 1 and not after["counter_resets"]
                   and after["last_counter"] > before["ticks"])
        if after.get("gap_from") is not None:
            row["gap_started_after_s"] = round(after["gap_from"] - t0, 3)
        verify = lab.verify_memory(args.target, moved, log)
        row["memory_ok"] = bool(verify["ok"])
    except Exception as exc:  # noqa: BLE001 - a failed run is a row, the next run goes on
        row["error_local"] = "%s: %s" % (type(exc).__name__, exc)
        row.setdefault("outcome", "error")
    finally:
        try:
            lab.delete_all(name)
        except Exception as exc:  # noqa: BLE001
            row["cleanup_error"] = "%s: %s" % (type(exc).__name__, exc)
    return row


def git_state() -> dict:
    def git(*argv: str) -> str:
        return subprocess.run(["git", "-C", REPO] + list(argv), capture_output=True, text=True,
                              check=False).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def machine_info(lab: Lab, nodes: list[str]) -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    memory = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            memory = int(handle.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"host": platform.node(), "nproc": os.cpu_count(), "cpu": cpu, "memory_bytes": memory,
            "kernel": os.uname().release, "python": platform.python_version(),
            "nodes": {node: lab.node_info(node) for node in nodes}}


def plot_title(result: dict) -> str:
    git = result.get("git") or {}
    return "podmig pod migration %s -> %s, links shaped to %s\nsettle %g s, %d run(s) each (median), commit %s%s" % (
        result["source"], result["target"], result["link_rate"], result["settle_s"], result["repeat"],
        (git.get("commit") or "?")[:10], "+dirty" if git.get("dirty") else "")


def replot(json_path: str) -> int:
    with open(json_path, encoding="utf-8") as handle:
        result = json.load(handle)
    summary = summarize(add_ratios(result["rows"]))
    png_path = json_path[:-5] + ".png" if json_path.endswith(".json") else json_path + ".png"
    plotted = plot(summary, png_path, plot_title(result))
    print(format_table(result["rows"]))
    if plotted:
        print("\nplot: %s" % png_path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="podmig-w1")
    parser.add_argument("--target", default="podmig-w2")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--sizes", default="64,256,1024", help="workload RSS values in MiB")
    parser.add_argument("--rates", default="0.02,0.5", help="fractions of memory rewritten per second")
    parser.add_argument("--strategies", default="cold,delta,postcopy", help="cold is always run too, first")
    parser.add_argument("--link-rate", default="1gbit",
                        help="shape the lab links (tc) for the run; 'none' to leave them")
    parser.add_argument("--restore-link-rate", default=None,
                        help="shaping to leave behind (default: what the nodes had before the run)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds the workload runs before migrating")
    parser.add_argument("--migrate-timeout", type=float, default=1800, help="seconds for one migrate.yml run")
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    parser.add_argument("--smoke", action="store_true", help="32 MiB, one rate, cold and postcopy: a quick check")
    parser.add_argument("--replot", metavar="JSON", help="redraw the plot and table of an earlier run (no lab needed)")
    args = parser.parse_args(argv)
    if args.replot:
        return replot(args.replot)
    if args.smoke:
        args.sizes, args.rates, args.strategies = "32", args.rates.split(",")[0], "cold,postcopy"
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rates = [float(r) for r in args.rates.split(",") if r]
    strategies = [s for s in args.strategies.split(",") if s and s != "cold"]
    strategies.insert(0, "cold")  # the baseline, in the same run, next to each strategy
    args.tag = "%04x" % (os.getpid() % 0x10000)

    lab = Lab(args.namespace)
    image = lab.image(args.source, WORKLOAD_IMAGE)
    workers = [args.source, args.target]
    previous = {node: lab.shaping_now(node) for node in workers}
    if args.restore_link_rate:
        restore = {"lab_link_rate": args.restore_link_rate}
    else:  # lab_shape.yml shapes every node alike: what the source had (unshaped when they differ)
        restore = previous[args.source] if previous[args.source] == previous[args.target] else {"lab_link_rate": "none"}
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    json_path = os.path.join(args.out, "pod_migration-%s.json" % stamp)
    png_path = json_path[:-5] + ".png"
    result = {"benchmark": "pod_migration", "started": stamp, "git": git_state(),
              "command": " ".join([os.path.relpath(sys.argv[0], REPO)] + (sys.argv[1:] if argv is None else argv)),
              "source": args.source, "target": args.target, "image": image, "link_rate": args.link_rate,
              "link_rate_before": previous, "link_rate_after": restore, "settle_s": args.settle,
              "repeat": args.repeat, "sizes_mib": sizes, "write_rates": rates, "strategies": strategies,
              "tick_ms": 10, "machine": machine_info(lab, workers), "rows": []}

    def save() -> None:
        add_ratios(result["rows"])
        result["summary"] = summarize(result["rows"])
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)

    print("podmig pod migration benchmark: %s -> %s, links %s (before: %s), image %s" % (
        args.source, args.target, args.link_rate,
        ", ".join("%s %s" % (node, v["lab_link_rate"]) for node, v in previous.items()), image),
        flush=True)
    if args.link_rate != "none":
        shaped = playbook("lab_shape.yml", {"lab_link_rate": args.link_rate}, timeout=600)
        if shaped.returncode != 0:
            print("could not shape the lab links:\n%s" % shaped.stdout[-3000:], file=sys.stderr)
            return 2
    try:
        for size in sizes:
            for rate in rates:
                for index in range(args.repeat):
                    for strategy in strategies:
                        row = run_one(lab, args, image, size, rate, strategy, index)
                        result["rows"].append(row)
                        save()
                        print("%5d MiB  rate %-5g %-9s %-9s downtime %s  pause %s  total %s  sent %s MiB  wire %s MiB"
                              "  checks %s%s" % (size, rate, strategy, row.get("outcome"), row.get("downtime_s"),
                                                 row.get("pause_s"), row.get("total_s"), mib(row.get("bytes_sent")),
                                                 mib(row.get("wire_tx_bytes")),
                                                 "ok" if row_checks_ok(row) else "-",
                                                 "  " + (row.get("error_local") or "; ".join(row.get("refusals") or [])
                                                         or row.get("error") or "")[:200]), flush=True)
    finally:
        if args.link_rate != "none" or args.restore_link_rate:
            unshaped = playbook("lab_shape.yml", restore, timeout=600)
            result["link_rate_restored"] = unshaped.returncode == 0
            if unshaped.returncode != 0:
                print("could not put the lab links back (%s):\n%s" % (restore, unshaped.stdout[-3000:]),
                      file=sys.stderr)
        result["finished"] = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
        save()
    plotted = plot(result["summary"], png_path, plot_title(result))
    print("\n" + format_table(result["rows"]))
    if args.repeat > 1:
        print("\nmedians over %d runs:\n%s" % (args.repeat, format_table(result["summary"])))
    print("\nJSON: %s%s" % (json_path, "\nplot: %s" % png_path if plotted else ""))
    return 0 if result["rows"] and all(row_ok(r) for r in result["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
