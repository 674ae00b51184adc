package gateway

import (
	"sync"

	"darkchat/identity"
	"darkchat/proto"
)

// identities counts the logged-in sessions of each key on this node, so
// that a user whose identity another client uses at the same time is told
// (PROTOCOL.md §2.3, `sessions`): two clients started with the default key
// file share one identity without knowing it. Its size is bounded by the
// node's sessions (Config.MaxConns).
type identities struct {
	mu    sync.Mutex
	byKey map[identity.PublicKey]map[*session]struct{}
}

// add registers s, logged in, and tells every session of its key how many
// there are now, if more than one.
func (ids *identities) add(s *session) {
	ids.mu.Lock()
	if ids.byKey == nil {
		ids.byKey = make(map[identity.PublicKey]map[*session]struct{})
	}
	m := ids.byKey[s.key]
	if m == nil {
		m = make(map[*session]struct{})
		ids.byKey[s.key] = m
	}
	m[s] = struct{}{}
	tell := ids.listLocked(s.key, 2)
	ids.mu.Unlock()
	notifySessions(tell)
}

// remove forgets s and, if other sessions of its key were told of it,
// tells them how many are left.
func (ids *identities) remove(s *session) {
	ids.mu.Lock()
	m := ids.byKey[s.key]
	if _, ok := m[s]; !ok {
		ids.mu.Unlock()
		return
	}
	delete(m, s)
	if len(m) == 0 {
		delete(ids.byKey, s.key)
	}
	tell := ids.listLocked(s.key, 1)
	ids.mu.Unlock()
	notifySessions(tell)
}

// listLocked returns key's sessions if there are at least least of them.
func (ids *identities) listLocked(key identity.PublicKey, least int) []*session {
	m := ids.byKey[key]
	if len(m) < least {
		return nil
	}
	out := make([]*session, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	return out
}

func notifySessions(to []*session) {
	if len(to) == 0 {
		return
	}
	frame := mustJSON(&proto.Sessions{Count: int64(len(to))})
	for _, s := range to {
		s.enqueue(frame)
	}
}
