package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/prometheus/client_golang/prometheus"

	"darkchat/identity"
	"darkchat/p2p"
)

// rulesRecorder is a real node that also records the rules records the
// gateway stores in the DHT.
type rulesRecorder struct {
	*p2p.Node

	mu   sync.Mutex
	puts map[string][][]byte // channel → records stored, in order
}

func (r *rulesRecorder) PutRules(ctx context.Context, channel string, record []byte) error {
	r.mu.Lock()
	r.puts[channel] = append(r.puts[channel], bytes.Clone(record))
	r.mu.Unlock()
	return r.Node.PutRules(ctx, channel, record)
}

func (r *rulesRecorder) putsOf(channel string) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.puts[channel]
}

// startRecordedRulesNode is startRulesNode (rules enforced, records in the
// DHT) with its DHT stores recorded and its metrics on reg.
func startRecordedRulesNode(t *testing.T, reg prometheus.Registerer) (*testNode, *rulesRecorder) {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	table := NewRulesTable()
	node, err := p2p.New(p2p.Config{
		Key:             key,
		ListenIP:        netip.MustParseAddr("127.0.0.1"),
		Validator:       ChannelValidator(nil, DefaultTimestampWindow, AuthorLimit{}, nil, WithRules(table)),
		InboxValidator:  InboxValidator(),
		BundleValidator: BundleValidator{},
		RulesValidator:  RulesValidator{},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := &rulesRecorder{Node: node, puts: make(map[string][][]byte)}
	gw, err := New(Config{Rules: table, Registerer: reg}, rec, node.ID().String(), nil)
	if err != nil {
		node.Close()
		t.Fatal(err)
	}
	return serveTCP(t, node, gw), rec
}

// The records of the owned channels a node carries are stored in the DHT
// again on the node's schedule (republishRules is one round), and found
// there by another node; a channel the node no longer carries is left to
// the nodes that do. The rounds, the records held and the rules requests
// are counted.
func TestOwnedChannelRecordRepublished(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, rec := startRecordedRulesNode(t, reg)
	b := startRulesNode(t, true)
	linkNodes(t, a, b)

	alice := dialTCP(t, a.tcpAddr)
	alice.login()
	channel, err := identity.OwnedChannelName("dev", alice.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	alice.join(channel, "alice")
	r1, err := identity.NewChannelRules(alice.key, channel, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	alice.sendRules(&r1)
	alice.expectRules(channel, 1)
	wire, _ := r1.MarshalBinary()

	// A round stores the held record. (A's DHT may not have B in its
	// routing table yet, when the store fails: rounds are repeated until
	// one stores it. The join's lookup may store it meanwhile too.)
	stored := "darkchat_channel_rules_republished_total{result=stored}"
	failed := "darkchat_channel_rules_republished_total{result=failed}"
	waitUntil(t, 30*time.Second, "a round to store the record", func() bool {
		before := len(rec.putsOf(channel))
		a.gw.republishRules(rec)
		puts := rec.putsOf(channel)
		if len(puts) == before {
			t.Fatal("a round stored nothing")
		}
		for _, p := range puts[before:] {
			if !bytes.Equal(p, wire) {
				t.Fatal("a round stored another record than the one held")
			}
		}
		return series(t, reg)[stored] == 1
	})
	waitUntil(t, 30*time.Second, "B to find the record in the DHT", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		got, err := b.node.GetRules(ctx, channel)
		return err == nil && bytes.Equal(got, wire)
	})
	s := series(t, reg)
	rounds := s[stored] + s[failed]
	for name, want := range map[string]float64{
		"darkchat_channel_rules_records{}":            1,
		"darkchat_channel_rules_max_records{}":        maxRulesChannels,
		"darkchat_gateway_requests_total{kind=rules}": 1,
	} {
		if got := s[name]; got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}

	alice.send(map[string]any{"type": "leave", "channel": channel})
	alice.expect("left")
	waitUntil(t, 10*time.Second, "A to stop carrying the channel", func() bool {
		for _, ch := range a.gw.channels.names() {
			if ch == channel {
				return false
			}
		}
		return true
	})
	a.gw.republishRules(rec)
	s = series(t, reg)
	if n := s[stored] + s[failed]; n != rounds {
		t.Errorf("a round with the channel no longer carried tried %v stores, want none", n-rounds)
	}
}

// Each refusal of an owned channel's rules is counted by what it refused:
// a banned author's message, a non-operator's in a channel not open, a
// history answer carrying a banned author's message, a kick by a
// non-operator; and a full table counts what it drops.
func TestRulesRefusalsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	table := NewRulesTable()
	startNode(t, func(c *Config) { c.Registerer = reg; c.Rules = table })
	validate := ChannelValidator(nil, DefaultTimestampWindow, AuthorLimit{}, nil, WithRules(table))
	const from = "12D3KooWForwarder"

	owner, _ := identity.GenerateKey()
	bob, _ := identity.GenerateKey()
	carol, _ := identity.GenerateKey()
	channel, _ := identity.OwnedChannelName("dev", owner.Public())
	r, err := identity.NewChannelRules(owner, channel, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r.SetBans([]identity.PublicKey{bob.Public()})
	r.Open = false
	r.Sign(owner)
	wire, _ := r.MarshalBinary()
	if _, err := validate(from, channel, announcement(wire)); err != nil {
		t.Fatalf("announcement: %v", err)
	}
	msg := func(k identity.PrivateKey, body string) []byte {
		m, err := identity.NewChannelMessage(k, channel, "u", body, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := m.MarshalBinary()
		return b
	}
	ignored := func(what string, data []byte, ch string) {
		t.Helper()
		if _, err := validate(from, ch, data); !errors.Is(err, p2p.ErrIgnore) {
			t.Fatalf("%s: %v, want ignored", what, err)
		}
	}
	ignored("bob's message", msg(bob, "banned"), channel)
	ignored("bob's second message", msg(bob, "banned again"), channel)
	ignored("carol's message in a channel not open", msg(carol, "may I?"), channel)
	if _, err := validate(from, channel, msg(owner, "I may")); err != nil {
		t.Fatalf("the owner's message: %v", err)
	}
	k, _ := identity.NewChannelKick(carol, channel, owner.Public(), "", time.Now())
	kw, _ := k.MarshalBinary()
	ignored("carol's kick", append([]byte{wireKick}, kw...), channel)
	req := &historyRequestWire{channel: channel, limit: 10}
	rand.Read(req.id[:])
	if _, err := validate("", "", req.marshal()); err != nil {
		t.Fatalf("history request: %v", err)
	}
	for _, ans := range marshalHistoryAnswers(req.id, channel, [][]byte{msg(owner, "fine"), msg(bob, "banned")}) {
		ignored("an answer carrying bob's message", ans, "")
	}

	// Fill the table: one more channel than it holds.
	for i := range maxRulesChannels {
		ch, _ := identity.OwnedChannelName(fmt.Sprintf("c%d", i), owner.Public())
		r, err := identity.NewChannelRules(owner, ch, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		w, _ := r.MarshalBinary()
		if _, err := validate(from, ch, announcement(w)); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}

	s := series(t, reg)
	for name, want := range map[string]float64{
		"darkchat_channel_rules_refused_total{what=banned}":         2,
		"darkchat_channel_rules_refused_total{what=moderated}":      1,
		"darkchat_channel_rules_refused_total{what=kick}":           1,
		"darkchat_channel_rules_refused_total{what=history_answer}": 1,
		"darkchat_channel_rules_records{}":                          maxRulesChannels,
		"darkchat_channel_rules_evicted_total{}":                    1,
	} {
		if got := s[name]; got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
