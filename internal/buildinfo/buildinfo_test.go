package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

// The version names at least the module version and the Go release the
// binary was built with.
func TestVersion(t *testing.T) {
	v := Version()
	f := strings.Fields(v)
	if len(f) < 2 || f[len(f)-1] != runtime.Version() {
		t.Fatalf("Version() = %q, want the module version first and %s last", v, runtime.Version())
	}
}
