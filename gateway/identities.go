package gateway

import (
	"encoding/binary"
	"slices"
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
	mu sync.Mutex
	// first holds, by the first 8 bytes of its key (keyPrefix), the first
	// session to log in of the keys with that prefix; more holds every
	// other session by its whole key: the other sessions of a key that
	// has several, and those of another key with the same prefix, both
	// rare. (One 16-byte map entry per idle session, rather than a slice
	// per whole key: idle sessions are the node's memory.)
	first map[uint64]*session
	more  map[identity.PublicKey][]*session
}

func keyPrefix(k identity.PublicKey) uint64 { return binary.LittleEndian.Uint64(k[:8]) }

// add registers s, logged in, and tells every session of its key how many
// there are now, if more than one.
func (ids *identities) add(s *session) {
	ids.mu.Lock()
	if ids.first == nil {
		ids.first = make(map[uint64]*session)
		ids.more = make(map[identity.PublicKey][]*session)
	}
	switch f, ok := ids.first[keyPrefix(s.key)]; {
	case !ok:
		ids.first[keyPrefix(s.key)] = s
	case f != s && !slices.Contains(ids.more[s.key], s):
		ids.more[s.key] = append(ids.more[s.key], s)
	}
	tell := ids.listLocked(s.key, 2)
	ids.mu.Unlock()
	notifySessions(tell)
}

// remove forgets s and, if other sessions of its key were told of it,
// tells them how many are left.
func (ids *identities) remove(s *session) {
	ids.mu.Lock()
	p := keyPrefix(s.key)
	more := ids.more[s.key]
	switch i := slices.Index(more, s); {
	case ids.first[p] == s && len(more) > 0:
		ids.first[p] = more[0]
		more = more[1:]
	case ids.first[p] == s:
		delete(ids.first, p)
	case i >= 0:
		more = slices.Delete(more, i, i+1)
	default:
		ids.mu.Unlock()
		return
	}
	if len(more) == 0 {
		delete(ids.more, s.key)
	} else {
		ids.more[s.key] = more
	}
	tell := ids.listLocked(s.key, 1)
	ids.mu.Unlock()
	notifySessions(tell)
}

// listLocked returns key's sessions if there are at least least of them.
func (ids *identities) listLocked(key identity.PublicKey, least int) []*session {
	var all []*session
	if f, ok := ids.first[keyPrefix(key)]; ok && f.key == key {
		all = append(all, f)
	}
	all = append(all, ids.more[key]...)
	if len(all) < least {
		return nil
	}
	return all
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
