# -*- coding: utf-8 -*-
"""An in-memory database moves with its data: Redis (from Debian's redis-server package, built into
an image by the node_images role) holds keys written before migrate.yml moves its pod from worker 1
to worker 2; afterwards the keys are there and it is the same Redis process (same run_id, uptime
not reset), reached over the pod network from the other worker.

Redis runs without persistence (no RDB, no AOF): its data exist only in its memory, so nothing but
a live migration can carry them over.
"""

from __future__ import annotations

import os
import secrets
import shlex
import time

import pytest

from test_lab import explain, ssh
from test_zz_pod_migration import (NS, SOURCE, TARGET, api, container_id, delete_quietly, image_named,  # noqa: F401
                                   migrate, pods_of, report_of, wait_running)

KEYS = 20000
# A minimal Redis client (RESP over TCP) run by python3 on a node: prints the value of "secret".
RESP_GET_SECRET = """
import socket, sys
with socket.create_connection((sys.argv[1], 6379), timeout=10) as conn:
    conn.sendall(b"*2\\r\\n$3\\r\\nGET\\r\\n$6\\r\\nsecret\\r\\n")
    data = b""
    while data.count(b"\\r\\n") < 2:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
print(data.split(b"\\r\\n")[1].decode())
"""


def redis_pod(api, name: str, node: str = SOURCE):
    manifest = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "redis", "image": image_named(api, node, "localhost/podmig/redis"),
                "imagePullPolicy": "Never",
                "ports": [{"containerPort": 6379}],
            }],
        },
    }
    api.create_namespaced_pod(NS, manifest)
    return wait_running(api, name)


def redis_cli(node: str, pod, *args: str) -> str:
    """redis-cli inside the pod's container, through the node's CRI (crictl exec)."""
    command = "crictl exec %s redis-cli %s" % (container_id(pod), " ".join(shlex.quote(a) for a in args))
    return ssh(node, command).stdout.strip()


def server_info(node: str, pod) -> dict:
    lines = redis_cli(node, pod, "INFO", "server").splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)


def test_redis_keeps_its_keys_and_its_process_across_a_migration(api):
    name = "pm-redis-%d" % (os.getpid() % 10000)
    secret = secrets.token_hex(16)
    try:
        source = redis_pod(api, name)
        # 20000 keys of ~100 bytes plus one random value, written by a Lua script in one round trip.
        written = redis_cli(SOURCE, source, "EVAL",
                            "for i=1,ARGV[1] do redis.call('SET','key:'..i,string.rep('v',96)..i) end "
                            "redis.call('SET','secret',ARGV[2]) return redis.call('DBSIZE')",
                            "0", str(KEYS), secret)
        assert written == str(KEYS + 1), written
        before = server_info(SOURCE, source)
        time.sleep(2)

        proc = migrate(pod=name, target_node=TARGET, strategy="auto")
        assert proc.returncode == 0, explain(proc)
        report = report_of(proc)
        assert report["outcome"] == "migrated", report

        running = pods_of(api, name)
        assert [p.metadata.name for p in running] == [report["shell_pod"]], running
        moved = running[0]
        assert moved.spec.node_name == TARGET
        assert moved.status.container_statuses[0].restart_count == 0
        after = server_info(TARGET, moved)
        # The same process carried on: Redis draws a new run_id at every start.
        assert after["run_id"] == before["run_id"], (before["run_id"], after["run_id"])
        assert int(after["uptime_in_seconds"]) >= int(before["uptime_in_seconds"]) + 2, (before, after)
        assert redis_cli(TARGET, moved, "DBSIZE") == str(KEYS + 1)
        assert redis_cli(TARGET, moved, "GET", "secret") == secret
        assert redis_cli(TARGET, moved, "GET", "key:%d" % KEYS) == "v" * 96 + str(KEYS)
        # It serves the pod network at its new address: a client on the other worker (the node's
        # own network namespace, routed to the pod network) reads the value over TCP.
        reply = ssh(SOURCE, "python3 - %s" % moved.status.pod_ip, input=RESP_GET_SECRET).stdout
        assert reply.strip() == secret, reply
        print("\nredis: %d keys, strategy %s, pause %s s, %d bytes sent" % (
            KEYS + 1, report["strategy"], report.get("pause_s"), report["bytes_sent"]))
    finally:
        delete_quietly(api, name)
