package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"darkchat/identity"
)

func runLoginRate(ctx context.Context, e *Env) ([]Result, error) {
	const workers = 16
	d := pick(e, 1500*time.Millisecond, 5*time.Second)
	node, err := startNode(benchGatewayConfig())
	if err != nil {
		return nil, err
	}
	defer node.close()
	// Users come back: a pool of keys, as many as the logins of a second.
	keys := make([]identity.PrivateKey, 1024)
	for i := range keys {
		if keys[i], err = identity.GenerateKey(); err != nil {
			return nil, err
		}
	}
	e.progress("node up; %d connecting goroutines for %v per round, %d rounds", workers, d, e.Rounds)
	runs, err := rounds(e,
		func(r int) (measurement, error) {
			var m measurement
			err := e.profile(func() (err error) {
				m, err = measureLogins(ctx, node, keys, workers, d)
				return err
			})
			e.progress("round %d darkchat: %.0f logins/s (%d sessions still open after)", r+1, m.rate, node.gw.Sessions())
			return m, err
		},
		func(r int) (measurement, error) {
			rate, err := loginCryptoBound(keys, d/3)
			e.progress("round %d sign+verify bound: %.0f logins/s", r+1, rate)
			return measurement{rate, 100}, err
		},
	)
	if err != nil {
		return nil, err
	}
	dark, base := medianOf(runs[0]), medianOf(runs[1])
	res := newResult("login-rate", "logins_per_s", dark.rate, "logins/s",
		"Ed25519 bound of a login (client sign + node verify), GOMAXPROCS goroutines", base.rate, ptr(valueAtLeast(10000, "logins/s")))
	res.Note = fmt.Sprintf("median of %d rounds of %v; %d goroutines each: TCP connect, hello, sign, login, welcome, close; source addresses 127.0.0.1-8", e.Rounds, d, workers)
	return []Result{res}, nil
}

// measureLogins runs workers goroutines that log in and disconnect in a
// loop for d, and returns completed logins per second.
func measureLogins(ctx context.Context, node *benchNode, keys []identity.PrivateKey, workers int, d time.Duration) (measurement, error) {
	var done atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the client ends over a few loopback addresses so that
			// TIME_WAIT sockets never exhaust one address's ports.
			local := net.IPv4(127, 0, 0, byte(1+w%8))
			buf := make([]byte, 0, 256)
			for i := w; time.Now().Before(deadline) && ctx.Err() == nil; i += workers {
				if err := loginOnce(ctx, node.tcpAddr, local, keys[i%len(keys)], buf); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	m := measurement{rate: float64(done.Load()) / elapsed.Seconds(), deliveredPct: 100}
	if p := firstErr.Load(); p != nil {
		return m, fmt.Errorf("%w: login: %v", ErrAssertion, *p)
	}
	// Sessions end asynchronously after the client hangs up; let them, so
	// that the next round starts from an idle node.
	waitFor(ctx, 20*time.Second, "sessions to close", func() bool { return node.gw.Sessions() == 0 })
	return m, nil
}

func loginOnce(ctx context.Context, addr string, local net.IP, key identity.PrivateKey, buf []byte) error {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: local}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Close with a reset: tens of thousands of client sockets a minute in
	// TIME_WAIT on one machine would make connect() hunt for free ports
	// (the rate falls tenfold past ~100,000 of them), an artefact of
	// running every client on the server's own machine.
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// A small read buffer: hello and welcome are a few hundred bytes.
	r := make([]byte, 1024)
	n, err := readLine(conn, r)
	if err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	challenge := stringField(r[:n], "challenge")
	if !isType(r[:n], "hello") || challenge == nil {
		return fmt.Errorf("expected hello, got %q", r[:n])
	}
	buf = appendLogin(buf[:0], key, string(challenge), "")
	buf = append(buf, '\n')
	if _, err := conn.Write(buf); err != nil {
		return err
	}
	if n, err = readLine(conn, r); err != nil {
		return fmt.Errorf("welcome: %w", err)
	}
	if !isType(r[:n], "welcome") {
		return fmt.Errorf("expected welcome, got %q", r[:n])
	}
	return nil
}

// readLine reads one line into buf (the node sends hello alone, and
// welcome alone in answer to login) and returns its length without "\n".
func readLine(conn net.Conn, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := conn.Read(buf[n:])
		n += k
		for i := n - k; i < n; i++ {
			if buf[i] == '\n' {
				return i, nil
			}
		}
		if err != nil {
			return n, err
		}
	}
	return n, errors.New("line longer than the buffer")
}

// loginCryptoBound is the signature work of a login: the client signs the
// login statement, the node verifies it.
func loginCryptoBound(keys []identity.PrivateKey, d time.Duration) (float64, error) {
	challenge := "dcl1.12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN.9f86d081884c7d659a2feaa0c55ad015.4102444800"
	return parallelRate(d, func(w int) error {
		key := keys[w%len(keys)]
		sig := identity.SignLogin(key, challenge)
		if err := identity.VerifyLogin(key.Public(), challenge, sig, "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN", time.Unix(4102444700, 0)); err != nil {
			return err
		}
		return nil
	})
}
