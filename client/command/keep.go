package command

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"darkchat/client"
	"darkchat/proto"
)

// Connection states KeepConnected reports.
const (
	StateConnecting   = "connecting"   // dialling and logging in
	StateReady        = "ready"        // logged in, the channels asked for again
	StateReconnecting = "reconnecting" // waiting to try again
	StateOffline      = "offline"      // closed by the user; waits for Wake
)

// Reconnection backoff: the first retry comes quickly (a node restart
// takes a second or a few), then the wait doubles up to
// fastReconnectBackoff for the first fastReconnectFor of an outage, so
// that a client is back within a couple of seconds of a restarted node
// (a user expects it back within 10 s), and up to maxReconnectBackoff
// after that, for a node that is gone for good. ±20% jitter keeps a node's
// clients from all returning at once; a failed attempt costs the node a
// refused TCP connection.
const (
	minReconnectBackoff  = 500 * time.Millisecond
	fastReconnectBackoff = 2 * time.Second
	fastReconnectFor     = 30 * time.Second
	maxReconnectBackoff  = 15 * time.Second
)

// KeepConfig configures KeepConnected. Every field may be left unset.
type KeepConfig struct {
	// OnState is told each state change, the failed attempts since the
	// last login, and while reconnecting when the next attempt comes.
	OnState func(state string, attempt int, retryAt time.Time)
	// Wake makes a waiting reconnect try at once (the user asked), and
	// ends StateOffline.
	Wake <-chan struct{}
	// Stopped reports whether the user closed the connection on purpose
	// (the browser's exit): KeepConnected then waits for Wake.
	Stopped func() bool
	// Quiet is called with true before an automatic connect and false
	// after it, so that a UI can show its failures as status.
	Quiet func(bool)
	// NextNode, when the node refused the user (its operator banned the
	// key), moves the next connect to another node and reports whether
	// there is one; without one KeepConnected stops trying (StateOffline)
	// until Wake.
	NextNode func() bool
}

// noteRefused records that the node refuses the user's key (the
// operator's ban, at login or later): connecting to it again is
// pointless. KeepConnected takes the mark (takeRefused).
func (c *Interpreter) noteRefused(err error) {
	var e *client.Error
	if errors.As(err, &e) && e.Code == proto.CodeBanned {
		c.refused.Store(true)
	}
}

// takeRefused reports and clears the mark noteRefused set.
func (c *Interpreter) takeRefused() bool { return c.refused.Swap(false) }

// KeepConnected keeps the Interpreter logged in until ctx ends: when a
// session ends other than by Stopped, it connects again with backoff, logs
// in, and joins again the channels the session was in under the same
// usernames (each join printed as usual, and asking for the history of
// what was said meanwhile in interactive mode). Call it after Start, on its
// own goroutine.
func (c *Interpreter) KeepConnected(ctx context.Context, kc KeepConfig) {
	state := func(s string, attempt int, at time.Time) {
		// Commands typed while a session is being got back say so
		// (loggedIn), rather than ask for connect.
		c.reconnecting.Store(s == StateReconnecting || s == StateConnecting)
		if kc.OnState != nil {
			kc.OnState(s, attempt, at)
		}
	}
	joined := make(map[string]string) // channels to join again; this goroutine's only
	defer c.reconnecting.Store(false)
	backoff := minReconnectBackoff
	attempt := 0
	outage := time.Now()
	for ctx.Err() == nil {
		if s := c.Session(); s != nil && s.LoggedIn() {
			attempt = 0
			// Ready once the channels are asked for again, so that a UI
			// never sees them missing.
			rejoined := c.rejoin(ctx, s, joined)
			state(StateReady, 0, time.Time{})
			backoff = minReconnectBackoff
			select {
			case <-s.Done():
			case <-ctx.Done():
				return
			}
			if rejoined {
				// The channels the session was in (or asking to join)
				// when it ended, after the user's joins and leaves.
				joined = s.Channels()
			}
			outage = time.Now()
		}
		attempt++
		if c.takeRefused() && (kc.NextNode == nil || !kc.NextNode()) {
			c.notice("This node refuses your key (its operator banned it): not connecting to it again by itself")
			state(StateOffline, attempt, time.Time{})
			select {
			case <-kc.Wake:
			case <-ctx.Done():
				return
			}
			c.connect(ctx) // asked for: try once more
			continue
		}
		if kc.Stopped != nil && kc.Stopped() {
			state(StateOffline, attempt, time.Time{})
			select {
			case <-kc.Wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		wait := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
		state(StateReconnecting, attempt, time.Now().Add(wait))
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-kc.Wake:
			timer.Stop()
		case <-ctx.Done():
			timer.Stop()
			return
		}
		limit := maxReconnectBackoff
		if time.Since(outage) < fastReconnectFor {
			limit = fastReconnectBackoff
		}
		backoff = min(2*backoff, limit)
		if s := c.Session(); s != nil && s.LoggedIn() {
			continue // the user typed connect
		}
		state(StateConnecting, attempt, time.Time{})
		if kc.Quiet != nil {
			kc.Quiet(true)
		}
		c.connect(ctx)
		if kc.Quiet != nil {
			kc.Quiet(false)
		}
	}
}

// rejoin joins, on a new session, the channels of joined it is not in. It
// reports false if the session ended before it could ask for them all:
// they are then asked for again on the next one.
func (c *Interpreter) rejoin(ctx context.Context, s *client.Session, joined map[string]string) bool {
	now := s.Channels()
	var chans []string
	for ch := range joined {
		if _, in := now[ch]; !in {
			chans = append(chans, ch)
		}
	}
	slices.Sort(chans)
	for _, ch := range chans {
		if !s.LoggedIn() {
			return false
		}
		c.join(ctx, ch, []string{joined[ch]})
	}
	return s.LoggedIn()
}
