# -*- coding: utf-8 -*-
"""ansible-lint passes on the collection, with the production profile and the repo's .ansible-lint.

It lints the collection's content (playbooks, roles, molecule scenarios, inventories, meta, ...)
from the repository root, like `ansible-lint` run there by hand, less NOT_YET.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ANSIBLE_LINT = os.path.join(os.path.dirname(sys.executable), "ansible-lint")

# Being written; linted once they land.
NOT_YET = [
    "roles/node",
    "roles/node_images",
    "roles/cluster_pki",
    "roles/control_plane",
    "playbooks/lab_cluster.yml",
    "playbooks/migrate.yml",
    "playbooks/build_components.yml",
    "molecule/cluster_node",
]


# What ansible-lint's own discovery never lints, besides the exclude_paths of .ansible-lint.
ALWAYS_SKIPPED = {".git", ".hg", ".svn", ".tox", ".cache", ".ansible", ".mypy_cache", ".pytest_cache",
                  ".ruff_cache", "__pycache__", ".coverage", ".DS_Store"}


def excluded_paths() -> set[str]:
    """The exclude_paths of .ansible-lint (generated files, caches, the venv), without trailing slashes."""
    with open(os.path.join(REPO, ".ansible-lint"), encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    return {path.rstrip("/") for path in config.get("exclude_paths", [])} | ALWAYS_SKIPPED


def lint_paths(rel: str = "") -> list[str]:
    """Everything at the repository root except NOT_YET and the excluded paths.

    A directory that holds something of NOT_YET is listed by its entries instead. Paths given to
    ansible-lint are never excluded by its configuration, so excluded ones are left out here too;
    below a listed directory, ansible-lint applies exclude_paths itself.
    """
    skip = excluded_paths() | set(NOT_YET)
    paths = []
    for name in sorted(os.listdir(os.path.join(REPO, rel))):
        path = os.path.join(rel, name) if rel else name
        if path in skip:
            continue
        if os.path.isdir(os.path.join(REPO, path)) and any(p.startswith(path + "/") for p in NOT_YET):
            paths += lint_paths(path)
        else:
            paths.append(path)
    return paths


def test_lint_paths_leave_out_only_not_yet_and_excluded():
    paths = lint_paths()
    for held_back in NOT_YET + sorted(excluded_paths()):
        assert not any(p == held_back or p.startswith(held_back + "/") for p in paths), held_back
    for expected in ("playbooks/migrate_container.yml", "playbooks/tasks", "roles/criu", "molecule/node", "galaxy.yml"):
        assert expected in paths, expected


@pytest.mark.skipif(not os.path.exists(ANSIBLE_LINT),
                    reason="ansible-lint is not installed next to %s (it is in requirements.txt: make venv)"
                    % sys.executable)
def test_ansible_lint_production_profile():
    # --offline: no schema refresh over the network, and no copy of the collection installed into
    # .ansible/ (it resolves podmig.live through the .build/collections link, see tests/conftest.py).
    argv = [ANSIBLE_LINT, "--offline", "--profile", "production", "--nocolor", "-f", "pep8"] + lint_paths()
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
                          env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), NO_COLOR="1"))
    print("ansible-lint: %.1f s, rc %d" % (time.monotonic() - start, proc.returncode))
    assert proc.returncode == 0, "ansible-lint found violations (rc %d):\n%s\n%s" % (
        proc.returncode, proc.stdout, proc.stderr[-4000:])
