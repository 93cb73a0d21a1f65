package bootflow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"
)

// The parsers read files that a power cut, a bootloader or a user may have
// left in any state; they must never panic, and what they accept must
// survive a rewrite unchanged. Seeds are in testdata/fuzz.

func FuzzAutoboot(f *testing.F) {
	f.Add([]byte(autobootA))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, section := range []string{"all", "tryboot"} {
			part, err := autobootPartition(data, section)
			if err == nil && part != "2" && part != "3" {
				t.Fatalf("[%s] gave partition %q", section, part)
			}
		}
	})
}

func FuzzEnvFile(f *testing.F) {
	f.Add(rugixBootpartA)
	f.Fuzz(func(t *testing.T, data []byte) {
		// The CRC keeps most mutations from the parser: try the data
		// also with its CRC made right.
		if len(data) >= 4 {
			fixed := append([]byte(nil), data...)
			binary.LittleEndian.PutUint32(fixed, crc32.ChecksumIEEE(fixed[4:]))
			if _, err := decodeEnvFile(fixed); err != nil && !errors.Is(err, errUnterminated) {
				t.Fatalf("CRC-correct file rejected: %v", err)
			}
			data = fixed
		}
		v, err := decodeEnvFile(data)
		if err != nil {
			return
		}
		enc, err := encodeEnvFile(v)
		if err != nil {
			t.Fatalf("decoded %q but cannot encode it: %v", v, err)
		}
		w, err := decodeEnvFile(enc)
		if err != nil || fmt.Sprint(v) != fmt.Sprint(w) {
			t.Fatalf("round trip: %q → %q, %v", v, w, err)
		}
	})
}

func FuzzFwEnvCopy(f *testing.F) {
	img, _ := encodeFwEnvCopy(envVars{{"rugix_bootpart", "2"}}, 64, true, 1)
	f.Add(img, true)
	f.Fuzz(func(t *testing.T, data []byte, redundant bool) {
		if hdr := map[bool]int{false: 4, true: 5}[redundant]; len(data) > hdr {
			data = append([]byte(nil), data...)
			binary.LittleEndian.PutUint32(data, crc32.ChecksumIEEE(data[hdr:]))
		}
		v, flags, err := decodeFwEnvCopy(data, redundant)
		if err != nil {
			return
		}
		enc, err := encodeFwEnvCopy(v, int64(len(data)), redundant, flags)
		if err != nil {
			t.Fatalf("decoded %q from %d bytes but cannot encode it: %v", v, len(data), err)
		}
		w, flags2, err := decodeFwEnvCopy(enc, redundant)
		if err != nil || flags2 != flags || fmt.Sprint(asMap(v)) != fmt.Sprint(asMap(w)) {
			t.Fatalf("round trip: %q → %q, %v", v, w, err)
		}
	})
}

func asMap(v envVars) map[string]string {
	m := map[string]string{}
	for _, e := range v {
		m[e.name] = e.value
	}
	return m
}

func FuzzGrubEnv(f *testing.F) {
	blk, _ := encodeGrubEnv(envVars{{"rugpi_bootpart", "2"}})
	f.Add(blk)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decodeGrubEnv(data)
		if err != nil {
			return
		}
		enc, err := encodeGrubEnv(v)
		if err != nil {
			return // names GRUB accepts but grub-editenv cannot write, or too long
		}
		if len(enc) != grubEnvSize {
			t.Fatalf("encoded %d bytes", len(enc))
		}
		w, err := decodeGrubEnv(enc)
		if err != nil || fmt.Sprint(v) != fmt.Sprint(w) {
			t.Fatalf("round trip: %q → %q, %v", v, w, err)
		}
	})
}

func FuzzFwEnvConfig(f *testing.F) {
	f.Add([]byte("/dev/mmcblk0 0x3c0000 0x20000\n/dev/mmcblk0 -0x20000 0x20000 0x200 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		devs, err := parseFwEnvConfig(data)
		if err != nil {
			return
		}
		if len(devs) == 0 || len(devs) > 2 || devs[0].size < 6 {
			t.Fatalf("accepted %+v", devs)
		}
	})
}
