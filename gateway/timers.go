package gateway

import (
	"slices"
	"sync"
	"time"
)

// sessionTimers fires the sessions' ticks (the login deadline, the idle
// ping, the idle timeout: session.tick) from one goroutine per server, on a
// hashed wheel of timerSlots slots timerResolution apart, instead of one
// runtime timer per session: a timer is ~130 B of every idle session's
// memory, a slot entry 8. A tick fires up to one resolution late, never
// early.
//
// A session due at tickAt sits in the slot of tickAt's bucket (tickAt
// rounded up to the resolution, modulo timerSlots), so the slot is known
// from tickAt alone: a session that ends leaves its slot at once (stop),
// and a connection flood's short sessions are not kept until their tick.
// A slot holds the sessions of every bucket that maps to it; those further
// away than the current bucket stay when it fires.
type sessionTimers struct {
	res time.Duration

	// epoch is the wheel's time zero: times are durations since it (on
	// the monotonic clock, as runtime timers are).
	epoch time.Time

	mu    sync.Mutex
	slots [timerSlots][]*session
	curAt time.Duration // the next bucket to fire, as a time: a multiple of res
}

// timerSlots is the wheel's size: a tick up to timerSlots×res away is
// looked at once; one further away, once per turn of the wheel until due.
const timerSlots = 256

// timerResolution is how far apart the slots are: an eighth of the
// shortest interval the sessions are timed by, between 10 ms and 1 s.
func timerResolution(cfg *Config) time.Duration {
	shortest := min(cfg.LoginTimeout, cfg.IdlePing, cfg.IdleTimeout)
	return min(max(shortest/8, 10*time.Millisecond), time.Second)
}

func newSessionTimers(res time.Duration) *sessionTimers {
	return &sessionTimers{res: res, epoch: time.Now(), curAt: res}
}

// schedule makes s tick after d (rounded up to the wheel's resolution).
func (w *sessionTimers) schedule(s *session, d time.Duration) {
	w.scheduleAt(s, time.Since(w.epoch)+d)
}

// scheduleAt makes s tick at the wheel's time at, instead of when it was
// to tick before, if it was.
func (w *sessionTimers) scheduleAt(s *session, at time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unplaceLocked(s)
	// A time whose bucket has fired already goes in the next one.
	s.tickAt = max(at, w.curAt-w.res+1)
	i := w.slotOf(s.tickAt)
	w.slots[i] = append(w.slots[i], s)
}

// slotOf returns the slot of the bucket at (rounded up) falls in.
func (w *sessionTimers) slotOf(at time.Duration) int {
	return int(((at + w.res - 1) / w.res) % timerSlots)
}

// stop unschedules s.
func (w *sessionTimers) stop(s *session) {
	w.mu.Lock()
	w.unplaceLocked(s)
	w.mu.Unlock()
}

func (w *sessionTimers) unplaceLocked(s *session) {
	if s.tickAt == 0 {
		return
	}
	i := w.slotOf(s.tickAt)
	if j := slices.Index(w.slots[i], s); j >= 0 {
		last := len(w.slots[i]) - 1
		w.slots[i][j] = w.slots[i][last]
		w.slots[i][last] = nil
		w.slots[i] = w.slots[i][:last]
	}
	s.tickAt = 0
}

// run fires the buckets as they come due until done is closed.
func (w *sessionTimers) run(done <-chan struct{}) {
	t := time.NewTicker(w.res)
	defer t.Stop()
	var due []*session
	for {
		select {
		case <-done:
			return
		case <-t.C:
			due = w.advance(time.Since(w.epoch), due[:0])
			for i, s := range due {
				s.tick()
				due[i] = nil
			}
		}
	}
}

// advance fires every bucket whose time has come by now: it takes out of
// their slots, and appends to due, the sessions due by now.
func (w *sessionTimers) advance(now time.Duration, due []*session) []*session {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.curAt <= now {
		i := w.slotOf(w.curAt)
		slot := w.slots[i]
		kept := slot[:0]
		for _, s := range slot {
			if s.tickAt > now {
				kept = append(kept, s) // a later turn of the wheel
				continue
			}
			s.tickAt = 0
			due = append(due, s)
		}
		clear(slot[len(kept):])
		if len(kept) == 0 {
			kept = nil // an empty slot keeps no array
		}
		w.slots[i] = kept
		w.curAt += w.res
	}
	return due
}
