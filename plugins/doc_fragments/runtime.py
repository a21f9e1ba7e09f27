# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Options shared by the modules that act on one runc container."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  container:
    description:
      - The container id as runc knows it (for Kubernetes pods, the CRI container id).
    type: str
    required: true
  runtime_root:
    description:
      - runc's state root (C(runc --root)).
      - containerd keeps Kubernetes containers under C(/run/containerd/runc/k8s.io).
    type: path
    default: /run/runc
  runc_path:
    description:
      - The runc binary; found on PATH when omitted.
    type: path
"""

    CRIU = r"""
options:
  tcp_established:
    description:
      - Checkpoint or restore established TCP connections (CRIU C(--tcp-established)).
      - The restored side needs the same IP address.
    type: bool
    default: false
  file_locks:
    description: Checkpoint or restore file locks (CRIU C(--file-locks)).
    type: bool
    default: false
  ext_unix_sk:
    description: Allow external UNIX sockets (CRIU C(--ext-unix-sk)).
    type: bool
    default: false
  manage_cgroups_mode:
    description:
      - How CRIU handles cgroups (runc C(--manage-cgroups-mode)). C(ignore) needs runc 1.2 or later.
    type: str
    choices: [soft, full, strict, ignore]
"""
