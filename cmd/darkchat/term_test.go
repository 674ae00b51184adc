package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"golang.org/x/term"

	"darkchat/client/command"
)

func newTestTermUI(out *bytes.Buffer) *termUI {
	return &termUI{t: term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{strings.NewReader(""), out}, "> "), out: out, width: 80}
}

// A DM's status goes on its echo when the echo is the last line on the
// screen; otherwise, or for a line too wide to be sure of, it is a line
// of its own.
func TestTermDMStatusOnEcho(t *testing.T) {
	var out bytes.Buffer
	u := newTestTermUI(&out)
	echo := command.Line{Kind: command.LineMessage, Own: true, DM: "d1", Text: "[15:04] alice@private(k) - hi", User: "alice", Channel: "private(k)", Body: "hi"}
	u.print(echo)
	out.Reset()
	u.print(command.Line{Kind: command.LineDMStatus, DM: "d1", Text: "DM to k: delivered"})
	if got, want := out.String(), "\x1b[1A\r\x1b[J[15:04] alice@private(k) - hi  ✓ delivered\r\n"; got != want {
		t.Fatalf("status on the echo: %q, want %q", got, want)
	}

	u.print(echo)
	u.print(command.Line{Kind: command.LineNotice, Text: "something else"})
	out.Reset()
	u.print(command.Line{Kind: command.LineDMStatus, DM: "d1", Text: "DM to k: not delivered (recipient offline)"})
	if got, want := out.String(), "DM to k: not delivered (recipient offline)\r\n"; got != want {
		t.Fatalf("status after another line: %q, want %q", got, want)
	}

	u.print(echo)
	out.Reset()
	u.print(command.Line{Kind: command.LineDMStatus, DM: "d1", Text: "DM to k: not delivered (recipient offline)"})
	if got, want := out.String(), "\x1b[1A\r\x1b[J[15:04] alice@private(k) - hi  ✗ not delivered (recipient offline)\r\n"; got != want {
		t.Fatalf("not delivered on the echo: %q, want %q", got, want)
	}

	wide := echo
	wide.Text = "[15:04] alice@private(k) - héllo"
	u.print(wide)
	out.Reset()
	u.print(command.Line{Kind: command.LineDMStatus, DM: "d1", Text: "DM to k: delivered"})
	if got := out.String(); got != "DM to k: delivered\r\n" {
		t.Fatalf("status after a line of unsure width: %q", got)
	}
}
