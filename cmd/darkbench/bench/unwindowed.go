package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"darkchat/proto"
)

// UnwindowedReport accounts for every message of an Unwindowed run.
type UnwindowedReport struct {
	Sent   int            // messages written by the senders
	OK     int            // answered ok
	Errors map[string]int // answered with an error, by code
	// Per receiver: messages answered ok that it got, got twice, never
	// got; and messages it got that their sender had been refused.
	Received, Duplicates, Missing, Unexpected []int
	Elapsed                                   time.Duration // from the first write to the last ok
}

// Rate is the senders' ok rate, messages a second.
func (r UnwindowedReport) Rate() float64 { return float64(r.OK) / r.Elapsed.Seconds() }

// Unwindowed sends to channel through the TCP gateway at sendAddr, from
// senders sessions, for d, as fast as the gateway takes the messages: each
// sender writes without waiting for anything and reads its answers on the
// side, as a real sender does. receivers sessions on the gateway at
// recvAddr read the channel. When the senders are done and every answer
// is in, the receivers read until they have every message answered ok,
// or until nothing has come for quiet. It reports what became of each
// message; a message answered ok must reach every receiver once.
func Unwindowed(ctx context.Context, sendAddr, recvAddr, channel string, senders, receivers int, d, quiet time.Duration) (UnwindowedReport, error) {
	r := UnwindowedReport{Errors: map[string]int{}}
	send, err := loggedInClients(ctx, sendAddr, senders, "s", channel)
	if err != nil {
		return r, fmt.Errorf("senders at %s: %w", sendAddr, err)
	}
	defer closeAll(send)
	recv, err := loggedInClients(ctx, recvAddr, receivers, "r", channel)
	if err != nil {
		return r, fmt.Errorf("receivers at %s: %w", recvAddr, err)
	}
	defer closeAll(recv)
	// A session of its own probes the route, at the pace of the nodes'
	// default rate limit, so that the senders start with full budgets.
	probe, err := loggedInClients(ctx, sendAddr, 1, "s", channel) // joined as s0, as the probe says
	if err != nil {
		return r, fmt.Errorf("prober at %s: %w", sendAddr, err)
	}
	defer closeAll(probe)
	if err := probeRouteEvery(ctx, channel, probe[0], recv, 250*time.Millisecond); err != nil {
		return r, err
	}

	type answer struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Code string `json:"code"`
	}
	var mu sync.Mutex
	oked := map[string]bool{}    // message ID → answered ok
	written := map[string]bool{} // message IDs the senders wrote
	got := make([]map[string]int, receivers)
	// Once the senders are done (final), have counts each receiver's
	// distinct messages answered ok, and arrived wakes the wait for them.
	var final bool
	have := make([]int, receivers)
	arrived := make(chan struct{}, 1)
	var recvWG sync.WaitGroup
	for i, c := range recv {
		got[i] = map[string]int{}
		recvWG.Add(1)
		go func() {
			defer recvWG.Done()
			for {
				f, err := c.next()
				if err != nil {
					return // closed by the end of the run
				}
				var a answer
				if json.Unmarshal(f, &a) != nil || a.Type != "message" {
					continue
				}
				mu.Lock()
				got[i][a.ID]++
				if final && got[i][a.ID] == 1 && oked[a.ID] {
					have[i]++
				}
				mu.Unlock()
				select {
				case arrived <- struct{}{}:
				default:
				}
			}
		}()
	}

	// Each sender: a writer that never waits, and a reader of its
	// answers; the sender is finished when the writer is done and every
	// message it wrote is answered.
	start := time.Now()
	type senderState struct {
		written, answered int
		writing           bool
		finished          chan struct{}
		once              sync.Once
		err               error
	}
	states := make([]*senderState, senders)
	finish := func(st *senderState) { st.once.Do(func() { close(st.finished) }) }
	for i, c := range send {
		st := &senderState{writing: true, finished: make(chan struct{})}
		states[i] = st
		go func() { // the answers
			for {
				f, err := c.next()
				if err != nil {
					mu.Lock()
					st.err = fmt.Errorf("sender %d after %d answers: %w", i, st.answered, err)
					mu.Unlock()
					finish(st)
					return
				}
				var a answer
				if json.Unmarshal(f, &a) != nil || (a.Type != "ok" && a.Type != "error") {
					continue
				}
				mu.Lock()
				if a.Type == "ok" {
					oked[a.ID] = true
					r.OK++
				} else {
					r.Errors[a.Code]++
				}
				st.answered++
				done := !st.writing && st.answered >= st.written
				mu.Unlock()
				if done {
					finish(st)
					return
				}
			}
		}()
		go func() { // the messages
			var buf []byte
			username := "s" + strconv.Itoa(i)
			var werr error
			for seq := 0; time.Since(start) < d && ctx.Err() == nil; seq++ {
				m, err := signedMessage(c.key, channel, username, username+"-"+strconv.Itoa(seq))
				if err != nil {
					werr = err
					break
				}
				buf = appendSend(buf[:0], &m)
				mu.Lock()
				written[string(AppendHexID(m.ID))] = true
				st.written++
				mu.Unlock()
				if err := c.queue(buf); err != nil {
					werr = err
					break
				}
			}
			if err := c.flush(); werr == nil {
				werr = err
			}
			mu.Lock()
			st.writing = false
			if werr != nil && st.err == nil {
				st.err = fmt.Errorf("sender %d: %w", i, werr)
			}
			done := werr != nil || st.answered >= st.written
			mu.Unlock()
			if done {
				finish(st)
			}
		}()
	}
	var errs []error
	for _, st := range states {
		select {
		case <-st.finished:
		case <-ctx.Done():
			return r, ctx.Err()
		}
		mu.Lock()
		r.Sent += st.written
		errs = append(errs, st.err)
		mu.Unlock()
	}
	r.Elapsed = time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return r, err
	}
	// The receivers read until they have everything answered ok, or until
	// nothing has come for quiet.
	mu.Lock()
	final = true
	for i := range got {
		for id := range got[i] {
			if oked[id] {
				have[i]++
			}
		}
	}
	mu.Unlock()
	quietTimer := time.NewTimer(quiet)
	defer quietTimer.Stop()
	for waiting := true; waiting; {
		mu.Lock()
		done := true
		for i := range have {
			done = done && have[i] >= r.OK
		}
		mu.Unlock()
		if done {
			break
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-arrived:
			quietTimer.Reset(quiet)
		case <-quietTimer.C:
			waiting = false
		}
	}
	closeAll(recv)
	recvWG.Wait()
	for i := range got {
		var received, dups, unexpected int
		for id, n := range got[i] {
			if !written[id] {
				continue // the probe's
			}
			if !oked[id] {
				unexpected++
				continue
			}
			received++
			dups += n - 1
		}
		r.Received = append(r.Received, received)
		r.Duplicates = append(r.Duplicates, dups)
		r.Missing = append(r.Missing, r.OK-received)
		r.Unexpected = append(r.Unexpected, unexpected)
	}
	return r, nil
}

// AppendHexID is id as PROTOCOL.md writes message IDs.
func AppendHexID(id [16]byte) []byte { return proto.AppendHex(nil, id[:]) }
