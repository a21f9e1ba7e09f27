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
            raise ToolError(
                "%s failed (rc=%s)" % (what, rc),
                cmd=list(argv),
                rc=rc,
                stdout=out,
                stderr=err,
                log_path=log_path,
                log_tail=tail_lines(log_path),
                log_lines=tail_lines(log_path, None),
            )
        return rc, out, err
