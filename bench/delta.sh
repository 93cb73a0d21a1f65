#!/usr/bin/env bash
# Delta updates (issue #8): what a device downloads to go from one release
# of a root file system to the next, measured side by side in one run:
#
#   full      the full bundle (casync-64, sha512-256, dedup, xz 6)
#   static    `bascule-bundler delta v1 v2` (Rugix's static delta: an xdelta3
#             patch, fixed-256 + xz), installed for real the two ways below
#   adaptive  the full bundle over HTTP with range requests, skipping the
#             blocks the device has in its running slot (Rugix's dynamic
#             delta): computed by bench/cmd/deltaplan from the old image's
#             block index; and measured (nginx access log, $body_bytes_sent)
#             twice: with the real `bascule update install --reboot no URL` on
#             a loop-device "device" in private namespaces
#             (bench/delta-install.sh; root; MEASURE_CLI=0 skips it), and
#             with bench/cmd/httpinstall (the same HTTP source and install
#             code into a file, v1.img as the running slot)
#   casync    `casync extract --seed=v1.img` of the same image with the same
#             chunk size and compression, its store served by nginx; the bytes
#             are the sum of $body_bytes_sent in nginx's access log, and also
#             the sum of the sizes of the v2 chunk files that are not in the
#             v1 store (what casync needs when the seed provides every chunk
#             it has)
#   xdelta3   a plain `xdelta3 -e -s v1.img v2.img` patch (default settings,
#             as Rugix runs it) and one with -9 and a source window as large
#             as the image: the practical lower bound
#
# The two images are Debian 12 (bookworm) arm64 root file systems built
# from package files: apt-get download of a fixed package list, dpkg -x into
# a tree, mkfs.ext4 -d. v2 differs from v1 by a security roll-up of a
# handful of packages (OLD -> NEW versions below, both from the Debian
# archive). Both trees get the same mtimes, and the inode ctimes and atimes
# (which mkfs.ext4 -d copies from the staging tree) are set to a fixed time
# with debugfs, so unchanged files differ only where mkfs.ext4 placed them
# differently: mkfs.ext4 -d allocates inodes and blocks in the order it
# walks the tree, so a file that grows or shrinks moves the data of every
# file written after it.
#
#   bench/delta.sh                  # everything; work files in bench/_work/delta
#   STEPS="bundles measure" bench/delta.sh   # skip downloading/unpacking
#   XZ_COMMAND=xz bench/delta.sh    # bundles with `bascule-bundler --xz-command xz`
#
# Needs: apt-get with the arm64 architecture added (dpkg --add-architecture
# arm64; apt-get update), dpkg, e2fsprogs, xdelta3, casync, nginx, curl, Go;
# for the real installs root, util-linux (unshare, losetup, partx), sfdisk.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=${WORK:-$here/_work}/delta
STEPS=${STEPS:-"download trees images bundles measure"}
CHUNK=${CHUNK:-64} # KiB: casync-N average chunk size for the bundles and casync
PORT=${PORT:-18089}
T0=1700000000
UUID=6b617363-756c-6562-656e-636800000011
HASH_SEED=6b617363-756c-6562-656e-636800000012
export E2FSPROGS_FAKE_TIME=$T0
mkdir -p "$work"

# The base system: present in both releases at the archive's current version.
BASE="base-files base-passwd bash coreutils dash diffutils findutils grep gzip hostname login mount passwd sed tar
util-linux libc6 libc-bin libgcc-s1 libstdc++6 libcrypt1 libselinux1 libpcre2-8-0 libacl1 libattr1 libaudit1
libcap2 libcap-ng0 libblkid1 libmount1 libsmartcols1 libuuid1 libzstd1 liblzma5 zlib1g libbz2-1.0 libtinfo6
ncurses-bin libpam0g libpam-modules libpam-modules-bin libsemanage2 libsepol2 libgmp10 libmd0 libdb5.3 dpkg
apt libapt-pkg6.0 libgnutls30 libnettle8 libhogweed6 libidn2-0 libunistring2 libp11-kit0 libtasn1-6 libffi8
libseccomp2 libxxhash0 liblz4-1 libgcrypt20 libgpg-error0 systemd libsystemd0 libsystemd-shared libudev1 udev
libkmod2 kmod libip4tc2 libcryptsetup12 libdevmapper1.02.1 libargon2-1 libjson-c5 libapparmor1 iproute2
libbpf1 libelf1 libmnl0 libxtables12 libbsd0 openssh-client openssh-server openssh-sftp-server libwrap0
libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2 libgssapi-krb5-2 procps libproc2-0
libsqlite3-0 libreadline8 libnghttp2-14 librtmp1 libssh2-1 libpsl5 libldap-2.5-0 libsasl2-2
libsasl2-modules-db libbrotli1 e2fsprogs libext2fs2 libss2 less nano vim-tiny iputils-ping perl-base
libperl5.36 libncursesw6"
# Architecture "all" packages of the base system.
BASE_ALL="libaudit-common ncurses-base libpam-runtime debconf ca-certificates readline-common vim-common netbase
tzdata perl-modules-5.36 media-types"
# The update: a security roll-up of five source packages (eight binary
# packages), old -> new version.
CHANGED="openssl libssl3 libexpat1 curl libcurl4 python3.11 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib"
# shellcheck disable=SC2034 # used through declare -n
declare -A OLD=([openssl]=3.0.20-1~deb12u2 [libssl3]=3.0.20-1~deb12u2 [libexpat1]=2.5.0-1+deb12u2
	[curl]=7.88.1-10+deb12u5 [libcurl4]=7.88.1-10+deb12u5
	[python3.11]=3.11.2-6+deb12u8 [python3.11-minimal]=3.11.2-6+deb12u8
	[libpython3.11-minimal]=3.11.2-6+deb12u8 [libpython3.11-stdlib]=3.11.2-6+deb12u8)
# shellcheck disable=SC2034
declare -A NEW=([openssl]=3.0.22-1~deb12u2 [libssl3]=3.0.22-1~deb12u2 [libexpat1]=2.5.0-1+deb12u5
	[curl]=7.88.1-10+deb12u15 [libcurl4]=7.88.1-10+deb12u15
	[python3.11]=3.11.2-6+deb12u9 [python3.11-minimal]=3.11.2-6+deb12u9
	[libpython3.11-minimal]=3.11.2-6+deb12u9 [libpython3.11-stdlib]=3.11.2-6+deb12u9)

step() { [[ " $STEPS " == *" $1 "* ]]; }
log() { echo "delta.sh: $*" >&2; }

# download DIR SPEC...: apt-get download into DIR (once).
download() {
	local dir=$1
	shift
	[ -e "$dir/.done" ] && return 0
	rm -rf "$dir" && mkdir -p "$dir"
	(cd "$dir" && apt-get download -q "$@" >/dev/null)
	touch "$dir/.done"
}

if step download; then
	log "downloading arm64 packages"
	specs=()
	for p in $BASE; do specs+=("$p:arm64"); done
	for p in $BASE_ALL; do specs+=("$p"); done
	download "$work/debs/base" "${specs[@]}"
	for v in OLD NEW; do
		declare -n vers=$v
		specs=()
		for p in $CHANGED; do specs+=("$p:arm64=${vers[$p]}"); done
		download "$work/debs/$v" "${specs[@]}"
	done
fi

# tree NAME VERSIONS: the base packages and the changed ones at VERSIONS,
# unpacked in package-name order, times normalized.
tree() {
	local t=$work/tree-$1
	rm -rf "$t" && mkdir -p "$t"
	find "$work/debs/base" "$work/debs/$2" -name '*.deb' -printf '%f\t%p\n' | LC_ALL=C sort | cut -f2 |
		while read -r deb; do dpkg -x "$deb" "$t"; done
	find "$t" -exec touch -h -d "@$T0" {} +
}

if step trees; then
	log "unpacking v1 and v2"
	tree v1 OLD
	tree v2 NEW
fi

# fix_times IMG: set every used inode's ctime and atime to T0. mkfs.ext4 -d
# copies them from the staging tree, where the ctime is the time of
# unpacking and the atime that of the first read (relatime).
fix_times() {
	local img=$1 ipg
	ipg=$(dumpe2fs -h "$img" 2>/dev/null | awk -F: '/^Inodes per group/ {print $2 + 0}')
	dumpe2fs "$img" 2>/dev/null | awk -v ipg="$ipg" -v t0="$T0" '
		/^Group [0-9]+:/ { g = $2; sub(/:/, "", g); g += 0 }
		/^  Free inodes:/ {
			s = $0; sub(/^  Free inodes: */, "", s)
			delete free
			n = split(s, parts, ", ")
			for (i = 1; i <= n; i++) {
				if (parts[i] == "") continue
				m = split(parts[i], ab, "-"); a = ab[1] + 0; b = (m > 1 ? ab[2] + 0 : a)
				for (j = a; j <= b; j++) free[j] = 1
			}
			for (j = g * ipg + 1; j <= (g + 1) * ipg; j++)
				if (!(j in free) && (j == 2 || j >= 11)) printf "sif <%d> ctime %d\nsif <%d> atime %d\n", j, t0, j, t0
		}' >"$img.ctimes"
	debugfs -w -f "$img.ctimes" "$img" >/dev/null 2>&1
	rm -f "$img.ctimes"
	e2fsck -fn "$img" >/dev/null 2>&1 || e2fsck -fn "$img"
}

if step images; then
	kib=$(du -sk --apparent-size "$work/tree-v1" | cut -f1)
	kib2=$(du -sk --apparent-size "$work/tree-v2" | cut -f1)
	[ "$kib2" -gt "$kib" ] && kib=$kib2
	# ~70% full, like a root file system with room for updates; 16 MiB steps.
	size=$(((kib * 10 / 7 / 16384 + 1) * 16))M
	for v in v1 v2; do
		img=$work/$v.img
		rm -f "$img"
		mkfs.ext4 -q -F -U "$UUID" -E "hash_seed=$HASH_SEED,root_owner=0:0" -d "$work/tree-$v" "$img" "$size"
		fix_times "$img"
	done
	log "images: $size each; trees $(du -sh --apparent-size "$work/tree-v1" | cut -f1) and $(du -sh --apparent-size "$work/tree-v2" | cut -f1)"
fi

mkdir -p "$work/bin"
(cd "$root" && CGO_ENABLED=0 go build -o "$work/bin/" ./cmd/bascule-bundler ./cmd/bascule ./bench/cmd/deltaplan)
# The HTTP install (bascule's source with range requests and local blocks).
rm -f "$work/bin/httpinstall"
(cd "$root" && CGO_ENABLED=0 go build -o "$work/bin/" ./bench/cmd/httpinstall) || log "no HTTP install: bench/cmd/httpinstall does not build"
B=$work/bin/bascule-bundler

if step bundles; then
	for v in v1 v2; do
		d=$work/bdir-$v
		rm -rf "$d" && mkdir -p "$d/payloads"
		ln -f "$work/$v.img" "$d/payloads/rootfs.ext4"
		cat >"$d/rugix-bundle.toml" <<EOF
update-type = "full"

[[payloads]]
filename = "rootfs.ext4"
[payloads.delivery]
type = "slot"
slot = "system"
[payloads.block-encoding]
chunker = "casync-$CHUNK"
hash-algorithm = "sha512-256"
deduplicate = true
compression = { type = "xz", level = 6 }
EOF
		"$B" bundle ${XZ_COMMAND:+--xz-command "$XZ_COMMAND"} "$d" "$work/$v.rugixb" >/dev/null 2>&1
	done
	rm -f "$work/delta.rugixb"
	"$B" delta ${XZ_COMMAND:+--xz-command "$XZ_COMMAND"} "$work/v1.rugixb" "$work/v2.rugixb" "$work/delta.rugixb" >/dev/null 2>&1
	# The patch restores v2 exactly (the real xdelta3, as a device runs it).
	"$B" extract "$work/delta.rugixb" 0 "$work/delta.patch" 2>/dev/null
	xdelta3 -d -c -s "$work/v1.img" <"$work/delta.patch" | cmp - "$work/v2.img"
	rm -f "$work/xd-default.patch" "$work/xd-best.patch"
	xdelta3 -e -s "$work/v1.img" "$work/v2.img" "$work/xd-default.patch"
	imgsize=$(stat -c %s "$work/v2.img")
	xdelta3 -e -9 -B "$imgsize" -s "$work/v1.img" "$work/v2.img" "$work/xd-best.patch"
	# casync: v2 into the store that is served, v1 into a store of its own
	# (to count the chunks the seed provides).
	rm -rf "$work/castr" "$work/castr-v1"
	casync make --compression=xz --chunk-size=$((CHUNK * 1024)) --store="$work/castr" "$work/v2.caibx" "$work/v2.img" >/dev/null
	casync make --compression=xz --chunk-size=$((CHUNK * 1024)) --store="$work/castr-v1" "$work/v1.caibx" "$work/v1.img" >/dev/null
fi

# nginx serving $work, access log with the body bytes of every response.
nginx_start() {
	local n=$work/nginx
	rm -rf "$n" && mkdir -p "$n/logs"
	cat >"$n/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $n/nginx.pid;
error_log $n/logs/error.log;
events { worker_connections 64; }
http {
	log_format bytes '\$request_method \$uri \$status \$body_bytes_sent \$bytes_sent "\$http_range"';
	access_log $n/logs/access.log bytes;
	server {
		listen 127.0.0.1:$PORT;
		root $work;
		location / { }
	}
}
EOF
	nginx -c "$n/nginx.conf" -p "$n" &
	NGINX_PID=$!
	for _ in $(seq 50); do
		curl -fsS -o /dev/null "http://127.0.0.1:$PORT/v2.caibx" 2>/dev/null && return 0
		sleep 0.1
	done
	log "nginx did not start: $(cat "$n/logs/error.log")"
	return 1
}
nginx_stop() {
	if [ -n "${NGINX_PID:-}" ]; then
		kill "$NGINX_PID"
		wait "$NGINX_PID" 2>/dev/null || true
	fi
	NGINX_PID=
}
trap nginx_stop EXIT
# logged_bytes PATTERN: body bytes of the logged requests whose URI matches.
logged_bytes() { awk -v re="$1" '$2 ~ re {s += $4} END {printf "%d\n", s}' "$work/nginx/logs/access.log"; }
# The same with the response headers ($bytes_sent): what the link carries.
logged_wire() { awk -v re="$1" '$2 ~ re {s += $5} END {printf "%d\n", s}' "$work/nginx/logs/access.log"; }

if step measure; then
	nginx_start
	: >"$work/nginx/logs/access.log"
	rm -f "$work/casync-out.img"
	casync extract --seed="$work/v1.img" --store="http://127.0.0.1:$PORT/castr" \
		"http://127.0.0.1:$PORT/v2.caibx" "$work/casync-out.img" 2>/dev/null
	cmp "$work/casync-out.img" "$work/v2.img"
	casync_http=$(logged_bytes '')
	casync_wire=$(logged_wire '')
	casync_reqs=$(wc -l <"$work/nginx/logs/access.log")
	# Chunks of v2 that the v1 image cannot provide, and their stored size.
	casync_needed=$(comm -23 <(cd "$work/castr" && find . -name '*.cacnk' -printf '%f\n' | sort) \
		<(cd "$work/castr-v1" && find . -name '*.cacnk' -printf '%f\n' | sort) |
		while read -r c; do stat -c %s "$work/castr/${c:0:4}/$c"; done | awk '{s += $1} END {printf "%d\n", s}')
	casync_needed=$((casync_needed + $(stat -c %s "$work/v2.caibx")))
	plan=$("$work/bin/deltaplan" "$work/v1.img" "$work/v2.rugixb")
	adaptive=${plan##*download=}
	adaptive_http='' static_http=''
	declare -A http reqs
	if [ -x "$work/bin/httpinstall" ]; then
		# Real installs over HTTP into a file, v1.img being the running slot:
		# the full bundle (adaptive delta) and the static delta bundle.
		for b in v2 delta; do
			: >"$work/nginx/logs/access.log"
			rm -f "$work/http-out.img"
			"$work/bin/httpinstall" "http://127.0.0.1:$PORT/$b.rugixb" "$work/v1.img" "$work/http-out.img" | tee "$work/http-$b.txt"
			cmp "$work/http-out.img" "$work/v2.img"
			http[$b]=$(logged_bytes "$b.rugixb")
			reqs[$b]=$(wc -l <"$work/nginx/logs/access.log")
		done
		adaptive_http=${http[v2]} static_http=${http[delta]}
	fi
	cli_v2='' cli_delta=''
	if [ "${MEASURE_CLI:-1}" = 1 ] && [ "$(id -u)" = 0 ]; then
		# The same two installs with the real `bascule update install URL`
		# on a loop-device "device" in private namespaces (root only).
		: >"$work/nginx/logs/access.log"
		"$here/delta-install.sh" "$work" "http://127.0.0.1:$PORT"
		cli_v2=$(logged_bytes 'v2.rugixb') cli_delta=$(logged_bytes 'delta.rugixb')
		cli_v2_wire=$(logged_wire 'v2.rugixb')
		reqs[cli_v2]=$(grep -c 'v2.rugixb' "$work/nginx/logs/access.log")
		reqs[cli_delta]=$(grep -c 'delta.rugixb' "$work/nginx/logs/access.log")
	fi
	nginx_stop

	full=$(stat -c %s "$work/v2.rugixb")
	static=$(stat -c %s "$work/delta.rugixb")
	xdd=$(stat -c %s "$work/xd-default.patch")
	xdb=$(stat -c %s "$work/xd-best.patch")
	img=$(stat -c %s "$work/v2.img")
	ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
	mib() { awk -v a="$1" 'BEGIN {printf "%.2f", a / 1048576}'; }
	{
		echo "| what | bytes | MiB | full bundle ÷ this | this ÷ casync (HTTP) | this ÷ xdelta3 -9 |"
		echo "|---|---:|---:|---:|---:|---:|"
		row() { echo "| $1 | $2 | $(mib "$2") | $(ratio "$full" "$2") | $(ratio "$2" "$casync_http") | $(ratio "$2" "$xdb") |"; }
		row "image v2 (uncompressed)" "$img"
		row "full bundle v2 (casync-$CHUNK, xz 6, dedup)" "$full"
		row "static delta bundle (\`bascule-bundler delta\`)" "$static"
		[ -n "$cli_delta" ] && row "static delta, \`bascule update install http://\` (nginx body bytes, ${reqs[cli_delta]} requests)" "$cli_delta"
		[ -n "$static_http" ] && row "static delta, httpinstall (nginx body bytes, ${reqs[delta]} requests)" "$static_http"
		row "adaptive delta, ideal (deltaplan: bundle − blocks found in v1)" "$adaptive"
		[ -n "$cli_v2" ] && row "adaptive delta, \`bascule update install http://\` (nginx body bytes, ${reqs[cli_v2]} requests)" "$cli_v2"
		[ -n "$adaptive_http" ] && row "adaptive delta, httpinstall (nginx body bytes, ${reqs[v2]} requests)" "$adaptive_http"
		row "casync extract --seed=v1 (nginx body bytes, $casync_reqs requests)" "$casync_http"
		row "casync: v2 chunks not in the v1 store + caibx" "$casync_needed"
		[ -n "$cli_v2" ] && row "adaptive delta, \`bascule update install http://\`, with response headers (nginx \$bytes_sent)" "$cli_v2_wire"
		row "casync extract --seed=v1, with response headers (nginx \$bytes_sent)" "$casync_wire"
		row "xdelta3 -e (default, as Rugix)" "$xdd"
		row "xdelta3 -e -9 -B <image size>" "$xdb"
	} | tee "$work/results.md"
	echo "deltaplan: $plan" | tee -a "$work/results.md"
fi
