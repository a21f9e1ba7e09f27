#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: checkpoint_transfer
short_description: Push checkpoint images or a rootfs delta to another node over SSH
version_added: 0.1.0
description:
  - Copies a directory from this node to I(dest) on I(dest_host) with rsync over SSH (key
    authentication only, host keys checked), so that process memory never travels unauthenticated.
  - Only changed 4 KiB blocks of files that exist at the destination are sent
    (C(--inplace --no-whole-file --block-size 4096)); syncing round N of the C(delta) strategy onto
    round N-1's copy sends just the pages rewritten in between.
  - The destination directory is created mode 0700.
  - Idempotent - a second run sends no file data and reports unchanged. Check mode runs rsync with
    C(--dry-run) and reports what would be sent.
author:
  - podmig developers
options:
  src:
    description: Directory on this node whose contents are sent.
    type: path
    required: true
  dest:
    description: Directory on I(dest_host) that receives the contents.
    type: path
    required: true
  dest_host:
    description: Address or name of the receiving node.
    type: str
    required: true
  ssh_user:
    description: User on the receiving node.
    type: str
    default: root
  ssh_port:
    description: SSH port of the receiving node.
    type: int
    default: 22
  ssh_private_key:
    description: Private key that the receiving node trusts (the M(podmig.live) node roles set this trust up).
    type: path
  known_hosts_file:
    description: known_hosts file holding the receiving node's host key.
    type: path
  host_key_checking:
    description: C(yes) requires a known host key; C(accept-new) records an unknown one on first use.
    type: str
    choices: ["yes", accept-new]
    default: "yes"
  delete:
    description: Delete files at the destination that are not in I(src).
    type: bool
    default: true
  block_size:
    description: rsync block size for the delta algorithm.
    type: int
    default: 4096
  bwlimit_kib:
    description: Bandwidth budget in KiB/s (0 for none).
    type: int
    default: 0
  io_timeout:
    description: Seconds without I/O after which rsync gives up (a cut link fails within this).
    type: int
    default: 30
  excludes:
    description: rsync exclude patterns (for example CRIU logs).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Send the final dump to the target node
  podmig.live.checkpoint_transfer:
    src: /var/lib/podmig/ck/ct1/final
    dest: /var/lib/podmig/ck/ct1/final
    dest_host: 10.0.0.12
    ssh_private_key: /root/.ssh/podmig_ed25519
    known_hosts_file: /etc/podmig/known_hosts
  register: sent

- name: Show what crossed the wire
  ansible.builtin.debug:
    msg: "{{ sent.bytes_sent | human_readable }} sent for {{ sent.total_file_size | human_readable }} of images"
"""

RETURN = r"""
bytes_sent:
  description: Bytes rsync sent over the connection (what the link carried).
  returned: success
  type: int
literal_bytes:
  description: File data sent literally (the changed blocks).
  returned: success
  type: int
matched_bytes:
  description: File data found at the destination already and not sent.
  returned: success
  type: int
total_file_size:
  description: Size of all files in I(src).
  returned: success
  type: int
files_transferred:
  description: Regular files that were (or in check mode would be) updated.
  returned: success
  type: int
duration_s:
  description: Wall time of the transfer.
  returned: success
  type: float
commands:
  description: The commands that ran.
  returned: always
  type: list
  elements: list
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner, find_binary
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.rsync import parse_stats, ssh_command, transfer_argv


def argspec() -> dict:
    return {
        "src": {"type": "path", "required": True},
        "dest": {"type": "path", "required": True},
        "dest_host": {"type": "str", "required": True},
        "ssh_user": {"type": "str", "default": "root"},
        "ssh_port": {"type": "int", "default": 22},
        "ssh_private_key": {"type": "path", "no_log": False},
        "known_hosts_file": {"type": "path"},
        "host_key_checking": {"type": "str", "choices": ["yes", "accept-new"], "default": "yes"},
        "delete": {"type": "bool", "default": True},
        "block_size": {"type": "int", "default": 4096},
        "bwlimit_kib": {"type": "int", "default": 0},
        "io_timeout": {"type": "int", "default": 30},
        "excludes": {"type": "list", "elements": "str", "default": []},
    }


def transfer(module: AnsibleModule, runner: CommandRunner) -> tuple[bool, dict]:
    params = module.params
    if not os.path.isdir(params["src"]):
        raise PodmigError("src %s is not a directory on this node" % params["src"])
    if params["ssh_private_key"] and not os.path.isfile(params["ssh_private_key"]):
        raise PodmigError("ssh_private_key %s does not exist on this node" % params["ssh_private_key"])
    ssh = ssh_command(
        port=params["ssh_port"],
        private_key=params["ssh_private_key"],
        known_hosts_file=params["known_hosts_file"],
        host_key_checking=params["host_key_checking"],
        ssh_binary=find_binary(module, "ssh"),
    )
    argv = transfer_argv(
        params["src"],
        params["dest_host"],
        params["dest"],
        ssh,
        user=params["ssh_user"],
        rsync_binary=find_binary(module, "rsync"),
        block_size=params["block_size"],
        delete=params["delete"],
        bwlimit_kib=params["bwlimit_kib"] or None,
        io_timeout=params["io_timeout"],
        excludes=params["excludes"],
        dry_run=module.check_mode,
    )
    start = time.monotonic()
    _rc, out, _err = runner.run(argv, "rsync to %s:%s" % (params["dest_host"], params["dest"]))
    stats = parse_stats(out)
    stats["duration_s"] = round(time.monotonic() - start, 6)
    changed = bool(stats.get("files_transferred") or stats.get("files_deleted") or stats.get("files_created"))
    return changed, stats


def main() -> None:
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    runner = CommandRunner(module)
    try:
        changed, result = transfer(module, runner)
    except PodmigError as err:
        module.fail_json(commands=runner.commands, **err.to_result())
    module.exit_json(changed=changed, commands=runner.commands, **result)


if __name__ == "__main__":
    main()
