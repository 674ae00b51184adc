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

// GossipSub's warning that it has no DHT peer to provide a topic to is
// routine on a lone node: at Info it is not logged at all (nor counted as
// suppressed), at Debug it is, as a debug line; other warnings pass.
func TestRoutineGossipSubWarningsAreDebug(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var out bytes.Buffer
		log := slog.New(routineHandler{newRateLimitedHandler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: level}))})
		for range 100 {
			log.Warn("bootstrap: error providing rendezvous for topic", "topic", "darkchat/v2/history", "err", "failed to find any peer in table")
		}
		log.Warn("something an operator must see")
		got := out.String()
		if !strings.Contains(got, "level=WARN msg=\"something an operator must see\"") {
			t.Errorf("at %v a real warning was lost:\n%s", level, got)
		}
		routine := strings.Count(got, "providing rendezvous")
		switch {
		case level == slog.LevelInfo && (routine != 0 || strings.Contains(got, "suppressed")):
			t.Errorf("at Info the routine warning was logged:\n%s", got)
		case level == slog.LevelDebug && (routine == 0 || strings.Contains(got, "level=WARN msg=\"bootstrap")):
			t.Errorf("at Debug the routine warning is missing or still a warning:\n%s", got)
		}
	}
}
