# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the /proc parsers."""

from __future__ import annotations

import os

from ansible_collections.podmig.live.plugins.module_utils import procfs

CGROUP_V1 = """\
12:pids:/kubepods/besteffort/pod1/abc
11:cpu,cpuacct:/kubepods/besteffort/pod1/abc
10:net_cls,net_prio:/kubepods/besteffort/pod1/abc
9:memory:/kubepods/besteffort/pod1/abc
8:freezer:/kubepods/besteffort/pod1/abc
1:name=systemd:/kubepods/besteffort/pod1/abc
0::/system.slice/containerd.service
"""

STATUS = """\
Name:\tsleep
Umask:\t0022
State:\tS (sleeping)
VmPeak:\t    8304 kB
VmSize:\t    8272 kB
VmHWM:\t     996 kB
VmRSS:\t     996 kB
RssAnon:\t      88 kB
Threads:\t1
"""


def test_parse_cgroup_v1_combined_controllers_and_named_hierarchy():
    paths = procfs.parse_cgroup_file(CGROUP_V1)
    pod = "/kubepods/besteffort/pod1/abc"
    assert paths["cpu"] == pod
    assert paths["cpuacct"] == pod
    assert paths["net_cls"] == pod and paths["net_prio"] == pod
    assert paths["memory"] == pod
    assert paths["name=systemd"] == pod
    assert paths["unified"] == "/system.slice/containerd.service"  # hybrid hierarchy
    assert "cpu,cpuacct" not in paths


def test_parse_cgroup_v2_only():
    paths = procfs.parse_cgroup_file("0::/system.slice/runc-web.scope\n")
    assert paths == {"unified": "/system.slice/runc-web.scope"}


def test_parse_cgroup_path_with_colon_and_junk_lines():
    paths = procfs.parse_cgroup_file("garbage\n\n0::/a:b/c\n")
    assert paths == {"unified": "/a:b/c"}


def test_parse_cgroup_empty():
    assert procfs.parse_cgroup_file("") == {}


def test_parse_status_kib():
    assert procfs.parse_status_kib(STATUS, "VmRSS") == 996
    assert procfs.parse_status_kib(STATUS, "VmPeak") == 8304
    assert procfs.parse_status_kib(STATUS, "RssAnon") == 88


def test_parse_status_kib_exact_field_name():
    # "VmRSS" must not match "VmRSSx" and a missing field is 0
    assert procfs.parse_status_kib("VmRSSx:\t 5 kB\n", "VmRSS") == 0
    assert procfs.parse_status_kib(STATUS, "VmSwap") == 0


def test_cgroups_and_mountinfo_of_self():
    # Real /proc reads of this process: cheap and always present on Linux.
    assert procfs.cgroups(os.getpid())
    assert " - " in procfs.mountinfo_text()


def test_rss_bytes_skips_vanished_pids():
    own = procfs.rss_bytes([os.getpid()])
    assert own > 0 and own % 1024 == 0
    # pid_max is at most 2**22, so this pid never exists
    assert procfs.rss_bytes([2**22 + 12345]) == 0
    assert procfs.rss_bytes([]) == 0
