#!/bin/sh
# make demo-bundle (host only, no emulator): make an ext4 root file
# system image from a real tree, bundle it the way the Buildroot post-image
# script will (casync-64, sha512-256, xz, deduplication), and inspect,
# verify and extract it.
set -eu
cd "$(dirname "$0")/.."
bb=bin/bascule-bundler
out=_out/demo
rm -rf "$out"
mkdir -p "$out/bundle/payloads"

echo "== making a 256 MiB ext4 root file system from /usr/share and the project"
tree=$out/rootfs
mkdir -p "$tree/usr/share" "$tree/etc"
cp -a /usr/share/common-licenses /usr/share/doc "$tree/usr/share/" 2>/dev/null || true
cp -a docs "$tree/etc/bascule-docs"
echo "bascule demo $(date -u +%Y-%m-%d)" > "$tree/etc/issue"
mkfs.ext4 -q -F -d "$tree" -L system -U 6b2d0f2a-5c1e-4c55-9a0e-3d1c2b7a8e90 -E root_owner=0:0 \
	"$out/bundle/payloads/system.ext4" 256M

cat > "$out/bundle/rugix-bundle.toml" <<'TOML'
update-type = "full"

[[payloads]]
filename = "system.ext4"
[payloads.delivery]
type = "slot"
slot = "system"
[payloads.block-encoding]
chunker = "casync-64"
hash-algorithm = "sha512-256"
deduplicate = true
compression = { type = "xz", level = 6 }
TOML

echo "== bascule-bundler bundle"
hash=$($bb bundle "$out/bundle" "$out/update.rugixb")
echo "header hash: $hash"
ls -l "$out/bundle/payloads/system.ext4" "$out/update.rugixb"

echo "== bascule-bundler inspect --verify-bundle"
$bb inspect --verify-bundle "$hash" "$out/update.rugixb"

echo "== bascule-bundler verify"
$bb verify "$out/update.rugixb"

echo "== bascule-bundler extract, compared with the original image"
$bb extract --verify-bundle "$hash" "$out/update.rugixb" 0 "$out/system.extracted"
cmp "$out/system.extracted" "$out/bundle/payloads/system.ext4"
e2fsck -fn "$out/system.extracted" >/dev/null 2>&1
echo "extracted image is identical and fsck-clean"

echo "== a corrupted copy is rejected"
cp "$out/update.rugixb" "$out/corrupt.rugixb"
size=$(stat -c %s "$out/corrupt.rugixb")
printf '\377' | dd of="$out/corrupt.rugixb" bs=1 seek=$((size / 2)) conv=notrunc status=none
if $bb verify "$out/corrupt.rugixb"; then echo "corrupt bundle accepted"; exit 1; fi
echo "demo OK"
