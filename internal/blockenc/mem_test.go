package blockenc

import "runtime"

// heapAlloc is the total bytes allocated so far.
func heapAlloc() int {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int(m.TotalAlloc)
}
