package gateway

import (
	"slices"
	"testing"
	"time"
)

// The wheel fires a session's tick once its time has come and not before,
// keeps ticks further away than it spans, and lets go of stopped ones at
// once.
func TestSessionTimers(t *testing.T) {
	const res = 10 * time.Millisecond
	w := newSessionTimers(res)
	soon, later, far, stopped := &session{}, &session{}, &session{}, &session{}
	names := map[*session]string{soon: "soon", later: "later", far: "far", stopped: "stopped"}
	farAt := timerSlots*res*3 + 5*time.Millisecond
	w.scheduleAt(soon, 5*time.Millisecond)
	w.scheduleAt(later, 25*time.Millisecond)
	w.scheduleAt(far, farAt)
	w.scheduleAt(stopped, 15*time.Millisecond)
	w.stop(stopped)
	for i, slot := range w.slots {
		if slices.Contains(slot, stopped) {
			t.Fatalf("slot %d still holds a stopped session", i)
		}
	}

	fired := map[string]time.Duration{}
	for now := time.Duration(0); now <= farAt+2*res; now += res / 2 {
		for _, s := range w.advance(now, nil) {
			name := names[s]
			if _, twice := fired[name]; twice {
				t.Fatalf("%s fired twice", name)
			}
			fired[name] = now
		}
	}
	for name, at := range map[string]time.Duration{"soon": 5 * time.Millisecond, "later": 25 * time.Millisecond, "far": farAt} {
		got, ok := fired[name]
		switch {
		case !ok:
			t.Errorf("%s never fired", name)
		case got < at:
			t.Errorf("%s fired at %v, before its time %v", name, got, at)
		case got > at+res:
			t.Errorf("%s fired at %v, more than %v after its time %v", name, got, res, at)
		}
	}
	if _, ok := fired["stopped"]; ok {
		t.Error("a stopped session fired")
	}
	for i, slot := range w.slots {
		if len(slot) != 0 {
			t.Errorf("slot %d still holds %d sessions after all fired or stopped", i, len(slot))
		}
	}
	// Rescheduled from its own tick, a session fires again.
	w.scheduleAt(soon, farAt+10*res)
	var again []string
	for now := farAt + 2*res; now <= farAt+12*res; now += res {
		for _, s := range w.advance(now, nil) {
			again = append(again, names[s])
		}
	}
	if !slices.Equal(again, []string{"soon"}) {
		t.Errorf("after rescheduling: fired %v, want [soon]", again)
	}
}

// The slot table hands out indexes, takes them back, and tells a removed
// session's old index (with its generation) from the index's new owner.
func TestSlotTable(t *testing.T) {
	var tab slotTable
	a, b, c := &session{}, &session{}, &session{}
	sa, ga := tab.add(a)
	sb, gb := tab.add(b)
	if got := tab.get(sa, ga); got != a {
		t.Fatalf("slot of a holds %p", got)
	}
	tab.remove(sa, b) // not b's slot: nothing happens
	if tab.len() != 2 || tab.get(sa, ga) != a {
		t.Fatal("removing another session's slot took it")
	}
	tab.remove(sa, a)
	sc, gc := tab.add(c)
	if sc != sa || gc == ga {
		t.Fatalf("c got slot %d generation %d; want a's slot %d with a new generation", sc, gc, sa)
	}
	if got := tab.get(sa, ga); got != nil {
		t.Fatalf("a's old slot and generation find %p", got)
	}
	if got := tab.get(sc, gc); got != c {
		t.Fatalf("c's slot holds %p", got)
	}
	if got := tab.appendTo(nil); tab.len() != 2 || !slices.Contains(got, b) || !slices.Contains(got, c) || len(got) != 2 {
		t.Fatalf("held: %p (len %d), want b and c", got, tab.len())
	}
	if tab.get(sb, gb) != b || tab.get(-1, 1) != nil || tab.get(99, 1) != nil {
		t.Fatal("lookups out of range or of b")
	}
}
