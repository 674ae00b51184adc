//go:build !js

package client_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"darkchat/client"
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
