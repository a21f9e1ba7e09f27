# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""The criu command line: version, feature checks, lazy-pages daemon.

Checkpoint and restore of containers go through runc (runc.py), which drives
CRIU over its RPC socket; this client covers what runc does not: probing the
node's CRIU and kernel features and running ``criu lazy-pages`` on the
restoring side of a post-copy migration.
"""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError

# Feature name in podmig's facts -> `criu check --feature` name.
FEATURE_CHECKS = {
    "mem_dirty_track": "mem_dirty_track",
    "uffd": "uffd",
    "uffd_noncoop": "uffd-noncoop",
    "tcp_half_closed": "tcp_half_closed",
    "network_lock_nftables": "network_lock_nftables",
    "has_ipt_legacy": "has_ipt_legacy",
    "external_net_ns": "external_net_ns",
    "timens": "timens",
    "pagemap_scan": "pagemap_scan",
    "clone3_set_tid": "clone3_set_tid",
}

VERSION_RE = re.compile(r"^Version:\s*(\d+(?:\.\d+)+)", re.MULTILINE)


def parse_version(text: str) -> str:
    """``criu --version`` output -> "4.1.1"."""
    match = VERSION_RE.search(text or "")
    if not match:
        raise PodmigError("cannot read the CRIU version from %r" % (text or "").strip()[:200])
    return match.group(1)


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def version_at_least(version: str, minimum: str) -> bool:
    return version_tuple(version) >= version_tuple(minimum)


def check_argv(binary: str, feature: str | None = None) -> list[str]:
    argv = [binary, "check"]
    if feature:
        argv += ["--feature", feature]
    return argv


def first_message(out: str, err: str) -> str:
    """The most telling line of a `criu check` run (CRIU prints to stderr)."""
    lines = [line.strip() for line in (err + "\n" + out).splitlines() if line.strip()]
    for marker in ("Error", "Warn"):
        for line in lines:
            if marker in line:
                return re.sub(r"^\w+\s+\([^)]*\):\s*", "", line)
    return lines[0] if lines else ""


def lazy_pages_argv(
    binary: str,
    image_dir: str,
    work_dir: str,
    address: str,
    port: int,
    log_file: str = "lazy-pages.log",
    verbosity: int = 2,
) -> list[str]:
    """``criu lazy-pages`` that fetches pages from the source's page server.

    CRIU creates its socket ``lazy-pages.socket`` relative to the work dir
    (criu/uffd.c prepare_sock_addr), which is where ``runc restore
    --lazy-pages --work-path`` looks for it.
    """
    return [
        binary,
        "lazy-pages",
        "--page-server",
        "--address",
        address,
        "--port",
        str(port),
        "--images-dir",
        image_dir,
        "--work-dir",
        work_dir,
        "--log-file",
        log_file,
        "-v%d" % verbosity,
    ]


class CriuClient:
    """Probes the CRIU binary on this node."""

    def __init__(self, runner: CommandRunner, binary: str) -> None:
        self.runner = runner
        self.binary = binary

    def version(self) -> str:
        _rc, out, err = self.runner.run([self.binary, "--version"], "criu --version")
        return parse_version(out + err)

    def check(self) -> dict[str, Any]:
        """The default `criu check`: the kernel basics every dump needs."""
        rc, out, err = self.runner.run(check_argv(self.binary), "criu check", check=False)
        text = (out + err).strip()
        return {"ok": rc == 0, "message": text.splitlines()[-1] if text else "", "detail": text}

    def feature(self, name: str) -> dict[str, Any]:
        rc, out, err = self.runner.run(check_argv(self.binary, name), "criu check --feature %s" % name, check=False)
        message = first_message(out, err)
        if "Unknown feature" in (out + err):
            return {"supported": False, "message": "this CRIU does not know the feature %s" % name}
        return {"supported": rc == 0, "message": message}

    def features(self) -> dict[str, dict[str, Any]]:
        return {key: self.feature(name) for key, name in FEATURE_CHECKS.items()}
