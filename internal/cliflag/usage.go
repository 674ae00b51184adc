package cliflag

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// PrintDefaults is flag.PrintDefaults with GNU-style "--" names, as the
// binaries are documented and parsed; note, if not nil, adds a line to
// each flag (darkchatd: its environment variable).
func PrintDefaults(w io.Writer, fs *flag.FlagSet, note func(*flag.Flag) string) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); !isBool && name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, strings.ReplaceAll(usage, "\n", "\n      "))
		if d := f.DefValue; d != "" && d != "false" && d != "0" && d != "0s" && !strings.Contains(usage, "default") {
			fmt.Fprintf(w, "      (default %s)\n", d)
		}
		if note != nil {
			if n := note(f); n != "" {
				fmt.Fprintf(w, "      %s\n", n)
			}
		}
	})
}
