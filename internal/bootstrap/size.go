package bootstrap

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
)

// sizeUnits are the units a size string may end in, case-insensitive, as
// Rugix's byte-calc reads them: single letters and IEC names are binary,
// SI names decimal.
var sizeUnits = map[string]uint64{
	"b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	"p": 1 << 50, "pib": 1 << 50, "pb": 1e15,
	"e": 1 << 60, "eib": 1 << 60, "eb": 1e18,
}

// maxFractionDigits bounds the digits after the point that are looked at;
// more cannot change the result by a byte for any unit up to EiB.
const maxFractionDigits = 24

// parseSize reads a size such as "4GiB", "256MiB", "1.5 G", "100_000" or
// "64M" into bytes. The integer part may contain underscores; a fraction
// is rounded down to whole bytes. Zero is rejected: no partition or system
// size can be empty.
func parseSize(s string) (uint64, error) {
	orig := s
	bad := func(why string) error { return fmt.Errorf("invalid size %q: %s", orig, why) }
	var whole, frac strings.Builder
	i := 0
	for ; i < len(s) && (isDigit(s[i]) || s[i] == '_'); i++ {
		if s[i] != '_' {
			whole.WriteByte(s[i])
		}
	}
	if whole.Len() == 0 {
		return 0, bad("it must start with a number")
	}
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && isDigit(s[i]); i++ {
			if frac.Len() < maxFractionDigits {
				frac.WriteByte(s[i])
			}
		}
	}
	for i < len(s) && s[i] == ' ' {
		i++
	}
	unit := uint64(1)
	if rest := s[i:]; rest != "" {
		u, ok := sizeUnits[strings.ToLower(rest)]
		if !ok {
			return 0, bad(fmt.Sprintf("unknown unit %q (use B, KiB, MiB, GiB, TiB, kB, MB, GB, TB or K, M, G, T)", rest))
		}
		unit = u
	}
	n, ok := new(big.Int).SetString(whole.String(), 10)
	if !ok {
		return 0, bad("not a number")
	}
	n.Mul(n, new(big.Int).SetUint64(unit))
	if frac.Len() > 0 {
		f, _ := new(big.Int).SetString(frac.String(), 10)
		f.Mul(f, new(big.Int).SetUint64(unit))
		f.Quo(f, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(frac.Len())), nil))
		n.Add(n, f)
	}
	if !n.IsUint64() || n.Uint64() > math.MaxInt64 {
		return 0, bad("too large")
	}
	if n.Sign() == 0 {
		return 0, bad("must not be zero")
	}
	return n.Uint64(), nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// sizeValue reads a size given in TOML either as a string or as a number
// of bytes.
func sizeValue(v any) (uint64, error) {
	switch v := v.(type) {
	case string:
		return parseSize(v)
	case int64:
		if v <= 0 {
			return 0, fmt.Errorf("invalid size %d: must be positive", v)
		}
		return uint64(v), nil
	}
	return 0, errors.New("a size must be a string such as \"4GiB\" or a number of bytes")
}

// formatSize prints bytes for messages, in the largest binary unit that
// divides it, else in bytes.
func formatSize(n uint64) string {
	for _, u := range []struct {
		name string
		v    uint64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.v && n%u.v == 0 {
			return fmt.Sprintf("%d %s", n/u.v, u.name)
		}
	}
	if n >= 1<<20 {
		return fmt.Sprintf("%d bytes (%.1f MiB)", n, float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}
