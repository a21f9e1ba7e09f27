#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_checkpoint
short_description: Checkpoint a running runc container with CRIU (pre-dump, dump or lazy dump)
version_added: 0.1.0
description:
  - Runs C(runc checkpoint) on a container and returns CRIU's statistics as numbers.
  - C(mode=predump) copies memory while the container keeps running (needs soft-dirty memory
    tracking; refused with the reason where the kernel lacks it). Chain rounds with I(parent_dir).
  - C(mode=dump) takes a full dump (relative to I(parent_dir) when given). By default the container
    exits afterwards; I(leave_running) keeps it running (the C(delta) strategy's rounds), and
    I(hold_frozen) pauses it first and keeps it frozen after the dump, so that a failed migration
    can be rolled back with M(podmig.live.container_thaw).
  - C(mode=lazy) dumps everything but the memory pages and starts a page server on I(page_server)
    that the target's lazy-pages daemon pulls pages from (post-copy). The module returns as soon as
    the images are ready; the checkpoint process keeps serving pages in the background and ends
    (and the source container with it) when every page has been fetched.
  - Image directories are created private (0700) because they hold process memory.
  - Nothing is frozen before the checks pass (the container exists and runs, the image directory is
    usable, and the kernel has the features the mode needs).
author:
  - podmig developers
extends_documentation_fragment:
  - podmig.live.runtime
  - podmig.live.runtime.CRIU
options:
  image_dir:
    description: Where CRIU writes the images. Created (0700) when missing; must be empty unless I(force).
    type: path
    required: true
  work_dir:
    description: Where CRIU writes its log (C(dump.log)) and statistics. Defaults to I(image_dir) with C(.work) appended.
    type: path
  mode:
    description: Kind of checkpoint.
    type: str
    choices: [predump, dump, lazy]
    default: dump
  parent_dir:
    description:
      - The previous round's image directory. Only pages changed since then are written, and
        CRIU links the images to it with a relative C(parent) symlink (keep the layout when copying).
    type: path
  leave_running:
    description: After a C(dump), let the container go on running (iterative C(delta) rounds).
    type: bool
    default: false
  hold_frozen:
    description:
      - Pause the container before a C(dump) and keep it frozen afterwards (C(runc pause) and
        C(--leave-running)). Its processes stay intact until they are resumed (rollback) or killed (commit).
    type: bool
    default: false
  page_server:
    description:
      - C(ADDRESS:PORT). For C(mode=lazy) the address the source listens on for the target's lazy-pages
        daemon. For C(predump)/C(dump), a C(criu page-server) on the target that receives the pages directly.
    type: str
  lazy_ready_timeout:
    description: Seconds to wait for a lazy dump to report that its images are ready.
    type: int
    default: 120
  force:
    description: Empty a non-empty I(image_dir) first instead of refusing.
    type: bool
    default: false
  criu_path:
    description: The criu binary runc should use; its directory is put first on runc's PATH. Found on PATH when omitted.
    type: path
attributes:
  check_mode:
    support: full
    details: Validates everything and returns the commands that would run; nothing is paused or dumped.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run takes a new checkpoint.
notes:
  - runc needs C(iptables-restore) for CRIU's network lock.
  - With C(hold_frozen), Kubernetes still reports the container as running; exec probes fail while it is frozen.
seealso:
  - module: podmig.live.container_restore
  - module: podmig.live.container_thaw
  - module: podmig.live.criu_info
"""

EXAMPLES = r"""
- name: Final dump that keeps the source frozen for a possible rollback
  podmig.live.container_checkpoint:
    container: ct1
    runtime_root: /run/runc
    image_dir: /var/lib/podmig/ck/ct1/final
    mode: dump
    hold_frozen: true
  register: ck

- name: Show how long the container was frozen by CRIU
  ansible.builtin.debug:
    msg: "frozen {{ ck.stats.frozen_time_s }} s, {{ ck.stats.bytes_written | human_readable }} written"

- name: Iterative rounds while the container runs (delta strategy)
  podmig.live.container_checkpoint:
    container: ct1
    image_dir: /var/lib/podmig/ck/ct1/round1
    leave_running: true

- name: Post-copy - dump without pages and serve them from this node
  podmig.live.container_checkpoint:
    container: ct1
    image_dir: /var/lib/podmig/ck/ct1/lazy
    mode: lazy
    page_server: "10.0.0.11:27000"
"""

RETURN = r"""
commands:
  description: The commands that ran (or, in check mode, would run).
  returned: always
  type: list
  elements: list
mode:
  description: The checkpoint mode used.
  returned: success
  type: str
image_dir:
  description: The image directory.
  returned: success
  type: str
image_bytes:
  description: Size of the images written in this round.
  returned: success and not check mode
  type: int
stats:
  description:
    - CRIU's dump statistics (times in microseconds C(_us) and seconds C(_s), pages and bytes).
    - C(frozen_time_s) is how long CRIU kept the processes frozen.
  returned: success and not check mode
  type: dict
  sample: {"frozen_time_s": 0.28, "pages_written": 65536, "bytes_written": 268435456, "pages_skipped_parent": 0}
duration_s:
  description: Wall time of the checkpoint command (for a lazy dump, until the images were ready).
  returned: success and not check mode
  type: float
status_after:
  description: The container's runc status afterwards (running, paused, stopped or absent).
  returned: success and not check mode
  type: str
checkpoint_pid:
  description: Pid of the background C(runc checkpoint) serving pages (lazy mode).
  returned: mode is lazy and not check mode
  type: int
log:
  description: CRIU's log file.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podmig.live.plugins.module_utils.args_common import CRIU_OPTION_ARGS, RUNTIME_ARGS
from ansible_collections.podmig.live.plugins.module_utils.checkpoint import take_checkpoint
from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError


def argspec() -> dict:
    spec = dict(RUNTIME_ARGS)
    spec.update(CRIU_OPTION_ARGS)
    spec.update(
        image_dir={"type": "path", "required": True},
        work_dir={"type": "path"},
        mode={"type": "str", "choices": ["predump", "dump", "lazy"], "default": "dump"},
        parent_dir={"type": "path"},
        leave_running={"type": "bool", "default": False},
        hold_frozen={"type": "bool", "default": False},
        page_server={"type": "str"},
        lazy_ready_timeout={"type": "int", "default": 120},
        force={"type": "bool", "default": False},
        criu_path={"type": "path"},
    )
    return spec


def main() -> None:
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    runner = CommandRunner(module)
    try:
        result = take_checkpoint(module, runner, module.params)
    except PodmigError as err:
        module.fail_json(commands=runner.commands, **err.to_result())
    module.exit_json(changed=True, commands=runner.commands, **result)


if __name__ == "__main__":
    main()
