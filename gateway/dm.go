package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/libp2p/go-libp2p/core/peer"
	"slices"
	"strings"
	"sync"
	"time"

	"darkchat/identity"
	"darkchat/p2p"
	"darkchat/proto"
)

// Direct messages: the gateway routes sealed envelopes by their tag and
// publishes users' key bundles; it never sees a DM's sender, recipient key,
// username or text.

const (
	// bundleRepublish is how often the bundles of connected users are put
	// into the DHT again, so that they survive DHT churn while the user is
	// online.
	bundleRepublish = 10 * time.Minute
	// dhtTimeout bounds one DHT put or get.
	dhtTimeout = 15 * time.Second
	// dmTimeout bounds finding a route to the recipient's inbox shard.
	dmTimeout = 10 * time.Second
	// maxRefLen bounds the opaque reference a client attaches to a DM.
	maxRefLen = proto.MaxRefLen
)

// dmEnvelope is the inbox validator's payload: the envelope's tag, and its
// client frame encoded once for every recipient session.
type dmEnvelope struct {
	tag  [identity.DMTagSize]byte
	data []byte

	once  sync.Once
	frame []byte
}

func (e *dmEnvelope) clientFrame() []byte {
	e.once.Do(func() {
		e.frame = mustJSON(&proto.DM{Envelope: base64.StdEncoding.EncodeToString(e.data)})
	})
	return e.frame
}

// InboxValidator returns the mesh validator for DM inbox shards. A node
// cannot open envelopes, so it checks what it can see: the format, one of
// the padded sizes, and that the envelope travels on its recipient's shard.
// Envelopes are never logged, not even their size and shard: --log-messages
// covers channel messages only.
func InboxValidator() p2p.Validator {
	return func(_ peer.ID, shard string, data []byte) (any, error) {
		tag, err := envelopeTag(data)
		if err != nil {
			return nil, err
		}
		if want := fmt.Sprint(identity.DMShard(tag, identity.DMShards)); want != shard {
			return nil, fmt.Errorf("envelope for shard %s published on shard %s", want, shard)
		}
		return &dmEnvelope{tag: tag, data: data}, nil
	}
}

// envelopeTag checks an envelope's format and padded size.
func envelopeTag(data []byte) ([identity.DMTagSize]byte, error) {
	tag, err := identity.EnvelopeTag(data)
	if err != nil {
		return tag, err
	}
	if !slices.Contains(identity.EnvelopeSizes(), len(data)) {
		return tag, fmt.Errorf("%w: envelope of %d bytes is not one of the padded sizes", identity.ErrMalformed, len(data))
	}
	return tag, nil
}

// BundleValidator validates key bundles stored in the DHT: the record key
// names the user, the bundle must be signed by exactly that key and be
// current, and the newest bundle wins.
type BundleValidator struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (v BundleValidator) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Validate implements record.Validator.
func (v BundleValidator) Validate(key string, value []byte) error {
	_, err := v.parse(key, value)
	return err
}

// Select implements record.Validator: the index of the newest valid bundle.
func (v BundleValidator) Select(key string, values [][]byte) (int, error) {
	best, bestBundle := -1, identity.KeyBundle{}
	for i, val := range values {
		b, err := v.parse(key, val)
		if err != nil {
			continue
		}
		if best < 0 || identity.Newer(b, bestBundle) {
			best, bestBundle = i, b
		}
	}
	if best < 0 {
		return 0, errors.New("no valid key bundle")
	}
	return best, nil
}

func (v BundleValidator) parse(key string, value []byte) (identity.KeyBundle, error) {
	var b identity.KeyBundle
	user, ok := strings.CutPrefix(key, "/"+p2p.BundleNamespace+"/")
	if !ok {
		return b, fmt.Errorf("key %q is not a bundle key", key)
	}
	expect, err := identity.ParsePublicKey(user)
	if err != nil || expect.String() != user {
		return b, fmt.Errorf("bundle key %q does not name a public key in lowercase hex", key)
	}
	if len(value) > identity.MaxKeyBundleSize {
		return b, fmt.Errorf("bundle of %d bytes exceeds %d", len(value), identity.MaxKeyBundleSize)
	}
	if err := b.Unmarshal(value); err != nil {
		return b, err
	}
	return b, b.Verify(expect, v.now())
}

// setBundle verifies a bundle sent by the session's client and makes it
// the session's published bundle.
func (s *session) setBundle(encoded string) *clientError {
	raw, b, cerr := s.checkBundle(encoded)
	if cerr != nil {
		return cerr
	}
	s.registerBundle(raw, b)
	return nil
}

// checkBundle decodes and verifies a bundle the session's client sent for
// its key, registering nothing.
func (s *session) checkBundle(encoded string) ([]byte, identity.KeyBundle, *clientError) {
	var b identity.KeyBundle
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(raw) > identity.MaxKeyBundleSize {
		return nil, b, errorf(codeBadBundle, "bundle must be base64 of at most %d bytes", identity.MaxKeyBundleSize)
	}
	if err := b.Unmarshal(raw); err != nil {
		return nil, b, errorf(codeBadBundle, "%v", err)
	}
	if err := b.Verify(s.key, s.srv.cfg.Now()); err != nil {
		return nil, b, errorf(codeBadBundle, "%v", err)
	}
	return raw, b, nil
}

// registerBundle makes a verified bundle the session's entry in the
// server's registry (answered to whois, republished) and publishes it. The
// session records that it did, so that cleanup removes the entry whether or
// not the login that sent it completed.
func (s *session) registerBundle(raw []byte, b identity.KeyBundle) {
	s.hasBundle = true
	s.srv.setBundle(s, raw, b)
}

// whois answers a key bundle lookup: from this node's own sessions if the
// user is here, else from the DHT.
func (s *session) whois(req request) *clientError {
	key, err := proto.ParseKey(req.Key)
	if err != nil {
		return &clientError{code: codeBadKey, msg: err.Error(), key: req.Key}
	}
	raw := s.srv.localBundle(key)
	if raw != nil {
		s.srv.metrics.bundleLookup(bundleLocal)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), dhtTimeout)
		raw, err = s.srv.mesh.GetBundle(ctx, key.String())
		cancel()
		if err != nil {
			s.srv.metrics.bundleLookup(bundleNotFound)
			return &clientError{code: codeUnknownUser, msg: "no key bundle found for " + key.String() + ": the user has not logged in recently", key: key.String()}
		}
		s.srv.metrics.bundleLookup(bundleDHT)
	}
	s.enqueue(mustJSON(&proto.Bundle{Key: key.String(), Bundle: base64.StdEncoding.EncodeToString(raw),
		Present: s.srv.presence.presentFor(s, key)}))
	return nil
}

// dm sends a sealed envelope towards its recipient's inbox shard.
func (s *session) dm(req request) *clientError {
	ferr := func(code, msg string) *clientError { return &clientError{code: code, msg: msg, ref: req.Ref} }
	if len(req.Ref) > maxRefLen {
		return ferr(codeBadJSON, fmt.Sprintf("ref is %d characters, limit %d", len(req.Ref), maxRefLen))
	}
	if base64.StdEncoding.DecodedLen(len(req.Envelope)) > identity.MaxEnvelopeSize+2 {
		return ferr(codeBadEnvelope, "envelope too large")
	}
	env, err := base64.StdEncoding.DecodeString(req.Envelope)
	if err != nil {
		return ferr(codeBadEnvelope, "envelope is not base64")
	}
	tag, err := envelopeTag(env)
	if err != nil {
		return ferr(codeBadEnvelope, err.Error())
	}
	if !s.bucket.take(s.srv.cfg.Now()) {
		return ferr(codeRateLimited, "rate limit: "+ftoa(s.srv.cfg.Rate)+" messages/s, burst "+itoa(s.srv.cfg.Burst)+"; DM not sent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), dmTimeout)
	err = s.srv.mesh.PublishDM(ctx, identity.DMShard(tag, identity.DMShards), env)
	cancel()
	switch {
	case err == nil:
		s.enqueue(mustJSON(&proto.DMSent{Ref: req.Ref}))
		return nil
	case errors.Is(err, p2p.ErrNoRoute):
		return ferr(codeNoRoute, "recipient offline: no node serving the recipient's inbox could be reached")
	case errors.Is(err, p2p.ErrDuplicate):
		return ferr(codeDuplicate, "this envelope was already sent")
	case errors.Is(err, identity.ErrMalformed):
		return ferr(codeBadEnvelope, err.Error())
	}
	s.srv.log.Warn("DM publish failed", "err", err)
	return ferr(codeInternal, "could not send the DM: "+err.Error())
}

// deliverDM hands an envelope to the session if it is addressed to it.
func (s *session) deliverDM(e *dmEnvelope) {
	if e.tag == s.tag && s.enqueueDelivery(e.clientFrame()) {
		s.srv.metrics.dmHandedOver()
	}
}

// bundles is the server's registry of the key bundles of logged-in users,
// for whois answers without a DHT lookup and for republishing.
type bundles struct {
	mu    sync.Mutex
	byKey map[identity.PublicKey]map[*session]bundleEntry
}

type bundleEntry struct {
	raw    []byte
	parsed identity.KeyBundle
}

func (srv *Server) setBundle(s *session, raw []byte, b identity.KeyBundle) {
	srv.bundles.mu.Lock()
	m := srv.bundles.byKey[s.key]
	if m == nil {
		m = make(map[*session]bundleEntry)
		srv.bundles.byKey[s.key] = m
	}
	m[s] = bundleEntry{raw: raw, parsed: b}
	srv.bundles.mu.Unlock()
	srv.publishBundle(s.key, raw)
}

func (srv *Server) dropBundle(s *session) {
	srv.bundles.mu.Lock()
	defer srv.bundles.mu.Unlock()
	if m := srv.bundles.byKey[s.key]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(srv.bundles.byKey, s.key)
		}
	}
}

// localBundle returns the newest current bundle of key among this node's
// sessions, or nil.
func (srv *Server) localBundle(key identity.PublicKey) []byte {
	srv.bundles.mu.Lock()
	defer srv.bundles.mu.Unlock()
	var best *bundleEntry
	now := srv.cfg.Now()
	for _, e := range srv.bundles.byKey[key] {
		if e.parsed.ExpiresTime().Before(now) {
			continue
		}
		if best == nil || identity.Newer(e.parsed, best.parsed) {
			best = &e
		}
	}
	if best == nil {
		return nil
	}
	return best.raw
}

// publishBundle puts a bundle into the DHT in the background; the user's
// session does not wait for it.
func (srv *Server) publishBundle(key identity.PublicKey, raw []byte) {
	srv.bgWG.Add(1)
	go func() {
		defer srv.bgWG.Done()
		ctx, cancel := context.WithTimeout(srv.bgCtx, dhtTimeout)
		defer cancel()
		if err := srv.mesh.PutBundle(ctx, key.String(), raw); err != nil {
			srv.log.Debug("key bundle not stored in the DHT yet; will retry", "key", key, "err", err)
		}
	}()
}

// republishLoop puts the newest bundle of every connected user into the
// DHT again every bundleRepublish.
func (srv *Server) republishLoop() {
	defer srv.bgWG.Done()
	t := time.NewTicker(bundleRepublish)
	defer t.Stop()
	for {
		select {
		case <-srv.bgCtx.Done():
			return
		case <-t.C:
		}
		srv.republishBundles()
	}
}

// republishBundles puts the newest bundle of every user in the registry
// into the DHT again, one after the other.
func (srv *Server) republishBundles() {
	srv.bundles.mu.Lock()
	keys := make([]identity.PublicKey, 0, len(srv.bundles.byKey))
	for k := range srv.bundles.byKey {
		keys = append(keys, k)
	}
	srv.bundles.mu.Unlock()
	for _, k := range keys {
		if raw := srv.localBundle(k); raw != nil {
			ctx, cancel := context.WithTimeout(srv.bgCtx, dhtTimeout)
			srv.mesh.PutBundle(ctx, k.String(), raw)
			cancel()
		}
	}
}

func shardOf(key identity.PublicKey) int {
	return identity.DMShard(identity.DMTag(key), identity.DMShards)
}
