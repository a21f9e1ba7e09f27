# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""The migration flow's logic, in the order the playbooks run it:

plan.py         refuse early: checks on both nodes and the strategy choice
convergence.py  when to stop the copy rounds while the container runs
handoff.py      the frozen part on the source: final dump, final deltas, send, signal the target
landing.py      the frozen part on the target: wait for the signal, apply, restore
report.py       what happened, as JSON and as a short summary

The node-level engine they use (criu, runc, rsync, rootfs deltas) sits one level up in module_utils.
"""
