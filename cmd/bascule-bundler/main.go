// Command bascule-bundler builds, inspects, signs and verifies update
// bundles. Its commands and flags are those of rugix-bundler, so existing
// build scripts keep working.
package main

import (
	"fmt"
	"github.com/bascule-ota/bascule/internal/cli"
	"os"

	"github.com/bascule-ota/bascule/internal/version"
)

// tool is the bascule-bundler command line.
var tool = &cli.Tool{Name: "bascule-bundler", Title: "build, sign and check Bascule/Rugix update bundles", Version: version.String()}

func init() {
	tool.Commands = []cli.Command{
		{Path: "bundle", Synopsis: "bundle [--json] <bundle-dir> <out.rugixb>", Summary: "build a bundle from a directory (rugix-bundle.toml + payloads/); prints the header hash", Run: cmdBundle},
		{Path: "hash", Synopsis: "hash <bundle>", Summary: "print the bundle's header hash", Run: cmdHash},
		{Path: "inspect", Synopsis: "inspect [--verify-bundle H] [--json] <bundle>", Summary: "list the payloads of a bundle", Run: cmdInspect},
		{Path: "verify", Synopsis: "verify [--verify-bundle H] [--json] <bundle>", Summary: "check every hash of a bundle (header, payload headers, blocks, files); writes nothing", Run: cmdVerify},
		{Path: "extract", Synopsis: "extract [--verify-bundle H] <bundle> <payload-index> <dst>", Summary: "write one decoded, verified payload to a file", Run: cmdExtract},
		{Path: "unpack", Synopsis: "unpack [--verify-bundle H] <bundle> <dir>", Summary: "recreate the bundle directory (needs the embedded manifest)", Run: cmdUnpack},
		{Path: "delta", Synopsis: "delta [--slot new[:old]]... [--without-compression] <old.rugixb> <new.rugixb> <out.rugixb>", Summary: "build a static delta bundle: xdelta3 patches of NEW's slot payloads against OLD's (needs xdelta3)", Run: cmdDelta},
		{Path: "signatures prepare", Synopsis: "signatures prepare <bundle> <out>", Summary: "write the bytes to sign (the signed metadata) for signing with openssl or an HSM", Run: sigPrepare},
		{Path: "signatures add", Synopsis: "signatures add <bundle> <cms.der> <out>", Summary: "add a CMS signature made elsewhere (checked against the bundle first)", Run: sigAdd},
		{Path: "signatures sign", Synopsis: "signatures sign [--intermediate-cert C]... [--rsa-pss] <bundle> <cert> <key> <out>", Summary: "sign natively and add the signature", Run: sigSign},
		{Path: "signatures list", Synopsis: "signatures list [--json] <bundle>", Summary: "show the signatures of a bundle", Run: sigList},
		{Path: "signatures verify", Synopsis: "signatures verify [--json] [--at TIME] <bundle> <root-cert>...", Summary: "check that a signature chains to a trusted root (file or directory), as a device does", Run: sigVerify},
		{Path: "keys create-ca", Synopsis: "keys create-ca [--algorithm A] [--name CN] [--days N] --out-cert F --out-key F", Summary: "create a root CA certificate and key", Run: keysCreateCA},
		{Path: "keys create-signer", Synopsis: "keys create-signer --ca-cert F --ca-key F [--intermediate] [--algorithm A] [--name CN] [--days N] [--eku LIST] --out-cert F --out-key F", Summary: "create a bundle-signing certificate (or an intermediate CA) issued by a CA", Run: keysCreateSigner},
		{Path: "print-structure", Synopsis: "print-structure <bundle>", Summary: "dump the STLV atoms of a bundle (debugging)", Run: cmdPrintStructure},
		{Path: "version", Synopsis: "version", Summary: "print the version", Run: func([]string) error { fmt.Println(version.String()); return nil }},
	}
}

func main() {
	os.Exit(tool.Main(os.Args[1:]))
}
