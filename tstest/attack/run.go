package attack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"darkchat/identity"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Spec is one attack, run by one attacker process (Main), so that the
// attacker's CPU use competes with the victim and the honest users the way
// a real attacker's does: as another process, not as goroutines sharing
// the honest clients' scheduler.
type Spec struct {
	// Kind is the attack: one of the Kind* constants.
	Kind string
	// Target is the victim's multiaddr, ending in /p2p/<peer ID>, for
	// the attacks on the mesh.
	Target string
	// Gateway is the victim's gateway address (host:port), for the
	// attacks on its gateways.
	Gateway string
	// Listen is the attacker's own listen multiaddr; its IP is the
	// attack's source address. Empty means /ip4/127.0.0.1/tcp/0.
	Listen string
	// Duration bounds the attack.
	Duration time.Duration
	// Channel is the channel attacked, for the attacks on one.
	Channel string
	// Peers is how many peer IDs attack at once.
	Peers int
}

// Attack kinds.
const (
	// KindSubscriptions: Peers peer IDs announce fresh channel topics,
	// 1,000 per RPC, reconnecting whenever they are cut off.
	KindSubscriptions = "subscriptions"
	// KindFreshKeys: Peers attackers at once, each a fresh peer ID
	// publishing validly signed, fresh messages on Channel under 1,000
	// keys of its own made for the attack, in turn, 50 per RPC.
	KindFreshKeys = "fresh-keys"
	// KindReplays: Peers attackers at once, each publishing 100 validly
	// signed messages dated 10 minutes ago, over and over.
	KindReplays = "replays"
	// KindOversized: Peers attackers at once, each publishing messages
	// one byte over the default size limit, 8 per RPC.
	KindOversized = "oversized"
	// KindControl: Peers attackers at once, each streaming RPCs with an
	// IHAVE and an IWANT of 5,000 random message IDs, a GRAFT and a PRUNE
	// for Channel.
	KindControl = "control"
	// KindInvalidSignatures: Peers attackers at once, each a fresh peer
	// ID publishing messages with random signatures on Channel, 50 per
	// RPC; a cut-off attacker is replaced by a new peer ID.
	KindInvalidSignatures = "invalid-signatures"
)

// Result is what an attack achieved.
type Result struct {
	// Sent counts what the attack sent: topics announced or messages
	// published; for the gateway attacks, the most connections held at
	// once or the channel joins accepted (gateway.go).
	Sent int64
	// PeerIDs is how many peer IDs attacked.
	PeerIDs int64
	// CutOff is how many of them the target disconnected or refused.
	CutOff int64
	// SlowestCutOff is the longest an attacking peer ID kept sending
	// before the target cut it off.
	SlowestCutOff time.Duration
	// StillConnected is how many attacking peer IDs were connected to the
	// target when the attack ended.
	StillConnected int
	// Conns counts the TCP connections a gateway attack opened.
	Conns int64
	// Refused counts what a gateway attack had refused: connections at
	// accept, or channel joins; for the rotating peer attacks, the peer
	// IDs whose connection was refused (or timed out) before they sent
	// anything.
	Refused int64
	// Closed counts the connections the target closed after accepting
	// them (hold-connections), or the logins that failed
	// (create-channels).
	Closed int64
	// DialFailed counts connection attempts that failed (timed out, or
	// out of local ports or descriptors).
	DialFailed int64
	// CPU is the user and system CPU time the attacker process used.
	CPU time.Duration
}

// Begun is the line Main prints once the attack has sent something.
const Begun = "attack begun"

// Main runs the attack spec (JSON) describes, prints Begun once it is
// under way and then the Result as one JSON line, and returns the process
// exit status.
func Main(spec string, out io.Writer) int {
	var s Spec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintf(out, "bad attack spec: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.Duration)
	defer cancel()
	var once sync.Once
	r, err := Run(ctx, s, func() { once.Do(func() { fmt.Fprintln(out, Begun) }) })
	if err != nil {
		fmt.Fprintf(out, "attack failed: %v\n", err)
		return 1
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b, _ := json.Marshal(r)
	fmt.Fprintf(out, "%s\n", b)
	return 0
}

// Run runs the attack s describes until ctx ends, calling begun (perhaps
// more than once) when something was sent.
func Run(ctx context.Context, s Spec, begun func()) (Result, error) {
	var target peer.AddrInfo
	if s.Target != "" {
		a, err := ma.NewMultiaddr(s.Target)
		if err != nil {
			return Result{}, fmt.Errorf("target %q: %w", s.Target, err)
		}
		t, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return Result{}, fmt.Errorf("target %q: %w", s.Target, err)
		}
		target = *t
	}
	if s.Listen == "" {
		s.Listen = "/ip4/127.0.0.1/tcp/0"
	}
	if s.Peers <= 0 {
		s.Peers = 1
	}
	run, ok := kinds[s.Kind]
	if !ok {
		return Result{}, fmt.Errorf("unknown attack kind %q", s.Kind)
	}
	var t tally
	err := run(&t, ctx, s, target, begun)
	return t.result(), err
}

// kinds maps each attack kind to the function that runs it; each records
// what it did in the tally and calls begun once it has sent something.
var kinds = map[string]func(t *tally, ctx context.Context, s Spec, target peer.AddrInfo, begun func()) error{
	KindSubscriptions:   (*tally).subscriptions,
	KindHoldConnections: (*tally).holdConnections,
	KindCreateChannels:  (*tally).createChannels,
	KindInvalidSignatures: func(t *tally, ctx context.Context, s Spec, target peer.AddrInfo, begun func()) error {
		return t.rotating(ctx, s, target, begun, func(ctx context.Context, p *Peer) error {
			return p.InvalidFlood(ctx, target, s.Channel, 50, 1<<30, &t.sent)
		})
	},
	KindFreshKeys: func(t *tally, ctx context.Context, s Spec, target peer.AddrInfo, begun func()) error {
		return t.rotating(ctx, s, target, begun, func(ctx context.Context, p *Peer) error {
			keys := make([]identity.PrivateKey, freshKeys)
			for i := range keys {
				var err error
				if keys[i], err = identity.GenerateKey(); err != nil {
					return err
				}
			}
			return p.SignedFlood(ctx, target, s.Channel, keys, 50, &t.sent)
		})
	},
	KindReplays: func(t *tally, ctx context.Context, s Spec, target peer.AddrInfo, begun func()) error {
		return t.rotating(ctx, s, target, begun, func(ctx context.Context, p *Peer) error {
			return p.ReplayFlood(ctx, target, s.Channel, 10*time.Minute, 100, 50, &t.sent)
		})
	},
	KindOversized: func(t *tally, ctx context.Context, s Spec, target peer.AddrInfo, begun func()) error {
		return t.rotating(ctx, s, target, begun, func(ctx context.Context, p *Peer) error {
			return p.OversizedFlood(ctx, target, s.Channel, oversized, 8, &t.sent)
		})
	},
	KindControl: func(t *tally, ctx context.Context, s Spec, target peer.AddrInfo, begun func()) error {
		return t.rotating(ctx, s, target, begun, func(ctx context.Context, p *Peer) error {
			return p.ControlFlood(ctx, target, s.Channel, 5000, &t.sent)
		})
	},
}

// freshKeys is how many keys each fresh-keys attacker makes.
const freshKeys = 1000

// oversized is one byte over darkchatd's default message size limit.
const oversized = 64<<10 + 1

// tally counts what an attack did, from its concurrent attackers.
type tally struct {
	sent, ids, cutOff, slowest atomic.Int64
	stillConnected             atomic.Int64
	// The gateway attacks' counts (gateway.go).
	conns, refused, closed, dialFailed atomic.Int64
}

func (t *tally) result() Result {
	return Result{
		Sent:           t.sent.Load(),
		PeerIDs:        t.ids.Load(),
		CutOff:         t.cutOff.Load(),
		SlowestCutOff:  time.Duration(t.slowest.Load()),
		StillConnected: int(t.stillConnected.Load()),
		Conns:          t.conns.Load(),
		Refused:        t.refused.Load(),
		Closed:         t.closed.Load(),
		DialFailed:     t.dialFailed.Load(),
	}
}

// cut records that an attacker was cut off after sending for d.
func (t *tally) cut(d time.Duration) {
	t.cutOff.Add(1)
	for {
		old := t.slowest.Load()
		if int64(d) <= old || t.slowest.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

// subscriptions: s.Peers fixed peer IDs, each announcing topics and
// reconnecting whenever it is cut off, so that a ban must hold.
func (t *tally) subscriptions(ctx context.Context, s Spec, target peer.AddrInfo, begun func()) error {
	var peers []*Peer
	defer func() {
		for _, p := range peers {
			p.Close()
		}
	}()
	for range s.Peers {
		p, err := NewPeer(s.Listen)
		if err != nil {
			return err
		}
		peers = append(peers, p)
	}
	t.ids.Store(int64(len(peers)))
	start := time.Now()
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			var cut bool
			for ctx.Err() == nil {
				n, err := p.SubscriptionFlood(ctx, target, fmt.Sprintf("p%d-", i), 1000, 1<<30)
				if n > 0 {
					t.sent.Add(int64(n))
					begun()
				}
				if err != nil && ctx.Err() == nil && !cut {
					cut = true
					t.cut(time.Since(start))
				}
				if err != nil {
					// A refused dial fails at once; do not spin.
					select {
					case <-ctx.Done():
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
		})
	}
	wg.Wait()
	for _, p := range peers {
		if p.Connected(target.ID) {
			t.stillConnected.Add(1)
		}
	}
	return nil
}

// rotating runs s.Peers attackers at once, each a fresh peer ID running
// attack until it is cut off, then replaced by another.
func (t *tally) rotating(ctx context.Context, s Spec, target peer.AddrInfo, begun func(), attack func(context.Context, *Peer) error) error {
	var wg sync.WaitGroup
	for range s.Peers {
		wg.Go(func() {
			for ctx.Err() == nil {
				p, err := NewPeer(s.Listen)
				if err != nil {
					return
				}
				t.ids.Add(1)
				began := time.Now()
				before := t.sent.Load()
				err = attack(ctx, p)
				if t.sent.Load() > before {
					begun()
				}
				switch {
				case errors.Is(err, ErrNotConnected) && ctx.Err() == nil:
					t.cutOff.Add(1) // refused before it could send
					t.refused.Add(1)
				case err != nil && ctx.Err() == nil:
					// From when it could send: a connection the target's
					// SYN filter kept waiting is no time spent sending.
					from := began
					if p.connectedAt.After(from) {
						from = p.connectedAt
					}
					t.cut(time.Since(from))
				case p.Connected(target.ID):
					t.stillConnected.Add(1)
				}
				p.Close()
			}
		})
	}
	wg.Wait()
	return nil
}
