package p2p

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A message logged once per event is cut to a few lines per interval and a
// summary; other messages still get through.
func TestRateLimitedHandlerBoundsRepeatedLines(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(newRateLimitedHandler(slog.NewTextHandler(&out, nil)))
	start := time.Now()
	logAt := func(at time.Time, msg string) {
		r := slog.NewRecord(at, slog.LevelWarn, msg, 0)
		log.Handler().Handle(context.Background(), r)
	}
	for i := range 10_000 {
		logAt(start.Add(time.Duration(i)*time.Millisecond), "error bumping delivery tag")
	}
	logAt(start.Add(time.Second), "another condition")
	if got := strings.Count(out.String(), "error bumping delivery tag"); got != logBurstPerMessage {
		t.Fatalf("%d lines of a message logged 10,000 times in an interval, want %d", got, logBurstPerMessage)
	}
	if !strings.Contains(out.String(), "another condition") {
		t.Fatal("a different message was suppressed")
	}
	logAt(start.Add(logRateInterval+time.Second), "later")
	if !strings.Contains(out.String(), "suppressed=9995") {
		t.Fatalf("no summary of the suppressed lines:\n%s", out.String())
	}
	// Distinct texts are bounded too.
	out.Reset()
	at := start.Add(3 * logRateInterval)
	for i := range 10_000 {
		logAt(at, "message "+strings.Repeat("x", i%2000))
	}
	if lines := strings.Count(out.String(), "\n"); lines > (maxLogMessages+1)*logBurstPerMessage+1 {
		t.Fatalf("%d lines for 2,000 distinct messages, want at most %d", lines, (maxLogMessages+1)*logBurstPerMessage+1)
	}
}
