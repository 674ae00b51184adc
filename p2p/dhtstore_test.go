package p2p

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The DHT's record store takes no new key past its record or byte limit;
// updates and deletes still work, and a delete makes room.
func TestBoundedStoreRefusesNewKeysWhenFull(t *testing.T) {
	ctx := t.Context()
	s := newBoundedStore()
	for i := range maxDHTRecords {
		if err := s.Put(ctx, ds.NewKey(fmt.Sprint("/r/", i)), []byte("v")); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if err := s.Put(ctx, ds.NewKey("/r/new"), []byte("v")); !errors.Is(err, errDHTStoreFull) {
		t.Fatalf("a new record in a full store: %v, want %v", err, errDHTStoreFull)
	}
	if err := s.Put(ctx, ds.NewKey("/r/0"), []byte("updated")); err != nil {
		t.Fatalf("updating a record in a full store: %v", err)
	}
	b, err := s.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Delete(ctx, ds.NewKey("/r/1"))
	b.Put(ctx, ds.NewKey("/r/new"), []byte("v"))
	if err := b.Commit(ctx); err != nil {
		t.Fatalf("a batch that deletes one record and adds one: %v", err)
	}
	if ok, _ := s.Has(ctx, ds.NewKey("/r/new")); !ok {
		t.Fatal("the batch's new record is missing")
	}

	big := newBoundedStore()
	value := make([]byte, 4<<20)
	n := 0
	for ; n < 100; n++ {
		if err := big.Put(ctx, ds.NewKey(fmt.Sprint("/big/", n)), value); err != nil {
			break
		}
	}
	if held := n * len(value); held > maxDHTBytes || n == 100 {
		t.Fatalf("%d records of 4 MiB stored, want at most %d MiB", n, maxDHTBytes>>20)
	}
}

// A peer that streams DHT writes is banned at the end of its budget.
func TestDHTWriteFloodBansPeer(t *testing.T) {
	var banned []peer.ID
	g := newPeerGuard(slog.New(slog.DiscardHandler), func(p peer.ID) { banned = append(banned, p) }, func(peer.ID) string { return "" })
	writes := 0
	for g.dhtWrite("writer") && writes < 10*dhtWriteBurst {
		writes++
	}
	if writes > dhtWriteBurst+dhtWriteRate || writes < dhtWriteBurst {
		t.Fatalf("%d writes before the cut, want the burst of %d", writes, dhtWriteBurst)
	}
	if len(banned) != 1 || banned[0] != "writer" {
		t.Fatalf("banned %v, want the writer", banned)
	}
	if g.dhtWrite("writer") {
		t.Fatal("a banned peer's write was accepted")
	}
	if !g.dhtWrite("other") {
		t.Fatal("another peer's write was refused")
	}
}
