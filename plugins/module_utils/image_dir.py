# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Checkpoint image directories hold process memory: keep them private.

Every directory podmig writes images into is created mode 0700 (parents it
creates too), and the files CRIU leaves world-readable are made 0600.
"""

from __future__ import annotations

import os
import stat

from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def ensure_private_dir(path: str) -> bool:
    """Create ``path`` (0700) or tighten it to 0700; True when something changed."""
    changed = False
    if not os.path.isdir(path):
        if os.path.lexists(path):
            raise PodmigError("%s exists and is not a directory" % path)
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            ensure_private_dir(parent)
        os.mkdir(path, PRIVATE_DIR)
        changed = True
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)
        changed = True
    return changed


def make_private(path: str) -> None:
    """chmod a tree: directories 0700, regular files 0600 (symlinks untouched)."""
    for root, _dirs, files in os.walk(path):
        os.chmod(root, PRIVATE_DIR)
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                os.chmod(full, PRIVATE_FILE)


def is_empty(path: str) -> bool:
    return not os.path.isdir(path) or not os.listdir(path)


def tree_bytes(path: str) -> int:
    """Apparent size of the files below ``path`` (what a copy moves), symlinks not followed."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def has_dump(path: str) -> bool:
    """A completed CRIU dump (or pre-dump) leaves inventory.img behind."""
    return os.path.isfile(os.path.join(path, "inventory.img"))
