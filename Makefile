# droplab: the two entry points are `make demo` (set up, build, run the main job) and
# `make test` (set up, build, run the full test suite). `make setup` installs the system
# packages (Debian/Ubuntu; uses sudo when not root); `make test` also installs Chromium.

SWIFT ?= swift
APT_PACKAGES = libopenblas-dev libdnnl-dev libhdf5-dev zlib1g-dev pkg-config
RELEASE = -c release -Xswiftc -enable-testing
DROPLAB = .build/release/droplab

# What the tests need besides: headless Chromium opens the page `droplab explore` writes.
TEST_APT_PACKAGES = chromium

# Install those of the Debian packages $(1) that are missing.
define apt_install
missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
  echo "installing:$$missing"; \
  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
fi
endef

.PHONY: setup test-setup build demo test bench clean
setup:
	@$(call apt_install,$(APT_PACKAGES))

test-setup: setup
	@$(call apt_install,$(TEST_APT_PACKAGES))

build: setup
	$(SWIFT) build $(RELEASE) --product droplab

# The main job: pretrain a `mini` BERT without dropout on the default corpus (Wikipedia
# shards under ../shared/data/wiki_en), about 10 minutes on 2 cores. Each run gets its own
# directory, so a second `make demo` never overwrites the first.
demo: build
	$(DROPLAB) pretrain --dropout 0.0 --preset mini --tokens 3000000 --eval-every 100 \
	  --out checkpoints/demo-p0.0-$$(date +%Y%m%d-%H%M%S)

# Tests run with every check on (DROPLAB_CHECKED=1 drops -Ounchecked, see Package.swift), in
# their own build directory so `make build` keeps the unchecked binary.
test: test-setup
	DROPLAB_CHECKED=1 $(SWIFT) test $(RELEASE) --scratch-path .build-checked --disable-swift-testing

clean:
	rm -rf .build
