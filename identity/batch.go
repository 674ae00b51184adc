package identity

import (
	"crypto/ed25519"

	"github.com/hdevalence/ed25519consensus"
)

// Batch verifies many signatures together, for about half the cost of
// verifying each alone (one multi-scalar multiplication for the batch).
// Its verdict is the one verify gives each signature (ZIP-215, small-order
// keys refused): a batch holding only valid signatures verifies, and one
// holding any invalid signature does not, so the caller then finds the bad
// ones one by one (VerifyEach). A Batch is not safe for concurrent use;
// Reset makes it ready for the next batch, keeping its memory.
type Batch struct {
	v ed25519consensus.BatchVerifier
	// items holds what was added, for VerifyEach; the signed bytes are
	// the caller's, kept until Reset.
	items []batchItem
	// refused is set when an item could never verify (a bad size or a
	// small-order key): the batch fails without the multiplication.
	refused bool
}

type batchItem struct {
	pub      PublicKey
	msg, sig []byte
}

// NewBatch returns a Batch with room for size signatures.
func NewBatch(size int) *Batch {
	return &Batch{v: ed25519consensus.NewPreallocatedBatchVerifier(size), items: make([]batchItem, 0, size)}
}

// Len is how many signatures were added since the last Reset.
func (b *Batch) Len() int { return len(b.items) }

// Reset empties the batch.
func (b *Batch) Reset() {
	b.v = ed25519consensus.NewPreallocatedBatchVerifier(cap(b.items))
	clear(b.items)
	b.items = b.items[:0]
	b.refused = false
}

// add adds pub's signature sig of msg (msg starts with its domain prefix).
// msg and sig must not change until Reset.
func (b *Batch) add(pub PublicKey, msg, sig []byte) {
	b.items = append(b.items, batchItem{pub, msg, sig})
	if len(sig) != SignatureSize || hasSmallOrder(pub) {
		b.refused = true
		return
	}
	b.v.Add(ed25519.PublicKey(pub[:]), msg, sig)
}

// AddChannelMessage adds m's signature. m must not change until Reset.
func (b *Batch) AddChannelMessage(m *ChannelMessage) {
	b.add(m.Author, m.SignedBytes(), m.Sig[:])
}

// Verify reports whether every signature added is valid. An empty batch
// is valid.
func (b *Batch) Verify() bool {
	if b.refused {
		return false
	}
	if len(b.items) == 0 {
		return true
	}
	return b.v.Verify()
}

// VerifyEach reports, for each signature in the order added, whether it
// is valid: what a failed batch falls back to.
func (b *Batch) VerifyEach(ok []bool) []bool {
	ok = ok[:0]
	for _, it := range b.items {
		ok = append(ok, verify(it.pub, it.msg, it.sig))
	}
	return ok
}

// VerifyChannelMessages verifies msgs' signatures together: as one batch
// from two on (about half the cost of verifying each), falling back to
// one by one when the batch fails. It returns the first bad message's
// error, as Verify gives it, or nil when all are valid.
func VerifyChannelMessages(msgs []ChannelMessage) error {
	if len(msgs) < 2 { // a batch of one costs more than Verify
		for i := range msgs {
			if err := msgs[i].Verify(); err != nil {
				return err
			}
		}
		return nil
	}
	b := NewBatch(len(msgs))
	for i := range msgs {
		b.AddChannelMessage(&msgs[i])
	}
	if b.Verify() {
		return nil
	}
	for i, ok := range b.VerifyEach(nil) {
		if !ok {
			return msgs[i].Verify()
		}
	}
	return nil // not reached: a batch fails only with a bad signature in it
}
