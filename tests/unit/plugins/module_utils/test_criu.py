# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the criu command line helpers and CriuClient with a fake runner.

The canned outputs are what CRIU 4.1.1 prints on the project's machines.
"""

from __future__ import annotations

import pytest

from ansible_collections.podmig.live.plugins.module_utils import criu
from ansible_collections.podmig.live.plugins.module_utils.criu import (
    FEATURE_CHECKS,
    CriuClient,
    check_argv,
    first_message,
    lazy_pages_argv,
    parse_version,
    version_at_least,
    version_tuple,
)
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError, ToolError


class FakeRunner:
    """Answers argv (as a tuple) from a dict, records calls and the check flag."""

    def __init__(self, answers=None, default=(0, "", "")):
        self.answers = answers or {}
        self.default = default
        self.calls = []

    def run(self, argv, what, check=True, log_path=None, data=None, cwd=None):
        self.calls.append({"argv": list(argv), "what": what, "check": check})
        rc, out, err = self.answers.get(tuple(argv), self.default)
        if check and rc != 0:
            raise ToolError("%s failed (rc=%s)" % (what, rc), cmd=list(argv), rc=rc, stderr=err)
        return rc, out, err


# --------------------------------------------------------------------------- versions


def test_parse_version_plain():
    assert parse_version("Version: 4.1.1\n") == "4.1.1"


def test_parse_version_with_gitid():
    assert parse_version("Version: 3.19\nGitID: v3.19-12-gabcdef\n") == "3.19"


def test_parse_version_not_on_first_line():
    assert parse_version("warning: something\nVersion: 4.0\n") == "4.0"


@pytest.mark.parametrize("text", ["", None, "criu: command not found", "Version: four"])
def test_parse_version_refuses_garbage(text):
    with pytest.raises(PodmigError, match="cannot read the CRIU version"):
        parse_version(text)


def test_version_tuple():
    assert version_tuple("4.1.1") == (4, 1, 1)
    assert version_tuple("3.19") == (3, 19)


@pytest.mark.parametrize(
    "version, minimum, expected",
    [
        ("4.1.1", "4.1", True),
        ("4.1", "4.1", True),
        ("4.1", "4.1.1", False),
        ("3.19", "3.9", True),  # numeric, not lexical
        ("3.9", "3.19", False),
        ("10.0", "9.99", True),
        ("4.0", "4.1", False),
    ],
)
def test_version_at_least(version, minimum, expected):
    assert version_at_least(version, minimum) is expected


# --------------------------------------------------------------------------- argv


def test_check_argv():
    assert check_argv("/usr/local/sbin/criu") == ["/usr/local/sbin/criu", "check"]
    assert check_argv("criu", "uffd-noncoop") == ["criu", "check", "--feature", "uffd-noncoop"]


def test_lazy_pages_argv_defaults():
    argv = lazy_pages_argv("/sbin/criu", "/img", "/work", "10.0.0.1", 27000)
    assert argv == [
        "/sbin/criu", "lazy-pages", "--page-server",
        "--address", "10.0.0.1", "--port", "27000",
        "--images-dir", "/img", "--work-dir", "/work",
        "--log-file", "lazy-pages.log", "-v2",
    ]


def test_lazy_pages_argv_custom_log_and_verbosity():
    argv = lazy_pages_argv("criu", "/i", "/w", "::1", 1, log_file="lp.log", verbosity=4)
    assert argv[argv.index("--log-file") + 1] == "lp.log"
    assert argv[-1] == "-v4"
    assert argv[argv.index("--port") + 1] == "1"
    assert all(isinstance(part, str) for part in argv)


# --------------------------------------------------------------------------- first_message


def test_first_message_strips_criu_prefix_of_error():
    err = "Error (criu/cr-check.c:1866): Unknown feature bogus_feature\n"
    assert first_message("", err) == "Unknown feature bogus_feature"


def test_first_message_warn_with_two_spaces():
    err = "Warn  (criu/cr-check.c:824): Dirty tracking is OFF. Memory snapshot will not work.\n"
    assert first_message("", err) == "Dirty tracking is OFF. Memory snapshot will not work."


def test_first_message_error_wins_over_earlier_warn():
    err = (
        "Warn  (criu/kerndat.c:1): harmless warning\n"
        "Error (criu/cr-check.c:2): the real problem\n"
    )
    assert first_message("", err) == "the real problem"


def test_first_message_first_line_without_markers():
    assert first_message("uffd-noncoop is supported\n", "") == "uffd-noncoop is supported"
    assert first_message("\n  Looks good.  \n", "\n") == "Looks good."


def test_first_message_empty():
    assert first_message("", "") == ""


# --------------------------------------------------------------------------- CriuClient


def test_client_version_runs_criu_version():
    runner = FakeRunner({("/c", "--version"): (0, "Version: 4.1.1\n", "")})
    assert CriuClient(runner, "/c").version() == "4.1.1"
    assert runner.calls[0]["check"] is True


def test_client_check_ok():
    runner = FakeRunner({("/c", "check"): (0, "Looks good.\n", "")})
    result = CriuClient(runner, "/c").check()
    assert result == {"ok": True, "message": "Looks good.", "detail": "Looks good."}
    assert runner.calls[0]["check"] is False


def test_client_check_failure_reports_last_line():
    err = "Error (criu/cr-check.c:1): Kernel doesn't support PTRACE_O_SUSPEND_SECCOMP\nFound mis-match\n"
    runner = FakeRunner({("/c", "check"): (1, "", err)})
    result = CriuClient(runner, "/c").check()
    assert result["ok"] is False
    assert result["message"] == "Found mis-match"
    assert "PTRACE_O_SUSPEND_SECCOMP" in result["detail"]


def test_client_check_no_output():
    result = CriuClient(FakeRunner(default=(1, "", "")), "/c").check()
    assert result == {"ok": False, "message": "", "detail": ""}


def test_client_feature_supported():
    runner = FakeRunner({("/c", "check", "--feature", "uffd-noncoop"): (0, "uffd-noncoop is supported\n", "")})
    result = CriuClient(runner, "/c").feature("uffd-noncoop")
    assert result == {"supported": True, "message": "uffd-noncoop is supported"}
    assert runner.calls[0]["check"] is False


def test_client_feature_unsupported_gives_warning_text():
    err = "Warn  (criu/cr-check.c:824): Dirty tracking is OFF. Memory snapshot will not work.\n"
    runner = FakeRunner({("/c", "check", "--feature", "mem_dirty_track"): (1, "", err)})
    result = CriuClient(runner, "/c").feature("mem_dirty_track")
    assert result == {"supported": False, "message": "Dirty tracking is OFF. Memory snapshot will not work."}


def test_client_feature_unknown_to_this_criu():
    err = "Error (criu/cr-check.c:1866): Unknown feature pagemap_scan\n"
    runner = FakeRunner({("/c", "check", "--feature", "pagemap_scan"): (1, "", err)})
    result = CriuClient(runner, "/c").feature("pagemap_scan")
    assert result == {"supported": False, "message": "this CRIU does not know the feature pagemap_scan"}


def test_client_feature_unknown_even_with_rc_zero():
    # Whatever rc an old CRIU returns, "Unknown feature" means not supported.
    runner = FakeRunner(default=(0, "Unknown feature timens\n", ""))
    assert CriuClient(runner, "/c").feature("timens")["supported"] is False


def test_client_features_checks_every_mapped_name():
    seen = []

    class Runner(FakeRunner):
        def run(self, argv, what, check=True, **kwargs):
            seen.append(argv[-1])
            name = argv[-1]
            if name == "mem_dirty_track":
                return 1, "", "Warn  (criu/cr-check.c:824): Dirty tracking is OFF. Memory snapshot will not work.\n"
            if name == "pagemap_scan":
                return 1, "", "Error (criu/cr-check.c:1866): Unknown feature pagemap_scan\n"
            return 0, "%s is supported\n" % name, ""

    features = CriuClient(Runner(), "/c").features()
    assert set(features) == set(FEATURE_CHECKS)
    # facts key uffd_noncoop maps to CRIU's spelling uffd-noncoop
    assert "uffd-noncoop" in seen and "uffd_noncoop" not in seen
    assert features["uffd_noncoop"] == {"supported": True, "message": "uffd-noncoop is supported"}
    assert features["mem_dirty_track"]["supported"] is False
    assert features["pagemap_scan"] == {
        "supported": False, "message": "this CRIU does not know the feature pagemap_scan"}
    assert features["timens"]["supported"] is True


def test_feature_checks_use_criu_names():
    assert criu.FEATURE_CHECKS["uffd_noncoop"] == "uffd-noncoop"
    assert criu.FEATURE_CHECKS["mem_dirty_track"] == "mem_dirty_track"
