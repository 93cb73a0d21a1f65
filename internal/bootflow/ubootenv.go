package bootflow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// envVar is one variable of a U-Boot or GRUB environment.
type envVar struct{ name, value string }

// envVars is an environment that keeps its order, so that rewriting a file
// changes only the variable that changed.
type envVars []envVar

func (v envVars) get(name string) (string, bool) {
	for _, e := range v {
		if e.name == name {
			return e.value, true
		}
	}
	return "", false
}

// set replaces the value of name in place or appends it; it reports
// whether anything changed.
func (v *envVars) set(name, value string) bool {
	for i, e := range *v {
		if e.name == name {
			if e.value == value {
				return false
			}
			(*v)[i].value = value
			return true
		}
	}
	*v = append(*v, envVar{name, value})
	return true
}

func (v envVars) clone() envVars { return append(envVars(nil), v...) }

// checkUbootVar rejects what cannot be stored in a U-Boot environment.
func checkUbootVar(e envVar) error {
	if e.name == "" || strings.ContainsAny(e.name, "=\x00") || strings.ContainsRune(e.value, 0) {
		return fmt.Errorf("invalid U-Boot variable %q=%q", e.name, e.value)
	}
	return nil
}

// appendUbootData appends "name=value\0" for each variable.
func appendUbootData(b []byte, v envVars) ([]byte, error) {
	for _, e := range v {
		if err := checkUbootVar(e); err != nil {
			return nil, err
		}
		b = append(b, e.name...)
		b = append(b, '=')
		b = append(b, e.value...)
		b = append(b, 0)
	}
	return b, nil
}

var errUnterminated = errors.New("environment not terminated")

// parseUbootData reads "name=value\0" entries up to an empty entry (the
// terminating double NUL) or, if !needEnd as for the unpadded Rugix env
// files, the end of data. Later duplicates win and entries without '=' are
// skipped, as U-Boot and libubootenv do. An entry running into the end of
// data is an error.
func parseUbootData(data []byte, needEnd bool) (envVars, error) {
	var v envVars
	for {
		if len(data) == 0 {
			if needEnd {
				return nil, errUnterminated
			}
			break
		}
		end := 0
		for end < len(data) && data[end] != 0 {
			end++
		}
		if end == len(data) {
			return nil, errUnterminated
		}
		entry := string(data[:end])
		data = data[end+1:]
		if entry == "" {
			break
		}
		name, value, ok := strings.Cut(entry, "=")
		if !ok || name == "" {
			continue
		}
		v.set(name, value)
	}
	return v, nil
}

// encodeEnvFile encodes the U-Boot env files Rugix keeps on the config
// partition (bootpart.default.env, boot_spare.env, boot.env): the CRC32 of
// the rest, little-endian, then "name=value\0" entries, without padding or
// a second NUL. U-Boot reads them with `env import -c`.
func encodeEnvFile(v envVars) ([]byte, error) {
	b, err := appendUbootData(make([]byte, 4, 64), v)
	if err != nil {
		return nil, err
	}
	binary.LittleEndian.PutUint32(b, crc32.ChecksumIEEE(b[4:]))
	return b, nil
}

// decodeEnvFile is the inverse of encodeEnvFile.
func decodeEnvFile(b []byte) (envVars, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("env file of %d bytes is too short", len(b))
	}
	if got, want := binary.LittleEndian.Uint32(b), crc32.ChecksumIEEE(b[4:]); got != want {
		return nil, fmt.Errorf("env file CRC32 is 0x%08x, content has 0x%08x", got, want)
	}
	return parseUbootData(b[4:], false)
}
