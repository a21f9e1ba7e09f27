# -*- coding: utf-8 -*-
"""Make the repository importable as ansible_collections.podmig.live (see pytest.ini)."""

from __future__ import annotations

import os

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
LINK = os.path.join(REPO, ".build", "collections", "ansible_collections", "podmig", "live")

if os.path.realpath(LINK) != REPO:
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    if os.path.lexists(LINK):
        os.unlink(LINK)
    os.symlink(REPO, LINK)
