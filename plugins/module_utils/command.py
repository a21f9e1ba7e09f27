# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Running external tools from a module: list argv, C locale, errors that explain.

The clients (criu.py, runc.py, rsync.py) build argv with pure functions and run
it through :class:`CommandRunner`, which records every command (modules return
them as ``commands``) and raises :class:`ToolError` with cmd, rc, stdout,
stderr and, for CRIU, the tail of its own log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError, ToolError

LOG_TAIL_LINES = 25


def tail_lines(path: str | None, count: int | None = LOG_TAIL_LINES) -> list[str] | None:
    """Last ``count`` lines (all of the last 64 KiB for None) of a text file, or None when unreadable."""
    if not path:
        return None
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = data.splitlines()
    return lines if count is None else lines[-count:]


def find_binary(module: Any, name: str, path: str | None = None, hint: str = "") -> str:
    """Absolute path of a tool, or a PodmigError that tells how to get it."""
    if path:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        raise PodmigError("%s was given as %s, which is not an executable file" % (name, path))
    found = module.get_bin_path(name, opt_dirs=["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/sbin"])
    if not found:
        raise PodmigError(
            "%s was not found on %s. %s"
            % (name, os.uname()[1], hint or "Install it (the podmig.live.criu role installs criu, runc and rsync).")
        )
    return found


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, session id) of a process from /proc/PID/stat, None when it is gone or a zombie."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the name may hold spaces and parentheses
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[3])


def process_tree(root: int) -> list[int]:
    """``root``, its descendants, and the members of its session (helpers that were reparented)."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat:
                stats[int(entry)] = stat
    found = {root} if root in stats else set()
    found |= {pid for pid, (_ppid, sid) in stats.items() if sid == root}
    grew = True
    while grew:
        children = {pid for pid, (ppid, _sid) in stats.items() if ppid in found} - found
        grew = bool(children)
        found |= children
    return sorted(found)


def kill_process_tree(root: int, rounds: int = 20) -> list[int]:
    """SIGKILL a running process, everything it forked and its session; returns the pids killed.

    The root is stopped first so that it neither forks nor reaps while the tree is read, and the
    tree is read again until nothing is left: a process forked between two reads is caught by the next.
    For a root that has already exited (and been reaped), only the members of its session are killed.
    """
    killed: list[int] = []
    if _proc_stat(root) is not None:
        os.kill(root, signal.SIGSTOP)
    for _ in range(rounds):
        alive = process_tree(root)
        if not alive:
            break
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue
            if pid not in killed:
                killed.append(pid)
        time.sleep(0.05)
    return killed


class CommandRunner:
    """Runs argv lists through ``module.run_command`` and remembers them."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.commands: list[list[str]] = []
        self.durations: list[float] = []
        self.environ = {"LC_ALL": "C", "LANG": "C"}

    def prefer_path(self, directory: str) -> None:
        """Put ``directory`` first on the PATH of the commands run (runc runs `criu swrk` through PATH)."""
        self.environ["PATH"] = os.pathsep.join([directory, os.environ.get("PATH", os.defpath)])

    def run(
        self,
        argv: list[str],
        what: str,
        check: bool = True,
        log_path: str | None = None,
        data: str | None = None,
        cwd: str | None = None,
    ) -> tuple[int, str, str]:
        self.commands.append(list(argv))
        start = time.monotonic()
        rc, out, err = self.module.run_command(
            argv,
            check_rc=False,
            data=data,
            cwd=cwd,
            expand_user_and_vars=False,
            environ_update=self.environ,
        )
        self.durations.append(time.monotonic() - start)
        if check and rc != 0:
            raise self.failure(argv, what, rc, out, err, log_path)
        return rc, out, err

    @staticmethod
    def failure(argv: list[str], what: str, rc: int, out: str, err: str, log_path: str | None,
                **details: Any) -> ToolError:
        return ToolError(
            "%s failed (rc=%s)" % (what, rc),
            cmd=list(argv),
            rc=rc,
            stdout=out,
            stderr=err,
            log_path=log_path,
            log_tail=tail_lines(log_path),
            log_lines=tail_lines(log_path, None),
            **details,
        )

    def run_bounded(self, argv: list[str], what: str, timeout: float, output_dir: str,
                    log_path: str | None = None) -> tuple[int, str, str]:
        """Run a command that may leave helpers behind (``runc restore``) with a deadline.

        Unlike :meth:`run` its stdout and stderr go to files in ``output_dir``, not pipes: a helper
        that outlives the command cannot keep this module waiting for the end of a pipe. On the
        deadline, or when the command fails, the command's whole process tree and session are killed,
        so a half-made restore never keeps running behind the error.
        """
        self.commands.append(list(argv))
        env = dict(os.environ)
        env.update(self.environ)
        name = os.path.basename(argv[0])
        out_path = os.path.join(output_dir, "%s.stdout" % name)
        err_path = os.path.join(output_dir, "%s.stderr" % name)
        start = time.monotonic()
        with open(out_path, "wb") as out_file, open(err_path, "wb") as err_file:
            proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
                argv, stdin=subprocess.DEVNULL, stdout=out_file, stderr=err_file,
                start_new_session=True, env=env,
            )
        timed_out = False
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        killed = kill_process_tree(proc.pid) if timed_out else []
        if timed_out:
            rc = proc.wait()
        elif rc != 0:
            killed = kill_process_tree(proc.pid)  # runc is reaped: what is left of its session
        self.durations.append(time.monotonic() - start)
        out = "\n".join(tail_lines(out_path, None) or [])
        err = "\n".join(tail_lines(err_path, None) or [])
        if timed_out:
            error = self.failure(argv, what, rc, out, err, log_path, timed_out=True,
                                 killed_pids=killed)
            error.msg = "%s failed: no end after %g s; killed it and %d process(es) it left" % (
                what, timeout, max(0, len(killed) - 1))
            raise error
        if rc != 0:
            raise self.failure(argv, what, rc, out, err, log_path, killed_pids=killed or None)
        return rc, out, err
