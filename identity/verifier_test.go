package identity

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// verifyRaw submits one raw signature to v, as VerifyChannelMessage does.
func verifyRaw(v *Verifier, pub PublicKey, msg, sig []byte) bool {
	r := &verifyRequest{pub: pub, msg: msg, sig: sig, done: make(chan bool, 1)}
	return v.verify(r)
}

// The Verifier gives every ZIP-215 edge vector the verdict verify gives,
// whether it is verified alone or in a batch among valid signatures (whose
// failure falls back to one by one).
func TestVerifierZIP215Verdicts(t *testing.T) {
	vs := zip215Vectors(t)
	good := vs[len(vs)-2] // "valid"
	v := NewVerifier(1, 8, 1024)
	defer v.Close()
	for _, vec := range vs {
		if got := verifyRaw(v, vec.pub, vec.msg, vec.sig); got != vec.valid {
			t.Errorf("%s: alone %v, want %v", vec.name, got, vec.valid)
		}
		// Seven valid signatures and the vector, all at once: batched.
		var wg sync.WaitGroup
		var goodFailed sync.Once
		for range 7 {
			wg.Go(func() {
				if !verifyRaw(v, good.pub, good.msg, good.sig) {
					goodFailed.Do(func() { t.Errorf("%s: a valid signature beside it failed", vec.name) })
				}
			})
		}
		if got := verifyRaw(v, vec.pub, vec.msg, vec.sig); got != vec.valid {
			t.Errorf("%s: among valid ones %v, want %v", vec.name, got, vec.valid)
		}
		wg.Wait()
	}
	if s := v.Stats(); s.Batches == 0 {
		t.Errorf("no batch formed: %+v", s)
	}
}

// Many goroutines verifying channel messages at once, some forged: each
// gets Verify's verdict, and most signatures are verified in batches.
func TestVerifierChannelMessages(t *testing.T) {
	k, err := NewKeyFromSeed(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	msgs := make([]ChannelMessage, n)
	for i := range msgs {
		m, err := NewChannelMessage(k, "dev", "alice", "hello", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if i%97 == 0 {
			m.Sig[5] ^= 1 // forged
		}
		msgs[i] = m
	}
	v := NewVerifier(runtime.GOMAXPROCS(0), DefaultVerifyBatch, DefaultVerifyQueued)
	defer v.Close()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 256 {
		wg.Go(func() {
			for i := range work {
				got, want := v.VerifyChannelMessage(&msgs[i]), msgs[i].Verify()
				if (got == nil) != (want == nil) {
					t.Errorf("message %d: Verifier %v, Verify %v", i, got, want)
				}
			}
		})
	}
	for i := range msgs {
		work <- i
	}
	close(work)
	wg.Wait()
	s := v.Stats()
	if s.Signatures != n {
		t.Errorf("verified %d signatures, want %d", s.Signatures, n)
	}
	if s.FailedBatch == 0 {
		t.Errorf("no batch held a forged signature: %+v", s)
	}
	t.Logf("%+v", s)
}

// A closed Verifier, or a full queue, verifies in the caller.
func TestVerifierInlineWhenClosed(t *testing.T) {
	vs := zip215Vectors(t)
	good := vs[len(vs)-2]
	v := NewVerifier(1, 8, 8)
	v.Close()
	if !verifyRaw(v, good.pub, good.msg, good.sig) {
		t.Fatal("valid signature refused after Close")
	}
	if s := v.Stats(); s.Inline != 1 {
		t.Fatalf("stats %+v, want one inline", s)
	}
}
