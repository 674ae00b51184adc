package tstest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatalf records the failure instead of
// ending the test.
type recorder struct {
	testing.TB
	failure string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.failure = fmt.Sprintf(format, args...) }

func TestWaitForReportsTheLastReason(t *testing.T) {
	r := &recorder{TB: t}
	calls := 0
	WaitFor(r, 0, "the answer", func() (bool, string) {
		calls++
		return false, fmt.Sprintf("got %d", calls)
	})
	if calls != 1 || !strings.Contains(r.failure, "waiting for the answer") || !strings.HasSuffix(r.failure, "last: got 1") {
		t.Fatalf("after %d calls: failure %q", calls, r.failure)
	}
}

func TestWaitForReturnsOnceOK(t *testing.T) {
	r := &recorder{TB: t}
	calls := 0
	WaitFor(r, 5*time.Second, "the third call", func() (bool, string) {
		calls++
		return calls == 3, "not yet"
	})
	if r.failure != "" || calls != 3 {
		t.Fatalf("after %d calls: failure %q", calls, r.failure)
	}
}

func TestPollInterval(t *testing.T) {
	for _, tt := range []struct{ timeout, want time.Duration }{
		{time.Second, 50 * time.Millisecond},
		{30 * time.Second, 300 * time.Millisecond},
		{10 * time.Minute, time.Second},
	} {
		if got := PollInterval(tt.timeout); got != tt.want {
			t.Errorf("PollInterval(%v) = %v, want %v", tt.timeout, got, tt.want)
		}
	}
}
