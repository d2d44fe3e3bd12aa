# lifecert: one set-up command, one main job, one test command (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
APT_PACKAGES := mosquitto mosquitto-clients openssl systemd pcscd vsmartcard-vpcd libpcsclite-dev swig espeak-ng chromium fonts-wqy-microhei openssh-server
EXTRAS := edge,central,fleet,camera,pcsc,build,dev

.PHONY: setup apt pip models test lint demo

setup: apt pip models  ## everything a fresh machine needs

apt:
	@if command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  fi; \
	fi

pip:
	$(PYTHON) -m pip install -q -e '.[$(EXTRAS)]'

# The fleet's model-signing key when a fleet exists, else a development key (created, and said so).
MODEL_SIGNING_KEY ?= $(if $(wildcard fleet/models/sign.key),fleet/models/sign.key,var/models-dev/sign.key)
models:  ## signed face model bundle in var/models, built from the packages that ship the weights
	$(PYTHON) -m models build --out var/models --signing-key $(MODEL_SIGNING_KEY) --create-key

test:  ## the whole suite, two workers (one per core; a test file stays on one worker)
	$(PYTHON) -m pytest -q -n 2 --dist loadfile

lint:
	ruff check .
	ruff format --check .
	mypy

demo:
	lifecert demo
