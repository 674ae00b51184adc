package gateway

// slotTable keeps sessions in a slice, each at an index it hands out on
// add and takes back on remove, with a generation per index so that an
// index kept past its session's removal (a readiness event the poller
// already collected) finds nothing. It costs ~12 B a session where a map
// costs ~32: idle sessions are most of a node's memory. The owner locks.
type slotTable struct {
	items []*session
	gens  []uint32
	free  []int32
	n     int
}

// add stores s and returns its index and that index's new generation
// (never 0).
func (t *slotTable) add(s *session) (slot int32, gen uint32) {
	if k := len(t.free); k > 0 {
		slot = t.free[k-1]
		t.free = t.free[:k-1]
	} else {
		slot = int32(len(t.items))
		t.items = append(t.items, nil)
		t.gens = append(t.gens, 0)
	}
	t.gens[slot]++
	if t.gens[slot] == 0 {
		t.gens[slot] = 1
	}
	t.items[slot] = s
	t.n++
	return slot, t.gens[slot]
}

// remove takes back slot if s is there.
func (t *slotTable) remove(slot int32, s *session) {
	if slot < 0 || int(slot) >= len(t.items) || t.items[slot] != s {
		return
	}
	t.items[slot] = nil
	t.free = append(t.free, slot)
	t.n--
}

// get returns the session at slot if the slot's generation is gen.
func (t *slotTable) get(slot int32, gen uint32) *session {
	if slot < 0 || int(slot) >= len(t.items) || t.gens[slot] != gen {
		return nil
	}
	return t.items[slot]
}

// len returns how many sessions the table holds.
func (t *slotTable) len() int { return t.n }

// appendTo appends the sessions held to out.
func (t *slotTable) appendTo(out []*session) []*session {
	for _, s := range t.items {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}
