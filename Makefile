# Convenience targets; npm scripts do the work. `make install DESTDIR=/tmp/root` installs the
# same layout as the packages (the application under /usr/lib/vip-manager, /usr/bin/vip-manager,
# the units, /etc/default/vip-manager.yml unless it exists, docs).
DESTDIR ?=
# Debian path; use UNITDIR=/usr/lib/systemd/system on Fedora/RHEL.
UNITDIR ?= /lib/systemd/system
NPM ?= npm

.PHONY: all build test package deb rpm install sample-config clean

all: build

# Installed once when missing (order-only: a newer package-lock.json does not reinstall).
node_modules:
	$(NPM) ci

build: | node_modules
	$(NPM) run build

test: | node_modules
	$(NPM) test

package: build
	node scripts/package.mjs all

deb: build
	node scripts/package.mjs deb

rpm: build
	node scripts/package.mjs rpm

install: build
	node scripts/package.mjs install --destdir "$(if $(DESTDIR),$(DESTDIR),/)" --unitdir "$(UNITDIR)"

# Rewrites packaging/vip-manager.yml from src/config/schema.ts (commit the result).
sample-config: build
	node scripts/package.mjs sample-config

clean:
	rm -rf dist build
