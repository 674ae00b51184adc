package gateway

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"darkchat/identity"
)

// Presence sync. A node that starts carrying a channel (its first session
// joins) asks one or two of its peers in the channel for their member
// table over a stream of PresenceProtocol, so that names is right at once
// rather than after the members' next refresh (2 minutes); and with each
// new peer in a carried channel's topic it compares tables with that peer
// (presence_heal.go):
//
//	request: len u8 || channel || count u16 || count × (len u16 || record)
//	answer:  count u16 || count × (len u16 || record)
//
// Integers are big-endian; records are presence records' wire forms
// (identity.Presence), at most maxSyncRecords each way. The request
// carries records of the asking node: on subscribe, the here records of
// its own sessions (published when the node had no peer in the channel
// yet, they reached nobody); with a new topic peer, its whole table, here
// and gone records. The answer carries the responder's unexpired records,
// here and gone, newest first, leaving out those the request holds at the
// same (timestamp, state) or newer. Each side then takes the records new
// to it: the answering node, and a node asking a new topic peer, publish
// them on the channel's topic (at most maxHealRepublish; the validator
// verifies each), so that its group learns them too; a node asking on
// subscribe verifies each record it does not already hold at that
// timestamp and state, after the checks the mesh validator makes
// (channel, clock, expiry, ban list), and keeps it.
const (
	// PresenceProtocol is the stream protocol of presence sync.
	PresenceProtocol = protocol.ID("/darkchat/presence/1.0.0")

	// syncPeers is how many peers a node asks: one may be slow or
	// missing records the other has.
	syncPeers = 2
	// syncWaitPeers bounds the wait for a first peer in the channel (its
	// subscription, or the DHT's topic discovery, takes a moment), and
	// syncPoll is how often the peers are looked at meanwhile.
	syncWaitPeers = 30 * time.Second
	syncPoll      = 200 * time.Millisecond
	// syncTimeout bounds one exchange, both ways.
	syncTimeout = 10 * time.Second
	// maxSyncRecords bounds the records of a request and of an answer
	// (about 900 KB at most): a larger channel's remaining members come
	// with their next refresh.
	maxSyncRecords = 4096
	// maxSyncPush bounds the records of a request on subscribe: the
	// node's own sessions'.
	maxSyncPush = 64
	// A peer may ask syncPeerBurst times at once and then once every
	// syncPeerEvery (a node asks once per channel it starts carrying);
	// over that its stream is reset. maxSyncPeers bounds the peers
	// tracked, maxSyncHandlers the requests answered at once: past
	// either, streams are reset.
	syncPeerBurst   = 8
	syncPeerEvery   = 5 * time.Second
	maxSyncPeers    = 1024
	maxSyncHandlers = 8
	// maxSyncing bounds the channels this node is syncing at once (it
	// carries at most the node's channel limit, but each sync is a
	// goroutine): over it a channel is not synced and learns from
	// refreshes.
	maxSyncing = 64
)

// PresenceMesh is the part of the mesh presence sync needs: the host to
// open and answer streams on, and a channel's peers. A Mesh without it
// learns members from their refreshes only.
type PresenceMesh interface {
	Host() host.Host
	ChannelPeers(channel string) []peer.ID
}

// presenceSync is the server's side of presence sync.
type presenceSync struct {
	mesh PresenceMesh

	mu        sync.Mutex
	peers     map[peer.ID]*authorBucket
	handlers  int
	syncing   map[string]struct{}
	exchanged map[healKey]time.Time // at most maxHealExchanged (presence_heal.go)

	stats syncCounters
}

// startPresence starts the member table's sweeper and, when the mesh can,
// presence sync. It runs in New.
func (srv *Server) startPresence() {
	srv.presence = newPresenceTable(srv)
	srv.bgWG.Add(1)
	go srv.presence.run()
	pm, ok := srv.mesh.(PresenceMesh)
	if !ok || pm.Host() == nil {
		return
	}
	ps := &presenceSync{mesh: pm, peers: make(map[peer.ID]*authorBucket), syncing: make(map[string]struct{}),
		exchanged: make(map[healKey]time.Time)}
	srv.presenceSync = ps
	h := pm.Host()
	h.SetStreamHandler(PresenceProtocol, srv.answerSync)
	srv.bgWG.Add(2)
	go srv.watchTopicPeers(ps)
	go func() {
		defer srv.bgWG.Done()
		<-srv.bgCtx.Done()
		h.RemoveStreamHandler(PresenceProtocol)
	}()
}

// syncPresence learns channel's table from its peers, in the background.
func (srv *Server) syncPresence(channel string) {
	ps := srv.presenceSync
	if ps == nil {
		return
	}
	ps.mu.Lock()
	if _, busy := ps.syncing[channel]; busy || len(ps.syncing) >= maxSyncing {
		ps.mu.Unlock()
		return
	}
	ps.syncing[channel] = struct{}{}
	ps.mu.Unlock()
	srv.bgWG.Add(1)
	go func() {
		defer srv.bgWG.Done()
		defer func() {
			ps.mu.Lock()
			delete(ps.syncing, channel)
			ps.mu.Unlock()
		}()
		srv.runSync(ps, channel)
	}()
}

func (srv *Server) runSync(ps *presenceSync, channel string) {
	deadline := time.Now().Add(syncWaitPeers)
	var peers []peer.ID
	for {
		peers = ps.mesh.ChannelPeers(channel)
		if len(peers) > 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-srv.bgCtx.Done():
			return
		case <-time.After(syncPoll):
		}
		if !srv.presence.carries(channel) {
			return
		}
	}
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	peers = peers[:min(len(peers), syncPeers)]
	answers := make([][][]byte, len(peers))
	for i, p := range peers {
		ps.noteExchange(channel, p, time.Now())
		records, err := srv.exchange(ps, p, channel, srv.presence.localHere(channel, maxSyncPush))
		if err != nil {
			srv.log.Debug("presence sync failed", "channel", channel, "peer", p, "err", err)
			continue
		}
		answers[i] = records
	}
	// The two peers may be of groups of the channel's nodes that have not
	// met (this node links them): what one answered and the other did
	// not is published, so that the other's group learns it; the rest is
	// only kept.
	for i, p := range peers {
		var spread func([]byte) bool
		if len(peers) == 2 && answers[1-i] != nil {
			other := knownOf(channel, answers[1-i])
			spread = func(w []byte) bool {
				var r identity.Presence
				if r.UnmarshalBinary(w) != nil {
					return false
				}
				o := other[presenceVersion{r.Key, r.Session}]
				return o == nil || r.Newer(o)
			}
		} else {
			spread = func([]byte) bool { return false }
		}
		srv.take(ps, p, channel, answers[i], spread)
		srv.log.Debug("presence sync", "channel", channel, "peer", p, "records", len(answers[i]))
	}
}

// answerSync answers a peer's sync request.
func (srv *Server) answerSync(s network.Stream) {
	ps := srv.presenceSync
	from := s.Conn().RemotePeer()
	if srv.bgCtx.Err() != nil || !ps.admit(from, time.Now()) {
		s.Reset()
		return
	}
	defer ps.done()
	s.SetDeadline(time.Now().Add(syncTimeout))
	br := bufio.NewReader(s)
	n, err := br.ReadByte()
	if err != nil || n == 0 || int(n) > identity.MaxChannelLen {
		s.Reset()
		return
	}
	name := make([]byte, n)
	if _, err := io.ReadFull(br, name); err != nil {
		s.Reset()
		return
	}
	channel := string(name)
	pushed, err := readRecords(br, maxSyncRecords)
	if err != nil || identity.ValidateChannelName(channel) != nil {
		s.Reset()
		return
	}
	ps.stats.answered.Add(1)
	ps.stats.read.Add(int64(1 + len(name) + 2 + 2*len(pushed) + recordBytes(pushed)))
	ps.noteExchange(channel, from, time.Now())
	answer := appendRecords(nil, srv.presence.wires(channel, srv.cfg.Now(), maxSyncRecords, knownOf(channel, pushed)))
	ps.stats.sent.Add(int64(len(answer)))
	if _, err := s.Write(answer); err != nil {
		s.Reset()
		return
	}
	s.Close()
	// The asking node's records new to this one: its group's, which
	// this node's group may lack.
	srv.take(ps, from, channel, pushed, nil)
}

func recordBytes(records [][]byte) int {
	n := 0
	for _, r := range records {
		n += len(r)
	}
	return n
}

// admit reserves a handler for a request from p, within p's budget.
func (ps *presenceSync) admit(p peer.ID, now time.Time) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.handlers >= maxSyncHandlers {
		return false
	}
	b := ps.peers[p]
	if b == nil {
		if len(ps.peers) >= maxSyncPeers {
			for q, qb := range ps.peers {
				if qb.tokens+now.Sub(qb.last).Seconds()/syncPeerEvery.Seconds() >= syncPeerBurst {
					delete(ps.peers, q)
				}
			}
			if len(ps.peers) >= maxSyncPeers {
				return false
			}
		}
		b = &authorBucket{tokens: syncPeerBurst, last: now}
		ps.peers[p] = b
	}
	refill(b, now, syncPeerBurst, 1/syncPeerEvery.Seconds())
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	ps.handlers++
	return true
}

func (ps *presenceSync) done() {
	ps.mu.Lock()
	ps.handlers--
	ps.mu.Unlock()
}

// carries reports whether the node carries channel (has sessions in it).
func (t *presenceTable) carries(channel string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.channels[channel] != nil
}

// appendRecords appends count u16 || count × (len u16 || record).
func appendRecords(b []byte, records [][]byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(records)))
	for _, r := range records {
		b = binary.BigEndian.AppendUint16(b, uint16(len(r)))
		b = append(b, r...)
	}
	return b
}

// readRecords reads count u16 || count × (len u16 || record), at most max
// records of at most identity.MaxPresenceWireLen bytes each.
func readRecords(r *bufio.Reader, max int) ([][]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > max {
		return nil, fmt.Errorf("%d records, at most %d", n, max)
	}
	out := make([][]byte, 0, n)
	for range n {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, err
		}
		l := int(binary.BigEndian.Uint16(hdr[:]))
		if l < identity.MinPresenceWireLen || l > identity.MaxPresenceWireLen {
			return nil, fmt.Errorf("a record of %d bytes", l)
		}
		w := make([]byte, l)
		if _, err := io.ReadFull(r, w); err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}
