// Package buildinfo says which build of darkchat is running, for the
// binaries' --version and the node's status.
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// Version describes the running binary: the module version Go recorded
// ("(devel)" for a build from a checkout), the commit it was built from
// (12 hex digits, "+dirty" with uncommitted changes) when Go recorded it,
// and the Go release, separated by spaces.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (built without module information)"
	}
	parts := []string{bi.Main.Version}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" {
		rev = rev[:min(12, len(rev))]
		if dirty {
			rev += "+dirty"
		}
		parts = append(parts, rev)
	}
	parts = append(parts, bi.GoVersion)
	return strings.Join(parts, " ")
}
