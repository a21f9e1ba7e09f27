# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""The collection's one error type.

Every module catches :class:`PodmigError` once in ``main()`` and turns it into
``fail_json(**err.to_result())``: the user always sees the message, and for a
failed command also the argv, rc, stderr and the tail of the tool's own log
(CRIU writes the real reason into dump.log / restore.log, not to stderr).
"""

from __future__ import annotations

import re
from typing import Any

# Lines CRIU logs as errors that are harmless (GUIDE: root lacks CAP_SYS_RESOURCE in containers).
HARMLESS = (re.compile(r"Can't setup RLIMIT_NOFILE"),)
# CRIU reports some root causes without the "Error" prefix (e.g. "Can't connect to server").
CAUSE = re.compile(r"\bError\b|Can't |can't |Unable to|[Ff]ailed to|No space left|Permission denied")


def first_cause(lines: list[str] | None) -> str | None:
    """The first line of a tool's log that explains a failure, harmless noise skipped."""
    for line in lines or []:
        if CAUSE.search(line) and not any(p.search(line) for p in HARMLESS):
            return line.strip()
    return None


class PodmigError(Exception):
    """A failure that is explained to the user as it is."""

    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = {k: v for k, v in details.items() if v is not None}

    def to_result(self) -> dict[str, Any]:
        result: dict[str, Any] = {"msg": self.msg}
        result.update(self.details)
        return result


class ToolError(PodmigError):
    """An external command (criu, runc, rsync, ...) failed."""

    def __init__(
        self,
        msg: str,
        cmd: list[str] | None = None,
        rc: int | None = None,
        stdout: str | None = None,
        stderr: str | None = None,
        log_path: str | None = None,
        log_tail: list[str] | None = None,
        log_lines: list[str] | None = None,
        **details: Any,
    ) -> None:
        # The first cause in the log (CRIU writes the real reason there, not to stderr),
        # else the last line of stderr.
        cause = first_cause(log_lines if log_lines is not None else log_tail)
        full = msg
        if cause:
            full = "%s: %s" % (msg, cause)
        elif stderr and stderr.strip():
            full = "%s: %s" % (msg, stderr.strip().splitlines()[-1])
        super().__init__(
            full,
            cmd=cmd,
            rc=rc,
            stdout=stdout,
            stderr=stderr,
            log_path=log_path,
            log_tail=log_tail,
            **details,
        )
