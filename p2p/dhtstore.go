package p2p

import (
	"context"
	"errors"
	"sync"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
)

// The DHT's record store. kad-dht keeps what peers store with it (key
// bundles, PUT_VALUE; rendezvous provider records, ADD_PROVIDER) in an
// in-memory datastore that nothing bounds: a peer storing records under
// fresh keys would grow the node without end. boundedStore refuses new
// keys past maxDHTRecords or maxDHTBytes; updates of keys it holds still
// pass, and kad-dht's expiry (bundles after MaxRecordAge, provider records
// after their validity) makes room again. Honest use is small: a bundle per
// user (about 2.5 KB) and a provider record per node per channel it is in.
const (
	maxDHTRecords = 1 << 16
	maxDHTBytes   = 64 << 20
)

var errDHTStoreFull = errors.New("dht record store full")

// boundedStore is a thread-safe in-memory ds.Batching with limits.
type boundedStore struct {
	ds.Batching // a MutexWrap'd map datastore; reads go straight to it

	mu    sync.Mutex
	sizes map[ds.Key]int // bytes held per key (key and value)
	bytes int
}

func newBoundedStore() *boundedStore {
	return &boundedStore{Batching: dssync.MutexWrap(ds.NewMapDatastore()), sizes: make(map[ds.Key]int)}
}

func (b *boundedStore) Put(ctx context.Context, key ds.Key, value []byte) error {
	size := len(key.String()) + len(value)
	b.mu.Lock()
	defer b.mu.Unlock()
	old, held := b.sizes[key]
	if !held && (len(b.sizes) >= maxDHTRecords || b.bytes+size > maxDHTBytes) {
		return errDHTStoreFull
	}
	if held && b.bytes-old+size > maxDHTBytes {
		return errDHTStoreFull
	}
	if err := b.Batching.Put(ctx, key, value); err != nil {
		return err
	}
	b.sizes[key] = size
	b.bytes += size - old
	return nil
}

func (b *boundedStore) Delete(ctx context.Context, key ds.Key) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.Batching.Delete(ctx, key); err != nil {
		return err
	}
	b.bytes -= b.sizes[key]
	delete(b.sizes, key)
	return nil
}

// Batch applies its puts and deletes through the limits, the deletes
// first, so that a batch that replaces records in a full store succeeds
// whatever order it was given in.
func (b *boundedStore) Batch(ctx context.Context) (ds.Batch, error) {
	return &boundedBatch{store: b, ops: make(map[ds.Key]batchOp)}, nil
}

type batchOp struct {
	value  []byte
	delete bool
}

// boundedBatch holds one operation per key, the last one given.
type boundedBatch struct {
	store *boundedStore
	ops   map[ds.Key]batchOp
}

func (bb *boundedBatch) Put(_ context.Context, key ds.Key, value []byte) error {
	bb.ops[key] = batchOp{value: value}
	return nil
}

func (bb *boundedBatch) Delete(_ context.Context, key ds.Key) error {
	bb.ops[key] = batchOp{delete: true}
	return nil
}

func (bb *boundedBatch) Commit(ctx context.Context) error {
	for k, op := range bb.ops {
		if op.delete {
			if err := bb.store.Delete(ctx, k); err != nil {
				return err
			}
		}
	}
	for k, op := range bb.ops {
		if !op.delete {
			if err := bb.store.Put(ctx, k, op.value); err != nil {
				return err
			}
		}
	}
	return nil
}
