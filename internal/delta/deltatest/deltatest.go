// Package deltatest holds what the tests of static deltas share.
package deltatest

import (
	"os"
	"os/exec"
	"testing"
)

// NeedXdelta skips a test when the xdelta3 program is missing, or fails it
// when BASCULE_TEST_REQUIRE_XDELTA3=1 (CI), so that a missing package
// cannot turn the delta tests into silent skips there.
func NeedXdelta(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("xdelta3"); err != nil {
		if os.Getenv("BASCULE_TEST_REQUIRE_XDELTA3") == "1" {
			t.Fatal("xdelta3 not found and BASCULE_TEST_REQUIRE_XDELTA3=1 (apt-get install xdelta3)")
		}
		t.Skip("xdelta3 not found (apt-get install xdelta3); set BASCULE_TEST_REQUIRE_XDELTA3=1 to make this a failure")
	}
}
