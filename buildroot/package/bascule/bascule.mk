################################################################################
#
# bascule
#
################################################################################

ifeq ($(BR2_PACKAGE_BASCULE_SOURCE_RELEASE),y)
BASCULE_VERSION = $(call qstrip,$(BR2_PACKAGE_BASCULE_RELEASE_VERSION))
BASCULE_SITE = $(call github,bascule-ota,bascule,v$(BASCULE_VERSION))
else
# The Bascule checkout this BR2_EXTERNAL tree lives in (BASCULE_GO_VENDOR
# below provides its Go modules).
BASCULE_VERSION = local
BASCULE_SITE = $(realpath $(BR2_EXTERNAL_BASCULE_PATH)/..)
BASCULE_SITE_METHOD = local
endif

BASCULE_GOMOD = github.com/bascule-ota/bascule
HOST_BASCULE_GOMOD = $(BASCULE_GOMOD)
BASCULE_BUILD_TARGETS = cmd/bascule
HOST_BASCULE_BUILD_TARGETS = cmd/bascule-bundler
# GOPROXY: where "go mod vendor" fetches modules, for the vendoring of a
# release tarball at download time (instead of Buildroot's GOPROXY=direct,
# which needs git access to every module's repository) and of a local tree
# (BASCULE_GO_VENDOR). Builds use vendor/ only.
BASCULE_GOPROXY ?= https://proxy.golang.org,direct
BASCULE_GO_ENV = CGO_ENABLED=0 GOPROXY="$(BASCULE_GOPROXY)"
HOST_BASCULE_GO_ENV = $(BASCULE_GO_ENV)

# A local source tree is rsynced: take only what the Go build needs (and
# vendor/ if the checkout has one), not bench data, binaries or an output
# directory someone put there.
BASCULE_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--include='/vendor/***' \
	--exclude='/bench/' \
	--exclude='/bin/' \
	--exclude='/buildroot/' \
	--exclude='/output/' \
	--exclude='testdata/' \
	--exclude='*_test.go' \
	--include='*/' \
	--include='*.go' \
	--include='*.s' \
	--include='/go.mod' \
	--include='/go.sum' \
	--include='/LICENSE*' \
	--exclude='*' \
	--prune-empty-dirs
HOST_BASCULE_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	$(BASCULE_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS)

# Say so when a local tree is not Bascule's (a copy of this BR2_EXTERNAL
# tree outside a Bascule checkout), rather than failing later in the build.
define BASCULE_CHECK_SRCDIR
	test -f $(SRCDIR)/go.mod || { \
		echo "$(SRCDIR): not a Bascule source tree (no go.mod); see docs/buildroot.md" >&2; \
		exit 1; }
endef
BASCULE_PRE_RSYNC_HOOKS += BASCULE_CHECK_SRCDIR
HOST_BASCULE_PRE_RSYNC_HOOKS += BASCULE_CHECK_SRCDIR

# Version stamp: the release version, or what git says about a local tree.
BASCULE_GIT_VERSION = $(if $(BASCULE_OVERRIDE_SRCDIR),$(shell \
	git -C $(BASCULE_OVERRIDE_SRCDIR) describe --tags --always --dirty 2>/dev/null))
BASCULE_VERSION_LDFLAGS = \
	-X $(BASCULE_GOMOD)/internal/version.Version=$(or $(BASCULE_GIT_VERSION),$(BASCULE_VERSION))
# Signatures are checked against the clock only after this date: devices
# without a real-time clock boot in 1970 (see docs/signing.md).
BASCULE_CLOCK_FLOOR = $(shell date -u $(if $(SOURCE_DATE_EPOCH),-d @$(SOURCE_DATE_EPOCH)) +%F)
BASCULE_LDFLAGS = \
	$(BASCULE_VERSION_LDFLAGS) \
	-X $(BASCULE_GOMOD)/internal/sign.clockFloor=$(BASCULE_CLOCK_FLOOR)
HOST_BASCULE_LDFLAGS = $(BASCULE_VERSION_LDFLAGS)

# Buildroot vendors Go modules only when it downloads a tarball: a local
# source tree (this checkout, or BASCULE_OVERRIDE_SRCDIR) is rsynced as is.
# Unless the tree has its own vendor/ (go mod vendor), vendor the modules
# before the build from a module cache kept in the download directory: the
# first build fills it from BASCULE_GOPROXY, later ones need no network
# (BASCULE_GOPROXY=off makes sure).
BASCULE_GOMODCACHE ?= $(DL_DIR)/bascule/go-mod

define BASCULE_GO_VENDOR
	if [ -n "$($(PKG)_OVERRIDE_SRCDIR)" ] && \
		[ ! -f "$($(PKG)_OVERRIDE_SRCDIR)/vendor/modules.txt" ]; then \
		rm -rf $(@D)/vendor && \
		cd $(@D) && \
		$(HOST_GO_COMMON_ENV) \
			GOFLAGS= \
			GOPROXY="$(BASCULE_GOPROXY)" \
			GOMODCACHE="$(BASCULE_GOMODCACHE)" \
			$(GO_BIN) mod vendor -modcacherw; \
	fi
endef
BASCULE_PRE_BUILD_HOOKS += BASCULE_GO_VENDOR
HOST_BASCULE_PRE_BUILD_HOOKS += BASCULE_GO_VENDOR

ifeq ($(BR2_PACKAGE_BASCULE_RUGIX_CTRL),y)
define BASCULE_INSTALL_RUGIX_CTRL
	ln -sf bascule $(TARGET_DIR)/usr/bin/rugix-ctrl
endef
BASCULE_POST_INSTALL_TARGET_HOOKS += BASCULE_INSTALL_RUGIX_CTRL
endif

BASCULE_SYSTEM_TOML = $(or $(call qstrip,$(BR2_PACKAGE_BASCULE_SYSTEM_TOML)),$(BASCULE_PKGDIR)/system.toml)

define BASCULE_INSTALL_SYSTEM_TOML
	$(INSTALL) -D -m 0644 $(BASCULE_SYSTEM_TOML) \
		$(TARGET_DIR)/etc/rugix/system.toml
endef
BASCULE_POST_INSTALL_TARGET_HOOKS += BASCULE_INSTALL_SYSTEM_TOML

BASCULE_ROOT_CERTS = $(call qstrip,$(BR2_PACKAGE_BASCULE_ROOT_CERT))

ifneq ($(BASCULE_ROOT_CERTS),)
define BASCULE_INSTALL_ROOT_CERTS
	rm -rf $(TARGET_DIR)/etc/bascule/roots
	$(foreach f,$(BASCULE_ROOT_CERTS),\
		$(INSTALL) -D -m 0644 $(f) \
			$(TARGET_DIR)/etc/bascule/roots/$(notdir $(f))$(sep))
	mkdir -p $(TARGET_DIR)/etc/rugix
	printf '[signatures]\nroots = [%s]\n' \
		'$(subst $(space),$(comma) ,$(foreach f,$(BASCULE_ROOT_CERTS),"/etc/bascule/roots/$(notdir $(f))"))' \
		> $(TARGET_DIR)/etc/rugix/ctrl.toml
endef
BASCULE_POST_INSTALL_TARGET_HOOKS += BASCULE_INSTALL_ROOT_CERTS
endif

ifeq ($(BR2_PACKAGE_BASCULE_AUTO_COMMIT),y)
define BASCULE_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(BASCULE_PKGDIR)/S99bascule \
		$(TARGET_DIR)/etc/init.d/S99bascule
endef

define BASCULE_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(BASCULE_PKGDIR)/bascule-commit.service \
		$(TARGET_DIR)/usr/lib/systemd/system/bascule-commit.service
endef
endif

# The post-image script (board/common/post-image.sh) signs the bundle with
# these and checks it against the device's roots. Variables set in the
# environment take precedence.
ifeq ($(BR2_PACKAGE_HOST_BASCULE),y)
export BASCULE_SIGNING_CERT ?= $(call qstrip,$(BR2_PACKAGE_HOST_BASCULE_SIGNING_CERT))
export BASCULE_SIGNING_KEY ?= $(call qstrip,$(BR2_PACKAGE_HOST_BASCULE_SIGNING_KEY))
export BASCULE_ROOT_CERT ?= $(BASCULE_ROOT_CERTS)
endif

# Spelled out: <pkg>_INSTALL_BINS, which 2025.02 needs here, is an error
# from 2025.11 on.
define HOST_BASCULE_INSTALL_CMDS
	$(INSTALL) -D -m 0755 $(@D)/bin/bascule-bundler \
		$(HOST_DIR)/bin/bascule-bundler
endef

$(eval $(golang-package))
$(eval $(host-golang-package))
