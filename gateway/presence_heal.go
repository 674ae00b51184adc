package gateway

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"darkchat/identity"
	"darkchat/p2p"
)

// Presence anti-entropy on new topic peers. The nodes of a channel do not
// always form one group when its members announce themselves: a node that
// starts carrying a channel before any of its neighbours does announces its
// members to itself alone, and two halves of a partitioned mesh announce
// theirs to their own half. When such groups meet — a node carrying the
// channel links them, or the partition heals — each node sees new peers in
// the channel's topic. With each new topic peer a node compares tables over
// PresenceProtocol (presence_sync.go): its request carries its whole table,
// here and gone records, and the peer answers with the records the request
// lacks or holds older. Each side then publishes on the channel's topic the
// records that were new to it (at most maxHealRepublish), so that they
// reach its whole group by GossipSub; a group that lacked a record lacks it
// on every node, and the nodes that already have it drop the copies as
// seen. A missed leave converges the same way: a gone record is exchanged
// while the table holds it (until its expiry).
//
// Per channel a node exchanges once with each new topic peer (an exchange
// the peer started counts: whoever goes first after the settle's jitter),
// at most healBurst at once and healRate a second after that.
const (
	// healPoll is how often the topic peers of the carried channels are
	// looked at: a new peer is noticed within it.
	healPoll = 500 * time.Millisecond
	// A new topic peer is asked healSettle plus up to healJitter after
	// it was noticed: its own sync on subscribe (it asks two of its peers
	// when it starts carrying the channel) has finished by then, so its
	// answer carries its group's table, and the jitter lets one of two
	// nodes that noticed each other go first, the other then standing
	// down (healWindow).
	healSettle = time.Second
	healJitter = time.Second
	// healWindow is how long an exchange with a peer in a channel, asked
	// or answered, counts as the one for that peer: a peer that comes
	// back after it (a partition healed, a restart) is asked again.
	healWindow = 30 * time.Second
	// healBurst exchanges per channel at once, then healRate a second: a
	// heal shows a node's few peers across the cut at once, and one
	// exchange per group met is enough, the others confirm it. What is
	// over the rate waits, at most maxHealPending peers per channel;
	// past that new peers are dropped (counted): the others' exchanges
	// and gossip cover them.
	healBurst      = 4
	healRate       = 2
	maxHealPending = 16
	// maxHealInFlight bounds the node's exchanges under way at once.
	maxHealInFlight = 4
	// maxHealRepublish bounds the records a node publishes from one
	// exchange: the burst of keys new to it a node admits (256, in
	// authors.go) — more, if they were all new keys, would be ignored by
	// the next nodes' new-key budgets anyway. A larger difference
	// (hundreds of members joined on each side of a long partition) is
	// covered by the other exchanges of the heal, which pick their share
	// at random, and at the latest by the members' next refresh.
	maxHealRepublish = 256
	// maxHealExchanged bounds the (channel, peer) exchanges remembered
	// for healWindow; when full, expired ones are dropped, and if none
	// is, an exchange is not remembered (the peer may then be asked once
	// more).
	maxHealExchanged = 4096
)

// healKey is one (channel, peer) exchange remembered.
type healKey struct {
	channel string
	peer    peer.ID
}

// PresenceSyncStats counts a node's presence exchanges since it started.
type PresenceSyncStats struct {
	// Exchanges asked (on subscribe and with new topic peers) and
	// answered.
	Asked, Answered int64
	// BytesSent and BytesRead are the exchanges' stream payloads.
	BytesSent, BytesRead int64
	// Republished is how many records learned by exchanges the node
	// published on their channel's topic.
	Republished int64
	// Dropped is how many new topic peers were not asked (too many
	// waiting in their channel).
	Dropped int64
}

// syncCounters are PresenceSyncStats' counters.
type syncCounters struct {
	asked, answered, sent, read, republished, dropped, failed atomic.Int64
}

// PresenceSyncStats returns the node's presence exchange counters (zero
// without presence sync).
func (s *Server) PresenceSyncStats() PresenceSyncStats {
	ps := s.presenceSync
	if ps == nil {
		return PresenceSyncStats{}
	}
	c := &ps.stats
	return PresenceSyncStats{Asked: c.asked.Load(), Answered: c.answered.Load(), BytesSent: c.sent.Load(),
		BytesRead: c.read.Load(), Republished: c.republished.Load(), Dropped: c.dropped.Load()}
}

// noteExchange remembers an exchange with p in channel, asked or answered.
func (ps *presenceSync) noteExchange(channel string, p peer.ID, now time.Time) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	k := healKey{channel, p}
	if _, ok := ps.exchanged[k]; !ok && len(ps.exchanged) >= maxHealExchanged {
		for q, at := range ps.exchanged {
			if now.Sub(at) >= healWindow {
				delete(ps.exchanged, q)
			}
		}
		if len(ps.exchanged) >= maxHealExchanged {
			return
		}
	}
	ps.exchanged[k] = now
}

// exchangedRecently reports whether this node and p exchanged channel's
// tables within healWindow.
func (ps *presenceSync) exchangedRecently(channel string, p peer.ID, now time.Time) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	at, ok := ps.exchanged[healKey{channel, p}]
	return ok && now.Sub(at) < healWindow
}

// healChannel is the watcher's state for one carried channel.
type healChannel struct {
	peers   map[peer.ID]struct{}  // the topic peers at the last look
	pending map[peer.ID]time.Time // new peers to ask, and when
	bucket  authorBucket
}

// watchTopicPeers exchanges tables with each new topic peer of the
// carried channels, until the server closes.
func (srv *Server) watchTopicPeers(ps *presenceSync) {
	defer srv.bgWG.Done()
	tick := time.NewTicker(healPoll)
	defer tick.Stop()
	chans := make(map[string]*healChannel) // the carried channels
	var inFlight atomic.Int32
	lastSummary := time.Now()
	for {
		select {
		case <-srv.bgCtx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		carried := srv.presence.carried()
		for ch := range chans {
			if !slices.Contains(carried, ch) {
				delete(chans, ch)
			}
		}
		for _, ch := range carried {
			hc := chans[ch]
			if hc == nil {
				hc = &healChannel{peers: make(map[peer.ID]struct{}), pending: make(map[peer.ID]time.Time),
					bucket: authorBucket{tokens: healBurst, last: now}}
				chans[ch] = hc
			}
			cur := ps.mesh.ChannelPeers(ch)
			seen := make(map[peer.ID]struct{}, len(cur))
			for _, p := range cur {
				seen[p] = struct{}{}
				if _, known := hc.peers[p]; known {
					continue
				}
				if _, waiting := hc.pending[p]; waiting {
					continue
				}
				if len(hc.pending) >= maxHealPending {
					ps.stats.dropped.Add(1)
					continue
				}
				hc.pending[p] = now.Add(healSettle + rand.N(healJitter))
			}
			hc.peers = seen
			for p, due := range hc.pending {
				if _, still := seen[p]; !still {
					delete(hc.pending, p)
					continue
				}
				if now.Before(due) {
					continue
				}
				if ps.exchangedRecently(ch, p, now) {
					delete(hc.pending, p)
					continue
				}
				refill(&hc.bucket, now, healBurst, healRate)
				if hc.bucket.tokens < 1 || inFlight.Load() >= maxHealInFlight {
					continue // next look
				}
				hc.bucket.tokens--
				delete(hc.pending, p)
				ps.noteExchange(ch, p, now)
				inFlight.Add(1)
				srv.bgWG.Add(1)
				go func() {
					defer srv.bgWG.Done()
					defer inFlight.Add(-1)
					if err := srv.healExchange(ps, p, ch); err != nil {
						ps.stats.failed.Add(1)
						srv.log.Debug("presence exchange failed", "channel", ch, "peer", p, "err", err)
					}
				}()
			}
		}
		if now.Sub(lastSummary) >= presenceSummaryEvery {
			lastSummary = now
			if f, d := ps.stats.failed.Swap(0), ps.stats.dropped.Load(); f > 0 {
				srv.log.Debug("presence exchanges with new topic peers failed", "failed", f, "dropped_total", d)
			}
		}
	}
}

// healExchange sends p this node's table of channel and publishes the
// records p answers that are new to this node.
func (srv *Server) healExchange(ps *presenceSync, p peer.ID, channel string) error {
	push := srv.presence.wires(channel, srv.cfg.Now(), maxSyncRecords, nil)
	records, err := srv.exchange(ps, p, channel, push)
	if err != nil {
		return err
	}
	srv.take(ps, p, channel, records, nil)
	return nil
}

// exchange sends p a request for channel carrying push and returns its
// answer's records.
func (srv *Server) exchange(ps *presenceSync, p peer.ID, channel string, push [][]byte) ([][]byte, error) {
	ps.stats.asked.Add(1)
	ctx, cancel := context.WithTimeout(srv.bgCtx, syncTimeout)
	defer cancel()
	s, err := ps.mesh.Host().NewStream(network.WithAllowLimitedConn(ctx, "presence sync"), p, PresenceProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(syncTimeout))
	req := make([]byte, 0, 1+len(channel)+2)
	req = append(req, byte(len(channel)))
	req = append(req, channel...)
	req = appendRecords(req, push)
	ps.stats.sent.Add(int64(len(req)))
	if _, err := s.Write(req); err != nil {
		s.Reset()
		return nil, err
	}
	s.CloseWrite()
	cr := &countingReader{r: s}
	records, err := readRecords(bufio.NewReader(cr), maxSyncRecords)
	ps.stats.read.Add(cr.n)
	if err != nil {
		s.Reset()
		return nil, err
	}
	return records, nil
}

// take takes the records (from peer p) new to this node. Those that
// spread selects (nil: all) are published on channel's topic, at most
// maxHealRepublish, so that the node's group learns them too: what
// changes who is listed first (a session new to the table, a gone), then
// refreshes, which only delay an expiry, each in random order (several
// nodes of a group that republish the same difference then share it
// out). The mesh validator checks and verifies each — the record's one
// verification on this node — and its delivery to the channel's sessions
// applies it to the table. The others are verified and applied here,
// after the checks the validator makes. A record whose signature fails
// ends it: p sent a forgery, and the rest from p is not worth verifying.
func (srv *Server) take(ps *presenceSync, p peer.ID, channel string, records [][]byte, spread func(w []byte) bool) {
	now := srv.cfg.Now()
	var changes, refreshes, kept [][]byte
	for _, w := range records {
		var r identity.Presence
		if r.UnmarshalBinary(w) != nil || r.Channel != channel {
			continue
		}
		if time.UnixMilli(r.Timestamp).Sub(now) > srv.cfg.TimestampWindow || now.UnixMilli() >= r.Expires || srv.cfg.Bans.Banned(r.Key) {
			continue
		}
		n := srv.presence.novelty(&r)
		switch {
		case n == presenceHeld:
		case spread != nil && !spread(w):
			kept = append(kept, w)
		case n == presenceChange:
			changes = append(changes, w)
		default:
			refreshes = append(refreshes, w)
		}
	}
	rand.Shuffle(len(changes), func(i, j int) { changes[i], changes[j] = changes[j], changes[i] })
	rand.Shuffle(len(refreshes), func(i, j int) { refreshes[i], refreshes[j] = refreshes[j], refreshes[i] })
	fresh := append(changes, refreshes...)
	n := min(len(fresh), maxHealRepublish)
	kept = append(kept, fresh[n:]...)
	for _, w := range fresh[:n] {
		if !srv.presence.carries(channel) {
			return
		}
		ctx, cancel := context.WithTimeout(srv.bgCtx, presenceGoneTimeout)
		err := srv.mesh.Publish(ctx, channel, w)
		cancel()
		switch {
		case err == nil:
			ps.stats.republished.Add(1)
		case errors.Is(err, identity.ErrBadSignature):
			srv.log.Debug("presence exchange: a record with a bad signature", "channel", channel, "peer", p)
			return
		case errors.Is(err, p2p.ErrIgnore), errors.Is(err, context.Canceled):
			// Already seen, rate-limited or expired meanwhile.
		default:
			srv.log.Debug("presence record from an exchange not published", "channel", channel, "peer", p, "err", err)
		}
	}
	for _, w := range kept {
		var r identity.Presence
		if r.UnmarshalBinary(w) != nil || srv.presence.has(&r) {
			continue
		}
		if r.Verify() != nil {
			srv.log.Debug("presence exchange: a record with a bad signature", "channel", channel, "peer", p)
			return
		}
		srv.presence.apply(&r, w, now)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r interface{ Read([]byte) (int, error) }
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// Table side.

// What a record would do to the table.
const (
	presenceHeld    = iota // held already, at its (timestamp, state) or newer
	presenceChange         // a (key, session) not held, or another state
	presenceRefresh        // the same state, later
)

// novelty tells what r would do to the table.
func (t *presenceTable) novelty(r *identity.Presence) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	var e *presenceEntry
	if cp := t.channels[r.Channel]; cp != nil {
		e = cp.members[r.Key][r.Session]
	}
	switch {
	case e == nil:
		return presenceChange
	case !r.Newer(&e.rec):
		return presenceHeld
	case r.State != e.rec.State:
		return presenceChange
	}
	return presenceRefresh
}

// presenceVersion is what a (key, session) is held at.
type presenceVersion struct {
	key     identity.PublicKey
	session presenceID
}

// carried lists the channels the node carries.
func (t *presenceTable) carried() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.channels))
	for ch := range t.channels {
		out = append(out, ch)
	}
	return out
}

// wires returns the wire forms of channel's unexpired records, here and
// gone, newest first, at most limit, leaving out those the asking side
// holds at the same (timestamp, state) or newer (known, from its request).
func (t *presenceTable) wires(channel string, now time.Time, limit int, known map[presenceVersion]*identity.Presence) [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	cp := t.channels[channel]
	if cp == nil {
		return nil
	}
	ms := now.UnixMilli()
	var es []*presenceEntry
	for key, sessions := range cp.members {
		for id, e := range sessions {
			if ms >= e.rec.Expires {
				continue
			}
			if k := known[presenceVersion{key, id}]; k != nil && !e.rec.Newer(k) {
				continue
			}
			es = append(es, e)
		}
	}
	slices.SortFunc(es, func(a, b *presenceEntry) int { return cmp.Compare(b.rec.Timestamp, a.rec.Timestamp) })
	out := make([][]byte, 0, min(len(es), limit))
	for _, e := range es[:min(len(es), limit)] {
		out = append(out, e.wire)
	}
	return out
}

// knownOf decodes the records of a request (unverified: a side that
// claims records it does not hold only goes without them) into what
// wires leaves out.
func knownOf(channel string, records [][]byte) map[presenceVersion]*identity.Presence {
	known := make(map[presenceVersion]*identity.Presence, len(records))
	for _, w := range records {
		r := new(identity.Presence)
		if r.UnmarshalBinary(w) != nil || r.Channel != channel {
			continue
		}
		k := presenceVersion{r.Key, r.Session}
		if old := known[k]; old == nil || r.Newer(old) {
			known[k] = r
		}
	}
	return known
}
