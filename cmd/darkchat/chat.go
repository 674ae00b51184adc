package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/term"

	"darkchat/client"
	"darkchat/client/command"
)

// drainQuiet bounds the wait, at the end of a scripted run, for the node to
// answer every message and DM sent: the run fails once this passes with
// nothing answered. The node answers at once unless something is wrong,
// except a dm to an inbox it cannot reach, which it answers (no_route)
// after its DM timeout (10 s in darkchatd).
const drainQuiet = 20 * time.Second

// maxInputLine bounds one line of scripted input; the longest useful one
// (a 4096-byte message and its channel) is far shorter.
const maxInputLine = 64 << 10

var errLineTooLong = fmt.Errorf("input line longer than %d bytes, ignored", maxInputLine)

// ui is the terminal or the pipes the chat runs on.
type ui interface {
	print(command.Line)
	readLine() (string, error) // io.EOF at the end of input
	close()
}

// chat runs the chat command. Scripted (stdin not a terminal) it exits at
// the end of input or on exit, once every sent message is answered, every
// DM's status is printed and --wait has passed; it fails if the login
// failed or the connection broke.
func chat(o *chatOptions, stdin *os.File, stdout, stderr io.Writer) error {
	key, saveKey, err := chatKey(o.key)
	if err != nil {
		return err
	}
	interactive := term.IsTerminal(int(stdin.Fd()))
	var u ui
	if interactive {
		tu, err := newTermUI(stdin, stdout)
		if err != nil {
			return err
		}
		u = tu
	} else {
		u = newScriptUI(stdin, stdout)
	}
	defer u.close()

	nodes := []command.Node{nodeAddr{tcp: o.tcpAddr, ws: o.wsURL}.node()}
	for _, a := range o.fallbacks {
		nodes = append(nodes, a.node())
	}
	dialer, err := command.NewNodes(nodes)
	if err != nil {
		return err
	}
	c, err := command.New(command.Config{
		Key:        key,
		Dial:       dialer.Dial,
		Output:     u.print,
		ManualAuth: o.manual,
		Node:       o.node,
		Name:       o.name,
		Unlisted:   o.unlisted,
		// A person reading sees late messages marked, and the history of
		// each channel joined, each line's time and their own messages;
		// scripts get exactly their lines (with --timestamps, each
		// message line's time before it).
		Interactive: interactive,
		Timestamps:  interactive || o.timestamps,
		Echo:        interactive,
		Ignore:      ignoreStore(o.key),
	})
	if err != nil {
		return err
	}
	defer c.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.Start(ctx); err != nil {
		return exitError(1) // printed by the client
	}
	if saveKey != nil {
		switch created, err := saveKey(); {
		case err != nil:
			u.print(command.Line{Kind: command.LineError, Text: "ERROR: " + err.Error()})
		case interactive:
			// Above the prompt: on the terminal in raw mode a line
			// written to stderr would not start at the left margin.
			u.print(command.Line{Kind: command.LineNotice, Text: "Created a new identity in " + created})
		default:
			fmt.Fprintf(stderr, "darkchat: created a new identity in %s\n", created)
		}
	}

	lines := make(chan string)
	inputErr := make(chan error, 1)
	// The reader may stay blocked on stdin when chat returns; the process
	// exits then.
	go func() {
		for {
			line, err := u.readLine()
			if errors.Is(err, errLineTooLong) {
				u.print(command.Line{Kind: command.LineError, Text: "ERROR: " + err.Error()})
				continue
			}
			if err != nil {
				inputErr <- err
				return
			}
			select {
			case lines <- line:
			case <-ctx.Done():
				return
			}
		}
	}()

	// The client stays: when the node goes away (a restart, a lost
	// link) it connects again by itself, to the next node given when
	// there are several, logs in and joins its channels again. A script
	// goes on with its input and its --wait, and still exits 1 at the
	// end: the connection broke, and what was in flight then may be lost.
	broken := c.Broken()
	kept := make(chan struct{})
	defer func() { stop(); <-kept }()
	go func() {
		defer close(kept)
		c.KeepConnected(ctx, command.KeepConfig{
			OnState: func(state string, attempt int, retryAt time.Time) {
				if state == command.StateReconnecting {
					u.print(command.Line{Kind: command.LineNotice, Text: fmt.Sprintf("Reconnecting in %.1f s (attempt %d)…", time.Until(retryAt).Seconds(), attempt)})
				}
			},
			NextNode: dialer.Next,
		})
	}()
input:
	for {
		select {
		case line := <-lines:
			if c.Execute(ctx, line) {
				break input
			}
		case err := <-inputErr:
			if !errors.Is(err, io.EOF) {
				u.print(command.Line{Kind: command.LineError, Text: "ERROR: reading input: " + err.Error()})
			}
			break input
		case <-ctx.Done():
			return exitError(130)
		}
	}

	if err := c.DrainQuiet(ctx, drainQuiet); err != nil {
		u.print(command.Line{Kind: command.LineError, Text: "ERROR: not every message was accepted: " + client.Sanitize(err.Error())})
		return exitError(1)
	}
	// Every DM's status (delivered or not) is printed before the end; a
	// DM not delivered does not fail the run. SettleDMs bounds the wait.
	if err := c.SettleDMs(ctx); err != nil && ctx.Err() == nil {
		u.print(command.Line{Kind: command.LineError, Text: "ERROR: " + client.Sanitize(err.Error())})
	}
	if o.wait > 0 {
		select {
		case <-time.After(o.wait):
		case <-ctx.Done():
			return exitError(130)
		}
	}
	select {
	case <-broken:
		return exitError(1)
	default:
	}
	return nil
}

// scriptUI is the pipe side: no prompt, no colour, every line written (and
// so flushed) on its own.
type scriptUI struct {
	in  *bufio.Reader
	out io.Writer
}

func newScriptUI(in io.Reader, out io.Writer) *scriptUI {
	return &scriptUI{in: bufio.NewReaderSize(in, maxInputLine), out: out}
}

func (u *scriptUI) print(l command.Line) {
	io.WriteString(u.out, l.Text+"\n")
}

func (u *scriptUI) readLine() (string, error) {
	line, err := u.in.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		for errors.Is(err, bufio.ErrBufferFull) { // skip to the line's end
			_, err = u.in.ReadSlice('\n')
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		return "", errLineTooLong
	}
	if errors.Is(err, io.EOF) && len(line) > 0 {
		err = nil // a last line without "\n"; EOF comes next time
	}
	if err != nil {
		return "", err
	}
	return string(trimEOL(line)), nil
}

func (u *scriptUI) close() {}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

// node is a's entry for command.Nodes.
func (a nodeAddr) node() command.Node {
	return command.Node{Name: a.String(), Dial: func(ctx context.Context) (client.Transport, error) {
		if a.ws != "" {
			return client.DialWS(ctx, a.ws)
		}
		return client.DialTCP(ctx, a.tcp)
	}}
}
