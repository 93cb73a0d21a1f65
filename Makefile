# Bascule: build, test and demo entry points. `make help` lists them.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/bascule-ota/bascule/internal/version.Version=$(VERSION)
GOFLAGS_B := -trimpath -ldflags "$(LDFLAGS)"
FUZZTIME  ?= 10s
export CGO_ENABLED = 0

.PHONY: help build cross deps demo demo-bundle e2e e2e-images test check unit test-arm fuzz-short clean

help:
	@echo "make demo        install what is needed, build the demo A/B image and update it in an emulated Raspberry Pi 4 (QEMU)"
	@echo "make test        everything CI runs: format, vet, unit tests, cross builds, 32-bit ARM, fuzzing, emulated device"
	@echo "make e2e         the emulated-device suite alone (test/e2e: both bootloaders, power cuts)"
	@echo "make demo-bundle a sample update bundle from an ext4 image, inspected, verified and extracted (host only)"
	@echo "make unit        go test ./... only"
	@echo "make test-arm    the unit tests for 32-bit ARM (GOARM=7) under qemu-arm-static"
	@echo "make fuzz-short  every fuzz target for FUZZTIME ($(FUZZTIME))"
	@echo "make build       bin/bascule and bin/bascule-bundler for this machine"
	@echo "make cross       static binaries for arm64, arm (GOARM=7) and amd64 in bin/<arch>/"
	@echo "make check-buildroot BUILDROOT=dir   Buildroot lint and defconfig round trip of buildroot/"

build:
	$(GO) build $(GOFLAGS_B) -o bin/ ./cmd/...

cross:
	GOARCH=arm64 $(GO) build $(GOFLAGS_B) -o bin/arm64/ ./cmd/...
	GOARCH=arm GOARM=7 $(GO) build $(GOFLAGS_B) -o bin/arm/ ./cmd/...
	GOARCH=amd64 $(GO) build $(GOFLAGS_B) -o bin/amd64/ ./cmd/...

deps:
	scripts/setup.sh e2e

# The main job: test/e2e/build.sh makes the images from Debian's arm64
# packages through the Buildroot tree's post-image.sh, then TestDemo boots
# the Pi 4 tryboot image in QEMU and takes it through an update.
demo: deps e2e-images
	E2E_DEMO=1 $(GO) test -tags e2e -count=1 -v -run '^TestDemo$$' -timeout 20m ./test/e2e/

demo-bundle: build
	scripts/demo.sh

e2e-images:
	test/e2e/build.sh

# The emulated-device suite (test/e2e/tests.md): about 10 minutes on 2
# cores under TCG. Console logs land in _out/e2e/logs/.
e2e: e2e-images
	$(GO) test -tags e2e -count=1 -v -timeout 25m ./test/e2e/

test: check unit cross test-arm fuzz-short e2e

check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "not gofmt'ed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/
	@grep -q '^go 1\.\(1[0-9]\|2[0-3]\)\(\.[0-9]*\)\?$$' go.mod || { echo "go.mod must say go 1.23 or lower (Buildroot 2025.02)"; exit 1; }

unit:
	$(GO) test -count=1 ./...

# Each package's tests are compiled for ARMv7 and run under user-mode QEMU
# from the package directory (tests read testdata/ relative to it).
test-arm:
	@command -v qemu-arm-static >/dev/null || { echo "qemu-arm-static missing: apt-get install qemu-user-static"; exit 1; }
	@mkdir -p bin/test-arm
	@set -e; for pkg in $$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...); do \
	  name=$$(echo $$pkg | tr / _); dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  GOARCH=arm GOARM=7 $(GO) test -c -o bin/test-arm/$$name.test $$pkg; \
	  echo "qemu-arm-static $$pkg"; \
	  (cd $$dir && BASCULE_TEST_EXEC_WRAPPER=qemu-arm-static qemu-arm-static $(CURDIR)/bin/test-arm/$$name.test -test.short -test.timeout=20m); \
	done

fuzz-short:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
	    echo "fuzz $$pkg $$f"; \
	    $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=2s $$pkg >/dev/null || \
	      { $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=1x $$pkg; exit 1; }; \
	  done; \
	done

clean:
	rm -rf bin _out

# Buildroot checks of the BR2_EXTERNAL tree in buildroot/ (see
# docs/buildroot.md): Buildroot's own lint (utils/check-package -b) on every
# file, then each defconfig through `make <name>_defconfig` and
# `make savedefconfig`, which must give back the same file. Offline; needs a
# Buildroot checkout (2025.02 LTS or newer), python3 with the magic and
# flake8 modules, and shellcheck.
#   make check-buildroot BUILDROOT=/path/to/buildroot
.PHONY: check-buildroot
check-buildroot:
	@test -n "$(BUILDROOT)" && test -x "$(BUILDROOT)/utils/check-package" || \
	  { echo "usage: make check-buildroot BUILDROOT=/path/to/buildroot (a Buildroot checkout, 2025.02 or newer)"; exit 1; }
	@command -v shellcheck >/dev/null || { echo "check-buildroot: shellcheck missing (apt-get install shellcheck)"; exit 1; }
	@py=; for p in $(BUILDROOT_PYTHON) python3 /usr/bin/python3; do \
	  if $$p -c 'import magic, flake8' 2>/dev/null; then py=$$p; break; fi; done; \
	  test -n "$$py" || { echo "check-buildroot: needs python3 with magic and flake8 (apt-get install python3-magic python3-flake8)"; exit 1; }; \
	  echo "check-package -b buildroot/"; \
	  cd buildroot && $$py "$(abspath $(BUILDROOT))/utils/check-package" -b $$(find . -type f | LC_ALL=C sort)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  for cfg in buildroot/configs/*_defconfig; do \
	    name=$$(basename $$cfg); echo "defconfig + savedefconfig: $$name"; \
	    $(MAKE) -s -C "$(BUILDROOT)" BR2_EXTERNAL="$(CURDIR)/buildroot" O="$$tmp/$$name" $$name >/dev/null; \
	    $(MAKE) -s -C "$(BUILDROOT)" O="$$tmp/$$name" savedefconfig BR2_DEFCONFIG="$$tmp/$$name/saved" >/dev/null; \
	    diff -u $$cfg "$$tmp/$$name/saved" || { echo "$$cfg: savedefconfig differs"; exit 1; }; \
	  done
