#!/bin/sh
# Installs the Debian packages the demo and the tests use (Debian 12);
# with the argument "e2e" also those of the emulated-device tests.
# Tools already present are left alone; run as root or with sudo.
set -eu
need=""
check() { command -v "$1" >/dev/null 2>&1 || need="$need $2"; }
check mkfs.ext4 e2fsprogs
check xz xz-utils
check zstd zstd
check casync casync
check openssl openssl
check qemu-arm-static qemu-user-static
check git git
check sfdisk fdisk
check fw_printenv "u-boot-tools libubootenv-tool"
check grub-editenv grub-common
check xdelta3 xdelta3
[ -x /usr/sbin/nginx ] || need="$need nginx-light"
# scripts/setup.sh e2e: also what test/e2e/build.sh and the QEMU tests use.
if [ "${1:-}" = e2e ]; then
	check qemu-system-aarch64 qemu-system-arm
	check genimage genimage
	check mcopy mtools
	check mkfs.vfat dosfstools
	check dtc device-tree-compiler
	check cpio cpio
	check mkimage u-boot-tools
	check readelf binutils
	[ -f /usr/lib/u-boot/qemu_arm64/u-boot.bin ] || need="$need u-boot-qemu"
fi
if [ -n "$need" ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	echo "setup: installing$need"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# shellcheck disable=SC2086
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || { echo "setup: Go (1.23 or newer) is needed: https://go.dev/dl/"; exit 1; }
