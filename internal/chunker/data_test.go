package chunker

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
)

// testData returns n deterministic bytes shaped like a root file system
// image: incompressible runs (compressed files), zero runs (padding, sparse
// regions; they produce max-size chunks) and log-like text, in turn. Runs
// that produce chunks of exactly min bytes for each spec in forceMin are
// interleaved, starting early so that short inputs have them too.
func testData(seed uint64, n int, forceMin ...Spec) []byte {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	var key [32]byte
	key[0] = byte(seed)
	noise := rand.NewChaCha8(key)
	data := make([]byte, 0, n+4<<20)
	for _, s := range forceMin {
		data = appendMinRun(data, s, 3)
	}
	for i := 0; len(data) < n; i++ {
		switch i % 3 {
		case 0:
			buf := make([]byte, 1<<10+rng.IntN(512<<10))
			noise.Read(buf)
			data = append(data, buf...)
		case 1:
			data = appendText(data, rng, 4<<10+rng.IntN(1<<20))
		case 2:
			data = append(data, make([]byte, 256<<10+rng.IntN(3<<20))...)
		}
		if len(forceMin) > 0 {
			data = appendMinRun(data, forceMin[i%len(forceMin)], 3+rng.IntN(8))
		}
	}
	return data[:n]
}

var words = []string{"systemd", "kernel", "eth0", "link", "up", "down", "mounted",
	"/usr/lib", "started", "stopped", "service", "error", "warning", "ok", "bundle",
	"slot", "a", "b", "update", "boot", "rootfs", "sha256", "0x1f", "timeout"}

func appendText(data []byte, rng *rand.Rand, n int) []byte {
	end := len(data) + n
	for len(data) < end {
		data = fmt.Appendf(data, "Jan %2d %02d:%02d:%02d host%d %s[%d]:",
			1+rng.IntN(31), rng.IntN(24), rng.IntN(60), rng.IntN(60),
			rng.IntN(4), words[rng.IntN(len(words))], rng.IntN(5000))
		for range 3 + rng.IntN(10) {
			data = append(data, ' ')
			data = append(data, words[rng.IntN(len(words))]...)
		}
		data = append(data, '\n')
	}
	return data
}

// appendMinRun appends reps blocks of min-48 zero bytes followed by a window
// whose hash is a cut: once a chunk boundary falls on a block end, every
// following chunk is exactly min bytes long.
func appendMinRun(data []byte, s Spec, reps int) []byte {
	magic := cutWindow(s)
	for range reps {
		data = append(data, make([]byte, s.MinBlock()-window)...)
		data = append(data, magic...)
	}
	return data
}

var cutWindows sync.Map // Spec -> []byte

// cutWindow finds (by deterministic search) a 48-byte window whose casync
// hash is a cut for s.
func cutWindow(s Spec) []byte {
	if w, ok := cutWindows.Load(s); ok {
		return w.([]byte)
	}
	d := discriminator(s.avg(), s.MinBlock(), s.MaxBlock())
	rng := rand.New(rand.NewPCG(uint64(s.KiB), 48))
	w := make([]byte, window)
	for {
		for i := range w {
			w[i] = byte(rng.Uint32())
		}
		if windowHash(w)%d == d-1 {
			cutWindows.Store(s, w)
			return w
		}
	}
}

func windowHash(w []byte) uint32 {
	var h uint32
	for i, b := range w {
		h ^= bits.RotateLeft32(table[b], window-1-i)
	}
	return h
}

// refSizes is a literal, byte-at-a-time transcription of casync's chunker
// state machine (skip, fill window, start, roll, shall_break) with a plain
// modulo, used as an oracle for the optimised scan.
func refSizes(s Spec, data []byte) []int {
	lo, hi := s.MinBlock(), s.MaxBlock()
	d := discriminator(s.avg(), lo, hi)
	skip := lo - window
	var (
		sizes []int
		size  int
		win   [window]byte
		h     uint32
	)
	for _, b := range data {
		size++
		switch {
		case size <= skip:
			continue
		case size < lo:
			win[size-skip-1] = b
			continue
		case size == lo:
			win[window-1] = b
			h = windowHash(win[:])
		default:
			idx := (size - lo - 1) % window
			h = bits.RotateLeft32(h, 1) ^ bits.RotateLeft32(table[win[idx]], window) ^ table[b]
			win[idx] = b
		}
		if size >= hi || h%d == d-1 {
			sizes = append(sizes, size)
			size = 0
		}
	}
	if size > 0 {
		sizes = append(sizes, size)
	}
	return sizes
}
