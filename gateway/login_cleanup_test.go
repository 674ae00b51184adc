package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"darkchat/identity"
	"darkchat/p2p"
)

// bundleRecorder is a real node that also records which users' bundles the
// gateway put into the DHT, so a test can see publishing and republishing.
type bundleRecorder struct {
	*p2p.Node

	mu   sync.Mutex
	puts []string // users, in order
}

func (r *bundleRecorder) PutBundle(ctx context.Context, user string, bundle []byte) error {
	r.mu.Lock()
	r.puts = append(r.puts, user)
	r.mu.Unlock()
	return r.Node.PutBundle(ctx, user, bundle)
}

func (r *bundleRecorder) putsOf(user string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, u := range r.puts {
		if u == user {
			n++
		}
	}
	return n
}

// startRecordedGateway runs a TCP gateway on a real node, closed first if
// failing is set: a closed node refuses every subscription, as a mesh that
// fails in the middle of a login does.
func startRecordedGateway(t *testing.T, failing bool) (*Server, *bundleRecorder, string) {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	node, err := p2p.New(p2p.Config{
		Key:             key,
		ListenIP:        netip.MustParseAddr("127.0.0.1"),
		Validator:       ChannelValidator(nil, DefaultTimestampWindow, AuthorLimit{}, nil),
		InboxValidator:  InboxValidator(),
		BundleValidator: BundleValidator{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if failing {
		node.Close()
	}
	rec := &bundleRecorder{Node: node}
	gw, err := New(Config{}, rec, node.ID().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gw.ServeTCP(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		gw.Close(ctx)
		node.Close()
	})
	return gw, rec, l.Addr().String()
}

// sendLoginWithBundle sends c's login with a fresh, valid key bundle.
func (c *client) sendLoginWithBundle() {
	c.t.Helper()
	b, err := identity.NewKeyBundle(c.key, time.Now(), time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	raw, err := b.Marshal()
	if err != nil {
		c.t.Fatal(err)
	}
	m := c.loginMsg()
	m["bundle"] = base64.StdEncoding.EncodeToString(raw)
	c.send(m)
}

// registered reports whether the gateway's bundle registry holds an entry
// for key.
func registered(gw *Server, key identity.PublicKey) bool {
	gw.bundles.mu.Lock()
	defer gw.bundles.mu.Unlock()
	_, ok := gw.bundles.byKey[key]
	return ok
}

func sessionCount(gw *Server) int {
	gw.mu.Lock()
	defer gw.mu.Unlock()
	return gw.sessions.len()
}

// A login whose DM inbox subscription fails on the mesh, with a bundle
// that verifies, is refused; once the session is gone the registry holds
// nothing for it and the bundle is neither published nor republished.
func TestFailedLoginLeavesNoBundle(t *testing.T) {
	gw, rec, addr := startRecordedGateway(t, true)
	c := dialTCP(t, addr)
	c.sendLoginWithBundle()
	c.expectError(codeInternal)
	c.expectClosed()
	waitUntil(t, 10*time.Second, "the refused session to be cleaned up", func() bool { return sessionCount(gw) == 0 })

	key := c.key.Public()
	if registered(gw, key) {
		t.Error("the registry still holds the bundle of a session whose login failed")
	}
	if raw := gw.localBundle(key); raw != nil {
		t.Error("whois would still be answered with the bundle of a session whose login failed")
	}
	gw.republishBundles()
	if n := rec.putsOf(key.String()); n != 0 {
		t.Errorf("the bundle of a failed login was put into the DHT %d times, want none", n)
	}
}

// The control for the test above: on a working mesh the same login
// registers the bundle and republishing puts it again, until the session
// ends.
func TestLoggedInBundleIsRepublishedUntilTheSessionEnds(t *testing.T) {
	gw, rec, addr := startRecordedGateway(t, false)
	c := dialTCP(t, addr)
	c.loginWithBundle()
	key := c.key.Public()
	if !registered(gw, key) {
		t.Fatal("the bundle of a logged-in session is not in the registry")
	}
	waitUntil(t, 10*time.Second, "the login's publication", func() bool { return rec.putsOf(key.String()) == 1 })
	gw.republishBundles()
	if n := rec.putsOf(key.String()); n != 2 {
		t.Fatalf("after a republish the bundle was put %d times, want 2", n)
	}

	c.tcp.Close()
	waitUntil(t, 10*time.Second, "the closed session to be cleaned up", func() bool { return sessionCount(gw) == 0 })
	if registered(gw, key) {
		t.Error("the registry still holds the bundle of a closed session")
	}
	gw.republishBundles()
	if n := rec.putsOf(key.String()); n != 2 {
		t.Errorf("the bundle of a closed session was put again (%d puts, want 2)", n)
	}
}
