package client

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"darkchat/identity"
	"darkchat/internal/fifo"
)

// Direct messages (PROTOCOL.md §2.7, §4.4, §4.5): the session publishes the
// user's key bundle at login and refreshes it, looks up and verifies other
// users' bundles (whois), seals and sends DMs and tracks each until its
// receipt arrives or the receipt timeout passes, and opens, de-duplicates
// and answers the DMs that arrive.

// DefaultReceiptTimeout is how long after the node sent a DM (dm_sent) the
// session waits for the recipient's receipt before reporting it not
// delivered.
const DefaultReceiptTimeout = 10 * time.Second

const (
	// bundleTTL is the validity of the bundles the session signs, and
	// bundleRefresh the age at which it sends a fresh one.
	bundleTTL     = 24 * time.Hour
	bundleRefresh = 23 * time.Hour

	// WhoisTimeout bounds a whois: the node answers from its own sessions
	// or after a DHT lookup (darkchatd gives up on one after 15 s and
	// answers unknown_user).
	WhoisTimeout = 20 * time.Second

	// bundleCacheSize bounds the verified bundles kept per session, each
	// used until it expires.
	bundleCacheSize = 256
	// maxLookups bounds the whois requests in flight, and
	// maxQueuedReceipts the receipts waiting for one sender's bundle.
	maxLookups        = 256
	maxQueuedReceipts = 64
	// dmSeenSize is how many (sender, ID) pairs of received DMs are
	// remembered to drop replays; the timestamp window drops older ones.
	dmSeenSize = 4096
	// receiptRefsSize bounds the refs of receipts sent and not yet
	// answered, whose answers are not shown.
	receiptRefsSize = 256
)

// EventDM: a direct message to the user, opened and verified: its Sender
// is authenticated. Username and Body are untrusted: Sanitize them before
// printing. The session answers it with a receipt.
type EventDM struct{ DM identity.DM }

// EventDMStatus: the outcome of a DM sent with SendDM, reported once.
// Delivered means the recipient's client acknowledged it; otherwise Err says
// why it was not: ErrRecipientOffline, ErrNoReceipt, ErrConnectionLost, or
// the node's *Error refusing it.
type EventDMStatus struct {
	To        identity.PublicKey
	ID        string // the DM's ID in hex, as SendDM returned it
	Delivered bool
	Err       error
}

func (EventDM) event()       {}
func (EventDMStatus) event() {}

// lookup is one whois in flight. done is closed once bundle (verified) or
// err is set.
type lookup struct {
	done     chan struct{}
	deadline time.Time // real clock
	bundle   identity.KeyBundle
	err      error
	acks     [][identity.MessageIDSize]byte // receipts to send once the bundle arrives
}

// outDM is a DM sent and awaiting its status.
type outDM struct {
	to       identity.PublicKey
	seq      uint64    // send order, to report timeouts in order
	sent     bool      // dm_sent arrived
	deadline time.Time // real clock, once sent
}

// dmState is the session's DM state, guarded by Session.mu.
type dmState struct {
	bundleIssued time.Time // the session clock's time of the last bundle sent
	bundles      *fifo.Map[identity.PublicKey, identity.KeyBundle]
	lookups      map[identity.PublicKey]*lookup
	out          map[string]*outDM // by ref (the DM's ID in hex)
	seq          uint64
	receiptRefs  *fifo.Map[string, struct{}]
	seen         *fifo.Map[string, struct{}] // DedupKey
}

func newDMState() dmState {
	return dmState{
		bundles:     fifo.NewMap[identity.PublicKey, identity.KeyBundle](bundleCacheSize),
		lookups:     make(map[identity.PublicKey]*lookup),
		out:         make(map[string]*outDM),
		receiptRefs: fifo.NewMap[string, struct{}](receiptRefsSize),
		seen:        fifo.NewMap[string, struct{}](dmSeenSize),
	}
}

// newBundle signs a key bundle issued now and returns it in base64 with the
// time it was issued at.
func (s *Session) newBundle() (string, time.Time, error) {
	now := s.now()
	b := identity.KeyBundle{
		DM:      s.dmKey.Public(),
		Issued:  now.UnixMilli(),
		Expires: now.Add(bundleTTL).UnixMilli(),
	}
	b.Sign(s.cfg.Key)
	data, err := EncodeKeyBundle(b)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("key bundle: %w", err)
	}
	return data, now, nil
}

// refreshBundle sends a fresh bundle once the last one is bundleRefresh
// old, before it expires. The node's answer (a bundle object for the
// user's own key) needs no action; a bad_bundle error is reported.
func (s *Session) refreshBundle() {
	s.mu.Lock()
	due := s.state == stateLoggedIn && s.err == nil && s.now().Sub(s.dm.bundleIssued) >= bundleRefresh
	s.mu.Unlock()
	if !due {
		return
	}
	data, issued, err := s.newBundle()
	if err != nil {
		s.emit(EventWarning{Err: err})
		return
	}
	s.mu.Lock()
	s.dm.bundleIssued = issued
	s.mu.Unlock()
	s.writeSelf(&Bundle{Bundle: data}) // a failure ends the session itself
}

// Whois asks the node for key's bundle and verifies it against key (a node
// cannot substitute another DM key for an address). A verified bundle is
// also cached for SendDM. The error wraps ErrUnknownUser if the node has no
// bundle for key, identity's errors if the bundle does not verify, and
// ErrNoAnswer if the node does not answer in time.
func (s *Session) Whois(ctx context.Context, key identity.PublicKey) (identity.KeyBundle, error) {
	if err := s.requireLogin(); err != nil {
		return identity.KeyBundle{}, fmt.Errorf("whois: %w", err)
	}
	s.mu.Lock()
	l, isNew, err := s.startLookupLocked(key)
	s.mu.Unlock()
	if err != nil {
		return identity.KeyBundle{}, err
	}
	if isNew {
		s.wakeTimers()
		if err := s.write(ctx, &Whois{Key: key.String()}); err != nil {
			s.mu.Lock()
			s.resolveLocked(key, l, identity.KeyBundle{}, fmt.Errorf("whois: %w", err))
			s.mu.Unlock()
		}
	}
	select {
	case <-l.done:
		return l.bundle, l.err
	case <-ctx.Done():
		return identity.KeyBundle{}, fmt.Errorf("whois: %w", context.Cause(ctx))
	}
}

// startLookupLocked returns the whois in flight for key, or registers a new
// one (isNew: the caller sends the whois). s.mu must be held.
func (s *Session) startLookupLocked(key identity.PublicKey) (l *lookup, isNew bool, err error) {
	if s.err != nil {
		return nil, false, fmt.Errorf("whois: %w", s.err)
	}
	if l := s.dm.lookups[key]; l != nil {
		return l, false, nil
	}
	if len(s.dm.lookups) >= maxLookups {
		return nil, false, fmt.Errorf("whois: %d lookups already in flight", maxLookups)
	}
	l = &lookup{done: make(chan struct{}), deadline: time.Now().Add(WhoisTimeout)}
	s.dm.lookups[key] = l
	s.notifyLocked()
	return l, true, nil
}

// resolveLocked ends the whois l for key and returns the receipts that
// waited for it (none unless err is nil). s.mu must be held.
func (s *Session) resolveLocked(key identity.PublicKey, l *lookup, b identity.KeyBundle, err error) [][identity.MessageIDSize]byte {
	if s.dm.lookups[key] != l {
		return nil // already resolved
	}
	delete(s.dm.lookups, key)
	l.bundle, l.err = b, err
	close(l.done)
	s.notifyLocked()
	if err != nil {
		return nil
	}
	return l.acks
}

// cachedLocked returns key's cached bundle if it is still valid.
func (s *Session) cachedLocked(key identity.PublicKey, now time.Time) (identity.KeyBundle, bool) {
	b, ok := s.dm.bundles.Get(key)
	if !ok || now.UnixMilli() >= b.Expires {
		return identity.KeyBundle{}, false
	}
	return b, true
}

// cacheLocked keeps the verified bundle b, the newest of a user's, evicting
// the oldest entry when the cache is full.
func (s *Session) cacheLocked(b identity.KeyBundle, now time.Time) {
	if old, ok := s.dm.bundles.Get(b.Identity); ok {
		if identity.Newer(b, old) || now.UnixMilli() >= old.Expires {
			s.dm.bundles.Set(b.Identity, b)
		}
		return
	}
	s.dm.bundles.Set(b.Identity, b)
}

// bundleFor returns a verified bundle of key: cached, or from Whois.
func (s *Session) bundleFor(ctx context.Context, key identity.PublicKey) (identity.KeyBundle, error) {
	s.mu.Lock()
	b, ok := s.cachedLocked(key, s.now())
	s.mu.Unlock()
	if ok {
		return b, nil
	}
	return s.Whois(ctx, key)
}

// SendDM seals body from username to the user whose address is to, with
// the bundle the node gives for to (cached while valid, and verified
// against to), and sends it. It returns the DM's ID; its outcome arrives as
// one EventDMStatus. An error means nothing was sent: it wraps
// ErrUnknownUser when the node knows no bundle for to, and identity's
// errors when the bundle does not verify or the DM breaks the rules.
func (s *Session) SendDM(ctx context.Context, to identity.PublicKey, username, body string) (id string, err error) {
	if err := s.requireLogin(); err != nil {
		return "", fmt.Errorf("private: %w", err)
	}
	check := identity.DM{Kind: identity.DMKindMessage, Username: username, Body: body}
	if err := check.Validate(); err != nil {
		return "", fmt.Errorf("private: %w", err)
	}
	b, err := s.bundleFor(ctx, to)
	if err != nil {
		return "", err
	}
	ctx, cancel := s.bind(ctx)
	defer cancel()
	s.mu.Lock()
	limiter := s.limiter
	s.mu.Unlock()
	if err := limiter.Wait(ctx); err != nil {
		return "", fmt.Errorf("private: %w", s.closedOr(err))
	}
	env, rawID, err := identity.SealDM(s.cfg.Key, b, username, body, s.now())
	if err != nil {
		return "", fmt.Errorf("private: %w", err)
	}
	id = hex.EncodeToString(rawID[:])
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return "", fmt.Errorf("private: %w", err)
	}
	// Registered before sending: the answer can arrive before write returns.
	s.dm.seq++
	s.dm.out[id] = &outDM{to: to, seq: s.dm.seq}
	s.mu.Unlock()
	if err := s.write(ctx, NewDM(id, env)); err != nil {
		s.mu.Lock()
		delete(s.dm.out, id)
		s.notifyLocked()
		s.mu.Unlock()
		return "", fmt.Errorf("private: %w", err)
	}
	return id, nil
}

// PendingDMs returns how many DMs sent await their status.
func (s *Session) PendingDMs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.dm.out)
}

// WaitDMs waits until every DM sent has had its status reported and every
// whois in flight (including those for receipts to send) has ended. Each
// ends within the receipt timeout after the node's dm_sent or the whois
// timeout, or when the session ends.
func (s *Session) WaitDMs(ctx context.Context) error {
	settled := func() bool { return len(s.dm.out) == 0 && len(s.dm.lookups) == 0 }
	err := s.waitFor(ctx, settled)
	s.mu.Lock()
	defer s.mu.Unlock()
	if settled() {
		return nil
	}
	if err == nil {
		err = s.err
	}
	return fmt.Errorf("%d direct messages without a status: %w", len(s.dm.out), err)
}

// unansweredDMsLocked counts the DMs the node has not yet answered.
func (s *Session) unansweredDMsLocked() int {
	n := 0
	for _, d := range s.dm.out {
		if !d.sent {
			n++
		}
	}
	return n
}

// handleBundle takes the node's answer to a whois. A bundle nobody asked
// for (the answer to a bundle update) is ignored.
func (s *Session) handleBundle(o *Bundle) {
	key, err := identity.ParsePublicKey(o.Key)
	if err != nil {
		return
	}
	s.mu.Lock()
	l := s.dm.lookups[key]
	s.mu.Unlock()
	if l == nil {
		return
	}
	now := s.now()
	b, err := o.KeyBundle()
	if err == nil {
		err = b.Verify(key, now)
	}
	if err != nil {
		err = fmt.Errorf("whois %s: %w", key, err)
	}
	s.mu.Lock()
	if err == nil {
		s.cacheLocked(b, now)
	}
	acks := s.resolveLocked(key, l, b, err)
	s.mu.Unlock()
	for _, ack := range acks {
		s.sendReceipt(b, ack)
	}
}

// handleDMSent records that the node sent a DM: its receipt timer starts.
func (s *Session) handleDMSent(o *DMSent) {
	s.mu.Lock()
	if d := s.dm.out[o.Ref]; d != nil && !d.sent {
		d.sent = true
		d.deadline = time.Now().Add(s.receiptTimeout)
		s.notifyLocked()
	} else {
		s.forgetReceiptLocked(o.Ref)
	}
	s.mu.Unlock()
	s.wakeTimers()
}

// dmErrorLocked takes an error about a whois or a DM of this session. It
// reports whether the error was consumed (it is then not shown as an
// EventError) and returns the status to report, if any. s.mu must be held.
func (s *Session) dmErrorLocked(e *Error) (status *EventDMStatus, consumed bool) {
	if e.Ref != "" {
		if d := s.dm.out[e.Ref]; d != nil {
			delete(s.dm.out, e.Ref)
			s.notifyLocked()
			st := &EventDMStatus{To: d.to, ID: e.Ref, Err: e}
			if e.Code == "no_route" {
				st.Err = ErrRecipientOffline
			}
			return st, true
		}
		if s.dm.receiptRefs.Has(e.Ref) {
			// A receipt that could not be sent: the sender sees no
			// receipt and reports it; nothing to show here.
			s.forgetReceiptLocked(e.Ref)
			return nil, true
		}
	}
	if e.Key != "" {
		key, err := identity.ParsePublicKey(e.Key)
		if l := s.dm.lookups[key]; err == nil && l != nil {
			var lerr error
			if e.Code == "unknown_user" {
				lerr = fmt.Errorf("%w %s", ErrUnknownUser, key)
			} else {
				// Not wrapped: the node's error is shown through the
				// whois's result, not as an event.
				lerr = fmt.Errorf("whois %s: %s (%s)", key, e.Error(), e.Code)
			}
			s.resolveLocked(key, l, identity.KeyBundle{}, lerr)
			return nil, true
		}
	}
	return nil, false
}

func (s *Session) rememberReceiptLocked(ref string) {
	s.dm.receiptRefs.Add(ref)
}

func (s *Session) forgetReceiptLocked(ref string) {
	s.dm.receiptRefs.Delete(ref)
}

// handleDM opens a DM the node delivered. Anything that does not open
// (not for this user, tampered, badly signed, re-addressed), is outside
// the timestamp window or was seen before is dropped without a word: any
// node can send any bytes, and a notice would only help it probe.
func (s *Session) handleDM(o *DM) {
	s.mu.Lock()
	loggedIn := s.state == stateLoggedIn
	s.mu.Unlock()
	if !loggedIn {
		return // the node delivers DMs only to logged-in sessions
	}
	env, err := o.EnvelopeBytes()
	if err != nil {
		return
	}
	m, err := identity.OpenDM(s.dmKey, env)
	if err != nil {
		return
	}
	if d := m.Time().Sub(s.now()); d > identity.DMTimestampWindow || d < -identity.DMTimestampWindow {
		return
	}
	s.mu.Lock()
	dup := s.seenDMLocked(m.DedupKey())
	s.mu.Unlock()
	if dup {
		return
	}
	switch m.Kind {
	case identity.DMKindMessage:
		if s.cfg.Ignore != nil && s.cfg.Ignore(m.Sender) {
			return // no receipt: SessionConfig.Ignore
		}
		s.emit(EventDM{DM: m})
		s.answerDM(m.Sender, m.ID)
	case identity.DMKindReceipt:
		// Receipts are not answered.
		ref := hex.EncodeToString(m.Ack[:])
		s.mu.Lock()
		d := s.dm.out[ref]
		if d != nil && d.to == m.Sender {
			delete(s.dm.out, ref)
			s.notifyLocked()
		} else {
			d = nil
		}
		s.mu.Unlock()
		if d != nil {
			s.emit(EventDMStatus{To: d.to, ID: ref, Delivered: true})
		}
	}
}

// seenDMLocked records key and reports whether it was already recorded,
// remembering the last dmSeenSize keys.
func (s *Session) seenDMLocked(key string) bool {
	return !s.dm.seen.Add(key)
}

// answerDM sends the receipt for message id to sender: at once with a
// cached bundle, else once the whois for the sender's bundle is answered.
// It runs on the reader, which must not wait for that answer.
func (s *Session) answerDM(sender identity.PublicKey, id [identity.MessageIDSize]byte) {
	s.mu.Lock()
	b, ok := s.cachedLocked(sender, s.now())
	var l *lookup
	var isNew bool
	var err error
	if !ok {
		l, isNew, err = s.startLookupLocked(sender)
		if err == nil && len(l.acks) < maxQueuedReceipts {
			l.acks = append(l.acks, id)
		}
	}
	s.mu.Unlock()
	switch {
	case ok:
		s.sendReceipt(b, id)
	case isNew:
		s.wakeTimers()
		s.writeSelf(&Whois{Key: sender.String()}) // a failure ends the session itself
	}
}

// sendReceipt seals a receipt for message ack to the verified bundle to
// and sends it. Its failures are not reported: the sender sees no receipt.
func (s *Session) sendReceipt(to identity.KeyBundle, ack [identity.MessageIDSize]byte) {
	env, rawID, err := identity.SealReceipt(s.cfg.Key, to, ack, s.now())
	if err != nil {
		return
	}
	ref := hex.EncodeToString(rawID[:])
	s.mu.Lock()
	s.rememberReceiptLocked(ref)
	limiter := s.limiter
	s.mu.Unlock()
	// The node counts receipts against the session's rate. The reader
	// cannot wait, so the receipt goes now and the user's next sends
	// wait for it instead.
	limiter.Reserve()
	s.writeSelf(NewDM(ref, env))
}

// wakeTimers makes the housekeeping goroutine recompute its next deadline.
func (s *Session) wakeTimers() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// expireDMs reports the DMs whose receipt did not come in time and ends
// the whois requests the node did not answer in time. It returns the next
// deadline, or the zero time if there is none.
func (s *Session) expireDMs(now time.Time) (next time.Time) {
	earliest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	type timedOut struct {
		seq uint64
		ev  EventDMStatus
	}
	var expired []timedOut
	s.mu.Lock()
	for ref, d := range s.dm.out {
		switch {
		case !d.sent:
		case !now.Before(d.deadline):
			delete(s.dm.out, ref)
			expired = append(expired, timedOut{d.seq, EventDMStatus{To: d.to, ID: ref,
				Err: fmt.Errorf("%w within %v", ErrNoReceipt, s.receiptTimeout)}})
		default:
			earliest(d.deadline)
		}
	}
	for key, l := range s.dm.lookups {
		if !now.Before(l.deadline) {
			s.resolveLocked(key, l, identity.KeyBundle{}, fmt.Errorf("whois %s: %w within %v", key, ErrNoAnswer, WhoisTimeout))
			continue
		}
		earliest(l.deadline)
	}
	if len(expired) > 0 {
		s.notifyLocked()
	}
	s.mu.Unlock()
	slices.SortFunc(expired, func(a, b timedOut) int { return cmp.Compare(a.seq, b.seq) })
	for _, e := range expired {
		s.emit(e.ev)
	}
	return next
}

// endDMsLocked ends every DM and whois in flight when the session ends, and
// returns the DMs' statuses in send order. s.mu must be held.
func (s *Session) endDMsLocked(reason error) []EventDMStatus {
	for key, l := range s.dm.lookups {
		s.resolveLocked(key, l, identity.KeyBundle{}, fmt.Errorf("whois: %w", reason))
	}
	type lost struct {
		seq uint64
		ev  EventDMStatus
	}
	var all []lost
	for ref, d := range s.dm.out {
		all = append(all, lost{d.seq, EventDMStatus{To: d.to, ID: ref, Err: ErrConnectionLost}})
	}
	clear(s.dm.out)
	slices.SortFunc(all, func(a, b lost) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]EventDMStatus, len(all))
	for i, l := range all {
		out[i] = l.ev
	}
	return out
}
