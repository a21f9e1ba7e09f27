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

from typing import Any


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
        **details: Any,
    ) -> None:
        full = msg
        if log_tail:
            errors = [line for line in log_tail if "Error" in line]
            if errors:
                # The first CRIU error line is nearly always the root cause.
                full = "%s: %s" % (msg, errors[0].strip())
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
