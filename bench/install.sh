#!/usr/bin/env bash
# Benchmark `bascule update install` on an emulated device against the bare
# pipelines that write the same slot (`xz -dc image.xz | dd of=slot`), and
# measure its peak memory for 256 MiB, 1 GiB and 2 GiB payloads and the size
# of the static binary. Run as root (loop devices, mounts):
#
#   bench/install.sh                 # everything, report in bench/results-install.md
#   REPS=3 bench/install.sh          # more runs of each measurement
#
# The device is the one of cmd/bascule/device_test.go, scaled up: a sparse
# disk image on a loop device with the default MBR layout (config, boot-a,
# boot-b, extended, system-a, system-b, data), ext4 file systems, inside a
# private mount namespace (unshare --mount --propagation private) with a
# tmpfs on /run, system-a mounted read-only at /run/rugix/mounts/system and
# the data partition at /run/rugix/mounts/data. The host's mounts are not
# touched; the loop device is detached at the end, also on failure.
# `update install` always runs with --reboot no.
#
# Payloads: the realistic ext4 images of bench/mkimage.sh (bench/_work/
# img-256M.ext4 and img-1G.ext4, reused if they exist) and a 2 GiB one
# made the same way (65% full: 1.3 GiB of files), bundled with
# bascule-bundler as casync-64, sha512-256, deduplicated, xz level 6 or
# zstd level 3; and, for memory only, "2Gdup", the 1 GiB image twice (every
# block of the second half repeats one 1 GiB earlier). Bundles, the whole-image `xz -6 -T1` and `zstd -3` files and
# the images are cached in $WORK and rebuilt only when an image is newer
# (the first run takes ~12 minutes longer, mostly for `xz -6 -T1`; later
# runs take 6-10 minutes on 2 CPUs).
#
# Every measurement runs under /usr/bin/time -f '%e %U %S %M' (wall, user,
# system CPU, peak RSS of the largest process). Before each run the input
# (bundle or compressed image) is read into the page cache and the slot's
# page cache is dropped (blockdev --flushbufs); the slot is written through
# the page cache and both sides fsync it (bascule fsyncs the slot, the bare
# pipeline uses dd conv=fsync), so both end with the data on the backing
# file. DROP_CACHES=1 drops all caches (sync; echo 3 > drop_caches) before
# each run instead, so inputs come from disk (this disturbs other
# benchmarks running on the machine). "other CPU" is CPU time used by other
# processes during the run (from /proc/stat): if it is large, the row was
# disturbed.
#
# Environment: REPS (2) runs of each measurement, interleaved, the fastest
# is reported and all are listed (peak RSS: the largest of all runs);
# QUIET_WAIT (30) seconds at most to wait for an idle
# machine before each run; WORK (bench/_work/install); RESULTS
# (bench/results-install.md); REBUILD=1 rebuilds the cached bundles;
# PREPARE_ONLY=1 only builds the binaries, images and bundles; ONLY=regexp
# runs only the measurements whose id matches (e.g. ONLY='install-xz-.*');
# BASCULE=path measures that bascule binary instead of a fresh build;
# REPORT_ONLY=1 rewrites the report from the last run's $WORK/results.tsv.
# Hand-written notes after a "## Notes" line in the results file are kept.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=${WORK:-$here/_work/install}
REPS=${REPS:-2}
QUIET_WAIT=${QUIET_WAIT:-30}
DROP_CACHES=${DROP_CACHES:-0}
RESULTS=${RESULTS:-$here/results-install.md}
REBUILD=${REBUILD:-0}
export WORK=$work REPS QUIET_WAIT DROP_CACHES RESULTS

log() { echo "== $*" >&2; }
size_of() { stat -c %s "$1"; }

# busy_jiffies, wait_quiet
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

# ---------------------------------------------------------------------------
# Inside the private mount namespace: the emulated device and the
# measurements. Called as `install.sh __device` by the outer part.
# ---------------------------------------------------------------------------
device() {
	local disk=$work/disk.img tsv=$work/results.tsv bin=${BASCULE:-$work/bascule}
	local big
	big=$(stat -c %s "$work"/img-*.ext4 | sort -n | tail -1)
	local slot_mib=$((big / 1048576 + 16))
	log "device: $disk, system-b $slot_mib MiB"
	rm -f "$disk"
	truncate -s $((48 + 64 + slot_mib + 64 + 16))M "$disk"
	sfdisk -q "$disk" <<EOF
label: dos
label-id: 0x1a2b3c4d
size=16MiB, type=c
size=16MiB, type=c
size=16MiB, type=c
type=5
size=64MiB, type=83
size=${slot_mib}MiB, type=83
type=83
EOF
	loop=$(losetup -f --show "$disk")
	trap cleanup EXIT
	partx -a "$loop"
	p() { echo "${loop}p$1"; }
	local slot
	slot=$(p 6)
	local stage=$work/stage
	rm -rf "$stage"
	mkdir -p "$stage/boot" "$stage/cfg"
	echo "console=serial0,115200 root=/dev/mmcblk0p5 quiet init=/sbin/init rootwait" >"$stage/boot/cmdline.txt"
	printf '[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3' >"$stage/cfg/autoboot.txt"
	# ext4 for the config and boot partitions, as in the device test (the
	# file-level behaviour is the same as FAT's).
	mkfs.ext4 -q -F -d "$stage/cfg" "$(p 1)"
	mkfs.ext4 -q -F -d "$stage/boot" "$(p 2)"
	mkfs.ext4 -q -F -d "$stage/boot" "$(p 3)"
	mkfs.ext4 -q -F "$(p 5)"
	mkfs.ext4 -q -F "$(p 7)"
	# A real slot has its blocks allocated: write it once.
	dd if=/dev/zero of="$slot" bs=4M count=$((slot_mib / 4)) conv=fsync status=none
	mount -t tmpfs -o mode=755 tmpfs /run
	mkdir -p /run/rugix/mounts/system /run/rugix/mounts/config /run/rugix/mounts/data
	mount -o ro "$(p 5)" /run/rugix/mounts/system
	mount "$(p 7)" /run/rugix/mounts/data
	"$bin" system info >"$work/logs/system-info.txt" 2>&1 || {
		cat "$work/logs/system-info.txt" >&2
		exit 1
	}

	# measure ID BYTES WARM CHECK -- COMMAND...: run COMMAND once and
	# append its row to results.tsv (rows of the same ID are runs of the
	# same measurement); WARM is read into the page cache first; CHECK is
	# the image the slot must hold afterwards (checked untimed), or "-".
	measure() {
		local id=$1 bytes=$2 warm=$3 check=$4
		shift 5
		if [ -n "${ONLY:-}" ] && ! grep -Eq "^($ONLY)\$" <<<"$id"; then
			return
		fi
		local tf=$work/logs/$id.time
		blockdev --flushbufs "$slot"
		if [ "$DROP_CACHES" = 1 ]; then
			sync
			echo 3 >/proc/sys/vm/drop_caches
		else
			cat "$warm" >/dev/null
		fi
		wait_quiet
		local b0 b1
		b0=$(busy_jiffies)
		/usr/bin/time -f '%e %U %S %M' -o "$tf" "$@" >"$work/logs/$id.out" 2>"$work/logs/$id.err" || {
			echo "FAILED: $id: $*" >&2
			cat "$work/logs/$id.err" >&2
			exit 1
		}
		b1=$(busy_jiffies)
		local wall usr sys rss other
		read -r wall usr sys rss < <(tail -1 "$tf")
		other=$(awk -v b="$((b1 - b0))" -v hz="$hz" -v u="$usr" -v s="$sys" 'BEGIN {o = b / hz - u - s; printf "%.1f", (o < 0 ? 0 : o)}')
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$bytes" "$wall" "$usr" "$sys" "$rss" "$other" >>"$tsv"
		printf '  %-22s %6.2f s wall, %6.2f s CPU, %7d KB RSS, other CPU %s s\n' "$id" "$wall" \
			"$(awk -v u="$usr" -v s="$sys" 'BEGIN {print u + s}')" "$rss" "$other" >&2
		if [ "$check" != - ] && ! cmp -n "$(size_of "$check")" "$check" "$slot"; then
			echo "$id: the slot does not hold $check" >&2
			exit 1
		fi
	}
	# sh -c "$pipe" sh DECOMPRESSOR INPUT: decompress INPUT into the slot
	local pipe='"$1" -dc "$2" | dd of="$3" bs=1M iflag=fullblock conv=fsync status=none'
	do_install() { # do_install ID SIZE COMP
		local b=$work/bundle-$2-$3.rugixb img=$work/img-$2.ext4
		measure "$1" "$(size_of "$img")" "$b" "$img" -- \
			"$bin" update install --reboot no --bundle-hash "$(cat "$b.hash")" "$b"
	}

	: >"$tsv"
	local n1 img1=$work/img-1G.ext4
	n1=$(size_of "$img1")
	log "1 GiB: bare pipelines and bascule update install, $REPS runs each, interleaved"
	for ((r = 0; r < REPS; r++)); do
		measure raw-write "$n1" "$img1" "$img1" -- dd if="$img1" of="$slot" bs=1M conv=fsync status=none
		measure xz-d "$n1" "$work/img-1G.xz" "$img1" -- sh -c "$pipe" sh xz "$work/img-1G.xz" "$slot"
		measure xz-d-blocks "$(cat "$work/payload-1G-xz.size")" "$work/payload-1G-xz.data" - -- sh -c "$pipe" sh xz "$work/payload-1G-xz.data" "$slot"
		do_install install-xz-1G 1G xz
		measure zstd-d "$n1" "$work/img-1G.zst" "$img1" -- sh -c "$pipe" sh zstd "$work/img-1G.zst" "$slot"
		do_install install-zstd-1G 1G zstd
	done
	log "peak memory: 256 MiB and 2 GiB payloads (2Gdup: the 1 GiB image twice), $REPS runs each"
	for ((r = 0; r < REPS; r++)); do
	for size in 256M 2G 2Gdup; do
		for comp in xz zstd; do
			do_install "install-$comp-$size" $size $comp
		done
	done
	done
	"$bin" slots inspect system-b >"$work/logs/slots-inspect.txt" 2>&1 || true
}

cleanup() {
	set +e
	for m in /run/rugix/mounts/config /run/rugix/mounts/system /run/rugix/mounts/data /run; do
		mountpoint -q "$m" && umount -l "$m"
	done
	if [ -n "${loop:-}" ]; then
		partx -d "$loop" 2>/dev/null
		losetup -d "$loop"
	fi
	rm -f "$work/disk.img"
}

if [ "${1:-}" = __device ]; then
	device
	exit 0
fi

# ---------------------------------------------------------------------------
# Outside: tools, binaries, images, bundles, then the device part in a
# private mount namespace, then the report.
# ---------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || {
	echo "needs root (loop devices, mounts)" >&2
	exit 1
}
for t in xz zstd unshare losetup sfdisk partx mkfs.ext4 blockdev cmp /usr/bin/time; do
	command -v "$t" >/dev/null || {
		echo "missing $t (apt-get install -y xz-utils zstd util-linux fdisk e2fsprogs time)" >&2
		exit 1
	}
done
run_all() {
	start_all=$(date +%s)
	# The tree the binaries are built from (not the tree at the end: a
	# shared work tree may change during the run).
	local tree
	tree=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)
	mkdir -p "$work/logs"

	log "binaries"
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$work/bascule" ./cmd/bascule &&
		CGO_ENABLED=0 go build -trimpath -o "$work/bascule-bundler" ./cmd/bascule-bundler)
	sizes=$work/binary-sizes.tsv
	: >"$sizes"
	for arch in arm64 arm amd64; do
		out=$work/bascule-$arch
		(cd "$root" && CGO_ENABLED=0 GOARCH=$arch GOARM=7 go build -trimpath -ldflags '-s -w' -o "$out" ./cmd/bascule)
		printf '%s\t%s\n' "$arch" "$(size_of "$out")" >>"$sizes"
	done

	log "images"
	for size in 256M 1G 2G; do
		img=$work/img-$size.ext4
		shared=$here/_work/img-$size.ext4
		if [ -f "$shared" ] && [ "$work" != "$here/_work" ]; then
			# Reuse bench/mkimage.sh's image (a hard link keeps this copy stable
			# if it is remade meanwhile).
			if [ ! "$img" -ef "$shared" ]; then
				ln -f "$shared" "$img" 2>/dev/null || cp "$shared" "$img"
			fi
		elif [ ! -f "$img" ]; then
			WORK=$work SIZES=$size "$here/mkimage.sh"
		fi
	done

	# fresh TARGET SOURCE: TARGET exists and is newer than SOURCE.
	fresh() { [ "$REBUILD" != 1 ] && [ -f "$1" ] && [ "$1" -nt "$2" ]; }
	# The worst case for the decoder's memory: every block of the second
	# half repeats one of the first, 1 GiB earlier.
	if ! fresh "$work/img-2Gdup.ext4" "$work/img-1G.ext4"; then
		cat "$work/img-1G.ext4" "$work/img-1G.ext4" >"$work/img-2Gdup.ext4"
	fi
	buildlog=$work/build.tsv
	touch "$buildlog"
	timed_build() { # timed_build ID COMMAND...: run and note the time in build.tsv
		local id=$1
		shift
		/usr/bin/time -f '%e %U %S %M' -o "$work/logs/build-$id.time" "$@"
		sed -i "/^$id\t/d" "$buildlog"
		printf '%s\t%s\n' "$id" "$(tail -1 "$work/logs/build-$id.time" | tr ' ' '\t')" >>"$buildlog"
	}

	log "bundles (casync-64, sha512-256, deduplicated)"
	for size in 256M 1G 2G 2Gdup; do
		img=$work/img-$size.ext4
		for comp in xz zstd; do
			out=$work/bundle-$size-$comp.rugixb
			if ! fresh "$out" "$img"; then
				case $comp in
				xz) toml='{ type = "xz", level = 6 }' ;;
				zstd) toml='{ type = "zstd", level = 3 }' ;;
				esac
				d=$work/bdir-$size-$comp
				rm -rf "$d"
				mkdir -p "$d/payloads"
				ln -f "$img" "$d/payloads/rootfs.img"
				cat >"$d/rugix-bundle.toml" <<-EOF
	update-type = "full"
	hash-algorithm = "sha512-256"

	[[payloads]]
	filename = "rootfs.img"
	[payloads.delivery]
	type = "slot"
	slot = "system"
	[payloads.block-encoding]
	chunker = "casync-64"
	hash-algorithm = "sha512-256"
	deduplicate = true
	compression = $toml
	EOF
				echo "  building $out" >&2
				timed_build "bundle-$size-$comp" "$work/bascule-bundler" bundle "$d" "$out" >/dev/null
				rm -rf "$d"
			fi
			"$work/bascule-bundler" hash "$out" >"$out.hash"
		done
	done

	log "bare pipeline inputs (1 GiB)"
	img1=$work/img-1G.ext4
	if ! fresh "$work/img-1G.xz" "$img1"; then
		echo "  xz -6 -T1 $img1 (slow: about 5 minutes)" >&2
		timed_build xz-6-T1 sh -c 'xz -6 -T1 -c "$1" >"$2.tmp$$" && mv "$2.tmp$$" "$2"' sh "$img1" "$work/img-1G.xz"
	fi
	if ! fresh "$work/img-1G.zst" "$img1"; then
		timed_build zstd-3 sh -c 'zstd -q -3 -T0 -c "$1" >"$2.tmp$$" && mv "$2.tmp$$" "$2"' sh "$img1" "$work/img-1G.zst"
	fi
	# The PAYLOAD_DATA of the xz bundle: its stored blocks, each an .xz stream,
	# concatenated (xz -dc decodes them in a row). Its offset is where the next
	# atom starts minus its length.
	b1=$work/bundle-1G-xz.rugixb
	if ! fresh "$work/payload-1G-xz.data" "$b1" || [ ! -s "$work/payload-1G-xz.size" ]; then
		read -r off len < <("$work/bascule-bundler" print-structure "$b1" |
			awk '/ PAYLOAD_DATA = </ { len = $5; gsub(/[<]/, "", len); getline; print $1 - len, len; exit }')
		dd if="$b1" of="$work/payload-1G-xz.data" iflag=skip_bytes,count_bytes skip="$off" count="$len" bs=4M status=none
		xz -dc "$work/payload-1G-xz.data" | wc -c >"$work/payload-1G-xz.size"
	fi

	if [ "${PREPARE_ONLY:-0}" = 1 ]; then
		log "inputs ready in $work (PREPARE_ONLY=1: no measurements)"
		exit 0
	fi

	log "device (private mount namespace)"
	outer_cleanup() {
		# Safety net: a loop device still attached to the disk image.
		for l in $(losetup -j "$work/disk.img" -O NAME -n 2>/dev/null); do
			partx -d "$l" 2>/dev/null || true
			losetup -d "$l" || true
		done
	}
	trap outer_cleanup EXIT
	unshare --mount --propagation private "$0" __device
	elapsed=$(($(date +%s) - start_all))
	printf 'REPS=%s\nDROP_CACHES=%s\nelapsed=%s\nrun_date=%s\ntree=%s\n' "$REPS" "$DROP_CACHES" "$elapsed" "$(date -u +%Y-%m-%d)" \
		"$tree" >"$work/run.env"
}

if [ "${REPORT_ONLY:-0}" != 1 ]; then
	run_all
fi
run_date=unknown tree=unknown elapsed=0
# shellcheck source=/dev/null
. "$work/run.env"

# ---- report ----------------------------------------------------------------
machine() {
	echo "- machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
	echo "- $(go version), $(xz --version | head -1), $(zstd --version | sed 's/\*//g; s/ *, by.*//')"
	echo "- disk: the slot is a partition of a loop device on a sparse file on $(df --output=source "$work" | tail -1) ($(findmnt -no FSTYPE -T "$work"))"
}
report() {
	awk -F'\t' -v elapsed="$elapsed" -v reps="$REPS" -v drop="$DROP_CACHES" '
	FILENAME ~ /binary-sizes/ { bin[$1] = $2; next }
	FILENAME ~ /build.tsv/ { build[++nbuild] = sprintf(" %s %.0f s;", $1, $2); next }
	{
		# Rows of the same id are runs: keep the fastest, list all, and the
		# largest peak RSS of any run.
		id = $1; bytes[id] = $2
		runs[id] = runs[id] (id in wall ? " " : "") $3
		if (!(id in wall) || $3 < wall[id]) { wall[id] = $3; cpu[id] = $4 + $5; other[id] = $7 }
		if ($6 > rss[id]) rss[id] = $6
	}
	function mbs(k) { return bytes[k] / 1e6 / wall[k] }
	function vs(k, base, goal,    r) {
		if (!(base in wall)) return ""
		r = sprintf("%.2fx `%s`", wall[k] / wall[base], base)
		if (goal != "") r = r " (goal " goal ")"
		return r
	}
	function row(k, what, cmp) {
		if (!(k in wall)) return
		printf "| %s | %s | %.2f | %s | %.0f | %.1f | %.1f | %s | %.1f |\n", what, k, wall[k], runs[k], mbs(k), cpu[k], rss[k] / 1024, cmp == "" ? "-" : cmp, other[k]
	}
	function head() {
		print "| command | id | wall s (best) | all runs, wall s | MB/s | CPU s (user+sys) | peak RSS MiB | time vs baseline | other CPU s |"
		print "|---|---|---:|---|---:|---:|---:|---|---:|"
	}
	END {
		printf "### 1 GiB payload into the system-b slot (%d runs each, interleaved; input %s)\n\n", reps, drop == 1 ? "cold: caches dropped before each run" : "in the page cache, slot cache dropped"
		head()
		row("install-xz-1G", "`bascule update install` xz-6 bundle", vs("install-xz-1G", "xz-d", "<= 1.1x") "; " vs("install-xz-1G", "xz-d-blocks", ""))
		row("xz-d", "`xz -dc img.xz \\| dd of=slot conv=fsync` (whole image compressed once with `xz -6 -T1`)", "")
		row("xz-d-blocks", "`xz -dc payload-data \\| dd of=slot conv=fsync` (the bundle'"'"'s stored blocks: concatenated xz streams)", "")
		row("install-zstd-1G", "`bascule update install` zstd-3 bundle", vs("install-zstd-1G", "install-xz-1G", "<= 0.33x, i.e. >= 3x faster") "; " vs("install-zstd-1G", "zstd-d", ""))
		row("zstd-d", "`zstd -dc img.zst \\| dd of=slot conv=fsync` (whole image, `zstd -3`)", "")
		row("raw-write", "`dd if=img of=slot conv=fsync` (uncompressed image: the I/O floor)", "")
		if ("xz-d-blocks" in bytes) printf "\n`xz-d-blocks` is the decompression work of the install without the hashing and without the deduplicated repeats: it decodes the stored (unique) blocks only, %.0f MB; its MB/s is of that. \"other CPU\" is what other processes used meanwhile: rows with a lot of it were slowed down by them.\n", bytes["xz-d-blocks"] / 1e6
		print "\n### Peak memory of `bascule update install` (goal <= 32 MiB at every size; largest of all runs)\n"
		print "| payload | xz-6: peak RSS MiB | xz-6: wall s (best) | xz-6: MB/s | xz-6: other CPU s | zstd-3: peak RSS MiB | zstd-3: wall s (best) | zstd-3: MB/s | zstd-3: other CPU s |"
		print "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
		split("256M 1G 2G 2Gdup", ss, " ")
		for (i = 1; i <= 4; i++) {
			a = "install-xz-" ss[i]; b = "install-zstd-" ss[i]
			if (!(a in wall) || !(b in wall)) continue
			printf "| %s (%d MiB) | %.1f | %.2f | %.0f | %.1f | %.1f | %.2f | %.0f | %.1f |\n", ss[i], bytes[a] / 1048576, rss[a] / 1024, wall[a], mbs(a), other[a], rss[b] / 1024, wall[b], mbs(b), other[b]
		}
		print "\n### Static `bascule` binary (`CGO_ENABLED=0 go build -trimpath -ldflags '"'"'-s -w'"'"'`)\n"
		print "| GOARCH | bytes | MiB | goal |"
		print "|---|---:|---:|---|"
		printf "| arm64 | %d | %.2f | <= 8 MiB |\n", bin["arm64"], bin["arm64"] / 1048576
		printf "| arm (GOARM=7) | %d | %.2f | |\n", bin["arm"], bin["arm"] / 1048576
		printf "| amd64 | %d | %.2f | |\n", bin["amd64"], bin["amd64"] / 1048576
		printf "\nMeasurements took %d s (cached bundles and images reused).", elapsed
		if (nbuild) {
			printf " The cached inputs took, when they were built (wall):"
			for (i = 1; i <= nbuild; i++) printf "%s", build[i]
		}
		print ""
	}' "$work/binary-sizes.tsv" "$work/build.tsv" "$work/results.tsv"
}
# Hand-written notes after a "## Notes" line of the results file are kept.
notes=$(sed -n '/^## Notes/,$p' "$RESULTS" 2>/dev/null || true)
{
	echo "# bascule update install: speed and memory"
	echo
	echo "Made by \`bench/install.sh\` ($run_date, tree $tree). Reproduce (as root, from the repository root):"
	echo
	echo '```'
	echo "bench/mkimage.sh   # optional: bench/install.sh makes the images it misses"
	echo "REPS=$REPS$([ "$DROP_CACHES" = 1 ] && echo " DROP_CACHES=1") bench/install.sh"
	echo '```'
	echo
	machine
	echo "- payloads: ext4 images of bench/mkimage.sh (256 MiB and 1 GiB 70% full; 2 GiB made the same way, 65% file data), bundled by bascule-bundler as casync-64, sha512-256, deduplicated, xz level 6 or zstd level 3"
	echo "- device: loop device with the MBR layout of cmd/bascule/device_test.go, private mount namespace, \`bascule update install --reboot no --bundle-hash <H> bundle\`; MB/s is 10^6 bytes of decoded payload per second"
	echo
	report
	if [ -n "$notes" ]; then
		echo
		echo "$notes"
	fi
} >"$RESULTS.tmp"
mv "$RESULTS.tmp" "$RESULTS"
cat "$RESULTS"
