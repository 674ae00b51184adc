// Command darkchat is the darkchat command-line client: it logs
// in to a node's TCP or WebSocket gateway with the user's Ed25519 identity
// and runs the chat commands of package client, interactively on a
// terminal or scripted from a pipe. keygen, id and sign manage the identity
// offline.
//
// Exit status: 0 on success; 1 when the login failed, the connection broke
// or a command failed; 2 for a usage error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"darkchat/internal/buildinfo"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// subcommands are the identity commands; anything else is a chat.
var subcommands = []string{"keygen", "id", "sign"}

func run(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	err := dispatch(args, stdin, stdout, stderr)
	var ue *usageError
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "darkchat: %v\n\n%s", err, usageText)
		return 2
	case errors.As(err, &ee):
		return int(ee) // already reported
	}
	fmt.Fprintf(stderr, "darkchat: %v\n", err)
	return 1
}

// exitError ends the program with a status after the failure was shown.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func dispatch(args []string, stdin *os.File, stdout, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version" || args[0] == "version") {
		fmt.Fprintln(stdout, "darkchat", buildinfo.Version())
		return nil
	}
	// A subcommand may come after flags ("darkchat --key F id"): find the
	// first argument that is not a flag or a flag's value.
	if i := subcommandIndex(args); i >= 0 {
		rest := slices.Concat(args[:i], args[i+1:])
		switch args[i] {
		case "keygen":
			return keygen(rest, stdout, stderr)
		case "id":
			return printID(rest, stdout, stderr)
		case "sign":
			return signChallenge(rest, stdout, stderr)
		}
	}
	o, err := parseChat(args, stdout)
	if err != nil {
		return err
	}
	return chat(o, stdin, stdout, stderr)
}

// valueFlags are the flags (of any command) that take a separate value.
var valueFlags = []string{"key", "wait", "name", "node", "fallback"}

// subcommandIndex returns the index of the first positional argument if it
// names a subcommand, else -1.
func subcommandIndex(args []string) int {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return -1
		case len(a) > 1 && a[0] == '-':
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && slices.Contains(valueFlags, name) {
				i++ // skip its value
			}
		default:
			if slices.Contains(subcommands, a) {
				return i
			}
			return -1
		}
	}
	return -1
}
