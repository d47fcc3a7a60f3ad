# Laterne: one target per task. `make help` lists them.
VENV     ?= .venv
PY       := $(VENV)/bin/python
LATERNE  := $(VENV)/bin/laterne
STAMP    := $(VENV)/.installed
MPY32    := build/mpy32/micropython
PORT     ?= /dev/ttyUSB0
BOARD    ?= esp32-devkitc
FIRMWARE ?= build/micropython.bin
INVENTORY ?= fleet.csv
NODES    ?= 5
DURATION ?=

.DEFAULT_GOAL := help
.PHONY: help setup mpy32 test test-fast bench lint check-boards demo sim monitor flash deploy configure check provision virtual-board clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Said after installing and on `make setup`: how a shell finds the `laterne` command.
PATH_HINT = [ "$$(command -v laterne)" = "$(abspath $(LATERNE))" ] || \
	echo "laterne is installed in $(VENV)/bin: run  . $(VENV)/bin/activate  to put it on your PATH (once per shell)"

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,demo,parquet]'
	touch $(STAMP)
	@$(if $(filter setup,$(MAKECMDGOALS)),true,$(PATH_HINT))

setup: $(STAMP) ## create .venv, install the tools, mosquitto and PostgreSQL (idempotent)
	@$(if $(filter setup,$(MAKECMDGOALS)),$(PATH_HINT),true)
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null; \
	  else echo "mosquitto is missing: run  sudo apt-get install mosquitto"; fi; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "PostgreSQL is missing: run  sudo apt-get install postgresql"; fi; }

mpy32: $(MPY32) ## build the 32-bit MicroPython with the ESP32's heap shape (once, reused)

FROZEN   := $(patsubst %,host_tools/virtual/board/%.py,$(shell cat mpy32/frozen.txt))
$(MPY32): mpy32/build.sh mpy32/first-heap-area.patch $(wildcard mpy32/variant/*) mpy32/manifest.py mpy32/frozen.txt $(FROZEN)
	@mpy32/build.sh build/mpy32 || { [ -z "$$CI" ] && echo "mpy32: not built; its tests will say so (CI fails here)"; }

test: setup mpy32 ## run every test (CPython, MicroPython, virtual board, broker)
	$(PY) -m pytest -q -n 2 --dist worksteal tests

test-fast: setup mpy32 ## run the quick tests (everything but tests/system/)
	$(PY) -m pytest -q -n 2 --dist worksteal tests --ignore=tests/system

bench: setup mpy32 ## measure speed, flash and heap figures into build/bench.json
	$(PY) -m bench

lint: setup ## compile every firmware file for the ESP32 with mpy-cross
	$(PY) -m pytest -q tests/test_firmware_static.py

check-boards: setup ## validate boards/*.json against the board schema
	$(LATERNE) boards --check

demo: setup ## a virtual fleet feeding a broker, watched live (NODES=, DURATION=)
	$(PY) -m host_tools.demo --nodes $(NODES) $(if $(DURATION),--duration $(DURATION))

sim: setup ## run virtual nodes against a broker (BROKER=mqtt://HOST:PORT)
	$(LATERNE) sim --nodes $(NODES) --broker $(BROKER) --state build/sim

monitor: setup ## live fleet table from a broker (BROKER=mqtt://HOST:PORT)
	$(LATERNE) monitor --broker $(BROKER)

flash: setup ## write MicroPython to a board (PORT=, BOARD=, FIRMWARE=)
	$(LATERNE) flash --port $(PORT) --board $(BOARD) --firmware $(FIRMWARE)

deploy: setup ## copy the firmware to a board (PORT=)
	$(LATERNE) deploy --port $(PORT)

configure: setup ## write a node's config from the inventory (PORT=, INVENTORY=, ROW=)
	$(LATERNE) configure --port $(PORT) --inventory $(INVENTORY) --row $(ROW)

check: setup ## health check of a board over USB (PORT=)
	$(LATERNE) check --port $(PORT)

provision: setup ## flash, deploy, configure and check one node (PORT=, INVENTORY=, ROW=, FIRMWARE=)
	$(LATERNE) provision --port $(PORT) --inventory $(INVENTORY) --row $(ROW) --firmware $(FIRMWARE)

virtual-board: setup ## a virtual node behind a pseudo-terminal (PTY=build/vboard.pty)
	$(LATERNE) virtual-board --pty $(or $(PTY),build/vboard.pty) --state build/vboard

clean: ## remove build output (keeps .venv)
	rm -rf build .pytest_cache
