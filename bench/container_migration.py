#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Benchmark: live container migration between two lab nodes, every strategy against cold.

For each workload size (RSS) and write rate, the test workload is started on the source node and
migrated to the target with playbooks/migrate_container.yml, once per strategy the nodes support
and once with `cold`, in the same run (machines here are noisy: compare ratios, not absolute times
across runs). Downtime is what the workload saw: the largest gap in its tick log.

    .venv/bin/python bench/container_migration.py                 # the full matrix (~20-30 min)
    .venv/bin/python bench/container_migration.py --smoke         # one small size, cold + postcopy

Writes bench/results/container-migration-<time>.json and .png, and prints a table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "workload"))

from ticks import TickLog  # noqa: E402

BIN = os.path.dirname(sys.executable)


def ansible_env() -> dict:
    env = dict(os.environ)
    env.update(ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".build", "collections"), ANSIBLE_NOCOLOR="1")
    return env


def playbook(name: str, inventory: str, extra: dict, quiet: bool = True) -> subprocess.CompletedProcess:
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", inventory, os.path.join(REPO, "playbooks", name),
            "-e", json.dumps(extra)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), cwd=REPO, check=False)
    if proc.returncode != 0 and not quiet:
        print(proc.stdout[-4000:], proc.stderr[-2000:], file=sys.stderr)
    return proc


def adhoc(host: str, inventory: str, module: str, args: dict) -> subprocess.CompletedProcess:
    argv = [os.path.join(BIN, "ansible"), host, "-i", inventory, "-m", module, "-a", json.dumps(args)]
    return subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), cwd=REPO, check=False)


def supported_strategies(inventory: str, source: str, target: str) -> list[str]:
    """Strategies both nodes support, from podmig.live.criu_info."""
    supported = None
    for host in (source, target):
        with tempfile.TemporaryDirectory() as tree:
            subprocess.run([os.path.join(BIN, "ansible"), host, "-i", inventory, "-m", "podmig.live.criu_info",
                            "-t", tree], capture_output=True, env=ansible_env(), cwd=REPO, check=False)
            with open(os.path.join(tree, host), encoding="utf-8") as handle:
                facts = json.load(handle)["ansible_facts"]["podmig_criu"]
        names = {name for name, s in facts["strategies"].items() if s["supported"]}
        supported = names if supported is None else supported & names
    return sorted(supported or [])


def run_one(args, size: int, rate: float, strategy: str, index: int, workdir: str) -> dict:
    name = "bench-%d-%s-%s-%d" % (size, str(rate).replace(".", ""), strategy, index)
    row = {"rss_mib": size, "write_rate": rate, "strategy": strategy, "container": name}
    started = playbook("lab_workload.yml", args.inventory, {
        "workload_node": args.source, "workload_name": name, "workload_mib": size, "workload_rate": rate,
        "workload_image_hosts": "%s,%s" % (args.source, args.target)}, quiet=False)
    if started.returncode != 0:
        row["error"] = "could not start the workload"
        return row
    time.sleep(args.settle)
    report_dir = os.path.join(workdir, name)
    t0 = time.time()
    migrated = playbook("migrate_container.yml", args.inventory, {
        "podmig_container": name, "podmig_source": args.source, "podmig_target": args.target,
        "podmig_strategy": strategy, "podmig_report_dir": report_dir}, quiet=False)
    row["wall_s"] = round(time.time() - t0, 3)
    reports = sorted(f for f in os.listdir(report_dir) if f.endswith(".json")) if os.path.isdir(report_dir) else []
    report = json.load(open(os.path.join(report_dir, reports[-1]), encoding="utf-8")) if reports else {}
    row.update(outcome=report.get("outcome", "failed"), pause_s=report.get("pause_s"),
               total_s=report.get("total_s"), rounds=len(report.get("rounds") or []),
               bytes_sent=(report.get("bytes_sent") or {}).get("total"), pause_breakdown_s=report.get("pause_breakdown_s"))
    if migrated.returncode == 0 and report.get("target_bundle"):
        ticks = os.path.join(workdir, name + ".ticks")
        fetched = adhoc(args.target, args.inventory, "ansible.builtin.fetch", {
            "src": report["target_bundle"] + "/rootfs/var/lib/app/ticks", "dest": ticks, "flat": True})
        if os.path.getsize(ticks) if os.path.exists(ticks) else 0:
            log = TickLog.read(ticks)
            gap = log.max_gap(since=t0)
            row["downtime_s"] = round(gap["gap_s"], 4)
            row["counter_continued"] = not log.counter_resets() and len(log.starts) == 1
        else:
            row["error"] = "could not fetch the tick log: %s" % fetched.stdout[-300:]
    else:
        row["error"] = (report.get("error") or migrated.stdout[-500:]).strip()
    # Free the target for the next run.
    adhoc(args.target, args.inventory, "podmig.live.container_remove", {"container": name})
    if report.get("target_bundle"):
        adhoc(args.target, args.inventory, "ansible.builtin.shell", {
            "cmd": "umount %s/rootfs; rm -rf %s" % (report["target_bundle"], os.path.dirname(report["target_bundle"]))})
    adhoc(args.source, args.inventory, "ansible.builtin.shell", {
        "cmd": "umount /var/lib/podmig/bundles/{0}/rootfs; rm -rf /var/lib/podmig/bundles/{0}".format(name)})
    return row


def add_ratios(rows: list[dict]) -> None:
    cold = {(r["rss_mib"], r["write_rate"]): r for r in rows if r["strategy"] == "cold" and r.get("downtime_s")}
    for row in rows:
        base = cold.get((row["rss_mib"], row["write_rate"]))
        if base and row.get("downtime_s"):
            row["downtime_ratio_to_cold"] = round(row["downtime_s"] / base["downtime_s"], 3)
        if base and row.get("total_s") and base.get("total_s"):
            row["total_ratio_to_cold"] = round(row["total_s"] / base["total_s"], 3)


def plot(rows: list[dict], path: str, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return False
    rates = sorted({r["write_rate"] for r in rows})
    sizes = sorted({r["rss_mib"] for r in rows})
    strategies = sorted({r["strategy"] for r in rows}, key=lambda s: (s != "cold", s))
    fig, axes = plt.subplots(1, len(rates), figsize=(6 * len(rates), 4.5), squeeze=False)
    width = 0.8 / max(1, len(strategies))
    for ax, rate in zip(axes[0], rates):
        for i, strategy in enumerate(strategies):
            values = []
            for size in sizes:
                match = [r for r in rows if r["rss_mib"] == size and r["write_rate"] == rate
                         and r["strategy"] == strategy and r.get("downtime_s")]
                values.append(sum(m["downtime_s"] for m in match) / len(match) if match else 0)
            xs = [j + i * width for j in range(len(sizes))]
            bars = ax.bar(xs, values, width, label=strategy)
            for bar, size in zip(bars, sizes):
                match = [r for r in rows if r["rss_mib"] == size and r["write_rate"] == rate
                         and r["strategy"] == strategy and r.get("downtime_ratio_to_cold")]
                if match and strategy != "cold":
                    ax.annotate("%.2fx" % match[0]["downtime_ratio_to_cold"], (bar.get_x() + bar.get_width() / 2,
                                bar.get_height()), ha="center", va="bottom", fontsize=7)
        ax.axhline(0.3, color="grey", linestyle=":", linewidth=1, label="QEMU default max downtime")
        ax.set_xticks([j + width * (len(strategies) - 1) / 2 for j in range(len(sizes))])
        ax.set_xticklabels(["%d MiB" % s for s in sizes])
        ax.set_ylabel("downtime seen by the workload (s)")
        ax.set_title("rewrites %.0f%% of its memory per second" % (rate * 100))
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inventory", default=os.path.join(REPO, "inventories", "lab", "hosts.yml"))
    parser.add_argument("--source", default="podmig-w1")
    parser.add_argument("--target", default="podmig-w2")
    parser.add_argument("--sizes", default="64,256,1024", help="workload RSS values in MiB")
    parser.add_argument("--rates", default="0.02,0.5", help="fractions of memory rewritten per second")
    parser.add_argument("--strategies", default="", help="default: every strategy both nodes support")
    parser.add_argument("--link-rate", default="1gbit", help="shape the lab links (tc); 'none' to leave them")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds the workload runs before migrating")
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    parser.add_argument("--smoke", action="store_true", help="32 MiB, one rate, cold and postcopy: a quick check")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.rates, args.strategies = "32", "0.05", args.strategies or "cold,postcopy"
    sizes = [int(s) for s in args.sizes.split(",")]
    rates = [float(r) for r in args.rates.split(",")]
    strategies = [s for s in args.strategies.split(",") if s] or supported_strategies(args.inventory, args.source,
                                                                                       args.target)
    if "cold" not in strategies:
        strategies.insert(0, "cold")  # the baseline always runs in the same run
    if args.link_rate != "none":
        shaped = playbook("lab_shape.yml", args.inventory, {"lab_link_rate": args.link_rate,
                                                             "lab_link_delay_optional": True}, quiet=False)
        if shaped.returncode != 0:
            print("could not shape the lab links", file=sys.stderr)
            return 2
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    workdir = tempfile.mkdtemp(prefix="podmig-bench-")
    rows = []
    try:
        for size in sizes:
            for rate in rates:
                for index in range(args.repeat):
                    for strategy in strategies:
                        row = run_one(args, size, rate, strategy, index, workdir)
                        rows.append(row)
                        print("%5d MiB  rate %.2f  %-9s %-9s downtime %s  pause %s  total %s  rounds %s  sent %s"
                              % (size, rate, strategy, row.get("outcome"), row.get("downtime_s"), row.get("pause_s"),
                                 row.get("total_s"), row.get("rounds"), row.get("bytes_sent")), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    add_ratios(rows)
    result = {"benchmark": "container-migration", "started": stamp, "source": args.source, "target": args.target,
              "link_rate": args.link_rate, "machine": {"nproc": os.cpu_count(), "kernel": os.uname().release},
              "rows": rows}
    json_path = os.path.join(args.out, "container-migration-%s.json" % stamp)
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    png_path = json_path[:-5] + ".png"
    plot(rows, png_path, "podmig container migration, link %s" % args.link_rate)
    print("\n%-6s %-6s %-9s %10s %8s %8s" % ("RSS", "rate", "strategy", "downtime", "x cold", "total"))
    for row in rows:
        print("%-6s %-6s %-9s %10s %8s %8s" % (row["rss_mib"], row["write_rate"], row["strategy"],
                                               row.get("downtime_s"), row.get("downtime_ratio_to_cold"),
                                               row.get("total_s")))
    print("\nJSON: %s\nplot: %s" % (json_path, png_path))
    return 0 if all(r.get("outcome") == "migrated" and r.get("counter_continued") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
