#!/usr/bin/env bash
# Compares the chunking speed (MB/s, 10^6 bytes/s) of internal/chunker with
# casync's on the same file, for casync-64 (min 16 KiB, avg 64 KiB, max 256 KiB).
#
# usage: bench/chunker/compare.sh [FILE]
#
# Without FILE it chunks up to 256 MiB of a tar of /usr (ELF, text, already
# compressed files: close to a root file system image), kept on tmpfs.
#
# casync has no chunk-only mode, so its rows measure different amounts of work:
#   casync chunker       casync's own ca_chunker_scan (src/cachunker.c) over
#                        the file mmapped in memory, built here with cc -O2;
#                        only when CASYNC_SRC points to a casync source tree.
#                        This is the like-for-like row for "ours: chunker".
#   casync make (warm)   `casync make` into a store that already holds every
#                        chunk: read + chunk + SHA-512/256 of each chunk + one
#                        existence check per chunk + SHA-512/256 of the whole
#                        file (casync always computes this "archive digest").
#                        Compare with "ours: chunker + SHA-512/256", which
#                        lacks the whole-file digest.
#   casync make (cold)   as warm, plus zstd compression and writing each chunk
#                        file (on tmpfs).
#   casync digest        whole-file SHA-512/256 only, no chunking: the cost of
#                        the extra digest in the make rows.
set -euo pipefail
cd "$(dirname "$0")/../.."

tmp=$(mktemp -d "${TMPDIR_BENCH:-/dev/shm}/chunker-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
min=16384 avg=65536 max=262144

file=${1:-}
label=$file
if [ -z "$file" ]; then
	file=$tmp/usr.tar label="tar of /usr"
	tar -cf - -C / usr 2>/dev/null | head -c 256M >"$file" || true
fi
size=$(stat -c %s "$file")

# best_time CMD...: prints the shortest wall time in seconds of 3 runs.
best_time() {
	local best="" t0 t1 t
	for _ in 1 2 3; do
		t0=$(date +%s.%N)
		"$@" >/dev/null 2>&1
		t1=$(date +%s.%N)
		t=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
		best=$(awk -v a="$best" -v b="$t" 'BEGIN { print (a == "" || b < a) ? b : a }')
	done
	echo "$best"
}
mbs() { awk -v n="$size" -v s="$1" 'BEGIN { printf "%.0f", n / s / 1e6 }'; }

rows=()
row() { rows+=("$(printf '%-44s %8s' "$1" "$2")"); }

# Ours: best of 3 benchmark runs each.
bench=$(CHUNKER_BENCH_FILE=$file go test -run '^$' -bench 'Casync64$|Casync64SHA$' \
	-benchtime=5x -count=3 ./internal/chunker)
best_bench() { echo "$bench" | awk -v name="$1" '$1 ~ "^"name"-" && $(NF) == "MB/s" && $(NF-1) > m { m = $(NF-1) } END { printf "%.0f", m }'; }
row "ours: chunker (BenchmarkCasync64)" "$(best_bench BenchmarkCasync64)"
row "ours: chunker + SHA-512/256 per chunk" "$(best_bench BenchmarkCasync64SHA)"

if [ -n "${CASYNC_SRC:-}" ] && [ -f "$CASYNC_SRC/src/cachunker.c" ] && command -v cc >/dev/null; then
	mkdir -p "$tmp/h"
	# The chunker sources next to minimal stand-ins for the two casync headers
	# they include (the real ones pull in most of casync).
	cp "$CASYNC_SRC/src/cachunker.c" "$CASYNC_SRC/src/cachunker.h" "$tmp/h/"
	cat >"$tmp/h/cachunk.h" <<'H'
#define CA_CHUNK_SIZE_LIMIT_MAX ((size_t) (128U*1024U*1024U))
#define CA_CHUNK_SIZE_LIMIT_MIN ((size_t) 1)
H
	cat >"$tmp/h/util.h" <<'H'
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define log_debug(...) do {} while (0)
static inline uint32_t rol32(uint32_t x, size_t i) {
        i %= 32;
        return i == 0 ? x : (x << i) | (x >> (32 - i));
}
H
	cat >"$tmp/h/main.c" <<'H'
/* Prints the best MB/s of 5 passes of ca_chunker_scan over FILE. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include "cachunker.h"

int main(int argc, char **argv) {
        size_t avg = strtoull(argv[1], NULL, 10);
        int fd = open(argv[2], O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) return 1;
        const uint8_t *p = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (p == MAP_FAILED) return 1;
        double best = 0;
        for (int round = 0; round < 5; round++) {
                CaChunker c = CA_CHUNKER_INIT;
                if (ca_chunker_set_size(&c, avg / 4, avg, avg * 4) < 0) return 1;
                struct timespec a, b;
                clock_gettime(CLOCK_MONOTONIC, &a);
                const uint8_t *q = p;
                size_t left = st.st_size, k;
                while (left > 0 && (k = ca_chunker_scan(&c, q, left)) != (size_t) -1)
                        q += k, left -= k;
                clock_gettime(CLOCK_MONOTONIC, &b);
                double mbs = st.st_size / ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9) / 1e6;
                if (mbs > best) best = mbs;
        }
        printf("%.0f\n", best);
        return 0;
}
H
	cc -O2 -o "$tmp/h/scan" "$tmp/h/main.c" "$tmp/h/cachunker.c" -lm
	row "casync chunker: ca_chunker_scan (cc -O2)" "$("$tmp/h/scan" "$avg" "$file")"
else
	row "casync chunker (set CASYNC_SRC to measure)" "-"
fi

make_index() { casync make --store="$tmp/s.castr" --chunk-size=$min:$avg:$max "$tmp/x.caibx" "$file"; }
t0=$(date +%s.%N)
make_index >/dev/null 2>&1
t1=$(date +%s.%N)
cold=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
row "casync make, warm store (chunk+hashes+stat)" "$(mbs "$(best_time make_index)")"
row "casync make, cold store (+zstd, write)" "$(mbs "$cold")"
row "casync digest (whole-file SHA-512/256)" "$(mbs "$(best_time casync digest "$file")")"

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs; $(go version | cut -d' ' -f3); $(casync --version | head -1)"
echo "input: $size bytes ($label); chunker casync-64"
printf '%-44s %8s\n' "measurement" "MB/s"
printf '%s\n' "${rows[@]}"
