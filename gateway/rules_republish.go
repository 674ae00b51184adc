package gateway

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"darkchat/identity"
)

// Owned channels' records in the DHT. A record is stored when a client sets
// it and when a node that starts carrying the channel finds the DHT without
// it (rules.go); the DHT's own records expire and the peers closest to a
// key change as nodes come and go, so every node stores the records of the
// owned channels it carries again on a schedule, as gateways do their
// users' key bundles (dm.go, republishLoop).

const (
	// rulesRepublish is the mean time between two rounds of storing the
	// carried channels' records again. Longer than bundleRepublish: every
	// node carrying a channel stores its record, so a channel with
	// members on many nodes is stored by each of them, and the record is
	// announced on the channel's topic as well (a node starting to carry
	// the channel learns it from its mesh peers). Each round waits a
	// random time in [rulesRepublish/2, 3*rulesRepublish/2), so the nodes
	// of a channel spread their stores over the interval.
	rulesRepublish = 30 * time.Minute
)

// rulesRepublishStats counts the rounds' stores
// (darkchat_channel_rules_republished_total).
type rulesRepublishStats struct {
	stored, failed atomic.Int64
}

// rulesRepublishLoop stores the carried channels' records again until the
// server closes. startRules starts it.
func (s *Server) rulesRepublishLoop() {
	defer s.bgWG.Done()
	store, ok := s.mesh.(RulesStore)
	if !ok {
		return
	}
	t := time.NewTimer(rulesRepublishWait())
	defer t.Stop()
	for {
		select {
		case <-s.bgCtx.Done():
			return
		case <-t.C:
		}
		s.republishRules(store)
		t.Reset(rulesRepublishWait())
	}
}

func rulesRepublishWait() time.Duration {
	return rulesRepublish/2 + rand.N(rulesRepublish)
}

// republishRules stores the record of every owned channel with members on
// this node, one after the other (at most MaxNodeChannels, each bounded by
// dhtTimeout). Channels the table holds a record of but no session is in
// are left to the nodes that carry them. A round's failures are logged
// once, counted.
func (s *Server) republishRules(store RulesStore) {
	var failed int
	var lastErr error
	for _, channel := range s.channels.names() {
		if !identity.IsOwnedChannel(channel) {
			continue
		}
		h := s.cfg.Rules.get(channel)
		if h == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(s.bgCtx, dhtTimeout)
		err := store.PutRules(ctx, channel, h.wire)
		cancel()
		if err != nil {
			s.rulesSt.republished.failed.Add(1)
			failed, lastErr = failed+1, err
			continue
		}
		s.rulesSt.republished.stored.Add(1)
	}
	if failed > 0 {
		s.log.Debug("owned channels' rules not stored again in the DHT", "channels", failed, "last_err", lastErr)
	}
}
