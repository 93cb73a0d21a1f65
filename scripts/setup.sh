#!/bin/sh
# Installs the Debian packages the demo and the tests use (Debian 12).
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
if [ -n "$need" ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	echo "setup: installing$need"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# shellcheck disable=SC2086
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || { echo "setup: Go (1.23 or newer) is needed: https://go.dev/dl/"; exit 1; }
