# podmig.live: the two commands a newcomer needs are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
ANSIBLE_PLAYBOOK := $(VENV)/bin/ansible-playbook
COLLECTION_LINK := .build/collections/ansible_collections/podmig/live
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PYTHONPATH := $(CURDIR)/.build/collections
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
LAB := -i inventories/lab

.PHONY: venv setup test unit integration demo demo-container lab-up lab-down lab-status lab-shape cluster-up molecule bench bench-smoke clean

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(COLLECTION_LINK):
	mkdir -p $(dir $(COLLECTION_LINK))
	ln -sfn $(CURDIR) $(COLLECTION_LINK)

venv: $(VENV)/.installed $(COLLECTION_LINK)

# Install what the engine and the tests need on this machine, with the collection's own roles
# (this machine is the controller and the test host, not a node: no containerd here).
setup: venv
	$(ANSIBLE_PLAYBOOK) -i localhost, -c local -e podmig_hosts=localhost \
	  -e container_runtime_containerd=none \
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

# The README's demo command: the lab cluster up (idempotent, cached builds), a stateful workload pod
# on worker 1, its live migration to worker 2 with migrate.yml, the report and what the workload saw.
demo: cluster-up
	$(ANSIBLE_PLAYBOOK) $(LAB) playbooks/demo.yml

# The container demo: the lab, a stateful runc container on worker 1, its live migration to worker 2.
demo-container: setup
	$(ANSIBLE_PLAYBOOK) $(LAB) playbooks/demo_container.yml

lab-up: setup
	$(ANSIBLE_PLAYBOOK) $(LAB) playbooks/lab.yml -e lab_state=up

lab-down: venv
	$(ANSIBLE_PLAYBOOK) $(LAB) playbooks/lab.yml -e lab_state=down

lab-status: venv
	$(ANSIBLE_PLAYBOOK) $(LAB) playbooks/lab.yml -e lab_state=status

# make lab-shape RATE=1gbit [DELAY=5ms]; RATE=none removes it (no netem here: DELAY is refused)
lab-shape: venv
	$(ANSIBLE_PLAYBOOK) $(LAB) playbooks/lab_shape.yml -e lab_link_rate=$(RATE) $(if $(DELAY),-e lab_link_delay=$(DELAY))

# The lab as a Kubernetes cluster: lab up, components built, PKI, control plane, workers (docs/cluster.md).
cluster-up: setup
	$(ANSIBLE_PLAYBOOK) $(LAB) playbooks/lab_cluster.yml

# The node roles verified on the lab's workers with testinfra (the lab must be up).
molecule: lab-up
	molecule test -s node
	$(ANSIBLE_PLAYBOOK) $(LAB) playbooks/lab_cluster.yml
	molecule test -s cluster_node

bench: lab-up
	$(PY) bench/container_migration.py

bench-smoke: lab-up
	$(PY) bench/container_migration.py --smoke

clean:
	rm -rf .build $(VENV) tools/workload/podmig-workload
