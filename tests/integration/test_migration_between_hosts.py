# -*- coding: utf-8 -*-
"""Moving a running container between two test hosts (network namespaces reached over SSH).

Every step runs through Ansible on the node it belongs to, as a migration
playbook would: checkpoint on the source, transfer over SSH, restore on the target.
"""

from __future__ import annotations

import os
import shutil
import stat
import time

import pytest
from support.ansible_runner import run_module
from support.containers import Runc, make_bundle, workload_args
from ticks import TickLog, wait_for

PAGE_SERVER_PORT = 27000


@pytest.fixture
def two_nodes(test_network, rootfs, tmp_path):
    """A workload running on node-a, and an identical bundle prepared on node-b."""
    net = test_network
    node_a, node_b = net.hosts["node-a"], net.hosts["node-b"]
    run_a = Runc(os.path.join(str(tmp_path), "a-runc"), netns=node_a.netns)
    run_b = Runc(os.path.join(str(tmp_path), "b-runc"), netns=node_b.netns)
    # The tick log lives on a volume both nodes mount at /log (shared storage in this test).
    log_dir = os.path.join(str(tmp_path), "volume")
    os.makedirs(log_dir)
    args = workload_args(mib=64, rate=0.1)
    bundle_a = make_bundle(os.path.join(str(tmp_path), "a-bundle"), rootfs, args, binds={"/log": log_dir})
    bundle_b = make_bundle(os.path.join(str(tmp_path), "b-bundle"), rootfs, args, binds={"/log": log_dir})
    run_a.run("app", bundle_a["bundle"])
    log = os.path.join(log_dir, "ticks")
    wait_for(lambda: os.path.exists(log) and TickLog.read(log).last_counter > 500, what="workload ticks")
    yield {
        "net": net, "a": node_a, "b": node_b, "run_a": run_a, "run_b": run_b, "log": log,
        "bundle_b": bundle_b["bundle"], "dir_a": os.path.join(str(tmp_path), "a-images"),
        "dir_b": os.path.join(str(tmp_path), "b-images"),
    }
    run_b.cleanup()
    run_a.cleanup()


def test_postcopy_lazy_pages_between_hosts(two_nodes):
    n = two_nodes
    inv = n["net"].inventory
    page_server = "%s:%d" % (n["a"].address, PAGE_SERVER_PORT)
    src_images = os.path.join(n["dir_a"], "lazy")
    dst_images = os.path.join(n["dir_b"], "lazy")
    t_start = time.time()

    dumped = run_module("container_checkpoint", {
        "container": "app", "runtime_root": n["run_a"].root, "image_dir": src_images,
        "mode": "lazy", "page_server": page_server}, host="node-a", inventory=inv)
    assert not dumped.failed, dumped.msg
    assert dumped["checkpoint_pid"] > 0
    counter_at_freeze = TickLog.read(n["log"]).last_counter

    sent = run_module("checkpoint_transfer", dict(
        src=src_images, dest=dst_images, dest_host=n["b"].address, **n["net"].transfer_args()),
        host="node-a", inventory=inv)
    assert not sent.failed, sent.msg
    assert sent["changed"] and sent["files_transferred"] > 0
    # A lazy dump holds no page contents: far less than the 64 MiB the workload holds.
    assert sent["total_file_size"] < 8 << 20
    assert stat.S_IMODE(os.stat(dst_images).st_mode) == 0o700

    restored = run_module("container_restore", {
        "container": "app", "runtime_root": n["run_b"].root, "bundle": n["bundle_b"], "image_dir": dst_images,
        "lazy": True, "page_server": page_server}, host="node-b", inventory=inv)
    assert not restored.failed, restored.msg
    n["run_b"].adopt("app")
    assert restored["status"] == "running" and restored["lazy_pages_pid"] > 0

    # Every page arrives; then the source's checkpoint process ends and the source container is gone.
    wait_for(lambda: not os.path.exists("/proc/%d" % restored["lazy_pages_pid"]), timeout=60,
             what="the lazy-pages daemon to fetch every page")
    wait_for(lambda: n["run_a"].status("app") in ("absent", "stopped"), timeout=30, what="the source to end")
    wait_for(lambda: TickLog.read(n["log"]).last_counter > counter_at_freeze + 500, what="ticks on the target")

    log = TickLog.read(n["log"])
    assert len(log.starts) == 1, "the workload restarted instead of continuing"
    assert log.counter_resets() == []
    before = len(log.verifies)
    n["run_b"].signal("app", "USR1")
    verify = wait_for(lambda: TickLog.read(n["log"]).verifies[before:], what="memory check")[0]
    assert verify.ok, "memory differs after the lazy migration: %s" % verify
    gap = log.max_gap(since=t_start)
    print("postcopy between hosts: downtime %.3f s, images sent %d bytes" % (gap["gap_s"], sent["bytes_sent"]))
    assert gap["counter_before"] >= counter_at_freeze - 1


def test_transfer_sends_only_changed_blocks(two_nodes):
    """The delta strategy's transfer: round 2 synced onto round 1's copy sends the rewritten pages only."""
    n = two_nodes
    inv = n["net"].inventory
    dest = os.path.join(n["dir_b"], "delta")
    results, windows = [], []
    for round_no in (1, 2):
        image_dir = os.path.join(n["dir_a"], "r%d" % round_no)
        before = time.time()
        dumped = run_module("container_checkpoint", {
            "container": "app", "runtime_root": n["run_a"].root, "image_dir": image_dir, "leave_running": True},
            host="node-a", inventory=inv)
        windows.append((before, time.time()))
        assert not dumped.failed, dumped.msg
        args = dict(src=image_dir, dest=dest, dest_host=n["b"].address, **n["net"].transfer_args())
        if round_no == 2:
            planned = run_module("checkpoint_transfer", args, host="node-a", inventory=inv, check=True)
            assert not planned.failed and planned["changed"], planned.msg
        sent = run_module("checkpoint_transfer", args, host="node-a", inventory=inv)
        assert not sent.failed, sent.msg
        results.append(sent)
    first, second = results
    assert first["literal_bytes"] > 60 << 20  # the whole 64 MiB the first time
    # Round 2 sends the pages the workload rewrote between the dumps, not the whole image:
    # at least those rewritten for sure between the two dumps, at most those rewritten from
    # the start of dump 1 to the end of dump 2 (plus the small non-page images).
    ticks = TickLog.read(n["log"]).ticks
    surely = sum(t.pages for t in ticks if windows[0][1] <= t.time <= windows[1][0])
    at_most = sum(t.pages for t in ticks if windows[0][0] <= t.time <= windows[1][1])
    print("round 2 sent %d literal bytes; pages rewritten between dumps: %d..%d"
          % (second["literal_bytes"], surely, at_most))
    assert surely * 4096 * 0.9 <= second["literal_bytes"] <= at_most * 4096 * 1.1 + (2 << 20), second
    assert second["literal_bytes"] < first["literal_bytes"]
    assert second["matched_bytes"] > 0
    # The copy at the destination is byte-identical to round 2's images.
    for name in os.listdir(os.path.join(n["dir_a"], "r2")):
        src = os.path.join(n["dir_a"], "r2", name)
        with open(src, "rb") as a, open(os.path.join(dest, name), "rb") as b:
            assert a.read() == b.read(), name
    # Idempotent: nothing changed, nothing sent.
    again = run_module("checkpoint_transfer", dict(src=os.path.join(n["dir_a"], "r2"), dest=dest,
                                                   dest_host=n["b"].address, **n["net"].transfer_args()),
                       host="node-a", inventory=inv)
    assert not again.failed and again["changed"] is False and again["literal_bytes"] == 0
    assert n["run_a"].status("app") == "running"


def test_transfer_refuses_unknown_host_key(two_nodes, tmp_path):
    """Images never go to a host whose key is not known: the channel is authenticated."""
    n = two_nodes
    empty_known_hosts = os.path.join(str(tmp_path), "empty_known_hosts")
    open(empty_known_hosts, "w").close()
    src = os.path.join(str(tmp_path), "some-images")
    os.makedirs(src)
    shutil.copy(n["log"], os.path.join(src, "pages-1.img"))
    result = run_module("checkpoint_transfer", {
        "src": src, "dest": os.path.join(n["dir_b"], "x"), "dest_host": n["b"].address,
        "ssh_private_key": n["net"].key, "known_hosts_file": empty_known_hosts}, host="node-a",
        inventory=n["net"].inventory)
    assert result.failed
    assert "Host key verification failed" in (result.get("stderr") or "") + result.msg
    assert not os.path.exists(os.path.join(n["dir_b"], "x"))
