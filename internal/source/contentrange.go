package source

import (
	"fmt"
	"strconv"
	"strings"
)

// ContentRange is a parsed Content-Range header of a 206 response:
// "bytes First-Last/Total", Total -1 for "*".
type ContentRange struct {
	First, Last, Total int64
}

// ParseContentRange parses "bytes 0-499/1234" or "bytes 0-499/*" (RFC 9110
// §14.4). The unsatisfied form "bytes */1234" is an error here: it only
// comes with 416.
func ParseContentRange(s string) (ContentRange, error) {
	bad := func() (ContentRange, error) { return ContentRange{}, fmt.Errorf("malformed Content-Range %q", s) }
	unit, rest, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok || !strings.EqualFold(unit, "bytes") {
		return bad()
	}
	rng, total, ok := strings.Cut(strings.TrimLeft(rest, " "), "/")
	if !ok {
		return bad()
	}
	first, last, ok := strings.Cut(rng, "-")
	if !ok {
		return bad()
	}
	var cr ContentRange
	var err error
	if cr.First, err = parseUint(first); err != nil {
		return bad()
	}
	if cr.Last, err = parseUint(last); err != nil {
		return bad()
	}
	if total == "*" {
		cr.Total = -1
	} else if cr.Total, err = parseUint(total); err != nil {
		return bad()
	}
	if cr.Last < cr.First || (cr.Total >= 0 && cr.Last >= cr.Total) {
		return bad()
	}
	return cr, nil
}

// parseUint accepts decimal digits only (no sign, no spaces) that fit in an
// int64.
func parseUint(s string) (int64, error) {
	if s == "" || len(s) > 19 {
		return 0, fmt.Errorf("bad number %q", s)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad number %q", s)
		}
	}
	return strconv.ParseInt(s, 10, 64)
}
