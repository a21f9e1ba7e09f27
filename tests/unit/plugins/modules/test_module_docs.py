# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Every module's documentation parses (through ansible-doc, with its fragments) and matches its argspec."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "plugins", "modules"))
                 if name.endswith(".py") and not name.startswith("_"))


@pytest.fixture(scope="module")
def docs():
    ansible_doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    proc = subprocess.run([ansible_doc, "--json", "-t", "module"] + ["podmig.live." + m for m in MODULES],
                          cwd=REPO, capture_output=True, text=True, env=env, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", MODULES)
def test_module_options_match_the_argspec(docs, name):
    doc = docs["podmig.live." + name]["doc"]
    assert doc["short_description"] and doc["description"]
    module = importlib.import_module("ansible_collections.podmig.live.plugins.modules." + name)
    assert yaml.safe_load(module.EXAMPLES), "EXAMPLES must hold at least one task"
    assert isinstance(yaml.safe_load(module.RETURN) or {}, dict)
    assert hasattr(module, "argspec"), "each module exposes argspec() so that its docs can be checked"
    documented = set(doc.get("options") or {})
    spec = module.argspec()
    spec = spec.get("argument_spec", spec)  # some return all of AnsibleModule's keyword arguments
    assert documented == set(spec), "documented but not accepted: %s; accepted but not documented: %s" % (
        sorted(documented - set(spec)), sorted(set(spec) - documented))
    for option, settings in spec.items():
        documented_type = doc["options"][option].get("type", "str")
        assert documented_type == settings.get("type", "str"), "%s: type %s in the docs, %s in the argspec" % (
            option, documented_type, settings.get("type", "str"))
        if "default" in settings and settings["default"] is not None:
            assert doc["options"][option].get("default") == settings["default"], option
