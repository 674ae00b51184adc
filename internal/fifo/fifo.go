// Package fifo has the one bounded map that forgets its oldest entries
// first, for the caches and seen-sets that must not grow with what peers
// send (the client's seen message IDs and DMs, its verified bundles, the
// receipts it sent).
package fifo

// Map is a map of at most max entries: setting a new key when it is full
// forgets the entry set longest ago. Updating a key keeps its place. It is
// not safe for concurrent use; its owner's lock guards it.
type Map[K comparable, V any] struct {
	max     int
	entries map[K]entry[V]
	// order holds the keys by when they were set, oldest first from
	// head; a key deleted or set again since leaves a stale slot, told
	// apart by its sequence number.
	order []slot[K]
	head  int
	seq   uint64
}

type entry[V any] struct {
	v   V
	seq uint64
}

type slot[K comparable] struct {
	k   K
	seq uint64
}

// NewMap returns an empty map of at most limit (≥ 1) entries.
func NewMap[K comparable, V any](limit int) *Map[K, V] {
	return &Map[K, V]{max: max(limit, 1), entries: make(map[K]entry[V])}
}

// Get returns k's value and whether k is in the map.
func (m *Map[K, V]) Get(k K) (V, bool) {
	e, ok := m.entries[k]
	return e.v, ok
}

// Has reports whether k is in the map.
func (m *Map[K, V]) Has(k K) bool {
	_, ok := m.entries[k]
	return ok
}

// Len is how many entries the map holds.
func (m *Map[K, V]) Len() int { return len(m.entries) }

// Set sets k to v. A new key in a full map first forgets the oldest entry.
func (m *Map[K, V]) Set(k K, v V) {
	if e, ok := m.entries[k]; ok {
		m.entries[k] = entry[V]{v, e.seq}
		return
	}
	for len(m.entries) >= m.max {
		m.popOldest()
	}
	m.seq++
	m.entries[k] = entry[V]{v, m.seq}
	m.order = append(m.order, slot[K]{k, m.seq})
	// Stale slots are dropped once they outnumber the entries, so the
	// order stays within twice the bound.
	if len(m.order)-m.head > 2*m.max {
		m.compact()
	}
}

// Add sets k (for a map used as a set) and reports whether it was new.
func (m *Map[K, V]) Add(k K) bool {
	if m.Has(k) {
		return false
	}
	var zero V
	m.Set(k, zero)
	return true
}

// Delete forgets k.
func (m *Map[K, V]) Delete(k K) { delete(m.entries, k) }

// popOldest forgets the entry set longest ago.
func (m *Map[K, V]) popOldest() {
	for m.head < len(m.order) {
		s := m.order[m.head]
		m.order[m.head] = slot[K]{}
		m.head++
		if e, ok := m.entries[s.k]; ok && e.seq == s.seq {
			delete(m.entries, s.k)
			return
		}
	}
}

// compact rebuilds the order from the live entries, oldest first.
func (m *Map[K, V]) compact() {
	live := make([]slot[K], 0, len(m.entries))
	for _, s := range m.order[m.head:] {
		if e, ok := m.entries[s.k]; ok && e.seq == s.seq {
			live = append(live, s)
		}
	}
	m.order, m.head = live, 0
}

// Range calls f for every entry, in no particular order. f must not
// modify the map.
func (m *Map[K, V]) Range(f func(K, V)) {
	for k, e := range m.entries {
		f(k, e.v)
	}
}
