package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/term"
)

// consoleTerm is the console on a terminal: x/term's line editor with
// history. Whatever else is printed while the operator types (logs, a
// change of addresses) goes through its Write, which prints it above the
// prompt and draws the prompt and the line being typed again below, so
// nothing overwrites them. The terminal is in raw mode while it runs:
// Ctrl-C and Ctrl-D end the console (and the node) as the end of input
// does; SIGTERM works as always.
type consoleTerm struct {
	t       *term.Terminal
	fd      int
	restore *term.State
	once    sync.Once
}

// newConsoleTerm puts the terminal in raw mode and returns the console's
// line editor on it, or nil when in and out are not both terminals.
func newConsoleTerm(in *os.File, out io.Writer) (*consoleTerm, error) {
	outFile, ok := out.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) || !term.IsTerminal(int(outFile.Fd())) {
		return nil, nil
	}
	fd := int(in.Fd())
	state, err := term.MakeRaw(fd)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{in, out}, "> ")
	if w, h, err := term.GetSize(int(outFile.Fd())); err == nil && w > 0 && h > 0 {
		t.SetSize(w, h)
	}
	return &consoleTerm{t: t, fd: fd, restore: state}, nil
}

// Write prints p above the prompt (x/term turns "\n" into "\r\n").
func (c *consoleTerm) Write(p []byte) (int, error) { return c.t.Write(p) }

// readLine reads one command; io.EOF at Ctrl-D or Ctrl-C.
func (c *consoleTerm) readLine() (string, error) {
	line, err := c.t.ReadLine()
	if errors.Is(err, term.ErrPasteIndicator) {
		err = nil // a pasted line is a line like any other
	}
	if len(line) > maxCommandLen {
		return "", errLineTooLong
	}
	return line, err
}

// close gives the terminal back as it was. It is idempotent.
func (c *consoleTerm) close() {
	c.once.Do(func() { term.Restore(c.fd, c.restore) })
}

// swapWriter is a writer whose destination can change: the log writes to
// stderr, and through the console's terminal while it runs on one.
type swapWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *swapWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *swapWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}
