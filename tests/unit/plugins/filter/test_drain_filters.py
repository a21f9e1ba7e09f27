# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the drain filters (plugins/filter/drain.py)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.podmig.live.plugins.filter.drain import FilterModule


@pytest.fixture
def filters():
    return FilterModule().filters()


def test_filter_names(filters):
    assert set(filters) == {"drain_plan", "drain_report", "drain_summary", "drain_line", "drain_refs", "drain_move"}


def test_plan_through_the_filter(filters):
    node = {"metadata": {"name": "w1"}, "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"}}}
    result = filters["drain_plan"]({"node": "w1"}, {"nodes": [node], "pods": []})
    assert result["ok"] and result["pods"] == []


def test_bad_input_names_the_filter(filters):
    with pytest.raises(AnsibleFilterError, match=r"podmig\.live\.drain_plan: .*cannot parse label selector"):
        filters["drain_plan"]({"node": "w1", "selector": "a in b)"}, {"nodes": [], "pods": [
            {"metadata": {"name": "p", "namespace": "n"}, "spec": {"nodeName": "w1"}}]})


def test_line_and_refs(filters):
    entry = {"action": "migrate", "namespace": "ns", "name": "db", "target": "w2", "reason": "opted in", "x": 1}
    assert filters["drain_line"](entry) == "migrate  ns/db -> w2: opted in"
    assert filters["drain_move"](entry) == "ns/db -> w2"
    assert filters["drain_refs"]([entry]) == [{"namespace": "ns", "name": "db"}]
