// Command darkbench runs darkchat's benchmark suite: every scenario with
// its baseline measured in the same run on the same machine, reported as
// ratios (see package bench beside it and BENCHMARKS.md).
//
//	go run ./cmd/darkbench              # the full suite, a table on stdout
//	go run ./cmd/darkbench -quick       # a smoke run of every scenario (CI)
//	go run ./cmd/darkbench -json        # one JSON object per result line
//	go run ./cmd/darkbench -only fanout # one scenario (repeatable, or a,b)
//	go run ./cmd/darkbench -cpuprofile prof/  # prof/<scenario>.pprof
//	go run ./cmd/darkbench -send 10.0.0.1:9000 -recv 10.0.0.3:9000  # running nodes
//
// Progress goes to stderr. The exit status is 1 when a scenario broke an
// invariant (messages lost, a node verifying a message twice) or failed to
// run; missing a performance target is reported, not an error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"darkchat/cmd/darkbench/bench"
)

func main() {
	bench.ChildMain() // the session-memory client process, when re-run as one
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type onlyFlag []string

func (o *onlyFlag) String() string { return strings.Join(*o, ",") }
func (o *onlyFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*o = append(*o, s)
		}
	}
	return nil
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("darkbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "short smoke run of every scenario and its baseline (about a minute)")
	asJSON := fs.Bool("json", false, "print one JSON object per result line instead of a table")
	var only onlyFlag
	fs.Var(&only, "only", "run only this scenario (repeat or comma-separate for several)")
	profDir := fs.String("cpuprofile", "", "write a CPU profile of each scenario's first darkchat measurement to `DIR`/<scenario>.pprof (session-memory: heap profiles DIR/session-memory-<mode>.heap.pprof)")
	roundsN := fs.Int("rounds", 0, "alternating darkchat/baseline rounds for the throughput scenarios (default 1 with -quick, 3 otherwise)")
	list := fs.Bool("list", false, "list the scenarios and exit")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	var ext bench.External
	fs.StringVar(&ext.SendAddr, "send", "", "measure running nodes instead: senders use the TCP gateway at `HOST:PORT` (with -recv; runs channel-throughput and latency only)")
	fs.StringVar(&ext.RecvAddr, "recv", "", "receivers use the TCP gateway at `HOST:PORT` (with -send)")
	fs.IntVar(&ext.Nodes, "nodes", 3, "with -send/-recv: how many nodes verify each message on the way, for the crypto bound (`N`)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "darkbench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *list {
		for _, s := range bench.Scenarios() {
			fmt.Fprintf(stdout, "%-20s %s\n", s.Name, s.Doc)
		}
		return 0
	}
	if err := bench.RaiseFileLimit(); err != nil {
		fmt.Fprintf(stderr, "darkbench: raise open-file limit: %v\n", err)
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "darkbench: %v\n", err)
		return 1
	}
	env := &bench.Env{Quick: *quick, Rounds: *roundsN, ProfileDir: *profDir, Exe: []string{exe}}
	if env.Rounds == 0 {
		env.Rounds = 3
		if *quick {
			env.Rounds = 1
		}
	}
	if !*quiet {
		env.Progress = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var results []bench.Result
	enc := json.NewEncoder(stdout)
	emit := func(r bench.Result) {
		if *asJSON {
			enc.Encode(r)
		}
		results = append(results, r)
	}
	var runErr error
	if ext.SendAddr != "" || ext.RecvAddr != "" {
		if ext.SendAddr == "" || ext.RecvAddr == "" {
			fmt.Fprintln(stderr, "darkbench: -send and -recv go together")
			return 2
		}
		runErr = bench.RunExternal(ctx, env, ext, only, emit)
	} else {
		runErr = bench.Run(ctx, env, only, emit)
	}
	if !*asJSON && len(results) > 0 {
		bench.WriteTable(stdout, results)
	}
	if runErr != nil {
		fmt.Fprintf(stderr, "darkbench: %v\n", runErr)
		return 1
	}
	return 0
}
