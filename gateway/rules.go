package gateway

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"darkchat/identity"
	"darkchat/p2p"
	"darkchat/proto"
)

// Owned channels (PROTOCOL.md §2.13, §4.7). A channel named
// <base>.<owner fingerprint> has a rules record signed by its owner or an
// operator (identity.ChannelRules). Every node keeps the greatest valid
// record of each owned channel it carries (RulesTable) and enforces it in
// its channel validator: a banned author's messages, and in a channel that
// is not open a non-operator's, are ignored there, so they go no further
// than the first honest node. Records travel on the channel's topic and
// live in the DHT under /darkchat-rules/<channel>.
//
// Wire forms on a channel's topic, told from channel messages (0x01,
// 0x02) and presence records (0x10) by their first byte:
//
//	rules announcement (kind 0x20): 0x20 || nonce (8) || rules record
//	kick (kind 0x21):               0x21 || kick record
//
// The nonce makes each announcement of one record a new mesh message, so a
// node can announce again a record it has already seen (to a node that
// starts carrying the channel, or one that announced an older record).
// Nodes announce a record only to their own mesh peers: a node that holds
// the announced record already ignores the announcement, so it goes no
// further, and an older one is ignored too; only a record that wins is
// verified and forwarded. Repeating an announcement therefore costs a node
// a decode and a comparison, never a signature verification.
const (
	wireRules byte = 0x20
	wireKick  byte = 0x21

	rulesNonceSize = 8

	// maxRulesChannels bounds the records a node keeps: one per owned
	// channel whose topic it validates, and a node validates the topics
	// of the channels its sessions are in (MaxNodeChannels, 896 by
	// default). When full, a record for yet another channel is ignored
	// (and counted) until a channel is forgotten.
	maxRulesChannels = 4096

	// rulesFetchInterval is how often one channel's record may be looked
	// up in the DHT: when a session joins a channel the node holds no
	// record for. Joins and leaves do not turn into a DHT lookup each.
	rulesFetchInterval = 30 * time.Second
	// maxRulesFetches bounds the DHT lookups of records in flight; a join
	// that finds them all busy does not look (the next join after
	// rulesFetchInterval does).
	maxRulesFetches = 8
	// rulesAnnounceInterval is how often a node announces one channel's
	// record again when a peer announces an older one.
	rulesAnnounceInterval = 2 * time.Second
	// rulesStaleQueue bounds the channels waiting to be announced again;
	// when full, a channel is dropped (its next stale sighting queues it).
	rulesStaleQueue = 64
	// A new mesh peer is told the records of the channels it shares with
	// this node, once its subscriptions are known: looked at after each
	// of rulesPeerSettle; at most meshPeerQueue peers wait (a burst
	// beyond that: the others learn from the DHT or a later peer).
	rulesPeerSettle1 = 500 * time.Millisecond
	// rulesPutTries bounds the attempts to store one record in the DHT.
	rulesPutTries    = 4
	rulesPeerSettle2 = 2 * time.Second
)

// Errors of the validator's rules checks. All are ignored, not rejected:
// an honest forwarder may not have the record that allows a message yet.
var (
	errChannelBanned = fmt.Errorf("author banned in this owned channel: %w", p2p.ErrIgnore)
	errModerated     = fmt.Errorf("author may not post: the owned channel is not open to all: %w", p2p.ErrIgnore)
	// errChannelBannedAnswer: a history answer carrying a banned
	// author's message is ignored whole, as for the node's own bans
	// (BanList.refuseAnswer).
	errChannelBannedAnswer = fmt.Errorf("history answer carries a message of an author banned in the owned channel: %w", p2p.ErrIgnore)
)

// RulesTable holds the greatest valid rules record of each owned channel
// the node carries. The node's channel validator (WithRules) fills it and
// enforces it; the gateway (Config.Rules) reads it. It is safe for
// concurrent use.
type RulesTable struct {
	mu   sync.RWMutex
	held map[string]*heldRules
	// stale receives channels where a peer announced an older record
	// than the one held: the gateway announces the held one again.
	stale chan string

	// refused counts what the rules refused, by rulesRefused*
	// (rules_metrics.go); full, records dropped to make room.
	refused [numRulesRefusals]atomic.Int64
	full    atomic.Int64
}

// heldRules is one channel's record; never modified once made.
type heldRules struct {
	rec  identity.ChannelRules
	wire []byte
	hash identity.RulesHash
}

// NewRulesTable returns an empty table.
func NewRulesTable() *RulesTable {
	return &RulesTable{held: make(map[string]*heldRules), stale: make(chan string, rulesStaleQueue)}
}

// WithRules makes ChannelValidator keep and enforce owned channels' rules
// records in t, which the node's gateway shares (Config.Rules).
func WithRules(t *RulesTable) ValidatorOption {
	return func(o *validatorOptions) { o.rules = t }
}

func (t *RulesTable) get(channel string) *heldRules {
	if t == nil {
		return nil
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.held[channel]
}

// Rules returns a copy of the record the node holds for channel.
func (t *RulesTable) Rules(channel string) (identity.ChannelRules, bool) {
	h := t.get(channel)
	if h == nil {
		return identity.ChannelRules{}, false
	}
	return h.rec.Clone(), true
}

// RefuseAuthor is the validator's check of a channel message's (or
// presence record's) author: an error wrapping p2p.ErrIgnore if the
// channel's record bans it or, in a channel that is not open, if it is not
// an operator. It is a map lookup and a binary search; nil when the node
// holds no record (an owned channel without one is open to all).
func (t *RulesTable) RefuseAuthor(channel string, author identity.PublicKey) error {
	h := t.get(channel)
	if h == nil {
		return nil
	}
	switch {
	case h.rec.IsBanned(author):
		t.refused[rulesRefusedBanned].Add(1)
		return errChannelBanned
	case !h.rec.Open && !h.rec.IsOperator(author):
		t.refused[rulesRefusedModerated].Add(1)
		return errModerated
	}
	return nil
}

// refuseAnswer is the history tracker's check of a message in an answer:
// errChannelBannedAnswer if the channel's record bans its author.
func (t *RulesTable) refuseAnswer(channel string, author identity.PublicKey) error {
	if h := t.get(channel); h != nil && h.rec.IsBanned(author) {
		t.refused[rulesRefusedAnswer].Add(1)
		return errChannelBannedAnswer
	}
	return nil
}

// offer installs h if it wins over the held record; it returns the
// record it replaced and whether it did.
func (t *RulesTable) offer(h *heldRules) (prev *heldRules, installed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	prev = t.held[h.rec.Channel]
	if prev != nil && identity.CompareRules(&h.rec, h.hash, &prev.rec, prev.hash) <= 0 {
		return prev, false
	}
	if prev == nil && len(t.held) >= maxRulesChannels {
		// Make room: the node carries far fewer channels than this, so
		// what goes is most likely a channel it no longer carries; one
		// it still carries is looked up again on its next join.
		t.full.Add(1)
		for ch := range t.held {
			delete(t.held, ch)
			break
		}
	}
	t.held[h.rec.Channel] = h
	return prev, true
}

// forget drops a channel's record (the node no longer carries it).
func (t *RulesTable) forget(channel string) {
	t.mu.Lock()
	delete(t.held, channel)
	t.mu.Unlock()
}

func (t *RulesTable) noteStale(channel string) {
	select {
	case t.stale <- channel:
	default: // queued channels are announced first; this one waits for its next sighting
	}
}

// rulesPayload is the validator's payload for a rules announcement.
type rulesPayload struct {
	held *heldRules
	prev *heldRules // the record it replaced; nil if none
	// repeat: this node's own announcement of the record it held
	// already; sessions have it.
	repeat bool

	once  sync.Once
	frame []byte
}

func (p *rulesPayload) clientFrame() []byte {
	p.once.Do(func() { p.frame = rulesFrame(p.held) })
	return p.frame
}

func rulesFrame(h *heldRules) []byte {
	return mustJSON(&proto.Rules{Channel: h.rec.Channel, Record: base64.StdEncoding.EncodeToString(h.wire)})
}

// kickPayload is the validator's payload for a kick.
type kickPayload struct {
	kick identity.ChannelKick

	once  sync.Once
	frame []byte
}

// DedupKey implements p2p.Keyed: one kick per signer, target and
// timestamp, however it is re-signed.
func (p *kickPayload) DedupKey() string {
	var ts [8]byte
	for i := range ts {
		ts[i] = byte(p.kick.Timestamp >> (56 - 8*i))
	}
	return "kick" + string(p.kick.Signer[:]) + string(p.kick.Target[:]) + string(ts[:])
}

func (p *kickPayload) clientFrame() []byte {
	p.once.Do(func() {
		p.frame = mustJSON(&proto.Kicked{Channel: p.kick.Channel, Key: p.kick.Target.String(), By: p.kick.Signer.String(), Reason: p.kick.Reason})
	})
	return p.frame
}

// validate checks a rules announcement or a kick on channel's topic.
func (t *RulesTable) validate(from peer.ID, channel string, data []byte, now time.Time, window time.Duration) (any, error) {
	if t == nil {
		return nil, fmt.Errorf("node keeps no channel rules: %w", p2p.ErrIgnore)
	}
	if data[0] == wireKick {
		return t.validateKick(channel, data[1:], now, window)
	}
	if len(data) < 1+rulesNonceSize {
		return nil, fmt.Errorf("%w rules announcement: %d bytes", identity.ErrMalformed, len(data))
	}
	wire := data[1+rulesNonceSize:]
	var rec identity.ChannelRules
	if err := rec.UnmarshalBinary(wire); err != nil {
		return nil, err
	}
	if rec.Channel != channel {
		return nil, fmt.Errorf("rules record of channel %q announced on %q", rec.Channel, channel)
	}
	h := &heldRules{rec: rec, wire: wire, hash: identity.HashRules(wire)}
	if cur := t.get(channel); cur != nil {
		switch identity.CompareRules(&h.rec, h.hash, &cur.rec, cur.hash) {
		case 0:
			if from == "" {
				return &rulesPayload{held: cur, repeat: true}, nil
			}
			return nil, fmt.Errorf("rules record already held: %w", p2p.ErrIgnore)
		case -1:
			t.noteStale(channel)
			return nil, fmt.Errorf("rules record older than the one held: %w", p2p.ErrIgnore)
		}
	}
	if err := rec.Verify(now); err != nil {
		if errors.Is(err, identity.ErrNotYetValid) {
			return nil, fmt.Errorf("%w: %w", err, p2p.ErrIgnore)
		}
		return nil, err
	}
	h.wire = append([]byte(nil), wire...) // data belongs to GossipSub
	prev, installed := t.offer(h)
	if !installed {
		return nil, fmt.Errorf("rules record lost to another (or the table is full): %w", p2p.ErrIgnore)
	}
	return &rulesPayload{held: h, prev: prev}, nil
}

func (t *RulesTable) validateKick(channel string, wire []byte, now time.Time, window time.Duration) (any, error) {
	var k identity.ChannelKick
	if err := k.UnmarshalBinary(wire); err != nil {
		return nil, err
	}
	if k.Channel != channel {
		return nil, fmt.Errorf("kick in channel %q published on %q", k.Channel, channel)
	}
	if ok, gap := checkTimestamp(k.Timestamp, now, window); !ok {
		return nil, fmt.Errorf("kick dated %s the node's clock: %w", gap, p2p.ErrIgnore)
	}
	if !mayModerate(t.get(channel), channel, k.Signer) {
		// Before the signature: costs no verification.
		t.refused[rulesRefusedKick].Add(1)
		return nil, fmt.Errorf("kick signed by a key that is no operator in the rules this node holds: %w", p2p.ErrIgnore)
	}
	if err := k.Verify(); err != nil {
		return nil, err
	}
	return &kickPayload{kick: k}, nil
}

// mayModerate reports whether key may kick in channel: the owner, or an
// operator in the held record.
func mayModerate(h *heldRules, channel string, key identity.PublicKey) bool {
	if h != nil {
		return h.rec.IsOperator(key)
	}
	return identity.OwnsChannel(channel, key)
}

// announcement returns a rules announcement of wire with a fresh nonce.
func announcement(wire []byte) []byte {
	b := make([]byte, 1+rulesNonceSize, 1+rulesNonceSize+len(wire))
	b[0] = wireRules
	crand.Read(b[1 : 1+rulesNonceSize])
	return append(b, wire...)
}

// RulesStore is the part of the mesh that keeps rules records in the DHT
// (p2p.Node); a Mesh without it relies on the channel's announcements.
type RulesStore interface {
	PutRules(ctx context.Context, channel string, record []byte) error
	GetRules(ctx context.Context, channel string) ([]byte, error)
}

// RulesValidator validates rules records stored in the DHT: the key names
// an owned channel, the record is that channel's, at most
// identity.MaxRulesRecordSize bytes and valid (ChannelRules.Verify); the
// greatest record wins (identity.CompareRules).
type RulesValidator struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Validate implements record.Validator.
func (v RulesValidator) Validate(key string, value []byte) error {
	_, err := v.parse(key, value)
	return err
}

// Select implements record.Validator.
func (v RulesValidator) Select(key string, values [][]byte) (int, error) {
	best := -1
	var bestRec identity.ChannelRules
	var bestHash identity.RulesHash
	for i, val := range values {
		r, err := v.parse(key, val)
		if err != nil {
			continue
		}
		h := identity.HashRules(val)
		if best < 0 || identity.CompareRules(&r, h, &bestRec, bestHash) > 0 {
			best, bestRec, bestHash = i, r, h
		}
	}
	if best < 0 {
		return 0, errors.New("no valid channel rules record")
	}
	return best, nil
}

func (v RulesValidator) parse(key string, value []byte) (identity.ChannelRules, error) {
	var r identity.ChannelRules
	channel, ok := strings.CutPrefix(key, "/"+p2p.RulesNamespace+"/")
	if !ok {
		return r, fmt.Errorf("key %q is not a rules key", key)
	}
	if len(value) > identity.MaxRulesRecordSize {
		return r, fmt.Errorf("rules record of %d bytes exceeds %d", len(value), identity.MaxRulesRecordSize)
	}
	if err := r.UnmarshalBinary(value); err != nil {
		return r, err
	}
	if r.Channel != channel {
		return r, fmt.Errorf("rules record of channel %q stored under %q", r.Channel, key)
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	return r, r.Verify(now)
}

// Error codes of owned channels.
const (
	codeChannelBanned = string(proto.CodeChannelBanned)
	codeModerated     = string(proto.CodeModerated)
	codeNotOperator   = string(proto.CodeNotOperator)
	codeBadRules      = string(proto.CodeBadRules)
	codeStaleRules    = string(proto.CodeStaleRules)
)

// rulesState is the gateway's side of owned channels.
type rulesState struct {
	// fetches are the DHT lookups in flight (a semaphore).
	fetches chan struct{}

	mu sync.Mutex
	// fetched: when each channel was last looked up; at most
	// maxRulesChannels (older entries go first when full).
	fetched map[string]time.Time
	// removals: sessions taken out of channels by a kick or a ban, that
	// their reader has yet to leave (applyRemovals); removing counts
	// them, so deliveries check the map only while there are any.
	removals map[*session]map[string]struct{}
	removing atomic.Int64
	// peers: new mesh peers, settled (rulesMeshPeer); waiting counts
	// the timers that will queue one.
	peers   chan peer.ID
	waiting atomic.Int64
	// republished counts the stores of rulesRepublishLoop.
	republished rulesRepublishStats
}

// startRules sets up owned channels' state; New calls it.
func (s *Server) startRules() {
	if s.cfg.Rules == nil {
		s.cfg.Rules = NewRulesTable()
	}
	s.rulesSt = &rulesState{
		fetches:  make(chan struct{}, maxRulesFetches),
		fetched:  make(map[string]time.Time),
		removals: make(map[*session]map[string]struct{}),
		peers:    make(chan peer.ID, meshPeerQueue),
	}
	s.bgWG.Add(2)
	go s.announceStale()
	go s.rulesRepublishLoop() // rules_republish.go
}

// announceStale announces a channel's held record again when a peer
// announced an older one, at most once per rulesAnnounceInterval per
// channel.
func (s *Server) announceStale() {
	defer s.bgWG.Done()
	last := make(map[string]time.Time) // at most maxRulesChannels
	for {
		var channel string
		select {
		case <-s.bgCtx.Done():
			return
		case channel = <-s.cfg.Rules.stale:
		case p := <-s.rulesSt.peers:
			// Settled: announce what the peer shares with this node.
			lister, _ := s.mesh.(ChannelPeerLister)
			for _, channel := range s.cfg.Rules.channels() {
				if slices.Contains(lister.ChannelPeers(channel), p) && time.Since(last[channel]) >= rulesAnnounceInterval {
					last[channel] = time.Now()
					s.announceRules(channel)
				}
			}
			continue
		}
		now := time.Now()
		if now.Sub(last[channel]) < rulesAnnounceInterval {
			continue
		}
		if len(last) >= maxRulesChannels {
			clear(last)
		}
		last[channel] = now
		s.announceRules(channel)
	}
}

// rulesMeshPeer has a new mesh peer told the records of the channels it
// shares with this node, after each settle.
func (s *Server) rulesMeshPeer(p peer.ID) {
	st := s.rulesSt
	if st.waiting.Load() >= meshPeerQueue {
		return
	}
	for _, d := range []time.Duration{rulesPeerSettle1, rulesPeerSettle2} {
		st.waiting.Add(1)
		time.AfterFunc(d, func() {
			defer st.waiting.Add(-1)
			select {
			case st.peers <- p:
			default:
			}
		})
	}
}

// channels lists the channels whose records the table holds.
func (t *RulesTable) channels() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]string, 0, len(t.held))
	for ch := range t.held {
		out = append(out, ch)
	}
	return out
}

// announceRules publishes the held record of channel on its topic again.
func (s *Server) announceRules(channel string) {
	h := s.cfg.Rules.get(channel)
	if h == nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.bgCtx, publishTimeout)
	defer cancel()
	if err := s.mesh.Publish(ctx, channel, announcement(h.wire)); err != nil {
		s.log.Debug("channel rules not announced", "channel", channel, "err", err)
	}
}

// fetchRules looks channel's record up in the DHT, in the background, if
// the node holds none and has not looked for rulesFetchInterval, and
// announces what it finds; a record the DHT lacks, or holds older than
// this node's, is stored there.
func (s *Server) fetchRules(channel string) {
	store, ok := s.mesh.(RulesStore)
	if !ok || !identity.IsOwnedChannel(channel) {
		return
	}
	st := s.rulesSt
	now := time.Now()
	st.mu.Lock()
	if now.Sub(st.fetched[channel]) < rulesFetchInterval {
		st.mu.Unlock()
		return
	}
	select {
	case st.fetches <- struct{}{}:
	default:
		st.mu.Unlock()
		return
	}
	if len(st.fetched) >= maxRulesChannels {
		clear(st.fetched)
	}
	st.fetched[channel] = now
	st.mu.Unlock()
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		defer func() { <-st.fetches }()
		ctx, cancel := context.WithTimeout(s.bgCtx, dhtTimeout)
		raw, err := store.GetRules(ctx, channel)
		cancel()
		if err == nil {
			ctx, cancel := context.WithTimeout(s.bgCtx, publishTimeout)
			err = s.mesh.Publish(ctx, channel, announcement(raw))
			cancel()
			if err != nil {
				s.log.Debug("channel rules from the DHT not announced", "channel", channel, "err", err)
			}
		}
		if h := s.cfg.Rules.get(channel); h != nil && (raw == nil || string(raw) != string(h.wire)) {
			s.putRules(channel, h.wire)
		}
	}()
}

// putRules stores a record in the DHT in the background.
func (s *Server) putRules(channel string, wire []byte) {
	store, ok := s.mesh.(RulesStore)
	if !ok {
		return
	}
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		// A young mesh's routing tables may still be empty: try again
		// a few times, backing off.
		for try, wait := 0, 2*time.Second; try < rulesPutTries; try, wait = try+1, 2*wait {
			ctx, cancel := context.WithTimeout(s.bgCtx, dhtTimeout)
			err := store.PutRules(ctx, channel, wire)
			cancel()
			if err == nil {
				return
			}
			s.log.Debug("channel rules not stored in the DHT yet", "channel", channel, "err", err)
			select {
			case <-s.bgCtx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
}

// rulesRefuseJoin is join's check: a banned key cannot join.
func (s *session) rulesRefuseJoin(channel string) *clientError {
	h := s.srv.cfg.Rules.get(channel)
	if h != nil && h.rec.IsBanned(s.key) {
		return &clientError{code: codeChannelBanned, msg: "you are banned from " + channel + " by its owner or operators", channel: channel}
	}
	return nil
}

// rulesJoined gives a session that joined an owned channel the record the
// node holds, or has the node look for one.
func (s *session) rulesJoined(channel string) {
	if !identity.IsOwnedChannel(channel) {
		return
	}
	if h := s.srv.cfg.Rules.get(channel); h != nil {
		s.enqueue(rulesFrame(h))
		return
	}
	s.srv.fetchRules(channel)
}

// rulesRefuseSend is send's check, before anything is signed or published.
func (s *session) rulesRefuseSend(channel string) *clientError {
	h := s.srv.cfg.Rules.get(channel)
	if h == nil {
		return nil
	}
	switch {
	case h.rec.IsBanned(s.key):
		return &clientError{code: codeChannelBanned, msg: "you are banned from " + channel + "; message not sent", channel: channel}
	case !h.rec.Open && !h.rec.IsOperator(s.key):
		return &clientError{code: codeModerated, msg: channel + " is moderated: only its owner and operators may post; message not sent", channel: channel}
	}
	return nil
}

// rulesHidden reports whether a message of author in channel is kept from
// history answers: its author is banned there now.
func (s *session) rulesHidden(channel string, author identity.PublicKey) bool {
	h := s.srv.cfg.Rules.get(channel)
	return h != nil && h.rec.IsBanned(author)
}

// setRules publishes a new record sent by the client.
func (s *session) setRules(req request) *clientError {
	ferr := func(code, msg string) *clientError {
		return &clientError{code: code, msg: msg, channel: req.Channel}
	}
	obj := proto.Rules{Channel: req.Channel, Record: req.Record}
	rec, wire, err := obj.ChannelRules()
	if err != nil {
		return ferr(codeBadRules, err.Error())
	}
	if _, in := s.channels[req.Channel]; !in {
		return ferr(codeNotJoined, "join "+req.Channel+" first: a node publishes rules in the channels its sessions are in")
	}
	if !rec.IsOperator(rec.Signer) {
		return ferr(codeNotOperator, "the record is signed by "+rec.Signer.String()+", neither the owner nor an operator")
	}
	if err := rec.Verify(s.srv.cfg.Now()); err != nil {
		return ferr(codeBadRules, err.Error())
	}
	hash := identity.HashRules(wire)
	if cur := s.srv.cfg.Rules.get(req.Channel); cur != nil && identity.CompareRules(&rec, hash, &cur.rec, cur.hash) <= 0 {
		s.enqueue(rulesFrame(cur))
		return ferr(codeStaleRules, fmt.Sprintf("the node holds a record as new or newer (ops version %d, version %d), sent before this error", cur.rec.OpsVersion, cur.rec.Version))
	}
	// The node's validator installs the record and hands it to every
	// session in the channel, this one included: that is the answer.
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	err = s.srv.mesh.Publish(ctx, req.Channel, announcement(wire))
	cancel()
	if errors.Is(err, p2p.ErrIgnore) {
		if cur := s.srv.cfg.Rules.get(req.Channel); cur != nil {
			s.enqueue(rulesFrame(cur))
		}
		return ferr(codeStaleRules, "another record won meanwhile: "+err.Error())
	}
	if err != nil {
		s.srv.log.Warn("publish channel rules", "channel", req.Channel, "err", err)
		return ferr(codeInternal, "could not publish the rules: "+err.Error())
	}
	s.srv.putRules(req.Channel, wire)
	return nil
}

// kick publishes a kick sent by the client.
func (s *session) kick(req request) *clientError {
	ferr := func(code, msg string) *clientError {
		return &clientError{code: code, msg: msg, channel: req.Channel}
	}
	obj := proto.Kick{Channel: req.Channel, Record: req.Record}
	k, err := obj.ChannelKick()
	if err != nil {
		return ferr(codeBadRules, err.Error())
	}
	if _, in := s.channels[req.Channel]; !in {
		return ferr(codeNotJoined, "join "+req.Channel+" first")
	}
	if k.Signer != s.key || !mayModerate(s.srv.cfg.Rules.get(req.Channel), req.Channel, k.Signer) {
		return ferr(codeNotOperator, "only the owner and operators of "+req.Channel+" may kick, each with their own key")
	}
	if ok, gap := checkTimestamp(k.Timestamp, s.srv.cfg.Now(), s.srv.cfg.TimestampWindow); !ok {
		return ferr(codeBadTimestamp, "kick dated "+gap+" the node's clock; check your clock")
	}
	if !s.bucket.take(s.srv.cfg.Now()) {
		return ferr(codeRateLimited, "rate limit: "+ftoa(s.srv.cfg.Rate)+" messages/s, burst "+itoa(s.srv.cfg.Burst)+"; kick not sent")
	}
	wire, _ := k.MarshalBinary()
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	err = s.srv.mesh.Publish(ctx, req.Channel, append([]byte{wireKick}, wire...))
	cancel()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, p2p.ErrDuplicate):
		return ferr(codeDuplicate, "this kick was already sent")
	case errors.Is(err, identity.ErrBadSignature):
		return ferr(codeBadSignature, "kick signature does not verify with your key")
	case errors.Is(err, p2p.ErrIgnore):
		return ferr(codeNotOperator, err.Error())
	}
	s.srv.log.Warn("publish kick", "channel", req.Channel, "err", err)
	return ferr(codeInternal, "could not send the kick: "+err.Error())
}

// deliverRules hands a new record to a member session, and takes the
// session out of the channel if the record bans its key.
func (s *session) deliverRules(p *rulesPayload) {
	if p.repeat {
		return
	}
	// A validator without a table of its own (no WithRules) leaves the
	// gateway's to the deliveries.
	s.srv.cfg.Rules.offer(p.held)
	s.enqueueDelivery(p.clientFrame())
	rec := &p.held.rec
	if rec.IsBanned(s.key) && (p.prev == nil || !p.prev.rec.IsBanned(s.key)) {
		s.enqueueDelivery(mustJSON(&proto.Kicked{Channel: rec.Channel, Key: s.key.String(), By: rec.Signer.String(), Banned: true}))
		s.removeFrom(rec.Channel)
	}
}

// deliverKick tells a member session of a kick, and takes the session out
// of the channel if it is the kick's target.
func (s *session) deliverKick(p *kickPayload) {
	s.enqueueDelivery(p.clientFrame())
	if p.kick.Target == s.key {
		s.removeFrom(p.kick.Channel)
	}
}

// removeFrom records that the session is out of channel. It runs on the
// channel's reader, which must not leave the topic (p2p.Member), and the
// session's channels belong to its reader: the reader leaves before its
// next request (applyRemovals); until then no message of the channel is
// handed to the session.
func (s *session) removeFrom(channel string) {
	st := s.srv.rulesSt
	st.mu.Lock()
	m := st.removals[s]
	if m == nil {
		m = make(map[string]struct{}, 1)
		st.removals[s] = m
		st.removing.Add(1)
	}
	m[channel] = struct{}{}
	st.mu.Unlock()
	s.goneNow(channel)
}

// goneNow publishes the gone record the session holds in channel at once,
// rather than at the client's next request (applyRemovals), which an idle
// client makes only when the node pings it (IdlePing, 30 s): the other
// members' lists drop the kicked or banned user as the kick is heard. It
// publishes on a goroutine of its own (the channel's reader, which calls
// removeFrom, must not wait on the mesh), one for each session the kick or
// ban removes; whoever releases the record first publishes it. A closing
// node leaves it to the session's cleanup.
func (s *session) goneNow(channel string) {
	srv := s.srv
	srv.mu.Lock()
	if srv.closed {
		srv.mu.Unlock()
		return
	}
	srv.bgWG.Add(1)
	srv.mu.Unlock()
	go func() {
		defer srv.bgWG.Done()
		if lp := srv.presence.release(s, channel); lp != nil {
			s.publishGone(channel, lp)
		}
	}()
}

// removedFrom reports whether the session was taken out of channel and
// has not left it yet.
func (s *session) removedFrom(channel string) bool {
	st := s.srv.rulesSt
	if st.removing.Load() == 0 {
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := st.removals[s][channel]
	return ok
}

// forgetRemovals drops what removeFrom recorded for an ending session
// (cleanup leaves all its channels).
func (s *session) forgetRemovals() {
	st := s.srv.rulesSt
	if st.removing.Load() == 0 {
		return
	}
	st.mu.Lock()
	if _, ok := st.removals[s]; ok {
		delete(st.removals, s)
		st.removing.Add(-1)
	}
	st.mu.Unlock()
}

// applyRemovals leaves the channels the session was taken out of. The
// session's reader calls it before each request, and cleanup at the end.
func (s *session) applyRemovals() {
	st := s.srv.rulesSt
	if st.removing.Load() == 0 {
		return
	}
	st.mu.Lock()
	m, ok := st.removals[s]
	if ok {
		delete(st.removals, s)
		st.removing.Add(-1)
	}
	st.mu.Unlock()
	for ch := range m {
		if _, in := s.channels[ch]; !in {
			continue
		}
		delete(s.channels, ch)
		s.leavePresence(ch) // its gone, while the node still carries the channel
		s.srv.history.left(ch, s)
		s.srv.mesh.Leave(ch, s)
		s.srv.channels.leave(s.source(), ch)
	}
}
