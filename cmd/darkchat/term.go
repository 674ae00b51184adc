package main

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"

	"golang.org/x/term"

	"darkchat/client/command"
	"darkchat/identity"
)

// termUI is the interactive side: x/term's line editor with history. Its
// Write redraws the prompt and the line being typed below what it prints,
// so incoming messages never corrupt the input.
type termUI struct {
	t       *term.Terminal
	out     io.Writer
	fd      int
	restore *term.State
	color   bool
}

// userColors are the ANSI foreground colours for usernames: normal and
// bright red, green, yellow, blue, magenta and cyan (not black or white,
// which vanish on one background or the other).
var userColors = []string{
	"\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[34m", "\x1b[35m", "\x1b[36m",
	"\x1b[91m", "\x1b[92m", "\x1b[93m", "\x1b[94m", "\x1b[95m", "\x1b[96m",
}

const (
	colorReset = "\x1b[0m"
	colorError = "\x1b[1;31m"
	colorLate  = "\x1b[2m" // dim: the mark of a late message
)

func newTermUI(in *os.File, out io.Writer) (*termUI, error) {
	fd := int(in.Fd())
	state, err := term.MakeRaw(fd)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	u := &termUI{
		t: term.NewTerminal(struct {
			io.Reader
			io.Writer
		}{in, out}, "> "),
		out:     out,
		fd:      fd,
		restore: state,
		color:   os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb",
	}
	u.resize()
	watchResize(u.resize)
	return u, nil
}

func (u *termUI) resize() {
	// A pseudo-terminal nobody sized reports 0x0; x/term's 80 columns
	// are then a better guess than wrapping at every character.
	if w, h, err := term.GetSize(u.fd); err == nil && w > 0 && h > 0 {
		u.t.SetSize(w, h)
	}
}

func (u *termUI) print(l command.Line) {
	text := l.Text
	if u.color {
		switch l.Kind {
		case command.LineMessage:
			text = colorOf(l.Author) + l.User + colorReset + "@" + l.Channel + " - " + l.Body
			if l.Mark != "" {
				text = colorLate + l.Mark + colorReset + text
			}
			if l.Stamp != "" {
				text = colorLate + l.Stamp + colorReset + text
			}
		case command.LineError:
			text = colorError + text + colorReset
		}
	}
	u.t.Write([]byte(text + "\n"))
}

func (u *termUI) readLine() (string, error) {
	line, err := u.t.ReadLine()
	if errors.Is(err, term.ErrPasteIndicator) {
		err = nil // a pasted line is a line like any other
	}
	return line, err
}

func (u *termUI) close() {
	term.Restore(u.fd, u.restore)
	io.WriteString(u.out, "\n") // leave the last prompt's line to the shell
}

// colorOf picks a username colour from the author's key, so one author
// keeps one colour whatever username they choose, and two authors using
// the same name are likely to differ.
func colorOf(k identity.PublicKey) string {
	h := fnv.New32a()
	h.Write(k[:])
	return userColors[h.Sum32()%uint32(len(userColors))]
}
