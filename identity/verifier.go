package identity

import (
	"fmt"
	"sync"
	"time"
)

// Verifier verifies channel messages' signatures for many goroutines at
// once, in batches: each of its workers takes every request waiting (up to
// its batch size) and verifies them together (Batch), for about half the
// cost of verifying each alone; a batch that fails is verified one by one
// to find the bad signatures. A request never waits for a batch to fill: a
// worker that finds one request verifies that one, so batches form only
// when requests arrive faster than the workers verify, and batching adds no
// latency of its own. Its verdicts are verify's (ZIP-215, small-order keys
// refused), for a batch or alone.
//
// Batches form by themselves only while every worker is busy. When
// requests come faster than one per batchWindow, a worker that finds fewer
// than minBatch waiting waits up to batchWindow for more before it
// verifies: a batch of one costs twice a batch of eight per signature. At
// lower rates nothing waits.
//
// The queue holds at most maxQueued requests; a caller that finds it full
// verifies its own signature (never dropped, never blocked behind a full
// queue).
type Verifier struct {
	maxBatch  int
	maxQueued int

	mu       sync.Mutex
	wake     *sync.Cond
	queue    []*verifyRequest
	closed   bool
	lastPush time.Time // when the last request came
	workers  int
	busy     int           // workers verifying
	filled   chan struct{} // signalled when the queue reaches minBatch

	// stats: what the workers did, for Stats.
	stats VerifierStats
}

// VerifierStats counts a Verifier's work.
type VerifierStats struct {
	Signatures  uint64 // signatures verified (batched, alone, or by a caller)
	Batches     uint64 // batches of two or more
	Batched     uint64 // signatures verified in those batches
	FailedBatch uint64 // batches that held a bad signature, verified again one by one
	Inline      uint64 // signatures their caller verified because the queue was full
}

type verifyRequest struct {
	pub  PublicKey
	msg  []byte
	sig  []byte
	buf  [maxSignedLen]byte
	done chan bool
}

var verifyRequests = sync.Pool{New: func() any { return &verifyRequest{done: make(chan bool, 1)} }}

// Default Verifier sizes: batches of up to 64 signatures (past that the
// saving per signature is small and a batch's verdict comes later), and a
// queue of 8,192 requests (the most GossipSub validates at once).
const (
	DefaultVerifyBatch  = 64
	DefaultVerifyQueued = 8192
)

// The batching window: a worker that finds fewer than minBatch requests,
// while they come less than batchWindow apart, waits up to batchWindow
// for more. Eight signatures in a batch cost about 26 µs each against 42
// µs alone (BenchmarkBatchSizes); batchWindow is a fraction of a
// millisecond, well under the hop's own latency under load.
const (
	minBatch    = 8
	batchWindow = 200 * time.Microsecond
)

// NewVerifier starts workers goroutines verifying in batches of up to
// maxBatch signatures, with at most maxQueued requests waiting. Close stops
// them.
func NewVerifier(workers, maxBatch, maxQueued int) *Verifier {
	v := &Verifier{maxBatch: max(maxBatch, 1), maxQueued: max(maxQueued, 1), filled: make(chan struct{}, 1), workers: max(workers, 1)}
	v.wake = sync.NewCond(&v.mu)
	for range v.workers {
		go v.work()
	}
	return v
}

// Close stops the workers once the requests queued are answered. Verify
// after Close verifies in the caller.
func (v *Verifier) Close() {
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	v.wake.Broadcast()
}

// Stats returns what the Verifier did so far.
func (v *Verifier) Stats() VerifierStats {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.stats
}

// VerifyChannelMessage is m.Verify, batched with other goroutines'
// requests. It blocks until the verdict.
func (v *Verifier) VerifyChannelMessage(m *ChannelMessage) error {
	if v == nil {
		return m.Verify()
	}
	r := verifyRequests.Get().(*verifyRequest)
	r.pub = m.Author
	r.msg = m.appendSigned(r.buf[:0])
	r.sig = m.Sig[:]
	ok := v.verify(r)
	r.msg, r.sig = nil, nil
	verifyRequests.Put(r)
	if !ok {
		return fmt.Errorf("channel message: %w for author %s", ErrBadSignature, m.Author)
	}
	return nil
}

func (v *Verifier) verify(r *verifyRequest) bool {
	v.mu.Lock()
	if v.closed || len(v.queue) >= v.maxQueued {
		v.stats.Signatures++
		v.stats.Inline++
		v.mu.Unlock()
		return verify(r.pub, r.msg, r.sig)
	}
	v.queue = append(v.queue, r)
	v.lastPush = time.Now()
	if len(v.queue) == minBatch {
		select {
		case v.filled <- struct{}{}:
		default:
		}
	}
	v.mu.Unlock()
	v.wake.Signal()
	return <-r.done
}

func (v *Verifier) work() {
	b := NewBatch(v.maxBatch)
	batch := make([]*verifyRequest, 0, v.maxBatch)
	timer := time.NewTimer(batchWindow)
	timer.Stop()
	var ok []bool
	for {
		v.mu.Lock()
		for len(v.queue) == 0 && !v.closed {
			v.wake.Wait()
		}
		if len(v.queue) == 0 { // closed and drained
			v.mu.Unlock()
			return
		}
		if len(v.queue) < minBatch && !v.closed && v.busy == v.workers-1 && time.Since(v.lastPush) < batchWindow {
			// Requests come fast: give them a moment to make a batch.
			select {
			case <-v.filled: // stale: from a batch already taken
			default:
			}
			v.mu.Unlock()
			timer.Reset(batchWindow)
			select {
			case <-v.filled:
				timer.Stop()
			case <-timer.C:
			}
			v.mu.Lock()
			if len(v.queue) == 0 { // another worker took them
				v.mu.Unlock()
				continue
			}
		}
		n := min(len(v.queue), v.maxBatch)
		batch = append(batch[:0], v.queue[:n]...)
		rest := copy(v.queue, v.queue[n:])
		clear(v.queue[rest:])
		v.queue = v.queue[:rest]
		v.busy++
		v.mu.Unlock()

		failed := false
		if n == 1 {
			// One signature alone costs less than a batch of one.
			batch[0].done <- verify(batch[0].pub, batch[0].msg, batch[0].sig)
		} else {
			b.Reset()
			for _, r := range batch {
				b.add(r.pub, r.msg, r.sig)
			}
			if b.Verify() {
				for _, r := range batch {
					r.done <- true
				}
			} else {
				failed = true
				ok = b.VerifyEach(ok)
				for i, r := range batch {
					r.done <- ok[i]
				}
			}
		}
		v.mu.Lock()
		v.busy--
		v.stats.Signatures += uint64(n)
		if n > 1 {
			v.stats.Batches++
			v.stats.Batched += uint64(n)
		}
		if failed {
			v.stats.FailedBatch++
		}
		v.mu.Unlock()
	}
}
