# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""pod_eviction against a fake CoreV1Api: 429 retries, blocked reporting, waiting for pods to go."""

from __future__ import annotations

import json
import types

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes.client.rest import ApiException  # noqa: E402

from ansible_collections.podmig.live.plugins.modules import pod_eviction  # noqa: E402

PDB_BODY = json.dumps({"kind": "Status", "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                       "reason": "TooManyRequests", "code": 429, "details": {"causes": [{
                           "reason": "DisruptionBudget",
                           "message": "The disruption budget web-pdb needs 1 healthy pods and has 1 currently"}]}})


def api_error(status, body=""):
    exc = ApiException(status=status, reason={404: "Not Found", 429: "Too Many Requests"}.get(status, "Error"))
    exc.body = body
    return exc


class FakeApi:
    def __init__(self, pods, refuse=None, linger=0):
        self.pods = dict(pods)              # (namespace, name) -> uid
        self.refuse = dict(refuse or {})    # (namespace, name) -> number of 429s before accepting
        self.linger = linger                # reads before an evicted pod is gone
        self.evicted = {}
        self.calls = []

    def read_namespaced_pod(self, name, namespace):
        key = (namespace, name)
        if key not in self.pods:
            raise api_error(404)
        if key in self.evicted:
            self.evicted[key] -= 1
            if self.evicted[key] < 0:
                del self.pods[key]
                raise api_error(404)
        return types.SimpleNamespace(metadata=types.SimpleNamespace(uid=self.pods[key]))

    def create_namespaced_pod_eviction(self, name, namespace, body):
        key = (namespace, name)
        self.calls.append(key)
        if self.refuse.get(key, 0):
            self.refuse[key] -= 1
            raise api_error(429, PDB_BODY)
        self.evicted[key] = self.linger


def run(api, pods, check_mode=False, **params):
    module = types.SimpleNamespace(check_mode=check_mode, params=dict({
        "pods": pods, "grace_period": None, "wait": True, "wait_timeout": 30, "retry_delay": 0}, **params))
    return pod_eviction.Evictor(module, api).run()


def test_refusal_names_the_budget():
    assert pod_eviction.refusal(PDB_BODY) == ("web-pdb", "The disruption budget web-pdb needs 1 healthy pods "
                                                         "and has 1 currently")
    assert pod_eviction.refusal("not json") == ("", "not json")


def test_evicts_and_waits_until_gone():
    api = FakeApi({("ns", "a"): "u1"}, linger=2)
    result = run(api, [{"namespace": "ns", "name": "a"}])
    assert [(r["name"], r["outcome"]) for r in result] == [("a", "evicted")]
    assert ("ns", "a") not in api.pods


def test_a_missing_pod_is_gone_and_check_mode_evicts_nothing():
    api = FakeApi({("ns", "a"): "u1"})
    result = run(api, [{"namespace": "ns", "name": "a"}, {"namespace": "ns", "name": "b"}], check_mode=True)
    assert [r["outcome"] for r in result] == ["would_evict", "gone"]
    assert api.calls == []


def test_a_budget_refusal_is_retried_then_accepted():
    api = FakeApi({("ns", "a"): "u1"}, refuse={("ns", "a"): 2})
    result = run(api, [{"namespace": "ns", "name": "a"}])
    assert result[0]["outcome"] == "evicted" and "pdb" not in result[0]
    assert api.calls == [("ns", "a")] * 3


def test_a_budget_that_never_allows_it_is_reported_blocked_after_the_timeout():
    api = FakeApi({("ns", "a"): "u1", ("ns", "b"): "u2"}, refuse={("ns", "a"): 10 ** 6})
    result = run(api, [{"namespace": "ns", "name": "a"}, {"namespace": "ns", "name": "b"}],
                 wait_timeout=1, retry_delay=0.2)
    assert result[0]["outcome"] == "blocked" and result[0]["pdb"] == "web-pdb"
    assert "needs 1 healthy pods" in result[0]["message"]
    assert result[1]["outcome"] == "evicted"
    assert len(api.calls) > 2      # it kept trying until the deadline


def test_other_api_errors_fail_the_pod_only():
    api = FakeApi({("ns", "a"): "u1"})

    def broken(name, namespace, body):
        raise api_error(500, json.dumps({"message": "etcd is sad"}))
    api.create_namespaced_pod_eviction = broken
    result = run(api, [{"namespace": "ns", "name": "a"}])
    assert result[0]["outcome"] == "failed" and "500" in result[0]["message"] and "etcd is sad" in result[0]["message"]
