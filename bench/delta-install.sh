#!/usr/bin/env bash
# The real `bascule update install http://…` for bench/delta.sh: a device
# whose running system slot holds v1.img installs v2.rugixb (adaptive
# delta: the running slot has a casync-64 block index) and then
# delta.rugixb (static delta: the slot database records v1's hash for the
# running slot), both from the URL base given, each into system-b, which is
# then compared with v2.img.
#
#   bench/delta-install.sh WORK URL-BASE     # as root; WORK is bench/_work/delta
#
# The device is a loop disk with Rugix's default MBR layout (as
# cmd/bascule/device_test.go builds it), v1.img written to system-a and
# mounted read-only where pre-init mounts the system, all in private mount
# and PID namespaces (a reboot there could only end the namespace; the
# installs use --reboot no anyway). The host's mounts are not touched.
set -euo pipefail

work=$1
base=$2
B=$work/bin/bascule
if [ "${BASCULE_BENCH_NS:-}" != 1 ]; then
	[ "$(id -u)" = 0 ] || { echo "delta-install.sh: needs root (loop devices, mounts)" >&2; exit 1; }
	BASCULE_BENCH_NS=1 exec unshare --mount --propagation private --pid --fork "$0" "$@"
fi

disk=$work/device.img
rm -f "$disk"
img_mib=$(($(stat -c %s "$work/v1.img") >> 20))
truncate -s $((16 * 3 + 2 * img_mib + 64 + 8))M "$disk"
sfdisk -q "$disk" <<EOF
label: dos
label-id: 0x1a2b3c4d
size=16MiB, type=c
size=16MiB, type=c
size=16MiB, type=c
type=5
size=${img_mib}MiB, type=83
size=${img_mib}MiB, type=83
type=83
EOF
loop=$(losetup -f --show "$disk")
cleanup() {
	for m in /run/rugix/mounts/config /run/rugix/mounts/system /run/rugix/mounts/data /run; do
		umount -l "$m" 2>/dev/null || true
	done
	partx -d "$loop" 2>/dev/null || true
	losetup -d "$loop" || true
	rm -f "$disk"
}
trap cleanup EXIT
partx -a "$loop"
p() { echo "${loop}p$1"; }
for n in 1 6 7; do mkfs.ext4 -q -F "$(p "$n")"; done
# Boot partitions with the cmdline.txt the rpi-tryboot post-install edits.
mkdir -p "$work/boottree"
echo "console=serial0,115200 root=/dev/mmcblk0p5 rootwait" >"$work/boottree/cmdline.txt"
for n in 2 3; do mkfs.ext4 -q -F -d "$work/boottree" "$(p "$n")"; done
dd if="$work/v1.img" of="$(p 5)" bs=4M conv=fsync status=none

mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/rugix/mounts/system /run/rugix/mounts/config /run/rugix/mounts/data /run/cfg
mount "$(p 1)" /run/cfg
printf '[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3' >/run/cfg/autoboot.txt
umount /run/cfg
# noload: while an ext4 file system with a journal is mounted, even
# read-only, reads of its block device return changed journal blocks (seen
# here with Linux 6.18: jbd2 loads the journal through the device's page
# cache), so the slot no longer holds the bytes whose hash the slot
# database recorded, and xdelta3 rejects a static delta against it ("please
# verify the source file"). Without the journal loaded the device reads
# back exactly as installed. See docs/benchmarks.md.
mount -o ro,noload "$(p 5)" /run/rugix/mounts/system
mount "$(p 7)" /run/rugix/mounts/data

# What the slot database knows after v1 was installed by an update: its
# hash (for static delta) and a block index (for adaptive delta).
state=/run/rugix/mounts/data/rugix/slots/system-a
mkdir -p "$state"
v1hash=$("$work/bin/bascule-bundler" inspect --json "$work/v1.rugixb" | sed -n 's/.*"fileHash": *"\([^"]*\)".*/\1/p' | head -1)
printf '{"hashes":{"sha512_256":"%s"},"size":%d,"updated_at":"2026-01-01T00:00:00Z"}' "$v1hash" "$(stat -c %s "$work/v1.img")" >"$state/state.json"
"$B" slots create-index system-a casync-64 sha512-256 >/dev/null

for b in v2 delta; do
	echo "delta-install.sh: bascule update install $base/$b.rugixb" >&2
	"$B" update install --reboot no --insecure-skip-bundle-verification "$base/$b.rugixb" </dev/null >"$work/cli-$b.out"
	grep '"UpdateStats"' "$work/cli-$b.out" >&2
	cmp "$(p 5)" "$work/v1.img"
	cmp -n "$(stat -c %s "$work/v2.img")" "$(p 6)" "$work/v2.img"
done
