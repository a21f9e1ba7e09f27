# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Argument specs shared by modules (documented in doc_fragments/runtime.py)."""

from __future__ import annotations

RUNTIME_ARGS = {
    "container": {"type": "str", "required": True},
    "runtime_root": {"type": "path", "default": "/run/runc"},
    "runc_path": {"type": "path"},
}

CRIU_OPTION_ARGS = {
    "tcp_established": {"type": "bool", "default": False},
    "file_locks": {"type": "bool", "default": False},
    "ext_unix_sk": {"type": "bool", "default": False},
    "manage_cgroups_mode": {"type": "str", "choices": ["soft", "full", "strict", "ignore"]},
}

# The Kubernetes API (doc fragment podmig.live.kubernetes).
KUBE_ARGS = {
    "kubeconfig": {"type": "path"},
    "context": {"type": "str"},
}

# Restoring on the target (doc fragment podmig.live.runtime.RESTORE).
RESTORE_ARGS = {
    "restore_timeout": {"type": "int", "default": 300},
}

# Sending to the target node: rsync over SSH (doc fragment podmig.live.runtime.TRANSFER).
TRANSFER_ARGS = {
    "ssh_user": {"type": "str", "default": "root"},
    "ssh_port": {"type": "int", "default": 22},
    "ssh_private_key": {"type": "path", "no_log": False},
    "known_hosts_file": {"type": "path"},
    "bwlimit_kib": {"type": "int", "default": 0},
    "io_timeout": {"type": "int", "default": 30},
}


def criu_options(params: dict) -> dict:
    """The CRIU option params as keyword arguments for runc.checkpoint_argv/restore_argv."""
    return {key: params[key] for key in CRIU_OPTION_ARGS}
