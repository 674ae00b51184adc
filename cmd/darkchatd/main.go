// Command darkchatd runs a darkchat mesh node: a libp2p host that carries
// chat channels over GossipSub, with client gateways (TCP for the CLI
// client, WebSocket for browsers), an interactive console and an admin
// socket that `darkchatd ctl` drives. See `darkchatd --help` and the README.
//
// Files: main.go dispatches subcommands and handles signals; flags.go holds
// the options, flags and environment variables; run.go starts and stops a
// node; console.go is the command interpreter shared by the console and the
// admin socket; admin.go is the admin socket and the ctl client.

// Listeners are plain TCP, not Multipath TCP (Go's default where the kernel
// has it): the kernel refuses socket filters on Multipath TCP sockets, and
// the SYN filters on the gateway and peer ports (internal/synfilter) are
// how the node makes a source that reconnects in a loop wait.
//
//go:debug multipathtcp=0
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"syscall"

	"darkchat/internal/buildinfo"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// realMain runs darkchatd and returns its exit status: 0 on success and
// after a graceful shutdown, 1 on failure, 2 on a usage error.
func realMain(args []string, stdin *os.File, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		return usageFailure(stderr, usageErrorf("missing subcommand (full, cli, websock or ctl)"))
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		mainUsage(stdout)
		return 0
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, "darkchatd", buildinfo.Version())
		return 0
	case "ctl":
		return runCtl(args[1:], getenv, stdout, stderr)
	case "health":
		return runHealth(args[1:], getenv, stdout, stderr)
	}
	st, ok := lookupServerType(args[0])
	if !ok {
		return usageFailure(stderr, usageErrorf("unknown subcommand %q (want full, cli, websock or ctl)", args[0]))
	}
	o, err := parseServerArgs(st, args[1:], getenv, stdout)
	if err != nil {
		if isHelp(err) {
			return 0
		}
		return usageFailure(stderr, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, restore the default handling: a second
	// Ctrl-C ends a shutdown that takes too long.
	context.AfterFunc(ctx, stop)

	// DARKCHAT_CPUPROFILE=FILE writes a CPU profile of the whole run to
	// FILE (for `go tool pprof`), for operators and attack tests that need
	// to see where a node's time goes.
	if path := getenv("DARKCHAT_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(stderr, "darkchatd: DARKCHAT_CPUPROFILE: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "darkchatd: DARKCHAT_CPUPROFILE: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	// DARKCHAT_TRACE=FILE writes an execution trace of the whole run (for
	// `go tool trace`): where a node's goroutines waited, when its CPU
	// profile shows nothing busy.
	if path := getenv("DARKCHAT_TRACE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(stderr, "darkchatd: DARKCHAT_TRACE: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			fmt.Fprintf(stderr, "darkchatd: DARKCHAT_TRACE: %v\n", err)
			return 1
		}
		defer trace.Stop()
	}

	// DARKCHAT_MEMPROFILE=FILE writes a heap profile when the node exits
	// (for `go tool pprof`): what it held at the end, and where it
	// allocated over the run.
	if path := getenv("DARKCHAT_MEMPROFILE"); path != "" {
		defer func() {
			f, err := os.Create(path)
			if err != nil {
				fmt.Fprintf(stderr, "darkchatd: DARKCHAT_MEMPROFILE: %v\n", err)
				return
			}
			defer f.Close()
			if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
				fmt.Fprintf(stderr, "darkchatd: DARKCHAT_MEMPROFILE: %v\n", err)
			}
		}()
	}

	if err := runServer(ctx, o, stdin, stdout, stderr, getenv); err != nil {
		fmt.Fprintf(stderr, "darkchatd: %v\n", err)
		return 1
	}
	return 0
}

func isHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }

// usageFailure prints a command-line error and returns exit status 2.
func usageFailure(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "darkchatd: %v\nRun 'darkchatd --help' for usage.\n", err)
	return 2
}

func newCtlFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("darkchatd ctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}
