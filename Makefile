# podmig.live: the two commands a newcomer needs are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
ANSIBLE_PLAYBOOK := $(VENV)/bin/ansible-playbook
COLLECTION_LINK := .build/collections/ansible_collections/podmig/live
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PYTHONPATH := $(CURDIR)/.build/collections

.PHONY: venv setup test unit integration lint clean

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(COLLECTION_LINK):
	mkdir -p $(dir $(COLLECTION_LINK))
	ln -sfn $(CURDIR) $(COLLECTION_LINK)

venv: $(VENV)/.installed $(COLLECTION_LINK)

# Install what the engine and the tests need on this machine, with the collection's own roles.
setup: venv
	$(ANSIBLE_PLAYBOOK) -i localhost, -c local -e podmig_hosts=localhost \
	  -e ansible_python_interpreter=$(CURDIR)/$(PY) playbooks/provision_engine.yml
	$(ANSIBLE_PLAYBOOK) -i localhost, -c local -e ansible_python_interpreter=$(CURDIR)/$(PY) \
	  tests/integration/setup/prepare_host.yml

unit: venv
	$(PY) -m pytest -q tests/unit

integration: setup
	$(PY) -m pytest -q -p no:cacheprovider tests/integration

# The README's test command: everything, from a fresh machine.
test: setup
	$(PY) -m pytest -q -p no:cacheprovider tests/unit tests/integration

clean:
	rm -rf .build $(VENV) tools/workload/podmig-workload
