package metrics

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// serve runs Handler(cfg) on a loopback listener of its own and returns its
// base URL.
func serve(t *testing.T, cfg Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Handler(cfg)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestMetricsHealthAndRuntime(t *testing.T) {
	base := serve(t, Config{Gatherer: NewRegistry(), Ready: &Readiness{}})
	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{"go_goroutines ", "process_open_fds ", "process_max_fds "} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _ := get(t, base+"/nothing"); code != 404 {
		t.Errorf("/nothing: %d, want 404", code)
	}
}

// /readyz is 503 with the first failing check's reason until every check
// passes.
func TestReadyz(t *testing.T) {
	var ready Readiness
	base := serve(t, Config{Gatherer: NewRegistry(), Ready: &ready})
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.HasPrefix(body, "not ready: starting") {
		t.Errorf("/readyz with no checks: %d %q", code, body)
	}
	var gateways, peers atomic.Bool
	ready.Add("gateways", func() error {
		if !gateways.Load() {
			return errors.New("not listening yet")
		}
		return nil
	})
	ready.Add("peers", func() error {
		if !peers.Load() {
			return errors.New("no peer connected")
		}
		return nil
	})
	if code, body := get(t, base+"/readyz"); code != 503 || body != "not ready: gateways: not listening yet\n" {
		t.Errorf("/readyz before the gateways: %d %q", code, body)
	}
	gateways.Store(true)
	if code, body := get(t, base+"/readyz"); code != 503 || body != "not ready: peers: no peer connected\n" {
		t.Errorf("/readyz without peers: %d %q", code, body)
	}
	peers.Store(true)
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz when ready: %d %q", code, body)
	}
}

func TestPprofOnlyWhenAsked(t *testing.T) {
	off := serve(t, Config{Gatherer: NewRegistry()})
	if code, _ := get(t, off+"/debug/pprof/"); code != 404 {
		t.Errorf("/debug/pprof/ without Pprof: %d, want 404", code)
	}
	on := serve(t, Config{Gatherer: NewRegistry(), Pprof: true})
	if code, body := get(t, on+"/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/goroutine with Pprof: %d", code)
	}
}
