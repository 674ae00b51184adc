package main

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strings"
	"sync"

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

	// Guarded by mu: the terminal's width, and the last line printed when
	// it is the echo of a DM the user sent (lastDM its ID), so that the
	// DM's status can be put on that line instead of one of its own.
	mu       sync.Mutex
	width    int
	lastDM   string
	lastText string
	lastRows int
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
	colorGood  = "\x1b[32m"
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
		u.mu.Lock()
		u.width = w
		u.mu.Unlock()
	}
}

func (u *termUI) print(l command.Line) {
	text := l.Text
	if u.color {
		switch l.Kind {
		case command.LineMessage:
			user := colorOf(l.Author) + l.User + colorReset
			text = user + "@" + l.Channel + " - " + l.Body
			if l.Action {
				text = "* " + user + "@" + l.Channel + " " + l.Body
			}
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
	u.mu.Lock()
	defer u.mu.Unlock()
	if l.Kind == command.LineDMStatus && l.DM != "" && l.DM == u.lastDM {
		// The DM's echo is the last line on the screen: mark it there.
		// The cursor is at the start of the line below it (the prompt's,
		// which Write clears): go up the echo's rows, clear to the end of
		// the screen, and print it again with its status.
		mark := colorGood + "  ✓ delivered" + colorReset
		if l.Kind == command.LineDMStatus && !strings.HasSuffix(l.Text, ": delivered") {
			_, reason, _ := strings.Cut(l.Text, ": ")
			mark = colorError + "  ✗ " + reason + colorReset
		}
		if !u.color {
			mark = stripColor(mark)
		}
		u.lastDM = ""
		u.t.Write([]byte(fmt.Sprintf("\x1b[%dA\r\x1b[J", u.lastRows) + u.lastText + mark + "\n"))
		return
	}
	u.lastDM = ""
	if l.Kind == command.LineMessage && l.Own && l.DM != "" {
		if rows, ok := rowsOf(l.Text, u.width); ok {
			u.lastDM, u.lastText, u.lastRows = l.DM, text, rows
		}
	}
	u.t.Write([]byte(text + "\n"))
}

// rowsOf is how many terminal rows of width columns text takes, when that
// is sure: every character one column wide (printable ASCII).
func rowsOf(text string, width int) (int, bool) {
	if width <= 0 {
		width = 80 // x/term's default, see resize
	}
	for i := 0; i < len(text); i++ {
		if text[i] < 0x20 || text[i] > 0x7e {
			return 0, false
		}
	}
	// A mark adds up to a line's worth of columns; a line that would
	// wrap with it is not rewritten.
	return max(1, (len(text)+width-1)/width), true
}

// stripColor removes the ANSI colour sequences of text.
func stripColor(text string) string {
	for _, c := range []string{colorReset, colorError, colorLate, colorGood} {
		text = strings.ReplaceAll(text, c, "")
	}
	return text
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
