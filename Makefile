# dynamo-ros: `make demo` runs the end-to-end demo on the simulated robot, `make test` the tests.
# Both call `make setup` first; its steps rerun only when their inputs change, so a second
# `make setup` is a no-op.
SHELL := /bin/bash
VENV := .venv
STAMPS := $(VENV)/.stamps
ENV := source scripts/env.sh &&
PYTEST_ARGS ?=

MSG_SOURCES := $(wildcard src/dynamo_msgs/msg/*.msg src/dynamo_msgs/srv/*.srv) src/dynamo_msgs/CMakeLists.txt \
	src/dynamo_msgs/package.xml $(wildcard dev/control_msgs/*/*) dev/control_msgs/CMakeLists.txt dev/control_msgs/package.xml
PKG_SOURCES := $(wildcard src/*/setup.py src/*/setup.cfg src/*/package.xml)
# The installed share files are links to these; the directories' times change when a file is added
# or removed, so the links are redone then.
SHARE_SOURCES := $(shell find $(wildcard src/*/launch src/*/config) 2>/dev/null)

.PHONY: setup test demo clean

setup: $(STAMPS)/packages

$(STAMPS)/deps: requirements.lock scripts/setup.sh
	scripts/setup.sh deps
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/msgs: $(STAMPS)/deps $(MSG_SOURCES) scripts/build_msgs.sh
	scripts/setup.sh msgs
	@touch $@

$(STAMPS)/packages: $(STAMPS)/msgs $(PKG_SOURCES) $(SHARE_SOURCES) scripts/link_share.py
	scripts/setup.sh packages
	@touch $@

test: setup
	$(ENV) python -m pytest $(PYTEST_ARGS)

demo: setup
	$(ENV) python -m dynamo_bringup.demo

clean:
	rm -rf $(VENV) build install log
