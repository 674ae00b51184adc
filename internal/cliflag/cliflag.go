// Package cliflag holds command-line parsing shared by darkchat's binaries.
package cliflag

import "flag"

// ParseInterspersed lets flags come before, between and after positional
// arguments: the flag package stops at the first non-flag, so each stop
// collects one positional and parsing resumes after it. "--" ends flags.
// Errors are fs.Parse's (flag.ErrHelp for -h/--help).
func ParseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		// fs.Args() starts at the first non-flag, or after a "--".
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
