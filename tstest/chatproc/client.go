package chatproc

import (
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// loginTimeout bounds a client's start: dial, challenge, login.
const loginTimeout = 30 * time.Second

// Client is a running `darkchat` client fed through a stdin pipe (scripted
// mode: no prompt, one flushed line per output line).
type Client struct {
	*Proc
	User string // the username of its last Join
}

// StartClient starts cmd (a darkchat command line, possibly wrapped in
// `ip netns exec`) and waits for its "Connected to Network" line.
func StartClient(name string, cmd *exec.Cmd) (*Client, error) {
	p, err := Start(name, cmd, true)
	if err != nil {
		return nil, err
	}
	c := &Client{Proc: p}
	if _, _, err := p.WaitLine(0, loginTimeout, func(l string) bool {
		return strings.HasPrefix(l, "Connected to Network")
	}); err != nil {
		p.Kill()
		return nil, fmt.Errorf("%w; output %q; stderr %q", err, p.Lines(), p.Stderr())
	}
	return c, nil
}

// Join joins channel as user and waits for the confirmation.
func (c *Client) Join(channel, user string) error {
	from := len(c.Lines())
	if err := c.Send("join " + channel + " " + user); err != nil {
		return err
	}
	want := "Joined " + channel + " as " + user
	if _, _, err := c.WaitLine(from, 15*time.Second, func(l string) bool {
		return l == want || strings.HasPrefix(l, "ERROR:")
	}); err != nil {
		return err
	}
	if l := c.Lines(); !contains(l[from:], want) {
		return fmt.Errorf("%s: join %s failed: %q", c.Name, channel, l[from:])
	}
	c.User = user
	return nil
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

// Say sends body to channel.
func (c *Client) Say(channel, body string) error {
	return c.Send(channel + " " + body)
}

// Errors returns the client's ERROR: lines from index from on.
func (c *Client) Errors(from int) []string {
	var out []string
	for _, l := range c.Lines()[from:] {
		if strings.HasPrefix(l, "ERROR:") {
			out = append(out, l)
		}
	}
	return out
}

// messageLine is how a client prints a channel message from another user.
func messageLine(user, channel, body string) string {
	return user + "@" + channel + " - " + body
}

// Deliver makes from's messages reach to through channel: both must have
// joined it. While the mesh between their nodes is still forming, messages
// can be lost (GossipSub stores nothing), so it sends a numbered probe
// every probeEvery until one arrives or timeout passes; then one more
// message must arrive within settle. It returns how long the first arrival
// took.
func Deliver(from, to *Client, channel, tag string, timeout time.Duration) (time.Duration, error) {
	const probeEvery = 3 * time.Second
	const settle = 20 * time.Second
	start := time.Now()
	prefix := messageLine(from.User, channel, tag+" ")
	mark := len(to.Lines())
	for i := 0; ; i++ {
		if time.Since(start) > timeout {
			return 0, fmt.Errorf("no message from %s (%s) reached %s in %s within %v; %s printed %q",
				from.Name, from.User, to.Name, channel, timeout, to.Name, tail(to.Lines(), 10))
		}
		if err := from.Say(channel, fmt.Sprintf("%s probe %d", tag, i)); err != nil {
			return 0, err
		}
		_, _, err := to.WaitLine(mark, probeEvery, func(l string) bool { return strings.HasPrefix(l, prefix) })
		if err == nil {
			break
		}
		select {
		case <-to.Done():
			return 0, fmt.Errorf("%s exited: %v; stderr %q", to.Name, to.ExitErr(), to.Stderr())
		case <-from.Done():
			return 0, fmt.Errorf("%s exited: %v; stderr %q", from.Name, from.ExitErr(), from.Stderr())
		default:
		}
	}
	took := time.Since(start)
	body := tag + " settled"
	mark = len(to.Lines())
	if err := from.Say(channel, body); err != nil {
		return took, err
	}
	want := messageLine(from.User, channel, body)
	if _, _, err := to.WaitLine(mark, settle, func(l string) bool { return l == want }); err != nil {
		return took, fmt.Errorf("after the first message arrived, the next one did not: %w", err)
	}
	return took, nil
}

// Converse runs Deliver both ways between a and b.
func Converse(a, b *Client, channel, tag string, timeout time.Duration) (time.Duration, error) {
	ab, err := Deliver(a, b, channel, tag+"-ab", timeout)
	if err != nil {
		return 0, err
	}
	ba, err := Deliver(b, a, channel, tag+"-ba", timeout)
	if err != nil {
		return 0, err
	}
	return max(ab, ba), nil
}

// Flood sends n messages of about size bytes each from from to channel, as
// fast as from's node accepts them, and waits until to has printed them
// all. It returns the bytes of message bodies delivered.
func Flood(from, to *Client, channel, tag string, n, size int, timeout time.Duration) (int, error) {
	mark := len(to.Lines())
	errMark := len(from.Lines())
	pad := strings.Repeat("x", max(0, size-len(tag)-16))
	total := 0
	want := make(map[string]bool, n)
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("%s %05d %s", tag, i, pad)
		want[messageLine(from.User, channel, body)] = true
		total += len(body)
		if err := from.Say(channel, body); err != nil {
			return 0, err
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		got := 0
		for _, l := range to.Lines()[mark:] {
			if want[l] {
				got++
			}
		}
		if got == n {
			return total, nil
		}
		if errs := from.Errors(errMark); len(errs) > 0 {
			return 0, fmt.Errorf("%s was refused: %q", from.Name, errs)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%d of %d flood messages reached %s within %v", got, n, to.Name, timeout)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

func tail(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}
