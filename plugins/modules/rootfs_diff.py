#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rootfs_diff
short_description: Capture and apply deltas of a container's writable layer (overlayfs upper dir)
version_added: 0.1.0
description:
  - Captures the overlayfs upper dir of a container (its writable layer) into a delta dir, either
    completely (the pre-sync, while the container runs) or relative to a previous capture (the final
    delta, after the container is frozen), and applies such delta dirs to the target container's
    upper dir.
  - A delta dir holds C(tree/) (every new or changed entry with content, owner, mode, times, xattrs,
    hard links, device nodes, fifos, whiteouts and opaque directories), C(manifest.json) (the full
    manifest of the upper dir, the O(previous) of the next capture) and C(delta.json) (changed,
    removed and hard-linked paths).
  - Directories are walked without following symlinks, relative to already opened directories, so a
    running container cannot redirect the capture to host files. Entries that vanish while a live
    upper dir is captured are left out and sent by the next delta; files that change while they are
    copied are marked dirty and always sent by the next delta, and so are entries changed within
    0.1 s of the scan (on kernels with coarse timestamps their next change might not move ctime).
  - Apply compares before writing, so applying the same delta again changes nothing. It refuses to
    write below a symlink and refuses an upper dir that a mounted overlay is using.
  - Sockets are not captured (a restored process binds its own); their count is returned.
author:
  - podmig developers
options:
  state:
    description:
      - V(captured) writes a delta of O(upperdir) into O(delta_dir).
      - V(applied) replays the delta in O(delta_dir) onto O(target_upperdir).
    type: str
    required: true
    choices: [captured, applied]
  upperdir:
    description:
      - The upper dir of the source container's overlay mount (C(upperdir=) in C(/proc/self/mountinfo)).
      - Required with O(state=captured).
    type: path
  delta_dir:
    description:
      - The delta dir to write (O(state=captured)) or to read (O(state=applied)).
      - Created with mode 0700. An existing delta dir is rewritten; any other non-empty directory is refused.
      - Must be on a filesystem that keeps device nodes, whiteouts and C(trusted.*) xattrs (ext4, xfs; not overlayfs).
    type: path
    required: true
  previous:
    description:
      - The delta dir (or its C(manifest.json)) of the previous capture of the same upper dir.
      - When given, only entries that are new or changed since then are captured, and entries that are
        gone are listed as removed. Without it, everything is captured.
      - Only used with O(state=captured).
    type: path
  target_upperdir:
    description:
      - The upper dir of the target container, not mounted yet. Must exist.
      - Required with O(state=applied).
    type: path
notes:
  - Needs root to read every file, to create device nodes and whiteouts, to set C(trusted.*) xattrs and to chown.
  - Xattrs are copied as they are, including C(trusted.overlay.origin) file handles, which point at the
    source node's lower layer inodes; the kernel ignores them when the lower layer's filesystem differs.
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details:
      - Computes what would be captured or applied and writes nothing (no delta dir is created).
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: partial
    details:
      - V(applied) is idempotent.
      - V(captured) reports a change whenever the upper dir differs from O(previous) (or always without
        O(previous)), and rewrites O(delta_dir) each time.
"""

EXAMPLES = r"""
- name: Rootfs | Pre-sync the writable layer while the container runs
  podmig.live.rootfs_diff:
    state: captured
    upperdir: "{{ source_upperdir }}"
    delta_dir: /var/lib/podmig/migrations/web-0/rootfs/0

- name: Rootfs | Capture what changed since the pre-sync, after the freeze
  podmig.live.rootfs_diff:
    state: captured
    upperdir: "{{ source_upperdir }}"
    delta_dir: /var/lib/podmig/migrations/web-0/rootfs/1
    previous: /var/lib/podmig/migrations/web-0/rootfs/0

- name: Rootfs | Apply the pre-sync and the final delta, in order, to the target container's upper dir
  podmig.live.rootfs_diff:
    state: applied
    delta_dir: "/var/lib/podmig/migrations/web-0/rootfs/{{ item }}"
    target_upperdir: "{{ target_upperdir }}"
  loop: ["0", "1"]
"""

RETURN = r"""
changed:
  description:
    - Capture, whether anything differs from O(previous) (always true without O(previous)).
    - Apply, whether anything in O(target_upperdir) was (or in check mode would be) changed.
  returned: always
  type: bool
delta_dir:
  description: The delta dir written or read.
  returned: always
  type: str
  sample: /var/lib/podmig/migrations/web-0/rootfs/1
entries:
  description: Entries captured, or entries changed by apply (removals not included).
  returned: always
  type: int
  sample: 42
files:
  description: Regular files captured with their content, or (re)written or fixed by apply.
  returned: always
  type: int
dirs:
  description: Directories captured, or created or fixed by apply.
  returned: always
  type: int
symlinks:
  description: Symbolic links captured or changed.
  returned: always
  type: int
devices:
  description: Character and block device nodes (whiteouts excluded) captured or changed.
  returned: always
  type: int
fifos:
  description: Named pipes captured or changed.
  returned: always
  type: int
whiteouts:
  description: Overlay whiteouts (char devices 0/0, files deleted from a lower layer) captured or changed.
  returned: always
  type: int
opaque_dirs:
  description: Opaque directories (hiding the lower layers' content) among O(dirs).
  returned: always
  type: int
hardlinks:
  description: Extra names of an inode captured as hard links, or re-linked by apply.
  returned: always
  type: int
removed:
  description: Paths removed since O(previous) (a removed directory counts once), or removed by apply.
  returned: always
  type: int
bytes:
  description:
    - Capture, bytes of file content captured.
    - Apply, bytes of file content written.
  returned: always
  type: int
  sample: 1048576
sockets_skipped:
  description: Unix sockets found in the upper dir and not captured.
  returned: when O(state=captured)
  type: int
dirty:
  description: Files that changed while they were copied; the next capture sends them again.
  returned: when O(state=captured)
  type: int
vanished:
  description: Entries that disappeared during the capture and were left out.
  returned: when O(state=captured)
  type: int
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils import rootfs_delta

COUNT_KEYS = rootfs_delta.STAT_KEYS + ("entries", "bytes")


def argspec() -> dict[str, Any]:
    return dict(
        argument_spec=dict(
            state=dict(type="str", required=True, choices=["captured", "applied"]),
            upperdir=dict(type="path"),
            delta_dir=dict(type="path", required=True),
            previous=dict(type="path"),
            target_upperdir=dict(type="path"),
        ),
        required_if=[
            ("state", "captured", ("upperdir",)),
            ("state", "applied", ("target_upperdir",)),
        ],
        supports_check_mode=True,
    )


def run_capture(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    previous = None
    if params["previous"]:
        previous = rootfs_delta.load_manifest(params["previous"])
        if rootfs_delta.is_below(params["previous"], params["delta_dir"]):
            raise PodmigError("previous (%s) is inside delta_dir (%s), which capture rewrites: "
                              "give each capture its own delta_dir" % (params["previous"], params["delta_dir"]))
    stats = rootfs_delta.capture(params["upperdir"], params["delta_dir"], previous, check_mode=check_mode)
    result = {key: stats[key] for key in COUNT_KEYS}
    result.update(
        changed=previous is None or stats["entries"] > 0 or stats["removed"] > 0,
        sockets_skipped=stats["sockets_skipped"],
        dirty=stats["dirty"],
        vanished=stats["vanished"],
    )
    return result


def run_apply(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    stats = rootfs_delta.apply(params["delta_dir"], params["target_upperdir"], check_mode=check_mode)
    result = {key: stats[key] for key in COUNT_KEYS}
    result["changed"] = stats["changed"] > 0
    return result


def main() -> None:
    module = AnsibleModule(**argspec())
    params = module.params
    try:
        if params["state"] == "captured":
            result = run_capture(params, module.check_mode)
        else:
            result = run_apply(params, module.check_mode)
    except PodmigError as err:
        module.fail_json(delta_dir=params["delta_dir"], **err.to_result())
    module.exit_json(delta_dir=params["delta_dir"], **result)


if __name__ == "__main__":
    main()
