package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"sync"
	"time"
)

// Env is what every scenario gets: the run's size and where to report.
type Env struct {
	// Quick shrinks every scenario to a smoke run that still measures each
	// one against its baseline.
	Quick bool
	// Rounds is how many times the throughput scenarios alternate
	// darkchat and baseline runs (A B A B …); the medians are reported.
	Rounds int
	// ProfileDir, if set, receives <scenario>.pprof: a CPU profile of the
	// scenario's first darkchat measurement.
	ProfileDir string
	// Progress receives human progress lines; nil discards them.
	Progress io.Writer
	// Exe is the command that re-runs this program; the session-memory
	// scenario starts its client process with it (and DARKBENCH_CHILD set).
	Exe []string

	scenario  string
	profiled  bool
	startedAt time.Time
}

// Scenario is one benchmark with its baselines.
type Scenario struct {
	Name string
	Doc  string
	run  func(ctx context.Context, e *Env) ([]Result, error)
}

// Scenarios lists the suite in the order it runs.
func Scenarios() []Scenario {
	return []Scenario{
		{"channel-throughput", "clients → gateway → A–B–C → gateway → clients, messages/s", runChannelThroughput},
		{"latency", "client-to-client delay across three nodes at 1,000 msg/s", runLatency},
		{"session-memory", "heap+stack bytes per idle logged-in session", runSessionMemory},
		{"fanout", "one channel, 1,000 clients on one node, deliveries/s", runFanout},
		{"mesh-scale", "100 mocknet nodes: highest rate with >= 99.9% delivered and p99 < 100 ms", runMeshScale},
		{"dm-throughput", "DMs sealed, routed across two nodes and opened, per second", runDMThroughput},
		{"login-rate", "connect, hello, sign, login, welcome, per second", runLoginRate},
	}
}

// Run runs the named scenarios (all when names is empty) in suite order,
// passing each result to emit as soon as its scenario ends. A scenario
// that fails is reported and the others still run; the returned error
// joins the failures.
func Run(ctx context.Context, e *Env, names []string, emit func(Result)) error {
	all := Scenarios()
	for _, n := range names {
		if !slices.ContainsFunc(all, func(s Scenario) bool { return s.Name == n }) {
			return fmt.Errorf("unknown scenario %q", n)
		}
	}
	if e.Rounds <= 0 {
		e.Rounds = 1
	}
	var errs []error
	for _, s := range all {
		if len(names) > 0 && !slices.Contains(names, s.Name) {
			continue
		}
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		e.scenario, e.profiled, e.startedAt = s.Name, false, time.Now()
		e.progress("start (%s)", s.Doc)
		results, err := s.run(ctx, e)
		for _, r := range results {
			emit(r)
		}
		if err != nil {
			e.progress("FAILED: %v", err)
			errs = append(errs, fmt.Errorf("%s: %w", s.Name, err))
		} else {
			e.progress("done in %.1fs", time.Since(e.startedAt).Seconds())
		}
	}
	return errors.Join(errs...)
}

func (e *Env) progress(format string, args ...any) {
	if e.Progress == nil {
		return
	}
	fmt.Fprintf(e.Progress, "[%s %5.1fs] %s\n", e.scenario, time.Since(e.startedAt).Seconds(), fmt.Sprintf(format, args...))
}

// pick returns quick in a quick run and full otherwise.
func pick[T any](e *Env, quick, full T) T {
	if e.Quick {
		return quick
	}
	return full
}

// profile runs f under the CPU profiler the first time it is called in a
// scenario (when profiling is on), so the profile shows darkchat's side of
// one measurement and not the baselines.
func (e *Env) profile(f func() error) error {
	if e.ProfileDir == "" || e.profiled {
		return f()
	}
	e.profiled = true
	if err := os.MkdirAll(e.ProfileDir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(e.ProfileDir, e.scenario+".pprof")
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := pprof.StartCPUProfile(out); err != nil {
		return f() // another profile is running; measure without
	}
	defer e.progress("CPU profile written to %s", path)
	defer pprof.StopCPUProfile()
	return f()
}

// rounds runs each measurement e.Rounds times, alternating them, and
// returns each one's results in order of rounds.
func rounds[T any](e *Env, fs ...func(round int) (T, error)) ([][]T, error) {
	out := make([][]T, len(fs))
	for r := 0; r < e.Rounds; r++ {
		for i, f := range fs {
			v, err := f(r)
			if err != nil {
				return out, err
			}
			out[i] = append(out[i], v)
		}
	}
	return out, nil
}

// median of xs (xs is sorted in place).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	if n := len(xs); n%2 == 1 {
		return xs[n/2]
	} else {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// watchdog calls stall when progress() has not changed for idle, and
// gives up when ctx ends; stop ends it. It bounds every measurement that
// waits for messages.
func watchdog(ctx context.Context, idle time.Duration, progress func() int64, stall func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last, since := progress(), time.Now()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				stall()
				return
			case <-t.C:
			}
			if p := progress(); p != last {
				last, since = p, time.Now()
			} else if time.Since(since) > idle {
				stall()
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }); wg.Wait() }
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
