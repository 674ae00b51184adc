package fifo

import (
	"math/rand/v2"
	"testing"
)

// The map forgets the oldest set first, keeps an updated key's place,
// and a deleted key's old place does not evict it when set again.
func TestMapOrder(t *testing.T) {
	m := NewMap[string, int](3)
	m.Set("a", 1)
	m.Set("b", 2)
	m.Set("c", 3)
	m.Set("a", 10) // an update keeps a's place
	m.Set("d", 4)  // forgets a, the oldest
	if m.Has("a") || !m.Has("b") || !m.Has("d") || m.Len() != 3 {
		t.Fatalf("after d: a %v b %v d %v len %d; want a forgotten", m.Has("a"), m.Has("b"), m.Has("d"), m.Len())
	}
	m.Delete("b")
	m.Set("b", 5) // b is now the newest
	m.Set("e", 6) // forgets c
	if m.Has("c") || !m.Has("b") || !m.Has("d") || !m.Has("e") {
		t.Fatalf("after e: c %v b %v d %v e %v; want c forgotten", m.Has("c"), m.Has("b"), m.Has("d"), m.Has("e"))
	}
	if v, _ := m.Get("b"); v != 5 {
		t.Fatalf("b = %d, want 5", v)
	}
	if !m.Add("f") || m.Add("f") {
		t.Fatal("Add must report a new key once")
	}
}

// Against a plain reference under random use: the same keys, never more
// than the bound, and the order slice stays bounded.
func TestMapAgainstReference(t *testing.T) {
	const max = 16
	rng := rand.New(rand.NewPCG(1, 2))
	m := NewMap[int, int](max)
	var ref []int // keys, oldest first
	for i := range 100_000 {
		k := rng.IntN(40)
		switch rng.IntN(3) {
		case 0:
			m.Delete(k)
			for j, r := range ref {
				if r == k {
					ref = append(ref[:j], ref[j+1:]...)
					break
				}
			}
		default:
			m.Set(k, i)
			found := false
			for _, r := range ref {
				found = found || r == k
			}
			if !found {
				if len(ref) == max {
					ref = ref[1:]
				}
				ref = append(ref, k)
			}
		}
		if m.Len() != len(ref) || m.Len() > max {
			t.Fatalf("step %d: %d entries, reference %d (bound %d)", i, m.Len(), len(ref), max)
		}
		for _, r := range ref {
			if !m.Has(r) {
				t.Fatalf("step %d: %d missing", i, r)
			}
		}
		if len(m.order)-m.head > 2*max+1 {
			t.Fatalf("step %d: order holds %d slots for %d entries", i, len(m.order)-m.head, m.Len())
		}
	}
}
