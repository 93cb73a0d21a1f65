package source

import (
	"fmt"
	"reflect"
	"testing"
)

func TestParseContentRange(t *testing.T) {
	for in, want := range map[string]ContentRange{
		"bytes 0-499/1234":    {0, 499, 1234},
		"bytes 500-1233/1234": {500, 1233, 1234},
		"bytes 0-0/1":         {0, 0, 1},
		"bytes 10-19/*":       {10, 19, -1},
		"Bytes  7-8/9":        {7, 8, 9},
		" bytes 0-9/10 ":      {0, 9, 10},
		"bytes 0-9223372036854775806/9223372036854775807": {0, 9223372036854775806, 9223372036854775807},
	} {
		got, err := ParseContentRange(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "bytes", "bytes */1234", "bytes 5-4/10", "bytes 0-10/10", "bytes -1-5/10", "bytes 0-5/-1",
		"bytes 0-5", "items 0-5/10", "bytes 0x1-5/10", "bytes +1-5/10", "bytes 0-5/10/11", "bytes 0 -5/10",
		"bytes 0-99999999999999999999/*", "bytes 1-2/9223372036854775808",
	} {
		if got, err := ParseContentRange(in); err == nil {
			t.Errorf("%q: accepted as %+v", in, got)
		}
	}
}

// FuzzContentRange: the parser never panics, and what it accepts is a
// consistent range that prints back to an equivalent header.
func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-499/1234", "bytes 10-19/*", "bytes */1234", "bytes 5-4/10", "Bytes 1-1/2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cr, err := ParseContentRange(s)
		if err != nil {
			return
		}
		if cr.First < 0 || cr.Last < cr.First || (cr.Total >= 0 && cr.Last >= cr.Total) || cr.Total < -1 {
			t.Fatalf("%q: inconsistent %+v", s, cr)
		}
		total := "*"
		if cr.Total >= 0 {
			total = fmt.Sprint(cr.Total)
		}
		again, err := ParseContentRange(fmt.Sprintf("bytes %d-%d/%s", cr.First, cr.Last, total))
		if err != nil || again != cr {
			t.Fatalf("%q: %+v does not round-trip: %+v, %v", s, cr, again, err)
		}
	})
}

func TestPlan(t *testing.T) {
	p := normalize([]Range{{100, 10}, {0, 5}, {105, 20}, {5, 5}, {200, 0}, {300, 50}})
	if want := (plan{{0, 10}, {100, 25}, {300, 50}}); !reflect.DeepEqual(p, want) {
		t.Fatalf("normalize: %v", p)
	}
	if got, want := p.need(Range{103, 4}), (plan{{0, 10}, {100, 3}, {107, 18}, {300, 50}}); !reflect.DeepEqual(got, want) {
		t.Fatalf("need: %v", got)
	}
	if got, want := p.need(Range{0, 1000}), plan(nil); !reflect.DeepEqual(got, want) {
		t.Fatalf("need all: %v", got)
	}
	if r, ok := p.containing(110); !ok || r != (Range{100, 25}) {
		t.Fatalf("containing 110: %v %v", r, ok)
	}
	if _, ok := p.containing(125); ok {
		t.Fatal("125 is after the range")
	}
	// Reads stop at the first gap of at least minGap, read through smaller
	// ones, and stop before a gap that runs to the end of the file.
	for _, c := range []struct{ pos, size, minGap, want int64 }{
		{10, 1000, 20, 100},   // gap 100+25 is big
		{10, 1000, 30, 300},   // gap 100+25 read through, 300+50 is big
		{10, 1000, 100, 1000}, // everything read through
		{10, 350, 100, 300},   // the last gap reaches the end
		{0, 1000, 5, 100},     // a gap starting at pos does not count
		{126, 1000, 5, 300},
	} {
		if got := p.runEnd(c.pos, c.size, c.minGap); got != c.want {
			t.Errorf("runEnd(%d, %d, %d) = %d, want %d", c.pos, c.size, c.minGap, got, c.want)
		}
	}
}
