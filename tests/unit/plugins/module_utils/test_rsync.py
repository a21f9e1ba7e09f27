# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the rsync argv builder and --stats parser."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

import pytest

from ansible_collections.podmig.live.plugins.module_utils.rsync import parse_stats, ssh_command, transfer_argv

# `rsync -a --stats --no-whole-file` (rsync 3.x) output, second run of a two-round copy.
RSYNC_STATS = """\

Number of files: 5 (reg: 3, dir: 2)
Number of created files: 1 (reg: 1)
Number of deleted files: 0
Number of regular files transferred: 1
Total file size: 2,469,137 bytes
Total transferred file size: 1,234,567 bytes
Literal data: 1,234,567 bytes
Matched data: 0 bytes
File list size: 0
File list generation time: 0.001 seconds
File list transfer time: 0.000 seconds
Total bytes sent: 1,235,036
Total bytes received: 36

sent 1,235,036 bytes  received 36 bytes  2,470,144.00 bytes/sec
total size is 2,469,137  speedup is 2.00
"""


# --------------------------------------------------------------------------- parse_stats


def test_parse_stats_real_output():
    assert parse_stats(RSYNC_STATS) == {
        "files": 5,
        "files_created": 1,
        "files_deleted": 0,
        "files_transferred": 1,
        "total_file_size": 2469137,
        "transferred_file_size": 1234567,
        "literal_bytes": 1234567,
        "matched_bytes": 0,
        "bytes_sent": 1235036,
        "bytes_received": 36,
    }


def test_parse_stats_delta_transfer_with_big_numbers():
    text = (
        "Number of files: 42 (reg: 40, dir: 2)\n"
        "Number of created files: 0\n"
        "Number of deleted files: 3 (reg: 3)\n"
        "Number of regular files transferred: 12\n"
        "Total file size: 1,073,741,824 bytes\n"
        "Total transferred file size: 536,870,912 bytes\n"
        "Literal data: 53,687,091 bytes\n"
        "Matched data: 483,183,821 bytes\n"
        "Total bytes sent: 54,123,456\n"
        "Total bytes received: 1,234,567\n"
    )
    stats = parse_stats(text)
    assert stats["files"] == 42
    assert stats["files_deleted"] == 3
    assert stats["total_file_size"] == 1073741824
    assert stats["literal_bytes"] == 53687091
    assert stats["matched_bytes"] == 483183821
    assert stats["bytes_received"] == 1234567


def test_parse_stats_ignores_unrelated_and_summary_lines():
    stats = parse_stats("sending incremental file list\nfoo: bar\nFile list size: 99\n"
                        "sent 1,235,036 bytes  received 36 bytes  2,470,144.00 bytes/sec\n")
    assert stats == {}


def test_parse_stats_empty():
    assert parse_stats("") == {}


def test_parse_stats_label_with_extra_spaces():
    assert parse_stats("  Total bytes sent:   1,000\n") == {"bytes_sent": 1000}


# --------------------------------------------------------------------------- ssh_command


def test_ssh_command_defaults():
    argv = ssh_command()
    assert argv[:3] == ["ssh", "-p", "22"]
    assert "BatchMode=yes" in argv
    assert "StrictHostKeyChecking=yes" in argv
    assert "ConnectTimeout=10" in argv
    assert "ServerAliveInterval=5" in argv and "ServerAliveCountMax=3" in argv
    assert "-T" in argv and "-x" in argv
    assert "-i" not in argv
    assert not any(part.startswith("UserKnownHostsFile=") for part in argv)
    # every -o is followed by an option
    for i, part in enumerate(argv):
        if part == "-o":
            assert "=" in argv[i + 1]


def test_ssh_command_all_options():
    argv = ssh_command(port=2222, private_key="/root/.ssh/podmig", known_hosts_file="/etc/podmig/known_hosts",
                       host_key_checking="accept-new", connect_timeout=3, ssh_binary="/usr/bin/ssh")
    assert argv[:3] == ["/usr/bin/ssh", "-p", "2222"]
    assert argv[argv.index("-i") + 1] == "/root/.ssh/podmig"
    assert "IdentitiesOnly=yes" in argv
    assert "UserKnownHostsFile=/etc/podmig/known_hosts" in argv
    assert "StrictHostKeyChecking=accept-new" in argv
    assert "ConnectTimeout=3" in argv


# --------------------------------------------------------------------------- transfer_argv


def option(argv, prefix):
    found = [part for part in argv if part.startswith(prefix)]
    assert len(found) == 1, (prefix, argv)
    return found[0][len(prefix):]


def test_transfer_argv_defaults():
    argv = transfer_argv("/var/lib/podmig/img/", "node2", "/var/lib/podmig/img", ["ssh", "-p", "22"])
    assert argv[0] == "rsync"
    for flag in ("--archive", "--hard-links", "--acls", "--xattrs", "--numeric-ids", "--inplace",
                 "--no-whole-file", "--stats", "--delete"):
        assert flag in argv
    assert option(argv, "--block-size=") == "4096"
    assert option(argv, "--timeout=") == "30"
    assert option(argv, "--rsh=") == "ssh -p 22"
    assert "--dry-run" not in argv
    assert not any(part.startswith(("--bwlimit", "--exclude")) for part in argv)
    # source has exactly one trailing slash (copy contents), destination too
    assert argv[-2:] == ["/var/lib/podmig/img/", "root@node2:/var/lib/podmig/img/"]


def test_transfer_argv_rsync_path_creates_private_dest():
    argv = transfer_argv("/src", "node2", "/dest dir/img/", ["ssh"])
    remote = option(argv, "--rsync-path=")
    assert remote == "umask 077 && mkdir -p -- '/dest dir/img' && rsync"
    # the remote shell sees: umask, mkdir of exactly the destination, then rsync
    words = shlex.split(remote)
    assert words[:2] == ["umask", "077"]
    assert words[words.index("mkdir"):words.index("mkdir") + 4] == ["mkdir", "-p", "--", "/dest dir/img"]
    assert words[-1] == "rsync"
    assert argv[-1] == "root@node2:/dest dir/img/"


def test_transfer_argv_rsync_path_quotes_shell_metacharacters():
    argv = transfer_argv("/src", "node2", "/tmp/x;rm -rf ~", ["ssh"])
    words = shlex.split(option(argv, "--rsync-path="))
    assert "/tmp/x;rm -rf ~" in words


def test_transfer_argv_rsh_is_quoted():
    argv = transfer_argv("/src", "h", "/d", ["ssh", "-i", "/keys/my key", "-o", "UserKnownHostsFile=/k h"])
    assert shlex.split(option(argv, "--rsh=")) == ["ssh", "-i", "/keys/my key", "-o", "UserKnownHostsFile=/k h"]


@pytest.mark.parametrize(
    "host, expected",
    [
        ("fd00::2", "root@[fd00::2]:/d/"),
        ("[fd00::2]", "root@[fd00::2]:/d/"),
        ("192.0.2.7", "root@192.0.2.7:/d/"),
        ("node2.example", "root@node2.example:/d/"),
    ],
)
def test_transfer_argv_host_bracketing(host, expected):
    assert transfer_argv("/s", host, "/d", ["ssh"])[-1] == expected


def test_transfer_argv_all_options():
    argv = transfer_argv(
        "/src//", "node2", "/dst", ["ssh"], user="podmig", rsync_binary="/usr/local/bin/rsync",
        block_size=65536, delete=False, bwlimit_kib=10240, io_timeout=5,
        excludes=["*.log", "stats-*"], dry_run=True,
    )
    assert argv[0] == "/usr/local/bin/rsync"
    assert option(argv, "--block-size=") == "65536"
    assert option(argv, "--timeout=") == "5"
    assert option(argv, "--bwlimit=") == "10240"
    assert "--delete" not in argv
    assert [p for p in argv if p.startswith("--exclude=")] == ["--exclude=*.log", "--exclude=stats-*"]
    assert "--dry-run" in argv
    assert argv[-2:] == ["/src/", "podmig@node2:/dst/"]
    # options come before the operands
    assert max(argv.index(p) for p in argv if p.startswith("--")) < len(argv) - 2


def test_transfer_argv_bwlimit_zero_means_unlimited():
    assert not any(p.startswith("--bwlimit") for p in transfer_argv("/s", "h", "/d", ["ssh"], bwlimit_kib=0))


def test_transfer_argv_root_destination():
    argv = transfer_argv("/s", "h", "/", ["ssh"])
    assert option(argv, "--rsync-path=") == "umask 077 && mkdir -p -- / && rsync"


def test_transfer_argv_keep_modes_copies_a_raw_layer_as_it_is():
    argv = transfer_argv("/var/lib/ct/upper", "10.0.0.2", "/var/lib/podmig/m1/app/upper", ["ssh"], keep_modes=True)
    assert not any(a.startswith("--chmod") for a in argv)
    # whiteouts are 0/0 character devices and opaque dirs carry trusted.overlay.* xattrs
    assert "--archive" in argv and "--xattrs" in argv and "--numeric-ids" in argv
    assert any(a.startswith("--rsync-path=umask 077 && mkdir -p") for a in argv)
    assert any(a.startswith("--chmod=D0700,F0600") for a in transfer_argv("/a", "h", "/b", ["ssh"]))


def test_a_file_rewritten_within_the_same_second_with_the_same_size_is_sent_again(tmp_path):
    """The rsync of transfer_argv, through a local stand-in for ssh: the second dump's page image
    has the size and the mtime (to the second) of the first, and must still replace it."""
    if not shutil.which("rsync"):
        pytest.skip("rsync is not installed")
    fake_ssh = tmp_path / "ssh"
    fake_ssh.write_text('#!/bin/sh\nwhile [ "${1#-}" != "$1" ]; do shift 2; done\nshift\nexec sh -c "$*"\n')
    fake_ssh.chmod(0o755)
    src, dest = tmp_path / "round", tmp_path / "target" / "images"
    src.mkdir()
    page = src / "pages-1.img"
    stamp = 1795961756
    for content in (b"A" * 8192, b"B" * 4096 + b"A" * 4096):
        page.write_bytes(content)
        os.utime(page, (stamp, stamp))
        argv = transfer_argv(str(src), "localhost", str(dest), [str(fake_ssh)])
        subprocess.run(argv, check=True, capture_output=True)
        assert (dest / "pages-1.img").read_bytes() == content
