package gateway

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// haveFilter is a Bloom filter of the message IDs a repair request's node
// has delivered (PROTOCOL.md §4.4): every node drops the answers it
// matches, so that what members send back for a node that lacks a few
// messages among many is those few, not the newest they hold. A false
// positive withholds a message the requester lacks, and the requester's
// next page starts below the oldest message answered, so a message
// withheld inside a page stays missing until a later repair: the filter is
// sized for about three in ten million at its entries (16 bits and 8
// hashes had 6 in 10,000: a 60-s split of 20 simulated nodes lost a
// message across the heal in about one run of ten). Its hashes are keyed
// by the request's random ID, so the next repair errs on other messages,
// and nobody can choose message IDs that collide in advance.
type haveFilter struct {
	bits []byte
	k    int
	key  messageID // the request's ID
}

const (
	// haveFilterBitsPerEntry and haveFilterHashes give a false-positive
	// rate of about 3e-7 at recentIDs entries, 3e-11 at half as many.
	haveFilterBitsPerEntry = 32
	haveFilterHashes       = 16
	minHaveFilterBytes     = 64
	// maxHaveFilterBytes bounds a filter on the wire (recentIDs entries
	// at 32 bits each).
	maxHaveFilterBytes = recentIDs * haveFilterBitsPerEntry / 8
	maxHaveFilterK     = 16
)

// newHaveFilter returns an empty filter sized for n IDs, keyed by the
// request's ID.
func newHaveFilter(n int, key messageID) *haveFilter {
	size := minHaveFilterBytes
	for size*8 < n*haveFilterBitsPerEntry && size < maxHaveFilterBytes {
		size *= 2
	}
	return &haveFilter{bits: make([]byte, size), k: haveFilterHashes, key: key}
}

// positions calls f with each of id's k bit positions.
func (f *haveFilter) positions(id messageID, fn func(bit uint64)) {
	var in [32]byte
	copy(in[:16], f.key[:])
	copy(in[16:], id[:])
	sum := sha256.Sum256(in[:])
	h1, h2 := binary.BigEndian.Uint64(sum[0:8]), binary.BigEndian.Uint64(sum[8:16])|1
	mask := uint64(len(f.bits)*8 - 1)
	for i := range uint64(f.k) {
		fn((h1 + i*h2) & mask)
	}
}

func (f *haveFilter) add(id messageID) {
	f.positions(id, func(b uint64) { f.bits[b/8] |= 1 << (b % 8) })
}

// estimatedCount estimates how many IDs were added to the filter from the
// share of its bits set (Swamidass and Baldi): n ≈ −(m/k)·ln(1 − X/m).
func (f *haveFilter) estimatedCount() float64 {
	set := 0
	for _, b := range f.bits {
		set += bits.OnesCount8(b)
	}
	m := float64(len(f.bits) * 8)
	if set >= len(f.bits)*8 {
		return math.Inf(1)
	}
	return -m / float64(f.k) * math.Log(1-float64(set)/m)
}

func (f *haveFilter) has(id messageID) bool {
	all := true
	f.positions(id, func(b uint64) { all = all && f.bits[b/8]&(1<<(b%8)) != 0 })
	return all
}

// appendWire appends the filter's wire form: length (2) || k (1) ||
// bits; a nil filter is length 0, k 0.
func (f *haveFilter) appendWire(b []byte) []byte {
	if f == nil {
		return append(b, 0, 0, 0)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(f.bits)))
	b = append(b, byte(f.k))
	return append(b, f.bits...)
}

// parseHaveFilter reads a filter's wire form from the whole of b, keyed
// by the request's ID; length 0 is no filter (nil).
func parseHaveFilter(b []byte, key messageID) (*haveFilter, error) {
	if len(b) < 3 {
		return nil, fmt.Errorf("%w request: filter header of %d bytes", errHistoryWire, len(b))
	}
	size, k := int(binary.BigEndian.Uint16(b[0:2])), int(b[2])
	if size == 0 {
		if k != 0 || len(b) != 3 {
			return nil, fmt.Errorf("%w request: empty filter with k %d and %d bytes", errHistoryWire, k, len(b)-3)
		}
		return nil, nil
	}
	if size < minHaveFilterBytes || size > maxHaveFilterBytes || bits.OnesCount(uint(size)) != 1 ||
		k < 1 || k > maxHaveFilterK || len(b) != 3+size {
		return nil, fmt.Errorf("%w request: filter of %d bytes (k %d) in %d", errHistoryWire, size, k, len(b)-3)
	}
	return &haveFilter{bits: b[3:], k: k, key: key}, nil
}
