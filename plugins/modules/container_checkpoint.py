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
  - Nothing is frozen before the checks pass: the container exists and runs, the image directory is
    usable, and the kernel has the features the mode needs.
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

import os
import select
import shutil
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podmig.live.plugins.module_utils import image_dir as images
from ansible_collections.podmig.live.plugins.module_utils.args_common import CRIU_OPTION_ARGS, RUNTIME_ARGS, criu_options
from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner, find_binary, tail_lines
from ansible_collections.podmig.live.plugins.module_utils.criu import CriuClient
from ansible_collections.podmig.live.plugins.module_utils.criu_stats import read_stats, summarize_dump
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError, ToolError
from ansible_collections.podmig.live.plugins.module_utils.runc import RuncClient, checkpoint_argv
from ansible_collections.podmig.live.plugins.module_utils.strategy import LAZY_MIN_PIPE_MAX_SIZE


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


def validate_params(params: dict) -> None:
    """Refusals that need no look at the node."""
    mode = params["mode"]
    if params["hold_frozen"] and mode != "dump":
        raise PodmigError("hold_frozen applies to mode=dump only (a %s leaves the container running)" % mode)
    if params["leave_running"] and mode != "dump":
        raise PodmigError("leave_running applies to mode=dump only")
    if params["hold_frozen"] and params["leave_running"]:
        raise PodmigError("choose either leave_running (keeps running) or hold_frozen (keeps it frozen)")
    if mode == "lazy" and not params["page_server"]:
        raise PodmigError("mode=lazy needs page_server: the ADDRESS:PORT this node serves pages on")
    if params["page_server"]:
        host, sep, port = params["page_server"].rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise PodmigError("page_server must be ADDRESS:PORT, got %r" % params["page_server"])
    if mode == "lazy" and params["parent_dir"]:
        raise PodmigError("a lazy dump cannot have a parent_dir (its pages are served, not written)")
    if params["parent_dir"] and not images.has_dump(params["parent_dir"]):
        raise PodmigError("parent_dir %s holds no completed checkpoint (no inventory.img)" % params["parent_dir"])


def require_features(criu: CriuClient, mode: str) -> None:
    """Refuse before freezing anything when the kernel cannot do what the mode needs."""
    if mode == "predump":
        feature = criu.feature("mem_dirty_track")
        if not feature["supported"]:
            raise PodmigError(
                "precopy (mode=predump) needs memory dirty tracking (CONFIG_MEM_SOFT_DIRTY), which this kernel "
                "lacks: criu check --feature mem_dirty_track says %r. Use the delta or postcopy strategy."
                % feature["message"],
                missing_feature="mem_dirty_track",
            )
    if mode == "lazy":
        feature = criu.feature("uffd-noncoop")
        if not feature["supported"]:
            raise PodmigError(
                "lazy pages need non-cooperative userfaultfd: criu check --feature uffd-noncoop says %r"
                % feature["message"],
                missing_feature="uffd-noncoop",
            )
        try:
            with open("/proc/sys/fs/pipe-max-size", encoding="ascii") as handle:
                pipe_max = int(handle.read())
        except (OSError, ValueError):
            pipe_max = 0
        if pipe_max < LAZY_MIN_PIPE_MAX_SIZE:
            raise PodmigError(
                "lazy pages need fs.pipe-max-size >= %d (it is %d): CRIU's page pipe fails with 'splice: Bad file "
                "descriptor' otherwise. The podmig.live.criu role sets it." % (LAZY_MIN_PIPE_MAX_SIZE, pipe_max),
                missing_feature="fs.pipe-max-size",
            )


def prepare_dirs(params: dict, check_mode: bool) -> str:
    image_dir = params["image_dir"]
    work_dir = params["work_dir"] or image_dir.rstrip("/") + ".work"
    if not images.is_empty(image_dir):
        if not params["force"]:
            raise PodmigError(
                "image_dir %s is not empty; give a new directory per round (or force=true to empty it)" % image_dir
            )
        if not check_mode:
            shutil.rmtree(image_dir)
    if not check_mode:
        images.ensure_private_dir(image_dir)
        images.ensure_private_dir(work_dir)
    return work_dir


def run_lazy(module: AnsibleModule, runner: CommandRunner, argv_for_fd, work_dir: str, timeout: int) -> int:
    """Start `runc checkpoint --lazy-pages` in the background; return its pid once the images are ready."""
    read_fd, write_fd = os.pipe()
    argv = argv_for_fd(write_fd)
    runner.commands.append(argv)
    log_path = os.path.join(work_dir, "runc-checkpoint.out")
    env = dict(os.environ)
    env.update(runner.environ)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            start_new_session=True,  # keep serving pages after this module exits
            env=env,
        )
    os.close(write_fd)
    try:
        ready, _w, _x = select.select([read_fd], [], [], timeout)
        data = os.read(read_fd, 1) if ready else b""
    finally:
        os.close(read_fd)
    if data:
        return proc.pid
    if proc.poll() is None:
        proc.kill()
    rc = proc.wait()
    raise ToolError(
        "lazy checkpoint did not become ready%s" % ("" if ready else " within %d s" % timeout),
        cmd=argv,
        rc=rc,
        stderr="".join(tail_lines(log_path, 10) or []),
        log_path=os.path.join(work_dir, "dump.log"),
        log_tail=tail_lines(os.path.join(work_dir, "dump.log")),
    )


def checkpoint(module: AnsibleModule, runner: CommandRunner) -> dict:
    params = module.params
    validate_params(params)
    criu_bin = find_binary(module, "criu", params["criu_path"])
    runner.prefer_path(os.path.dirname(criu_bin))
    runc = RuncClient(runner, find_binary(module, "runc", params["runc_path"]), params["runtime_root"])
    criu = CriuClient(runner, criu_bin)

    container = params["container"]
    runc.require(container, ("running", "paused"))
    require_features(criu, params["mode"])
    work_dir = prepare_dirs(params, module.check_mode)
    log_path = os.path.join(work_dir, "dump.log")

    def argv_for(status_fd=None) -> list[str]:
        return checkpoint_argv(
            runc.binary,
            runc.root,
            container,
            params["image_dir"],
            work_dir,
            mode=params["mode"],
            parent_dir=params["parent_dir"],
            leave_running=params["leave_running"] or params["hold_frozen"],
            page_server=params["page_server"],
            status_fd=status_fd,
            **criu_options(params),
        )

    result = {"mode": params["mode"], "image_dir": params["image_dir"], "work_dir": work_dir, "log": log_path}
    if module.check_mode:
        planned = []
        if params["hold_frozen"]:
            planned.append(runc.argv("pause", container))
        planned.append(argv_for(3 if params["mode"] == "lazy" else None))
        runner.commands.extend(planned)
        return result

    paused_here = False
    start = time.monotonic()
    try:
        if params["hold_frozen"] and runc.state(container).get("status") != "paused":
            runc.pause(container)
            paused_here = True
        if params["mode"] == "lazy":
            result["checkpoint_pid"] = run_lazy(module, runner, argv_for, work_dir, params["lazy_ready_timeout"])
        else:
            runner.run(argv_for(), "runc checkpoint (%s)" % params["mode"], log_path=log_path)
    except PodmigError as err:
        # Nothing lost: a container this module paused is resumed; CRIU resumes the tasks of a failed dump.
        if paused_here:
            try:
                runc.resume(container)
                err.details["rolled_back"] = "container resumed after the failed checkpoint"
            except PodmigError as resume_err:
                err.details["rollback_error"] = resume_err.msg
        after = runc.state(container)
        err.details["status_after"] = after.get("status") if after else "absent"
        raise
    result["duration_s"] = round(time.monotonic() - start, 6)
    images.make_private(params["image_dir"])
    result["image_bytes"] = images.tree_bytes(params["image_dir"])
    result["stats"] = summarize_dump(read_stats(work_dir, "dump"))
    after = runc.state(container)
    result["status_after"] = after.get("status") if after else "absent"
    if params["hold_frozen"] and result["status_after"] != "paused":
        raise PodmigError(
            "the container should be held frozen after the dump but runc reports %s" % result["status_after"],
            **result,
        )
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    runner = CommandRunner(module)
    try:
        result = checkpoint(module, runner)
    except PodmigError as err:
        module.fail_json(commands=runner.commands, **err.to_result())
    module.exit_json(changed=True, commands=runner.commands, **result)


if __name__ == "__main__":
    main()
