# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""The Kubernetes Python client for the modules that talk to the API (pod_condition, pod_eviction):
one import guard and one way to build a client from the kubeconfig/context options (KUBE_ARGS)."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.basic import missing_required_lib

try:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    HAS_KUBERNETES = True
except ImportError:  # pragma: no cover - reported by core_api
    client = config = None
    HAS_KUBERNETES = False

    class ApiException(Exception):  # type: ignore[no-redef]
        """Stands in for the client's exception so that modules import without the client."""


def core_api(module: Any) -> Any:
    """A CoreV1Api for the module's kubeconfig and context; fails the module, with the reason,
    when the client is missing or the kubeconfig cannot be loaded."""
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"))
    try:
        config.load_kube_config(config_file=module.params.get("kubeconfig"), context=module.params.get("context"))
    except (OSError, config.ConfigException) as exc:
        module.fail_json(msg="cannot reach the cluster: %s" % exc)
    return client.CoreV1Api()
