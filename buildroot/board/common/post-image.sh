#!/usr/bin/env bash
#
# Bascule post-image script, shared by the boards of this BR2_EXTERNAL tree
# and by the end-to-end tests:
#
#   post-image.sh IMAGES_DIR BOARD_DIR
#
# Buildroot calls it with BR2_ROOTFS_POST_IMAGE_SCRIPT_ARGS=BOARD_DIR. It
# makes, in IMAGES_DIR:
#   sdcard.img           the disk image (BOARD_DIR/genimage.cfg): config,
#                        boot-a, boot-b, system-a; the first boot adds
#                        system-b and data
#   boot.vfat            the boot partition image (also config.vfat)
#   update.rugixb        an update bundle with boot.vfat and rootfs.ext4
#                        (BOARD_DIR/rugix-bundle.toml, or the one next to
#                        this script), signed if a key is configured
#   update.rugixb.hash   its header hash, for "bascule update install
#                        --bundle-hash" when the bundle is not signed
#
# From IMAGES_DIR it takes rootfs.ext4 and, for the boot partition, either
# rpi-firmware/ (Raspberry Pi: firmware, config.txt, cmdline.txt, overlays),
# the *.dtb files and the kernel named by config.txt, or Image and an
# optional initrd.img.
#
# From BOARD_DIR, besides genimage.cfg:
#   cmdline.txt   kernel arguments, when rpi-firmware/cmdline.txt does not
#                 exist; any root= is replaced by root=PARTUUID=<disk
#                 signature of genimage.cfg>-05 (system-a)
#   autoboot.txt  rpi-tryboot: put on the config partition without its
#                 trailing newline, byte for byte as Rugix writes it
#   boot.cmd      rpi-uboot: compiled to boot.scr on the config partition,
#                 with bootpart.default.env and the boot_spare*.env files;
#                 boot.env (bootargs) goes on the boot partition
#
# Environment (all optional):
#   HOST_DIR           HOST_DIR/bin and HOST_DIR/sbin come first in PATH
#                      (genimage, mkdosfs, mtools, mkimage, bascule-bundler)
#   BUILD_DIR          scratch space (default: TMPDIR)
#   BASCULE_BUNDLER    the bascule-bundler to use
#   BASCULE_SIGNING_CERT, BASCULE_SIGNING_KEY
#                      sign update.rugixb (see docs/signing.md)
#   BASCULE_ROOT_CERT  root certificates (space-separated) the signed bundle
#                      must verify against
#   BASCULE_NO_BUNDLE  non-empty: make sdcard.img only
#   BASCULE_XZ_COMMAND an xz program (e.g. xz) that makes the bundle's xz
#                      blocks: ~9% smaller, slower to bundle (see
#                      bascule-bundler bundle --xz-command)

set -euo pipefail

die() {
	echo "post-image.sh: $*" >&2
	exit 1
}

[ $# -ge 2 ] || die "usage: $0 IMAGES_DIR BOARD_DIR"

IMAGES_DIR="$(realpath "$1")"
BOARD_DIR="$(realpath "$2")"
COMMON_DIR="$(dirname "$(realpath "$0")")"
GENIMAGE_CFG="${BOARD_DIR}/genimage.cfg"

if [ -n "${HOST_DIR:-}" ]; then
	PATH="${HOST_DIR}/bin:${HOST_DIR}/sbin:${PATH}"
fi

[ -f "${GENIMAGE_CFG}" ] || die "${GENIMAGE_CFG}: missing"
[ -f "${IMAGES_DIR}/rootfs.ext4" ] || die "${IMAGES_DIR}/rootfs.ext4: missing"

WORK="$(mktemp -d "${BUILD_DIR:-${TMPDIR:-/tmp}}/bascule-post-image.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT
STAGE="${WORK}/stage"
CONFIG="${STAGE}/config"
BOOT="${STAGE}/root/boot"
mkdir -p "${CONFIG}/.rugix" "${BOOT}"

# The MBR disk signature in genimage.cfg names the partitions:
# PARTUUID=<signature>-05 is system-a.
sig="$(sed -n 's/^[[:space:]]*disk-signature[[:space:]]*=[[:space:]]*\(0x[0-9a-fA-F]\{1,8\}\)[[:space:]]*$/\1/p' "${GENIMAGE_CFG}")"
[ -n "${sig}" ] || die "${GENIMAGE_CFG}: no fixed disk-signature = 0x... (the root PARTUUID depends on it)"
DISK_ID="$(printf '%08x' "${sig}")"
ROOT="root=PARTUUID=${DISK_ID}-05"

# write_env FILE KEY=VALUE...: a U-Boot binary environment as the
# rpi-uboot flow reads and writes it: CRC-32 of the entries (little
# endian), then each entry NUL-terminated, no padding. gzip's trailer
# starts with the same CRC-32, little endian.
write_env() {
	local file="$1" body="${WORK}/env.body"
	shift
	printf '%s\0' "$@" >"${body}"
	{
		gzip -c <"${body}" | tail -c 8 | head -c 4
		cat "${body}"
	} >"${file}"
}

# --- boot partition ----------------------------------------------------
if [ -d "${IMAGES_DIR}/rpi-firmware" ]; then
	cp -a "${IMAGES_DIR}/rpi-firmware/." "${BOOT}/"
	for dtb in "${IMAGES_DIR}"/*.dtb; do
		if [ -e "${dtb}" ]; then
			cp "${dtb}" "${BOOT}/"
		fi
	done
	kernel="$(sed -n 's/^kernel=//p' "${BOOT}/config.txt" 2>/dev/null | tail -n 1)"
	kernel="${kernel:-Image}"
	[ -f "${IMAGES_DIR}/${kernel}" ] || die "${IMAGES_DIR}/${kernel}: missing (kernel= of config.txt)"
	cp "${IMAGES_DIR}/${kernel}" "${BOOT}/${kernel}"
else
	[ -f "${IMAGES_DIR}/Image" ] || die "${IMAGES_DIR}/Image: missing"
	cp "${IMAGES_DIR}/Image" "${BOOT}/Image"
	if [ -f "${IMAGES_DIR}/initrd.img" ]; then
		cp "${IMAGES_DIR}/initrd.img" "${BOOT}/initrd.img"
	fi
fi

if [ -f "${BOOT}/cmdline.txt" ]; then
	cmdline_src="${BOOT}/cmdline.txt"
elif [ -f "${BOARD_DIR}/cmdline.txt" ]; then
	cmdline_src="${BOARD_DIR}/cmdline.txt"
else
	die "no cmdline.txt in ${IMAGES_DIR}/rpi-firmware or ${BOARD_DIR}"
fi
words=()
read -r -a words <"${cmdline_src}" || true
args=""
for word in "${words[@]}"; do
	case "${word}" in
	root=*) ;;
	*) args="${args} ${word}" ;;
	esac
done
CMDLINE="${ROOT}${args}"
case "${CMDLINE}" in
*" init="*) ;;
*) echo "post-image.sh: warning: no init= in the kernel command line; bascule's pre-init will not run" >&2 ;;
esac
# One line without a newline, as bascule and Rugix write it after an update.
printf '%s' "${CMDLINE}" >"${BOOT}/cmdline.txt"

# --- config partition --------------------------------------------------
: >"${CONFIG}/.rugix/bootstrap"

if [ -f "${BOARD_DIR}/autoboot.txt" ]; then
	# $(...) drops the trailing newline.
	printf '%s' "$(cat "${BOARD_DIR}/autoboot.txt")" >"${CONFIG}/autoboot.txt"
fi

if [ -f "${BOARD_DIR}/boot.cmd" ]; then
	command -v mkimage >/dev/null || die "mkimage not found (BR2_PACKAGE_HOST_UBOOT_TOOLS, or u-boot-tools)"
	mkimage -A arm64 -O linux -T script -C none -n "bascule boot script" \
		-d "${BOARD_DIR}/boot.cmd" "${CONFIG}/boot.scr" >/dev/null
	write_env "${CONFIG}/bootpart.default.env" "bootpart=2"
	write_env "${CONFIG}/boot_spare.env" "boot_spare=0"
	write_env "${CONFIG}/boot_spare.enabled.env" "boot_spare=1"
	write_env "${CONFIG}/boot_spare.disabled.env" "boot_spare=0"
	write_env "${BOOT}/boot.env" "bootargs=${CMDLINE}"
fi

# --- disk image ----------------------------------------------------------
command -v genimage >/dev/null || die "genimage not found (BR2_PACKAGE_HOST_GENIMAGE, or genimage)"
rm -f "${IMAGES_DIR}/sdcard.img" "${IMAGES_DIR}/boot.vfat" "${IMAGES_DIR}/config.vfat"
BASCULE_STAGE="${STAGE}" genimage \
	--rootpath "${STAGE}/root" \
	--tmppath "${WORK}/genimage.tmp" \
	--inputpath "${IMAGES_DIR}" \
	--outputpath "${IMAGES_DIR}" \
	--config "${GENIMAGE_CFG}"
echo "post-image.sh: ${IMAGES_DIR}/sdcard.img (root=PARTUUID=${DISK_ID}-05)"

[ -z "${BASCULE_NO_BUNDLE:-}" ] || exit 0

# --- update bundle -------------------------------------------------------
bundler="${BASCULE_BUNDLER:-$(command -v bascule-bundler || true)}"
[ -n "${bundler}" ] || die "bascule-bundler not found (BR2_PACKAGE_HOST_BASCULE, or BASCULE_BUNDLER)"

manifest="${BOARD_DIR}/rugix-bundle.toml"
[ -f "${manifest}" ] || manifest="${COMMON_DIR}/rugix-bundle.toml"
BUNDLE_DIR="${WORK}/bundle"
mkdir -p "${BUNDLE_DIR}/payloads"
cp "${manifest}" "${BUNDLE_DIR}/rugix-bundle.toml"
ln -s "${IMAGES_DIR}/boot.vfat" "${BUNDLE_DIR}/payloads/boot.vfat"
ln -s "$(realpath "${IMAGES_DIR}/rootfs.ext4")" "${BUNDLE_DIR}/payloads/rootfs.ext4"

BUNDLE="${IMAGES_DIR}/update.rugixb"
rm -f "${BUNDLE}" "${BUNDLE}.hash"
"${bundler}" bundle ${BASCULE_XZ_COMMAND:+--xz-command "${BASCULE_XZ_COMMAND}"} "${BUNDLE_DIR}" "${BUNDLE}" >/dev/null
"${bundler}" hash "${BUNDLE}" >"${BUNDLE}.hash"

cert="${BASCULE_SIGNING_CERT:-}"
key="${BASCULE_SIGNING_KEY:-}"
if [ -n "${cert}" ] || [ -n "${key}" ]; then
	if [ -z "${cert}" ] || [ -z "${key}" ]; then
		die "signing needs both BASCULE_SIGNING_CERT and BASCULE_SIGNING_KEY"
	fi
	"${bundler}" signatures sign "${BUNDLE}" "${cert}" "${key}" "${BUNDLE}"
	if [ -n "${BASCULE_ROOT_CERT:-}" ]; then
		# shellcheck disable=SC2086 # a list of files
		"${bundler}" signatures verify "${BUNDLE}" ${BASCULE_ROOT_CERT} >/dev/null
	fi
	echo "post-image.sh: ${BUNDLE} (signed by ${cert}), header hash $(cat "${BUNDLE}.hash")"
else
	echo "post-image.sh: ${BUNDLE} (not signed), header hash $(cat "${BUNDLE}.hash")"
fi
