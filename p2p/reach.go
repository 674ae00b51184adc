package p2p

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// ReachabilityMode is how a node decides whether others can dial it.
type ReachabilityMode int

const (
	// ReachabilityAuto decides from evidence: AutoNAT v2's per-address
	// checks, inbound connections on a public interface address, and the
	// addresses peers observe us at.
	ReachabilityAuto ReachabilityMode = iota
	// ReachabilityPublic is the operator saying the node is reachable (a
	// VPS, a port-forwarded home server): it offers relay at once.
	ReachabilityPublic
	// ReachabilityPrivate is the operator saying the node is not reachable:
	// it reserves relay slots and never relays for others.
	ReachabilityPrivate
)

// ParseReachabilityMode parses "auto", "public" or "private".
func ParseReachabilityMode(s string) (ReachabilityMode, error) {
	switch s {
	case "auto", "":
		return ReachabilityAuto, nil
	case "public":
		return ReachabilityPublic, nil
	case "private":
		return ReachabilityPrivate, nil
	}
	return 0, fmt.Errorf("reachability %q: want auto, public or private", s)
}

func (m ReachabilityMode) String() string {
	switch m {
	case ReachabilityPublic:
		return "public"
	case ReachabilityPrivate:
		return "private"
	default:
		return "auto"
	}
}

// reachEvidence is what the node knows about its reachability at one
// moment. Every address in it is public in the sense of manet.IsPublicAddr
// (which --public-cidr extends).
type reachEvidence struct {
	// v2Reachable and v2Unreachable are AutoNAT v2's verdicts on our
	// public addresses: a server dialled each address back (or could not).
	v2Reachable, v2Unreachable []ma.Multiaddr
	// publicListen are the public addresses of our own interfaces we
	// listen on: a node that has one is not behind a NAT for it.
	publicListen []ma.Multiaddr
	// inbound is a peer at a public address that connected to us
	// directly, not by hole punching: proof that at least that peer could
	// dial us (on a public interface address, or through a forwarded port
	// or a cloud provider's 1:1 NAT).
	inbound string
	// natSeen is a public address a peer observed us at that is none of
	// our own: our packets were rewritten on the way, we are behind a NAT.
	natSeen ma.Multiaddr
}

// decideReachability is the node's reachability rule: the operator's
// override, else AutoNAT v2's per-address checks, else the connections and
// observations the node has seen. It returns the verdict and why, in words
// for the `nat` report.
//
// AutoNAT v1 is not consulted: it needs several peers with public
// addresses to dial us back, and the NATed peers of a lone public node
// cannot (their addresses are private), so a mesh with one public node
// would never have a relay.
func decideReachability(mode ReachabilityMode, ev reachEvidence) (network.Reachability, string) {
	switch mode {
	case ReachabilityPublic:
		return network.ReachabilityPublic, "set by the operator (--reachability public)"
	case ReachabilityPrivate:
		return network.ReachabilityPrivate, "set by the operator (--reachability private)"
	}
	switch {
	case len(ev.v2Reachable) > 0:
		return network.ReachabilityPublic, "AutoNAT v2: peers dialled us back at " + joinAddrs(ev.v2Reachable)
	case len(ev.v2Unreachable) > 0:
		return network.ReachabilityPrivate, "AutoNAT v2: peers could not dial us back at " + joinAddrs(ev.v2Unreachable) +
			"; using relays and hole punching"
	case ev.inbound != "":
		return network.ReachabilityPublic, "peer " + ev.inbound + " dialled us directly; AutoNAT v2 has not confirmed it yet"
	case len(ev.publicListen) == 0 && ev.natSeen != nil:
		return network.ReachabilityPrivate, "behind a NAT: this node listens on no public address and peers see it at " +
			ev.natSeen.String() + "; using relays and hole punching"
	case len(ev.publicListen) > 0:
		return network.ReachabilityUnknown, "listening on public address " + joinAddrs(ev.publicListen) +
			" but no peer has dialled us there yet (AutoNAT v2 needs a connected peer to check it)"
	default:
		return network.ReachabilityUnknown, "no connected peer has told us how it sees us yet"
	}
}

func joinAddrs(addrs []ma.Multiaddr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	slices.Sort(s)
	return strings.Join(slices.Compact(s), " ")
}

// reachState is the node's current reachability verdict, shared by the
// reachability goroutine (its only writer after New) and the `nat` report.
type reachState struct {
	mu      sync.Mutex
	verdict network.Reachability
	reason  string
	since   time.Time
}

func (s *reachState) get() (network.Reachability, string, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.verdict, s.reason, s.since
}

// reachRecheckInterval is how often the verdict is re-derived without an
// event: AutoNAT v2 re-checks addresses on its own schedule, and an
// inbound connection can come and go between events we watch.
const reachRecheckInterval = 30 * time.Second

// reachCoalesce is how long a burst of evidence events is gathered before
// the verdict is re-derived.
const reachCoalesce = 200 * time.Millisecond

// startReachability runs the node's reachability decision. It is the one
// source of EvtLocalReachabilityChanged on the host's bus (libp2p's AutoNAT
// v1 is pinned to "unknown", see newHost), so AutoRelay, the relay service
// and the DHT's server mode all follow decideReachability. The emitter is
// created and the first verdict emitted before it returns; after that, the
// decision is re-derived on its own goroutine whenever the event loop
// signals new evidence (reachWake), and every reachRecheckInterval.
func (n *Node) startReachability() error {
	em, err := n.basic.EventBus().Emitter(new(event.EvtLocalReachabilityChanged), eventbus.Stateful)
	if err != nil {
		return fmt.Errorf("reachability emitter: %w", err)
	}
	var inbound string // sticky: the first public peer that dialled us
	update := func() {
		ev := n.reachEvidence(&inbound)
		verdict, reason := decideReachability(n.cfg.Reachability, ev)
		s := &n.reach
		s.mu.Lock()
		changed := verdict != s.verdict || s.since.IsZero()
		s.reason = reason
		if changed {
			s.verdict, s.since = verdict, time.Now()
		}
		s.mu.Unlock()
		if changed {
			n.log.Info("reachability", "verdict", reachabilityWord(verdict), "why", reason)
			if err := em.Emit(event.EvtLocalReachabilityChanged{Reachability: verdict}); err != nil {
				n.log.Warn("reachability: cannot emit", "err", err)
			}
		}
	}
	update()
	loop := func() {
		defer em.Close()
		tick := time.NewTicker(reachRecheckInterval)
		defer tick.Stop()
		// Evidence comes in bursts (every connection and identify brings
		// some, and a connection flood brings thousands): it is
		// coalesced, so the evidence (an interface listing, a scan of
		// the connections) is gathered at most once per reachCoalesce.
		settle := time.NewTimer(0)
		<-settle.C
		pending := false
		for {
			select {
			case <-n.ctx.Done():
				settle.Stop()
				return
			case <-n.reachWake:
				if !pending {
					pending = true
					settle.Reset(reachCoalesce)
				}
				continue
			case <-settle.C:
				pending = false
			case <-tick.C:
			}
			update()
		}
	}
	if !n.spawn(loop) {
		em.Close()
		return ErrClosed
	}
	return nil
}

// reachEvidence gathers what decideReachability needs. inbound keeps the
// first direct inbound connection from a public peer to a public listen
// address across calls, while that address is still ours.
func (n *Node) reachEvidence(inbound *string) reachEvidence {
	var ev reachEvidence
	reachable, unreachable, _ := n.intro.ConfirmedAddrs()
	ev.v2Reachable = slices.DeleteFunc(reachable, func(a ma.Multiaddr) bool { return !manet.IsPublicAddr(a) })
	ev.v2Unreachable = slices.DeleteFunc(unreachable, func(a ma.Multiaddr) bool { return !manet.IsPublicAddr(a) })
	ev.publicListen = n.publicListenAddrs()
	if len(ev.publicListen) == 0 {
		*inbound = ""
	}
	if *inbound == "" {
		for _, c := range n.basic.Network().Conns() {
			if c.Stat().Direction != network.DirInbound || isRelayed(c.RemoteMultiaddr()) ||
				!manet.IsPublicAddr(c.RemoteMultiaddr()) {
				continue
			}
			// A QUIC connection's local address is the unspecified
			// address it listens on.
			if isOwnAddr(c.LocalMultiaddr(), ev.publicListen) || (isUnspecified(c.LocalMultiaddr()) && len(ev.publicListen) > 0) {
				*inbound = c.RemotePeer().String() + " (from " + c.RemoteMultiaddr().String() +
					") to our public address " + c.LocalMultiaddr().String()
				break
			}
			// To a private address: through a NAT that forwards our
			// port, unless it is a hole-punched connection (those come
			// from peers we reach through a relay or punched before).
			if !n.nat.everPunched(c.RemotePeer()) && !n.relayedTo(c.RemotePeer()) {
				*inbound = c.RemotePeer().String() + " (from " + c.RemoteMultiaddr().String() +
					") through a forwarded port or 1:1 NAT to " + c.LocalMultiaddr().String()
				break
			}
		}
	}
	ev.inbound = *inbound
	for _, a := range n.nat.observedAddrs() {
		if manet.IsPublicAddr(a) && !isOwnAddr(a, ev.publicListen) {
			ev.natSeen = a
			break
		}
	}
	return ev
}

// relayedTo reports whether some connection to p goes through a relay.
func (n *Node) relayedTo(p peer.ID) bool {
	if n.basic == nil {
		return false
	}
	return slices.ContainsFunc(n.basic.Network().ConnsToPeer(p), func(c network.Conn) bool {
		return isRelayed(c.RemoteMultiaddr())
	})
}

// publicListenAddrs lists the public addresses of this machine's own
// interfaces that the node listens on.
func (n *Node) publicListenAddrs() []ma.Multiaddr {
	addrs, err := n.basic.Network().InterfaceListenAddresses()
	if err != nil {
		return nil
	}
	return slices.DeleteFunc(addrs, func(a ma.Multiaddr) bool { return isRelayed(a) || !manet.IsPublicAddr(a) })
}

func isUnspecified(a ma.Multiaddr) bool {
	ip, err := manet.ToIP(a)
	return err == nil && ip.IsUnspecified()
}

// isOwnAddr reports whether a has the IP address of one of own.
func isOwnAddr(a ma.Multiaddr, own []ma.Multiaddr) bool {
	ip, err := manet.ToIP(a)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(own, func(o ma.Multiaddr) bool {
		oip, err := manet.ToIP(o)
		return err == nil && oip.Equal(ip)
	})
}
