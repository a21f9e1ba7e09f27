# -*- coding: utf-8 -*-
"""core_api: the client from the module's kubeconfig/context, or a clear failure."""

from __future__ import annotations

import pytest

from ansible_collections.podmig.live.plugins.module_utils.kube import core_api

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: lab, cluster: {server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: abc}}]
contexts: [{name: lab, context: {cluster: lab, user: admin}}]
current-context: lab
"""


class Failed(Exception):
    pass


class FakeModule:
    def __init__(self, **params):
        self.params = params

    def fail_json(self, **kwargs):
        raise Failed(kwargs["msg"])


def test_a_client_for_the_given_kubeconfig(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    api = core_api(FakeModule(kubeconfig=str(path), context="lab"))
    assert api.api_client.configuration.host == "https://10.0.0.1:6443"


@pytest.mark.parametrize("context,expect", [("lab", "cannot reach the cluster"), ("nope", "cannot reach the cluster")])
def test_a_missing_kubeconfig_or_context_fails_with_the_reason(tmp_path, context, expect):
    path = tmp_path / "kubeconfig"
    if context == "nope":
        path.write_text(KUBECONFIG)
    with pytest.raises(Failed, match=expect):
        core_api(FakeModule(kubeconfig=str(path), context=context))
