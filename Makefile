# droplab: the two entry points are `make demo` (set up, build, run the main job) and
# `make test` (set up, build, run the full test suite). `make setup` installs the system
# packages (Debian/Ubuntu; uses sudo when not root); `make test` also installs Chromium.

SWIFT ?= swift
APT_PACKAGES = libopenblas-dev libdnnl-dev libhdf5-dev zlib1g-dev pkg-config libopenmpi-dev openmpi-bin
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

.PHONY: setup test-setup build demo test test-fast bench clean
setup:
	@$(call apt_install,$(APT_PACKAGES))

test-setup: setup
	@$(call apt_install,$(TEST_APT_PACKAGES))

build: setup
	$(SWIFT) build $(RELEASE) --product droplab

# The main job: pretrain a `tiny` BERT without dropout on the default corpus (Wikipedia shards
# under ../shared/data/wiki_en) for 10M tokens with pretrain's defaults, the best settings of the
# pretraining sweep (reports/sweep.md: lr 2e-3, Adam beta2 0.98, init std 0.05, sequences of 16
# for the first half), about 10 minutes on 2 cores; it ends with the validation curve and the model's
# guesses at [MASK] in a few sentences. Each run gets its own directory, so a second
# `make demo` never overwrites the first.
DEMO_SENTENCES = "the city is the [MASK] of the province ." "he was born in [MASK] , england ." \
  "she played the [MASK] in the band ." "the war ended in [MASK] ." "paris is the capital of [MASK] ."
demo: build
	out=checkpoints/demo-p0.0-$$(date +%Y%m%d-%H%M%S) && \
	$(DROPLAB) pretrain --dropout 0.0 --preset tiny --tokens 10000000 --eval-every 500 --log-every 100 --out $$out && \
	$(DROPLAB) predict $$out/last.h5 $(DEMO_SENTENCES)

# Tests run with every check on (DROPLAB_CHECKED=1 drops -Ounchecked, see Package.swift), in
# their own build directory so `make build` keeps the unchecked binary. The test process gets
# the OpenBLAS kernel droplab itself runs (`droplab inspect --system`: on a CPU that OpenBLAS
# does not know, the kernel its features allow instead of a generic SSE fallback), unless
# OPENBLAS_CORETYPE is set. TEST_FILTER selects test classes (a regular expression).
CHECKED_BUILD = DROPLAB_CHECKED=1 $(SWIFT) build $(RELEASE) --scratch-path .build-checked --build-tests
TEST_FILTER ?=
TEST_SKIP ?=
test: test-setup
	$(CHECKED_BUILD)
	@.build-checked/release/droplab inspect --system | sed 's/^/  /'
	core=$$(.build-checked/release/droplab inspect --system | sed -n 's/^openblas_core: \([A-Za-z0-9]*\).*/\1/p'); \
	OPENBLAS_CORETYPE=$${OPENBLAS_CORETYPE:-$$core} DROPLAB_CHECKED=1 $(SWIFT) test $(RELEASE) --scratch-path .build-checked \
	  --disable-swift-testing --skip-build $(if $(TEST_FILTER),--filter '$(TEST_FILTER)') $(if $(TEST_SKIP),--skip '$(TEST_SKIP)')

# The fast tier, to iterate with: unit, gradient, parity and evaluator tests (~40 s of tests on
# Zen 4 after the build); it leaves out the end-to-end classes that pretrain, run recipes or
# drive every command (~400 s). `make test` runs everything, as CI does.
END_TO_END = SmokeRecipeTests|PretrainTests|BadInputTests|DataParallelTests|AcquisitionTests|FactsCorpusTests|SquadEndToEndTests
test-fast:
	@$(MAKE) --no-print-directory test TEST_SKIP='$(END_TO_END)'

clean:
	rm -rf .build
