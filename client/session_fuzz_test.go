//go:build !js

package client_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"darkchat/client"
	"darkchat/identity"
	"darkchat/tstest/clienttest"
)

// scriptTransport plays a node that sends a fixed list of frames and then
// closes; it records what the session sends.
type scriptTransport struct {
	mu     sync.Mutex
	frames [][]byte
	sent   []client.Object
	closed bool
}

func (s *scriptTransport) Recv(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.frames) == 0 {
		return nil, io.EOF
	}
	f := s.frames[0]
	s.frames = s.frames[1:]
	return f, nil
}

func (s *scriptTransport) Send(ctx context.Context, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return io.ErrClosedPipe
	}
	obj, err := client.Decode(data)
	if err != nil {
		return fmt.Errorf("the session sent %q: %v", data, err)
	}
	s.sent = append(s.sent, obj)
	return nil
}

func (s *scriptTransport) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// sessionFuzz is the fixed cast of FuzzSessionFrames: bob's session, and
// alice, the only other key that can sign.
type sessionFuzz struct {
	now        time.Time
	alice, bob identity.PrivateKey
	aliceDM    identity.DMPrivateKey
	aliceB     identity.KeyBundle
	bobB       identity.KeyBundle
	login      [][]byte // hello, welcome, joined lobby
}

func newSessionFuzz(t testing.TB) *sessionFuzz {
	z := &sessionFuzz{now: time.UnixMilli(1764086400123)}
	var err error
	if z.alice, err = identity.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)); err != nil {
		t.Fatal(err)
	}
	if z.bob, err = identity.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32)); err != nil {
		t.Fatal(err)
	}
	if z.aliceDM, err = z.alice.DMKey(); err != nil {
		t.Fatal(err)
	}
	if z.aliceB, err = identity.NewKeyBundle(z.alice, z.now, time.Hour); err != nil {
		t.Fatal(err)
	}
	if z.bobB, err = identity.NewKeyBundle(z.bob, z.now, time.Hour); err != nil {
		t.Fatal(err)
	}
	node := clienttest.DefaultNodeID
	ch := "dcl1." + node + ".000102030405060708090a0b0c0d0e0f.1764086460"
	z.login = [][]byte{
		z.encode(t, &client.Hello{Protocol: client.ProtocolVersion, Node: node, Challenge: ch}),
		z.encode(t, &client.Welcome{Key: z.bob.Public().String(), Node: node}),
		z.encode(t, &client.Joined{Channel: "lobby", Username: "bob"}),
	}
	return z
}

func (z *sessionFuzz) encode(t testing.TB, obj client.Object) []byte {
	data, err := client.Encode(obj)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// seeds returns frames a node may send after the login: a message, a DM
// and the answer to the whois its receipt needs, a receipt, and the rest.
func (z *sessionFuzz) seeds(t testing.TB) [][]byte {
	m, err := identity.NewChannelMessage(z.alice, "lobby", "alice", "hello \x1b[31m", z.now)
	if err != nil {
		t.Fatal(err)
	}
	env, _, err := identity.SealDM(z.alice, z.bobB, "alice", "psst", z.now)
	if err != nil {
		t.Fatal(err)
	}
	receipt, _, err := identity.SealReceipt(z.alice, z.bobB, [identity.MessageIDSize]byte{7}, z.now)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := client.EncodeKeyBundle(z.aliceB)
	if err != nil {
		t.Fatal(err)
	}
	alice := z.alice.Public().String()
	id := hex.EncodeToString(make([]byte, identity.MessageIDSize))
	return [][]byte{
		z.encode(t, &client.Message{Channel: m.Channel, Username: m.Username, Key: alice, Body: m.Body, TS: m.Timestamp,
			ID: hex.EncodeToString(m.ID[:]), Sig: hex.EncodeToString(m.Sig[:])}),
		z.encode(t, client.NewDM("", env)),
		z.encode(t, &client.Bundle{Key: alice, Bundle: bundle}),
		z.encode(t, client.NewDM("", receipt)),
		z.encode(t, &client.Error{Code: "unknown_user", Message: "no", Key: alice}),
		z.encode(t, &client.Error{Code: "no_route", Message: "offline", Ref: id}),
		z.encode(t, &client.Error{Code: "bad_signature", Message: "x", ID: id, Channel: "lobby"}),
		z.encode(t, &client.DMSent{Ref: id}),
		z.encode(t, &client.OK{ID: id}),
		z.encode(t, &client.Ping{}),
		z.encode(t, &client.Left{Channel: "lobby"}),
		z.encode(t, &client.Joined{Channel: "dev", Username: "b"}),
		z.encode(t, &client.Hello{Protocol: client.ProtocolVersion, Node: "x", Challenge: "dcl1.x.000102030405060708090a0b0c0d0e0f.1"}),
		[]byte(`{"type":"future","x":1}`),
	}
}

// run plays frames after the login to bob's session and returns its
// events and what it sent.
func (z *sessionFuzz) run(t testing.TB, data []byte) ([]client.Event, []client.Object) {
	frames := append(append([][]byte(nil), z.login...), bytes.Split(data, []byte("\n"))...)
	tr := &scriptTransport{frames: frames}
	var (
		mu     sync.Mutex
		events []client.Event
	)
	s, err := client.NewSession(tr, client.SessionConfig{
		Key:  z.bob,
		Node: clienttest.DefaultNodeID,
		Now:  func() time.Time { return z.now },
		OnEvent: func(ev client.Event) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end at the end of the frames")
	}
	s.Close()
	mu.Lock()
	defer mu.Unlock()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return events, tr.sent
}

// FuzzSessionFrames runs a logged-in session on frames from a node (split
// at "\n"), as its reader handles them: decoding, channel messages, DMs
// and receipts, bundles answering a whois, errors about DMs and whois. A
// node can send anything, so whatever it sends, the session must not
// panic or hang, must show only messages and DMs that verify (DMs for its
// user, within the time window, each once), must report no DM delivered
// (it sent none), and its receipts must open for the sender of a DM it
// showed and acknowledge that DM.
func FuzzSessionFrames(f *testing.F) {
	z := newSessionFuzz(f)
	seeds := z.seeds(f)
	f.Add(bytes.Join(seeds, []byte("\n")))
	for _, s := range seeds {
		f.Add(s)
	}
	// The seeds reach what they are for.
	events, sent := z.run(f, bytes.Join(seeds, []byte("\n")))
	var msgs, dms, receipts int
	for _, ev := range events {
		switch ev.(type) {
		case client.EventMessage:
			msgs++
		case client.EventDM:
			dms++
		}
	}
	for _, obj := range sent {
		if _, ok := obj.(*client.DM); ok {
			receipts++
		}
	}
	if msgs != 1 || dms != 1 || receipts != 1 {
		f.Fatalf("seeds: %d messages, %d DMs, %d receipts; want one of each", msgs, dms, receipts)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		events, sent := z.run(t, data)
		shown := make(map[[identity.MessageIDSize]byte]bool)
		dms := make(map[string]bool)
		for _, ev := range events {
			switch ev := ev.(type) {
			case client.EventMessage:
				m := ev.Message
				if err := m.Verify(); err != nil {
					t.Fatalf("showed a message that does not verify: %v", err)
				}
				if shown[m.ID] {
					t.Fatalf("showed message %x twice", m.ID)
				}
				shown[m.ID] = true
			case client.EventDM:
				m := ev.DM
				if m.Recipient != z.bob.Public() {
					t.Fatalf("showed a DM for %s", m.Recipient)
				}
				if err := m.Verify(); err != nil {
					t.Fatalf("showed a DM that does not verify: %v", err)
				}
				if d := m.Time().Sub(z.now); d > identity.DMTimestampWindow || d < -identity.DMTimestampWindow {
					t.Fatalf("showed a DM %v from now", d)
				}
				if m.Kind != identity.DMKindMessage {
					t.Fatalf("showed a DM of kind %d", m.Kind)
				}
				if dms[m.DedupKey()] {
					t.Fatal("showed a DM twice")
				}
				dms[m.DedupKey()] = true
			case client.EventDMStatus:
				if ev.Delivered {
					t.Fatalf("reported DM %s delivered; none was sent", ev.ID)
				}
			}
		}
		for i, obj := range sent {
			switch obj := obj.(type) {
			case *client.Login:
				if i != 0 {
					t.Fatalf("sent a login as object %d", i)
				}
			case *client.DM:
				env, err := obj.EnvelopeBytes()
				if err != nil {
					t.Fatal(err)
				}
				r, err := identity.OpenDM(z.aliceDM, env)
				if err != nil {
					t.Fatalf("sent a DM that does not open for alice: %v", err)
				}
				if r.Kind != identity.DMKindReceipt || r.Sender != z.bob.Public() {
					t.Fatalf("sent a DM of kind %d from %s; only receipts from bob", r.Kind, r.Sender)
				}
				alice := z.alice.Public()
				if !dms[string(alice[:])+string(r.Ack[:])] {
					t.Fatalf("sent a receipt for %x, not a DM it showed", r.Ack)
				}
			case *client.Whois, *client.Pong:
			default:
				t.Fatalf("sent %T unasked", obj)
			}
		}
	})
}
