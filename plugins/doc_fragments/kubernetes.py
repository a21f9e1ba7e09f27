# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Options of the modules that talk to the Kubernetes API (podmig.live.kubernetes)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description: Path of the kubeconfig (the client's defaults when omitted).
    type: path
  context:
    description: Context in the kubeconfig.
    type: str
"""
