//go:build !js

package client_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"darkchat/client"
	"darkchat/client/clienttest"
	"darkchat/identity"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait in these tests; they normally take
// milliseconds.
const waitTimeout = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func newKey(t *testing.T) identity.PrivateKey {
	t.Helper()
	k, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// startServer serves srv on a loopback port and returns its address.
func startServer(t *testing.T, srv *clienttest.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.ServeTCP(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String()
}

// events collects a session's events for a test to wait on.
type events chan client.Event

func newEvents() events { return make(events, 1000) }

func (e events) on(ev client.Event) { e <- ev }

// waitEvent returns the next event of type T, skipping others.
func waitEvent[T client.Event](t *testing.T, e events) T {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case ev := <-e:
			if got, ok := ev.(T); ok {
				return got
			}
		case <-timeout:
			var zero T
			t.Fatalf("no %T event within %v", zero, waitTimeout)
			return zero
		}
	}
}

// dialSession connects a logged-in session to addr.
func dialSession(t *testing.T, addr string, cfg client.SessionConfig) *client.Session {
	t.Helper()
	tr, err := client.DialTCP(testCtx(t), addr)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Key.IsZero() {
		cfg.Key = newKey(t)
	}
	s, err := client.NewSession(tr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if !cfg.ManualAuth {
		if err := s.WaitLogin(testCtx(t)); err != nil {
			t.Fatalf("login: %v", err)
		}
	}
	return s
}

// output collects a Client's lines.
type output chan client.Line

func newOutput() output { return make(output, 1000) }

func (o output) print(l client.Line) { o <- l }

// waitLine returns the next line whose text starts with prefix, failing
// on any ERROR line unless prefix asks for one.
func (o output) waitLine(t *testing.T, prefix string) client.Line {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case l := <-o:
			if strings.HasPrefix(l.Text, prefix) {
				return l
			}
			if l.Kind == client.LineError && !strings.HasPrefix(prefix, "ERROR") {
				t.Fatalf("waiting for %q, got %q", prefix, l.Text)
			}
		case <-timeout:
			t.Fatalf("no line starting %q within %v", prefix, waitTimeout)
			return client.Line{}
		}
	}
}

// next returns the next line, whatever it is.
func (o output) next(t *testing.T) client.Line {
	t.Helper()
	select {
	case l := <-o:
		return l
	case <-time.After(waitTimeout):
		t.Fatalf("no line within %v", waitTimeout)
		return client.Line{}
	}
}

// none checks that no line arrives: the caller first makes sure that
// everything before has been printed (a later line it waited for).
func (o output) none(t *testing.T) {
	t.Helper()
	select {
	case l := <-o:
		t.Fatalf("unexpected line %q", l.Text)
	default:
	}
}

// newClient returns a started client of the server at addr.
func newClient(t *testing.T, addr string, cfg client.Config) (*client.Client, output) {
	t.Helper()
	out := newOutput()
	if cfg.Key.IsZero() {
		cfg.Key = newKey(t)
	}
	cfg.Output = out.print
	cfg.Dial = func(ctx context.Context) (client.Transport, error) { return client.DialTCP(ctx, addr) }
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Start(testCtx(t)); err != nil {
		t.Fatalf("start: %v", err)
	}
	out.waitLine(t, "Your PUBLIC KEY : "+cfg.Key.Public().String())
	if !cfg.ManualAuth {
		out.waitLine(t, fmt.Sprintf("Connected to Network as %s via node %s", cfg.Key.Public(), clienttest.DefaultNodeID))
	}
	return c, out
}
