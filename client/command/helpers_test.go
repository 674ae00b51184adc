//go:build !js

package command_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"darkchat/client"
	"darkchat/client/command"
	"darkchat/identity"
	"darkchat/tstest/clienttest"
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

// output collects an Interpreter's lines.
type output chan command.Line

func newOutput() output { return make(output, 1000) }

func (o output) print(l command.Line) { o <- l }

// waitLine returns the next line whose text starts with prefix, failing
// on any ERROR line unless prefix asks for one.
func (o output) waitLine(t *testing.T, prefix string) command.Line {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case l := <-o:
			if strings.HasPrefix(l.Text, prefix) {
				return l
			}
			if l.Kind == command.LineError && !strings.HasPrefix(prefix, "ERROR") {
				t.Fatalf("waiting for %q, got %q", prefix, l.Text)
			}
		case <-timeout:
			t.Fatalf("no line starting %q within %v", prefix, waitTimeout)
			return command.Line{}
		}
	}
}

// next returns the next line, whatever it is.
func (o output) next(t *testing.T) command.Line {
	t.Helper()
	select {
	case l := <-o:
		return l
	case <-time.After(waitTimeout):
		t.Fatalf("no line within %v", waitTimeout)
		return command.Line{}
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

// newClient returns a started interpreter connected to the server at addr.
func newClient(t *testing.T, addr string, cfg command.Config) (*command.Interpreter, output) {
	t.Helper()
	out := newOutput()
	if cfg.Key.IsZero() {
		cfg.Key = newKey(t)
	}
	cfg.Output = out.print
	cfg.Dial = func(ctx context.Context) (client.Transport, error) { return client.DialTCP(ctx, addr) }
	c, err := command.New(cfg)
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

// rawPeer is a bare client connection to the scripted server, for what
// the interpreter must see another user do by hand.
type rawPeer struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func (p *rawPeer) sendObj(obj client.Object) {
	p.t.Helper()
	data, err := client.Encode(obj)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.Write(append(data, '\n')); err != nil {
		p.t.Fatal(err)
	}
}

// recv returns the next object from the server, or nil at EOF.
func (p *rawPeer) recv() client.Object {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	line, err := p.r.ReadBytes('\n')
	if err != nil {
		return nil
	}
	obj, err := client.Decode(line[:len(line)-1])
	if err != nil {
		p.t.Fatalf("server sent %q: %v", line, err)
	}
	return obj
}
