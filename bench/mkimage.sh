#!/usr/bin/env bash
# Make realistic ext4 images for the bundle benchmarks (bench/bundle.sh).
#
#   bench/mkimage.sh            # bench/_work/img-256M.ext4 and img-1G.ext4
#   SIZES="1G" bench/mkimage.sh # only some of them
#
# Each image is an ext4 file system of the given size filled to ~70% (file data FILL=65% of the size, plus ext4 metadata)
# with real files of this machine: shared libraries (/usr/lib/<triplet>,
# /usr/lib/python3*, /usr/lib/gcc), /usr/bin, /usr/sbin and /usr/share (docs,
# man pages, locales, icons, ...), i.e. roughly what a Debian root file system
# holds. The files are picked in a fixed pseudo-random order (sort -R with a
# constant random source) until FILL of the image size is reached, so both
# sizes get the same mix of binaries and text. The rest of the image is free
# space (zeros), as in a real rootfs image.
#
# Reproducibility: fixed UUID, hash seed, root owner, mkfs time and file
# selection. On the same machine (same package set) the images hold the same
# files in the same layout. They are not byte-identical across runs because
# mkfs.ext4 -d copies the ctime of the staged files.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=${WORK:-$here/_work}
SIZES=${SIZES:-"256M 1G"}
FILL=${FILL:-65} # percent of the image size filled with file data
UUID=6b617363-756c-6562-656e-636800000001
HASH_SEED=6b617363-756c-6562-656e-636800000002
export E2FSPROGS_FAKE_TIME=1700000000

mkdir -p "$work"
srcs=()
for d in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib/python3 /usr/lib/python3.* \
	/usr/lib/gcc /usr/bin /usr/sbin /usr/share; do
	[ -d "$d" ] && srcs+=("${d#/}")
done

# Candidate files: regular files and symlinks, path and size, in a fixed order.
list=$work/files.all
if [ ! -s "$list" ]; then
	(cd / && find "${srcs[@]}" -xdev \( -type f -o -type l \) -readable -printf '%s\t%p\t%D:%i\n' 2>/dev/null) |
		LC_ALL=C sort -t $'\t' -k2,2 -u |
		LC_ALL=C sort -R --random-source=<(yes bascule-bench 2>/dev/null | head -c 1048576) -t $'\t' -k2,2 >"$list"
fi
# Hard links (e.g. the Mesa dri drivers) are stored once: count them once.
total=$(awk -F'\t' '!seen[$3]++ {s+=$1} END {printf "%d\n", s}' "$list")
echo "candidate files: $(wc -l <"$list"), $((total >> 20)) MiB from: ${srcs[*]}"

to_bytes() {
	case $1 in
	*G) echo $((${1%G} << 30)) ;;
	*M) echo $((${1%M} << 20)) ;;
	*) echo "$1" ;;
	esac
}

for size in $SIZES; do
	img=$work/img-$size.ext4
	bytes=$(to_bytes "$size")
	want=$((bytes * FILL / 100))
	if [ "$total" -lt "$want" ]; then
		echo "warning: only $((total >> 20)) MiB of files for a $size image at $FILL%" >&2
	fi
	stage=$work/tree-$size
	rm -rf "$stage" "$img"
	mkdir -p "$stage"
	# Take files until the allocated size (4 KiB blocks) reaches FILL.
	awk -F'\t' -v want="$want" '!seen[$3]++ { s += int(($1 + 4095) / 4096) * 4096 } s > want { exit } { print $2 }' "$list" >"$work/files-$size"
	(cd / && tar --no-recursion -cf - -T "$work/files-$size" 2>/dev/null) | tar -C "$stage" -xf -
	chmod -R u+rwX,go+rX "$stage"
	find "$stage" -exec touch -h -d @1700000000 {} +
	truncate -s "$bytes" "$img"
	mkfs.ext4 -q -F -T default -b 4096 -U "$UUID" -E "root_owner=0:0,hash_seed=$HASH_SEED" -L bascule-bench -d "$stage" "$img"
	used=$(du -sk --apparent-size "$stage" | cut -f1)
	alloc=$(du -sk "$stage" | cut -f1)
	fsck.ext4 -fn "$img" >/dev/null 2>&1
	read -r blocks free < <(dumpe2fs -h "$img" 2>/dev/null | awk -F: '/^Block count/ {b=$2} /^Free blocks/ {f=$2} END {print b, f}')
	echo "$img: $size, files $(wc -l <"$work/files-$size"), du tree $((alloc >> 10)) MiB (apparent $((used >> 10)) MiB), ext4 used $(((blocks - free) * 100 / blocks))% ($(((blocks - free) * 4 >> 10)) of $((blocks * 4 >> 10)) MiB)"
	rm -rf "$stage"
done
