# roster: the two commands a new machine needs are `make demo` and `make test`.
# Both install what is missing first: Debian packages (slapd, ldap-utils, ...) and a Python
# virtualenv with scim2-server, the reference SCIM server the tests and the demo run against.

SHELL := /bin/bash
CARGO ?= cargo
VENV := .venv
SCIM2_SERVER_VERSION := 0.8.3
# aiosmtpd: the real SMTP server the notification tests send mail to.
AIOSMTPD_VERSION := 1.4.6
export ROSTER_SCIM2_SERVER ?= $(CURDIR)/$(VENV)/bin/scim2-server
# CI never writes snapshots: a changed rendering fails the test.
export INSTA_UPDATE ?= no

DEBIAN_PACKAGES := slapd ldap-utils openssl python3-venv time bc curl zstd samba samba-ad-provision samba-dsdb-modules samba-vfs-modules
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build deps venv test lint demo bench bench-1m man clean

all: build

build:
	$(CARGO) build --release

## deps: the Debian packages the tests, the demo and the benchmark use (checked every time:
## dpkg answers in milliseconds, and a stamp file could outlive what it vouches for).
deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## venv: scim2-server in a local virtualenv.
venv: $(VENV)/.stamp
$(VENV)/.stamp: | deps
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "scim2-server==$(SCIM2_SERVER_VERSION)" "aiosmtpd==$(AIOSMTPD_VERSION)"
	@touch $@

## test: every test, against real slapd and scim2-server started by the tests themselves.
test: deps venv
	$(CARGO) test --all-targets -- --test-threads=2
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

## man: the manual page, generated from the command line's own definition.
man:
	@mkdir -p target/man
	$(CARGO) run --quiet -- man > target/man/roster.1
	@echo "wrote target/man/roster.1 (man -l target/man/roster.1)"

## demo: slapd + scim2-server on loopback, sample users, plan, apply, plan again.
demo: deps venv build
	scripts/demo.sh

## bench: issue 16's figures at 100,000 directory users, each a ratio against its floor measured
## in the same run (first plan, no-change plan, apply creates/s, peak memory); the target is
## the benchmark's SCIM double (bench/main.rs), built as an example, not part of the product.
bench: deps build
	$(CARGO) build --release --example bench
	scripts/bench.sh $(or $(USERS),100000)

## bench-1m: the first plan of a 1,000,000-row CSV: time, peak memory, plan and store size,
## then its apply and the no-change plan after it (time and peak memory);
## then 1,000,000 slapd users (syncprov content sync): the first plan (a complete LDAP read) and
## its apply, each with its peak memory, and an incremental plan touching 1% of them, its time
## and peak memory (scripts/bench-incremental.sh: slapadd, a first apply of every user and a
## 5-minute settling wait, so it takes a while).
bench-1m: deps build
	$(CARGO) build --release --example bench
	scripts/bench-1m.sh $(or $(USERS),1000000)
	scripts/bench-incremental.sh $(or $(USERS),1000000)

clean:
	$(CARGO) clean
	rm -rf $(VENV)
