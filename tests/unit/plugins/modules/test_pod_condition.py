# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""The pure parts of pod_condition (the API call itself is exercised on the lab cluster)."""

from __future__ import annotations

import datetime

from ansible_collections.podmig.live.plugins.modules.pod_condition import needs_change, wanted_condition

NOW = datetime.datetime(2026, 11, 29, 12, 0, 0, tzinfo=datetime.timezone.utc)
PARAMS = {"condition": "podmig.live/restored", "status": True, "reason": "PodmigRestored", "message": "m1"}


def test_the_condition_is_rendered_for_a_status_patch():
    assert wanted_condition(PARAMS, NOW) == {"type": "podmig.live/restored", "status": "True",
                                             "reason": "PodmigRestored", "message": "m1",
                                             "lastTransitionTime": "2026-11-29T12:00:00Z"}
    assert wanted_condition(dict(PARAMS, status=False), NOW)["status"] == "False"


def test_only_a_missing_or_different_condition_is_patched():
    wanted = wanted_condition(PARAMS, NOW)
    assert needs_change([{"type": "Ready", "status": "False"}], wanted)
    assert needs_change([{"type": "podmig.live/restored", "status": "False"}], wanted)
    assert not needs_change([{"type": "podmig.live/restored", "status": "True"}], wanted)
