package p2p

import (
	"context"
	"hash/fnv"
	mrand "math/rand"
	"slices"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/backoff"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	ma "github.com/multiformats/go-multiaddr"
)

// RendezvousNamespace is the DHT key every darkchat node advertises itself
// under, so that a node that peers with one member comes to know the others.
const RendezvousNamespace = "darkchat/v1/nodes"

// Discovery pacing. The loop runs fast while the network is forming and
// backs off to discoveryMaxInterval once nothing new turns up; a new
// connection resets it, because a new peer may know others.
const (
	discoveryMinInterval = time.Second
	discoveryMaxInterval = 2 * time.Minute
	readvertiseInterval  = 30 * time.Minute
	// maxDialsPerRound bounds the dials one round makes, however many
	// peers the DHT returns: a hostile DHT record cannot make the node
	// dial in a tight loop.
	maxDialsPerRound = 8
	dialTimeout      = 10 * time.Second
	// dialBackoff is how long a peer that failed a dial is left alone, as
	// long as it advertises the same addresses. A node behind NAT is first
	// found with only its LAN addresses and becomes dialable when it gains
	// a relay address: a changed address set is worth one more dial.
	dialBackoff = 5 * time.Minute
	// maxBackoffEntries bounds the failed-dial memory.
	maxBackoffEntries = 4096
)

// newDiscovery wraps DHT rendezvous with a cache that backs off repeated
// queries; GossipSub's topic discovery polls every second for topics with
// few peers, and without the cache every poll would be a DHT walk.
func newDiscovery(kad *dht.IpfsDHT) (discovery.Discovery, error) {
	d, err := backoff.NewBackoffDiscovery(drouting.NewRoutingDiscovery(kad),
		backoff.NewExponentialBackoff(time.Second, time.Minute, backoff.FullJitter,
			time.Second, 2, 0, mrand.NewSource(time.Now().UnixNano())))
	if err != nil {
		return nil, err
	}
	return retryingDiscovery{d}, nil
}

// advertiseRetry is how soon a failed advertisement is retried.
const advertiseRetry = 5 * time.Second

// retryingDiscovery makes failed advertisements retry soon, and bounds
// lookups. GossipSub
// advertises a topic when the node subscribes and, after a failure, waits
// the retry interval the Discovery returns, or two minutes if it returns
// none. A node that subscribes right after connecting usually has an empty
// DHT routing table for a moment, and two minutes of invisibility would
// break a conversation that is just starting.
type retryingDiscovery struct{ discovery.Discovery }

// findLimit caps the peers one lookup returns. libp2p's backoff cache
// forwards nothing at all to a caller that sets no limit, which GossipSub's
// topic discovery does not, so every lookup gets one.
const findLimit = 64

func (d retryingDiscovery) FindPeers(ctx context.Context, ns string, opts ...discovery.Option) (<-chan peer.AddrInfo, error) {
	var o discovery.Options
	if err := o.Apply(opts...); err != nil {
		return nil, err
	}
	if o.Limit == 0 {
		opts = append(opts, discovery.Limit(findLimit))
	}
	return d.Discovery.FindPeers(ctx, ns, opts...)
}

func (d retryingDiscovery) Advertise(ctx context.Context, ns string, opts ...discovery.Option) (time.Duration, error) {
	ttl, err := d.Discovery.Advertise(ctx, ns, opts...)
	if err != nil {
		return advertiseRetry, err
	}
	return ttl, nil
}

// failedDial remembers a peer whose dial failed, and the addresses tried.
type failedDial struct {
	at    time.Time
	addrs uint64 // hash of the sorted address set
}

// discoveryLoop connects to bootstrap peers, advertises the node under the
// rendezvous key and dials the other nodes it finds there.
//
// Behind NAT the mesh keeps changing shape: a private node becomes dialable
// only once it holds a relay reservation, and loses a path when its relay
// goes away. So the loop also runs early when this node's addresses change
// (re-advertising when its relay addresses did, so that DHT servers hand out
// the new ones) and when a peer disconnects (the peer may be reachable
// another way, through another relay). The event loop signals those
// (discAddrsChanged, discPeerLost) and new connections (kickDisc).
func (n *Node) discoveryLoop() {
	interval := discoveryMinInterval
	var lastAdvertise, lastRound time.Time
	failed := make(map[peer.ID]failedDial)
	bootstrapped := make(map[string]peer.ID) // --peer address -> the peer it led to
	timer := time.NewTimer(0)
	defer timer.Stop()

	relayAddrs := circuitAddrs(n.host.Addrs())
	for {
		churn := false
		select {
		case <-n.ctx.Done():
			return
		case <-n.kickDisc:
			interval = discoveryMinInterval
		case <-n.discAddrsChanged:
			now := circuitAddrs(n.host.Addrs())
			if slices.Equal(now, relayAddrs) {
				continue
			}
			relayAddrs = now
			lastAdvertise = time.Time{}
			churn = true
		case <-n.discPeerLost:
			churn = true
		case <-timer.C:
		}
		if churn {
			interval = discoveryMinInterval
			// Churn must not turn into back-to-back rounds.
			if wait := discoveryMinInterval - time.Since(lastRound); wait > 0 {
				timer.Reset(wait)
				continue
			}
		}
		lastRound = time.Now()
		found := n.connectBootstrap(bootstrapped)
		if n.disc != nil && len(n.host.Network().Peers()) > 0 {
			if time.Since(lastAdvertise) > readvertiseInterval {
				if n.advertise() {
					lastAdvertise = time.Now()
				}
			}
			found += n.findAndDial(failed)
		}
		if found > 0 {
			interval = discoveryMinInterval
		} else {
			interval = min(interval*2, discoveryMaxInterval)
		}
		timer.Reset(interval)
	}
}

// kick wakes the discovery loop, for example after a new connection.
func (n *Node) kick() {
	select {
	case n.kickDisc <- struct{}{}:
	default:
	}
}

// connectBootstrap connects to the configured bootstrap peers that are not
// connected, and returns how many it connected to. It runs every round,
// not only while the node has no peers: nodes of a testnet often start
// together, and a node whose bootstrap peer was not up yet but that others
// have already dialled would otherwise stay in a partition of its own (the
// DHT cannot join two meshes that share no node). known maps each address
// to the peer ID it led to, so a connected bootstrap peer costs nothing.
func (n *Node) connectBootstrap(known map[string]peer.ID) int {
	connected := 0
	for _, addr := range n.cfg.Bootstrap {
		if id, ok := known[addr]; ok && n.host.Network().Connectedness(id) == network.Connected {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
		id, err := n.Connect(ctx, addr)
		cancel()
		if err != nil {
			if len(n.host.Network().Peers()) == 0 {
				n.log.Warn("bootstrap peer unreachable; will retry", "peer", addr, "err", err)
			} else {
				n.log.Debug("bootstrap peer unreachable; will retry", "peer", addr, "err", err)
			}
			continue
		}
		known[addr] = id
		connected++
		n.log.Info("connected to bootstrap peer", "peer", addr, "id", id)
	}
	return connected
}

func (n *Node) advertise() bool {
	ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
	defer cancel()
	if _, err := n.disc.Advertise(ctx, RendezvousNamespace); err != nil {
		n.log.Debug("advertise failed; will retry", "err", err)
		return false
	}
	return true
}

// findAndDial looks up other nodes and dials the unconnected ones, within
// the connection manager's low watermark. It returns how many new peers it
// connected to.
func (n *Node) findAndDial(failed map[peer.ID]failedDial) int {
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	defer cancel()
	peers, err := n.disc.FindPeers(ctx, RendezvousNamespace)
	if err != nil {
		n.log.Debug("find peers failed", "err", err)
		return 0
	}
	now := time.Now()
	for p, f := range failed {
		if now.Sub(f.at) > dialBackoff {
			delete(failed, p)
		}
	}
	connected, dials := 0, 0
	for pi := range peers {
		if pi.ID == n.ID() || len(pi.Addrs) == 0 || dials >= maxDialsPerRound {
			continue // keep draining so the query can finish
		}
		if n.host.Network().Connectedness(pi.ID) == network.Connected {
			continue
		}
		addrs := addrSetHash(pi.Addrs)
		if f, ok := failed[pi.ID]; ok && f.addrs == addrs {
			continue
		}
		if len(n.host.Network().Peers()) >= n.cfg.ConnLow {
			continue
		}
		dials++
		dctx, dcancel := context.WithTimeout(n.ctx, dialTimeout)
		err := n.host.Connect(dctx, pi)
		dcancel()
		if err != nil {
			if _, ok := failed[pi.ID]; ok || len(failed) < maxBackoffEntries {
				failed[pi.ID] = failedDial{at: now, addrs: addrs}
			}
			n.log.Debug("discovered peer unreachable", "peer", pi.ID, "err", err)
			continue
		}
		connected++
		n.log.Info("connected to discovered peer", "peer", pi.ID)
	}
	return connected
}

// circuitAddrs returns the relay addresses among addrs, sorted.
func circuitAddrs(addrs []ma.Multiaddr) []string {
	var out []string
	for _, a := range addrs {
		if isRelayed(a) {
			out = append(out, a.String())
		}
	}
	slices.Sort(out)
	return out
}

// addrSetHash identifies a set of addresses regardless of order.
func addrSetHash(addrs []ma.Multiaddr) uint64 {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	slices.Sort(s)
	h := fnv.New64a()
	for _, a := range s {
		h.Write([]byte(a))
		h.Write([]byte{0})
	}
	return h.Sum64()
}
