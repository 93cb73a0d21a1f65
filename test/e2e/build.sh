#!/usr/bin/env bash
#
# Builds what the end-to-end tests boot in QEMU (test/e2e/README.md):
# Debian's arm64 cloud kernel with a small module-loading initramfs, BusyBox
# root file systems laid out as Buildroot makes them (versions v1, v2, v3
# and bad-init), and for two boards -- "uboot" (rpi-uboot boot flow) and
# "tryboot" (rpi-tryboot) -- the disk image and signed update bundles, made
# by the same post-image.sh and genimage.cfg as the Buildroot boards.
#
#   test/e2e/build.sh            output in ${E2E_OUT:-_out/e2e}
#
# Debian 12 amd64, as root: missing tools are installed with apt-get, and
# the arm64 packages are downloaded once into $E2E_OUT/debs/. Everything
# else is rebuilt on each run (about a minute). $E2E_OUT/manifest.env names
# the results.

set -euo pipefail

die() {
	echo "build.sh: $*" >&2
	exit 1
}
log() { echo "build.sh: [${SECONDS}s] $*"; }

REPO="$(cd "$(dirname "$(realpath "$0")")/../.." && pwd)"
E2E_DIR="${REPO}/test/e2e"
mkdir -p "${E2E_OUT:=${REPO}/_out/e2e}"
OUT="$(realpath "${E2E_OUT}")"
cd "${REPO}"
export PATH="/usr/local/go/bin:${PATH}"

VERSIONS=(v1 v2 v3 bad-init)
# Made by running post-image.sh on an images dir of that version (v1 is
# the factory image).
BUNDLE_VERSIONS=(v2 v3 bad-init)
ROOTFS_SIZE=64M

# Files in the file systems must belong to root, and dpkg/apt need it too.
[ "$(id -u)" -eq 0 ] || die "run as root (apt-get, and root-owned files in the images)"

# --- host tools ----------------------------------------------------------
need=()
check() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
check qemu-system-aarch64 qemu-system-arm
check qemu-aarch64-static qemu-user-static
check genimage genimage
check mcopy mtools
check mkfs.vfat dosfstools
check dtc device-tree-compiler
check cpio cpio
check mkfs.ext4 e2fsprogs
check mkimage u-boot-tools
check xz xz-utils
check readelf binutils
check gzip gzip
[ -f /usr/lib/u-boot/qemu_arm64/u-boot.bin ] || need+=(u-boot-qemu)
if [ "${#need[@]}" -gt 0 ]; then
	log "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v go >/dev/null || die "Go is needed (/usr/local/go/bin/go)"

# One build at a time per output directory: a second one waits.
exec 9>"${OUT}/.lock"
flock 9
WORK="${OUT}/work"
rm -rf "${WORK}"
mkdir -p "${WORK}" "${OUT}/debs" "${OUT}/bin" "${OUT}/keys"

# --- Debian arm64 packages -----------------------------------------------
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	dpkg --add-architecture arm64
fi

# mke2fs and e2fsck need libext2fs, libe2p (in e2fsprogs itself in
# bookworm), libcom_err, libblkid, libuuid and libc; libss is for debugfs
# but cheap to have. fsck (util-linux in Debian, e2fsprogs in Buildroot),
# which pre-init runs on the data partition, needs libmount, libselinux
# and libpcre2. copy_elf_libs follows the NEEDED entries.
LIB_PKGS=(busybox-static e2fsprogs libc6 libext2fs2 libcom-err2 libblkid1 libuuid1 libss2
	util-linux libmount1 libselinux1 libpcre2-8-0)

# fetch_debs: resolve the packages to the versions of the package lists
# and download those not in $OUT/debs yet; sets KPKG, KVER and DEBS
# (the kernel first). Fails, saying why in FETCH_ERROR, without arm64
# package lists or if the mirror no longer has a version.
FETCH_ERROR=""
fetch_debs() {
	local p v deb
	# The meta package depends on the versioned kernel package; take that.
	KPKG="$(apt-cache depends linux-image-cloud-arm64:arm64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*-cloud-arm64\)\(:arm64\)\?$/\1/p' | head -n 1)"
	if [ -z "${KPKG}" ]; then
		FETCH_ERROR="cannot resolve linux-image-cloud-arm64:arm64 to a kernel package"
		return 1
	fi
	KVER="${KPKG#linux-image-}"
	# One apt-cache call for all (each takes seconds): "package version".
	local -A ver=()
	while read -r p v; do
		ver["${p}"]="${v}"
	done < <(apt-cache show --no-all-versions "${KPKG}:arm64" "${LIB_PKGS[@]/%/:arm64}" 2>/dev/null |
		sed -n 's/^Package: //p; s/^Version: //p' | paste - -)
	DEBS=()
	for p in "${KPKG}" "${LIB_PKGS[@]}"; do
		v="${ver[${p}]:-}"
		if [ -z "${v}" ]; then
			FETCH_ERROR="${p}:arm64: not in the package lists"
			return 1
		fi
		deb="${OUT}/debs/${p}_${v//:/%3a}_arm64.deb"
		if [ ! -f "${deb}" ]; then
			log "downloading ${p}:arm64 ${v}"
			# apt-get download writes into the current directory; the
			# sandbox user _apt may not be able to write there.
			if ! (cd "${OUT}/debs" && apt-get download -q -o APT::Sandbox::User=root "${p}:arm64=${v}" >/dev/null); then
				FETCH_ERROR="cannot download ${p}:arm64 ${v}"
				return 1
			fi
		fi
		[ -f "${deb}" ] || die "${deb}: not downloaded"
		DEBS+=("${deb}")
	done
}
if ! fetch_debs; then
	# No arm64 lists yet, or old ones naming versions the mirror dropped.
	log "${FETCH_ERROR}: apt-get update and again"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	fetch_debs || die "${FETCH_ERROR}"
fi
# Unpacked once per set of packages (the kernel takes a while).
PKGROOT="${OUT}/pkgroot"
stamp="$(printf '%s\n' "${DEBS[@]##*/}")"
if [ "$(cat "${PKGROOT}/.debs" 2>/dev/null)" != "${stamp}" ]; then
	rm -rf "${PKGROOT}"
	mkdir -p "${PKGROOT}"
	for deb in "${DEBS[@]}"; do
		dpkg -x "${deb}" "${PKGROOT}"
	done
	printf '%s\n' "${stamp}" >"${PKGROOT}/.debs"
fi
KPKG_VERSION="$(dpkg-deb -f "${DEBS[0]}" Version)"
MODDIR="${PKGROOT}/lib/modules/${KVER}"
[ -d "${MODDIR}/kernel" ] || die "${MODDIR}: no modules"
mkdir -p "${OUT}/kernel"
cp "${PKGROOT}/boot/vmlinuz-${KVER}" "${OUT}/kernel/Image"
cp "${PKGROOT}/boot/config-${KVER}" "${OUT}/kernel/config"
log "kernel ${KPKG} ${KPKG_VERSION}"

# --- bascule -------------------------------------------------------------
# The ldflags of the Buildroot package (buildroot/package/bascule).
GIT_VERSION="$(git -C "${REPO}" describe --tags --always --dirty 2>/dev/null || echo e2e)"
LDFLAGS="-X github.com/bascule-ota/bascule/internal/version.Version=${GIT_VERSION}"
BASCULE="${OUT}/bin/bascule-arm64"
BUNDLER="${OUT}/bin/bascule-bundler"
CGO_ENABLED=0 GOARCH=arm64 go build -trimpath \
	-ldflags "${LDFLAGS} -X github.com/bascule-ota/bascule/internal/sign.clockFloor=$(date -u +%F)" \
	-o "${BASCULE}" ./cmd/bascule
CGO_ENABLED=0 go build -trimpath -ldflags "${LDFLAGS}" -o "${BUNDLER}" ./cmd/bascule-bundler
log "bascule ${GIT_VERSION}"

# --- keys (made once) ----------------------------------------------------
KEYS="${OUT}/keys"
if [ ! -f "${KEYS}/root.pem" ] || [ ! -f "${KEYS}/root.key" ]; then
	rm -f "${KEYS}"/root.* "${KEYS}"/signer.*
	"${BUNDLER}" keys create-ca --name "Bascule E2E Root" \
		--out-cert "${KEYS}/root.pem" --out-key "${KEYS}/root.key"
fi
if [ ! -f "${KEYS}/signer.pem" ] || [ ! -f "${KEYS}/signer.key" ]; then
	rm -f "${KEYS}"/signer.*
	"${BUNDLER}" keys create-signer --ca-cert "${KEYS}/root.pem" --ca-key "${KEYS}/root.key" \
		--name "Bascule E2E Signer" --out-cert "${KEYS}/signer.pem" --out-key "${KEYS}/signer.key"
fi

# --- initramfs -----------------------------------------------------------
# Only what a Raspberry Pi Buildroot kernel has built in and Debian's has
# as modules (see image/initramfs-init). virtio_net is for tests that
# download over HTTP from the host.
WANT_MODULES=(virtio_mmio virtio_pci virtio_blk virtio_net fat vfat nls_cp437 nls_iso8859_1 nls_ascii overlay)
declare -A KO_PATH=() LOADED=()
while IFS= read -r f; do
	n="${f##*/}"
	n="${n%%.ko*}"
	KO_PATH["${n//-/_}"]="${f}"
done < <(find "${MODDIR}/kernel" -name '*.ko*')

INITRAMFS="${WORK}/initramfs"
mkdir -p "${INITRAMFS}"/{bin,dev,proc,sys,newroot,lib/modules}
: >"${INITRAMFS}/lib/modules/load-order"

# add_module NAME: the module after its dependencies (the "depends=" of
# its .modinfo), decompressed, into the initramfs and its load order.
add_module() {
	local name="$1" src dst dep deps
	[ -z "${LOADED[${name}]:-}" ] || return 0
	LOADED["${name}"]=1
	src="${KO_PATH[${name}]:-}"
	if [ -z "${src}" ]; then
		# Built in: nothing to load.
		grep -q "/${name//_/[-_]}\.ko\$" "${MODDIR}/modules.builtin" ||
			die "kernel module ${name}: neither a module nor built in"
		return 0
	fi
	dst="${INITRAMFS}/lib/modules/${name}.ko"
	case "${src}" in
	*.ko) cp "${src}" "${dst}" ;;
	*.ko.xz) xz -dc "${src}" >"${dst}" ;;
	*.ko.zst) zstd -qdc "${src}" >"${dst}" ;;
	*.ko.gz) gzip -dc "${src}" >"${dst}" ;;
	*) die "${src}: unknown module compression" ;;
	esac
	deps="$(tr '\0' '\n' <"${dst}" | sed -n 's/^depends=//p' | head -n 1)"
	for dep in ${deps//,/ }; do
		add_module "${dep//-/_}"
	done
	echo "${name}.ko" >>"${INITRAMFS}/lib/modules/load-order"
}
for m in "${WANT_MODULES[@]}"; do
	add_module "${m}"
done

cp "${PKGROOT}/bin/busybox" "${INITRAMFS}/bin/busybox"
for applet in sh mount umount insmod mkdir cat cut od tr usleep switch_root; do
	ln -s busybox "${INITRAMFS}/bin/${applet}"
done
install -m 0755 "${E2E_DIR}/image/initramfs-init" "${INITRAMFS}/init"
# The kernel's own initramfs has /dev/console too; this one does not rely
# on it.
mknod -m 0600 "${INITRAMFS}/dev/console" c 5 1
INITRD="${OUT}/kernel/initrd.img"
(cd "${INITRAMFS}" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n >"${INITRD}"
log "initrd.img: $(tr '\n' ' ' <"${INITRAMFS}/lib/modules/load-order")"

# --- root file systems ---------------------------------------------------
# copy_elf_libs ROOT FILE...: the shared libraries the files need
# (readelf NEEDED, recursively), from the unpacked packages into ROOT in
# Debian's layout.
copy_elf_libs() {
	local root="$1" lib f dir found
	shift
	local -a todo=("$@")
	local -A seen=()
	while [ "${#todo[@]}" -gt 0 ]; do
		f="${todo[0]}"
		todo=("${todo[@]:1}")
		for lib in $(readelf -d "${f}" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
			[ -z "${seen[${lib}]:-}" ] || continue
			seen["${lib}"]=1
			found=""
			for dir in lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu; do
				if [ -e "${PKGROOT}/${dir}/${lib}" ]; then
					found="${dir}/${lib}"
					break
				fi
			done
			[ -n "${found}" ] || die "${f##*/} needs ${lib}: not in the unpacked packages"
			mkdir -p "${root}/${dir}"
			# The soname link and the file it names.
			cp -a "${PKGROOT}/${found}" "${root}/${dir}/"
			if [ -L "${PKGROOT}/${found}" ]; then
				cp -a "$(realpath "${PKGROOT}/${found}")" "${root}/${dir}/"
			fi
			todo+=("${PKGROOT}/${found}")
		done
	done
	# The dynamic loader where the binaries look for it.
	cp -a "${PKGROOT}/lib/ld-linux-aarch64.so.1" "${root}/lib/"
}

# make_tree VERSION DIR: the root file system of one test system.
make_tree() {
	local v="$1" r="$2" t
	mkdir -p "${r}"/{bin,sbin,usr/bin,usr/sbin,lib,etc/rugix,proc,sys,dev,run,tmp,mnt,root,var/lib/e2e}
	chmod 1777 "${r}/tmp"
	chmod 0700 "${r}/root"
	cp -a "${E2E_DIR}/image/rootfs/." "${r}/"
	chmod 0755 "${r}/etc/init.d/rcS"

	# e2fsprogs where Buildroot installs it: bascule's first boot runs
	# /usr/sbin/mkfs.ext4 for the data partition, and every boot fsck.
	cp "${PKGROOT}/sbin/mke2fs" "${PKGROOT}/sbin/e2fsck" "${PKGROOT}/sbin/fsck" "${r}/usr/sbin/"
	ln -s mke2fs "${r}/usr/sbin/mkfs.ext4"
	ln -s e2fsck "${r}/usr/sbin/fsck.ext4"
	cp "${PKGROOT}/etc/mke2fs.conf" "${r}/etc/"
	copy_elf_libs "${r}" "${r}/usr/sbin/mke2fs" "${r}/usr/sbin/e2fsck" "${r}/usr/sbin/fsck"

	# BusyBox and its applets, as Buildroot installs them: relative links,
	# none over a real program.
	cp "${PKGROOT}/bin/busybox" "${r}/bin/busybox"
	local applet dir up
	while read -r applet; do
		case "${applet}" in
		bin/busybox | linuxrc) continue ;;
		esac
		for dir in bin sbin usr/bin usr/sbin; do
			if [ -e "${r}/${dir}/${applet##*/}" ]; then
				continue 2
			fi
		done
		dir="${applet%/*}"
		case "${dir}" in
		bin | sbin) up=".." ;;
		usr/bin | usr/sbin) up="../.." ;;
		*) die "busybox applet ${applet}: unexpected directory" ;;
		esac
		mkdir -p "${r}/${dir}"
		ln -s "${up}/bin/busybox" "${r}/${applet}"
	done < <(qemu-aarch64-static "${r}/bin/busybox" --list-full | LC_ALL=C sort)
	[ -L "${r}/sbin/init" ] || die "busybox has no init applet"

	install -m 0755 "${BASCULE}" "${r}/usr/bin/bascule"
	cp "${BOARD_SYSTEM_TOML}" "${r}/etc/rugix/system.toml"
	cp "${REPO}/buildroot/board/qemu-aarch64-virt/rootfs-overlay/etc/rugix/bootstrapping.toml" "${r}/etc/rugix/"
	# Trust the e2e root as BR2_PACKAGE_BASCULE_ROOT_CERT does.
	install -D -m 0644 "${KEYS}/root.pem" "${r}/etc/bascule/roots/root.pem"
	printf '[signatures]\nroots = ["/etc/bascule/roots/root.pem"]\n' >"${r}/etc/rugix/ctrl.toml"

	# What tells the versions apart: the marker, and some KiB of data so
	# that a delta between two versions is small but not empty.
	echo "${v}" >"${r}/etc/bascule-e2e-version"
	mkdir -p "${r}/usr/share/bascule-e2e"
	for t in $(seq 1 400); do
		printf '%s line %04d of the e2e payload\n' "${v}" "${t}"
	done >"${r}/usr/share/bascule-e2e/data.txt"

	if [ "${v}" = bad-init ]; then
		rm "${r}/sbin/init"
		install -m 0755 "${E2E_DIR}/image/bad-init" "${r}/sbin/init"
	fi
}

# make_rootfs VERSION OUTPUT: the tree as an ext4 image, reproducibly.
make_rootfs() {
	local v="$1" img="$2" tree="${WORK}/tree-$1" uuid
	rm -rf "${tree}"
	make_tree "${v}" "${tree}"
	# The libraries must be complete: run mkfs.ext4 of the tree.
	for t in mkfs.ext4 fsck.ext4 fsck; do
		qemu-aarch64-static -L "${tree}" "${tree}/usr/sbin/${t}" -V >/dev/null 2>&1 ||
			die "${v}: ${t} in the root file system does not run (missing libraries?)"
	done
	# Same input, same image: fixed times, UUID and hash seed.
	find "${tree}" -exec touch -h -d @1700000000 {} +
	uuid="$(printf '%s' "bascule-e2e-${v}" | sha256sum | sed 's/^\(.\{8\}\)\(.\{4\}\)\(.\{4\}\)\(.\{4\}\)\(.\{12\}\).*/\1-\2-\3-\4-\5/')"
	rm -f "${img}"
	E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -L system -U "${uuid}" \
		-E "root_owner=0:0,hash_seed=${uuid}" -d "${tree}" "${img}" "${ROOTFS_SIZE}" >/dev/null
	rm -rf "${tree}"
}

# --- boards --------------------------------------------------------------
POST_IMAGE="${REPO}/buildroot/board/common/post-image.sh"
export BUILD_DIR="${WORK}"
export BASCULE_BUNDLER="${BUNDLER}"

# post_image IMAGES_DIR BOARD_DIR SIGNED(yes|no|none): post-image.sh as
# Buildroot runs it; "none" makes sdcard.img only.
post_image() {
	local images="$1" board="$2" signed="$3"
	case "${signed}" in
	yes)
		BASCULE_SIGNING_CERT="${KEYS}/signer.pem" BASCULE_SIGNING_KEY="${KEYS}/signer.key" \
			BASCULE_ROOT_CERT="${KEYS}/root.pem" "${POST_IMAGE}" "${images}" "${board}"
		;;
	no)
		env -u BASCULE_SIGNING_CERT -u BASCULE_SIGNING_KEY -u BASCULE_ROOT_CERT \
			"${POST_IMAGE}" "${images}" "${board}"
		;;
	none)
		BASCULE_NO_BUNDLE=1 "${POST_IMAGE}" "${images}" "${board}"
		;;
	esac >"${WORK}/post-image.log" 2>&1 || {
		cat "${WORK}/post-image.log" >&2
		die "post-image.sh ${images} ${board} failed"
	}
}

# stage_images BOARD VERSION DIR: an output/images directory of that board
# and version.
stage_images() {
	local board="$1" v="$2" dir="$3" bdir
	rm -rf "${dir}"
	mkdir -p "${dir}"
	cp "${OUT}/kernel/Image" "${dir}/Image"
	cp "${OUT}/rootfs-${board}/${v}.ext4" "${dir}/rootfs.ext4"
	case "${board}" in
	uboot)
		cp "${INITRD}" "${dir}/initrd.img"
		;;
	tryboot)
		# post-image.sh copies rpi-firmware/ to the boot partition and,
		# in this branch, only the kernel besides it: the initramfs
		# goes into rpi-firmware/, config.txt loads it.
		bdir="${REPO}/buildroot/board/raspberrypi4-64"
		mkdir -p "${dir}/rpi-firmware"
		{
			cat "${bdir}/config.txt"
			printf '\n# e2e: the module-loading initramfs (test/e2e/README.md)\ninitramfs initrd.img followkernel\n'
		} >"${dir}/rpi-firmware/config.txt"
		# panic=1: the stand-in for the Pi's hardware watchdog.
		printf '%s panic=1\n' "$(cat "${bdir}/cmdline.txt")" >"${dir}/rpi-firmware/cmdline.txt"
		cp "${INITRD}" "${dir}/rpi-firmware/initrd.img"
		# The GPU firmware that config.txt names (start_file, fixup_file).
		# The harness plays the firmware, so they are empty, but they are
		# there: the firmware model, like the EEPROM bootloader, only boots
		# a partition that holds start4.elf.
		: >"${dir}/rpi-firmware/start4.elf"
		: >"${dir}/rpi-firmware/fixup4.dat"
		;;
	esac
}

declare -A BOARD_DIRS=(
	[uboot]="${REPO}/buildroot/board/qemu-aarch64-virt"
	[tryboot]="${REPO}/buildroot/board/raspberrypi4-64"
)
# The kernel must reset on a panic (panic=1), as the Pi's watchdog makes
# it: a trial boot that panics must come back to the committed group. The
# tryboot board gets it in rpi-firmware/cmdline.txt (stage_images). If the
# QEMU board's own cmdline.txt lacks it, post-image.sh gets a board
# directory of links to the real files (the same genimage.cfg, boot.cmd,
# system.toml) with only cmdline.txt extended.
if ! grep -qw 'panic=1' "${BOARD_DIRS[uboot]}/cmdline.txt"; then
	log "note: ${BOARD_DIRS[uboot]}/cmdline.txt has no panic=1; adding it for the e2e images"
	link_dir="${WORK}/board-uboot"
	mkdir -p "${link_dir}"
	for f in "${BOARD_DIRS[uboot]}"/*; do
		ln -s "${f}" "${link_dir}/${f##*/}"
	done
	rm "${link_dir}/cmdline.txt"
	printf '%s panic=1\n' "$(cat "${BOARD_DIRS[uboot]}/cmdline.txt")" >"${link_dir}/cmdline.txt"
	BOARD_DIRS[uboot]="${link_dir}"
fi
MANIFEST="${WORK}/manifest.env"
{
	echo "# test/e2e/build.sh $(date -u +%FT%TZ); paths are absolute, values have no spaces"
	echo "E2E_OUT=${OUT}"
	echo "E2E_VERSIONS=$(
		IFS=,
		echo "${VERSIONS[*]}"
	)"
	echo "E2E_BASCULE_VERSION=${GIT_VERSION}"
	echo "E2E_KERNEL_PACKAGE=${KPKG}"
	echo "E2E_KERNEL_PACKAGE_VERSION=${KPKG_VERSION}"
	echo "E2E_KERNEL_VERSION=${KVER}"
	echo "E2E_KERNEL=${OUT}/kernel/Image"
	echo "E2E_INITRD=${INITRD}"
	echo "E2E_UBOOT_BIN=${OUT}/uboot/u-boot.bin"
	echo "E2E_BASCULE_ARM64=${BASCULE}"
	echo "E2E_BUNDLER=${BUNDLER}"
	echo "E2E_ROOT_CERT=${KEYS}/root.pem"
	echo "E2E_SIGNER_CERT=${KEYS}/signer.pem"
	echo "E2E_SIGNER_KEY=${KEYS}/signer.key"
} >"${MANIFEST}"

for board in uboot tryboot; do
	BOARD_DIR="${BOARD_DIRS[${board}]}"
	BOARD_SYSTEM_TOML="${BOARD_DIR}/system.toml"
	bout="${OUT}/${board}"
	rm -rf "${bout}" "${OUT}/rootfs-${board}"
	mkdir -p "${bout}/bundles" "${OUT}/rootfs-${board}"
	# The systems differ per board only in /etc/rugix/system.toml.
	for v in "${VERSIONS[@]}"; do
		make_rootfs "${v}" "${OUT}/rootfs-${board}/${v}.ext4"
	done

	# The factory image: v1, grown to 4 GiB for the first boot's new
	# partitions (sparse).
	stage_images "${board}" v1 "${bout}/images"
	post_image "${bout}/images" "${BOARD_DIR}" none
	mv "${bout}/images/sdcard.img" "${bout}/sdcard.img"
	truncate -s 4G "${bout}/sdcard.img"

	for v in "${BUNDLE_VERSIONS[@]}"; do
		stage_images "${board}" "${v}" "${WORK}/${board}-${v}"
		post_image "${WORK}/${board}-${v}" "${BOARD_DIR}" yes
		mv "${WORK}/${board}-${v}/update.rugixb" "${bout}/bundles/${v}.rugixb"
		mv "${WORK}/${board}-${v}/update.rugixb.hash" "${bout}/bundles/${v}.rugixb.hash"
		if [ "${v}" = v2 ]; then
			post_image "${WORK}/${board}-${v}" "${BOARD_DIR}" no
			mv "${WORK}/${board}-${v}/update.rugixb" "${bout}/bundles/v2-unsigned.rugixb"
			mv "${WORK}/${board}-${v}/update.rugixb.hash" "${bout}/bundles/v2-unsigned.rugixb.hash"
		fi
		rm -rf "${WORK}/${board}-${v}"
	done

	# The kernel command line post-image.sh put on boot-a.
	mcopy -n -i "${bout}/images/boot.vfat" ::cmdline.txt "${bout}/cmdline.txt"
	{
		B="E2E_$(echo "${board}" | tr '[:lower:]' '[:upper:]')"
		echo "${B}_BOARD_DIR=$(dirname "$(realpath "${BOARD_DIR}/genimage.cfg")")"
		echo "${B}_SDCARD=${bout}/sdcard.img"
		echo "${B}_IMAGES=${bout}/images"
		echo "${B}_CMDLINE_FILE=${bout}/cmdline.txt"
		for v in "${BUNDLE_VERSIONS[@]}" v2-unsigned; do
			V="$(echo "${v}" | tr '[:lower:]-' '[:upper:]_')"
			echo "${B}_BUNDLE_${V}=${bout}/bundles/${v}.rugixb"
			echo "${B}_BUNDLE_${V}_HASH=$(cat "${bout}/bundles/${v}.rugixb.hash")"
		done
		for v in "${VERSIONS[@]}"; do
			V="$(echo "${v}" | tr '[:lower:]-' '[:upper:]_')"
			echo "${B}_ROOTFS_${V}=${OUT}/rootfs-${board}/${v}.ext4"
		done
	} >>"${MANIFEST}"
	log "${board}: ${bout}/sdcard.img, bundles ${BUNDLE_VERSIONS[*]} v2-unsigned"
done

mkdir -p "${OUT}/uboot"
cp /usr/lib/u-boot/qemu_arm64/u-boot.bin "${OUT}/uboot/u-boot.bin"

mv "${MANIFEST}" "${OUT}/manifest.env"
rm -rf "${WORK}"
log "done: ${OUT}/manifest.env"
