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

    RESTORE = r"""
options:
  restore_timeout:
    description:
      - Seconds C(runc restore) may take. Past it, runc, CRIU and every helper they forked are killed
        and the half-restored container removed, so a restore that hangs (CRIU killed half-way can
        leave a helper runc waits for forever) fails instead of holding the migration.
    type: int
    default: 300
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

    TRANSFER = r"""
options:
  ssh_user:
    description: SSH user on the target.
    type: str
    default: root
  ssh_port:
    description: SSH port of the target.
    type: int
    default: 22
  ssh_private_key:
    description: Key the target trusts.
    type: path
  known_hosts_file:
    description: known_hosts with the target's host key.
    type: path
  bwlimit_kib:
    description: Bandwidth budget in KiB/s (0 for none).
    type: int
    default: 0
  io_timeout:
    description: rsync I/O timeout in seconds.
    type: int
    default: 30
"""
