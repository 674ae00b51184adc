package browsertest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"darkchat/tstest"
)

// membersJS is the page's member list: "<name> <fingerprint>" per member.
const membersJS = `Array.from(document.querySelectorAll('#members-list .member'), e => e.querySelector('.user').textContent + ' ' + e.querySelector('.fp').textContent)`

// On a phone-sized page (390 px wide) a browser user on node A and a CLI
// user on node C share a channel: the page shows each message's time, an
// action as "* user@channel …", a Members button whose list names both
// users with their key's fingerprint, and the list follows the CLI user
// leaving; the moderation commands work from the page; nothing is wider
// than the screen.
func TestBrowserMembersOnAPhone(t *testing.T) {
	requireChromium(t)
	b := newBrowser(t, "phone")
	b.do("phone viewport", chromedp.EmulateViewport(390, 844))
	nb := bins.StartNode(t, "B", "full")
	hub := fmt.Sprintf("127.0.0.1:%d", nb.PeerPort)
	na := bins.StartNode(t, "A", "full", "--peer", hub)
	nc := bins.StartNode(t, "C", "full", "--peer", hub)
	na.WaitPeer(nc.ID)

	b.open(fmt.Sprintf("http://127.0.0.1:%d/", na.WSPort))
	webKey := b.pubkey()
	b.typeLine("join lobby webuser")
	b.waitLine("Joined lobby as webuser")
	cli := bins.TCPClient(t, "cli", nc, "--wait", "10m")
	cli.Send("join lobby cliuser")
	cli.WaitPrefix("Joined lobby as cliuser")
	warmUpChannel(t, "lobby", b, "webuser", cli, "cliuser")

	want := []string{"cliuser " + cli.Pub[:8], "webuser " + webKey[:8]}
	tstest.WaitFor(t, 10*time.Second, "both users in the page's member list", func() (bool, string) {
		got := eval[[]string](b, membersJS)
		return strings.Join(got, ",") == strings.Join(want, ","), fmt.Sprintf("members %q", got)
	})
	if label := eval[string](b, `document.getElementById('members-toggle').textContent`); label != "Members (2)" {
		t.Errorf("the members button reads %q", label)
	}
	// Narrow: the list is behind the button, over the log.
	if shown := eval[bool](b, `getComputedStyle(document.getElementById('members')).display !== 'none'`); shown {
		t.Error("at 390 px the member list is shown before the button is pressed")
	}
	b.do("open the member list", chromedp.Click(chromedp.ID("members-toggle")))
	if shown := eval[bool](b, `getComputedStyle(document.getElementById('members')).display !== 'none'`); !shown {
		t.Error("the members button did not show the list")
	}
	if dir := os.Getenv("DARKCHAT_SCREENSHOTS"); dir != "" {
		b.screenshot(filepath.Join(dir, "phone-members.png"))
	}
	b.do("close the member list", chromedp.Click(chromedp.ID("members-toggle")))

	// Every message shows its author's time, on a phone too, outside the
	// line's text.
	cli.Send("lobby what time is it?")
	b.waitLine("cliuser@lobby - what time is it?")
	stamp := eval[string](b, `(() => { const r = [...document.querySelectorAll('#log .line.message')].pop(); return r.dataset.time + '|' + getComputedStyle(r, '::before').display + '|' + getComputedStyle(r, '::before').content })()`)
	parts := strings.SplitN(stamp, "|", 3)
	if len(parts) != 3 || len(parts[0]) != 5 || parts[1] == "none" || !strings.Contains(parts[2], parts[0]) {
		t.Errorf("the last message's time: %q (want HH:MM shown before it)", stamp)
	}

	b.typeLine("/me waves from the phone")
	b.waitLine("* webuser@lobby waves from the phone")
	cli.WaitFor(0, 30*time.Second, "the action as sent", func(l string) bool { return l == "webuser@lobby - /me waves from the phone" })

	if w := eval[int](b, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("the page is %d px wide on a 390 px screen", w)
	}
	if dir := os.Getenv("DARKCHAT_SCREENSHOTS"); dir != "" {
		b.screenshot(filepath.Join(dir, "phone.png"))
	}

	// The moderation commands work from the page: an owned channel,
	// its topic, and a ban the CLI user is told of.
	club := "club." + webKey[:20]
	b.typeLine("create club")
	b.waitLine("Created " + club + ": share this name; you own it")
	cli.Send("join " + club + " cliuser")
	cli.WaitPrefix("Joined " + club + " as cliuser")
	b.typeLine("topic " + club + " phones welcome")
	cli.WaitFor(0, 30*time.Second, "the topic", func(l string) bool { return l == "-- topic of "+club+": phones welcome" })
	b.typeLine("ban " + club + " " + cli.Pub)
	cli.WaitFor(0, 30*time.Second, "the ban", func(l string) bool { return strings.HasPrefix(l, "You are banned from "+club) })

	cli.Send("leave lobby")
	b.waitLog(0, "the leave notice", func(l string) bool { return l == "-- cliuser ("+cli.Pub[:8]+") left lobby" })
	tstest.WaitFor(t, 10*time.Second, "the member list without the CLI user", func() (bool, string) {
		got := eval[[]string](b, membersJS)
		return strings.Join(got, ",") == "webuser "+webKey[:8], fmt.Sprintf("members %q", got)
	})
	b.checkConsole()
}

// A browser user can keep out of the channels' member lists (the identity
// dialog's checkbox, kept in the browser): a CLI user in the same channel
// then lists only itself, while the two still chat; unticked, the page is
// listed again.
func TestBrowserUnlisted(t *testing.T) {
	b, webKey, cli := pageAndCLI(t, "unlisted", "lobby")
	names := func(want string) {
		t.Helper()
		tstest.WaitFor(t, 10*time.Second, "the CLI's names to read "+want, func() (bool, string) {
			from := len(cli.Lines())
			cli.Send("names lobby")
			l, _ := cli.WaitFor(from, 10*time.Second, "names", func(l string) bool { return strings.HasPrefix(l, "Users in lobby") })
			return l == want, fmt.Sprintf("names %q", l)
		})
	}
	listed := "Users in lobby (2): cliuser (" + cli.Pub[:8] + "), webuser (" + webKey[:8] + ")"
	names(listed)

	// Ticking the box reloads the page, which joins lobby again unlisted.
	setUnlisted := func(on bool) {
		t.Helper()
		b.do("open the identity dialog", chromedp.Click(chromedp.ID("identity-open")))
		if checked := eval[bool](b, `document.getElementById('unlisted').checked`); checked == on {
			t.Fatalf("the unlisted box is already %v", checked)
		}
		from := len(cli.Lines())
		b.do("tick the unlisted box", chromedp.Click(chromedp.ID("unlisted")))
		tstest.WaitFor(t, 30*time.Second, "the page to log in again", func() (bool, string) {
			s, _ := tryEval[string](b, `document.body.dataset.state + ' ' + document.getElementById('pubkey').textContent`)
			return s == "ready "+webKey, fmt.Sprintf("state and key %q", s)
		})
		b.waitLine("Joined lobby as webuser")
		// The page's own leave and join, as the CLI hears them.
		cli.WaitFor(from, 30*time.Second, "the page's rejoin", func(l string) bool { return strings.HasPrefix(l, "-- webuser") })
	}
	setUnlisted(true)
	names("Users in lobby (1): cliuser (" + cli.Pub[:8] + ")")
	warmUpChannel(t, "lobby", b, "webuser", cli, "cliuser")
	b.do("open the identity dialog", chromedp.Click(chromedp.ID("identity-open")))
	if !eval[bool](b, `document.getElementById('unlisted').checked`) {
		t.Error("after the reload the unlisted box is not ticked")
	}
	b.do("close the dialog", chromedp.Click(chromedp.ID("identity-close")))

	setUnlisted(false)
	names(listed)
	b.checkConsole()
}

// Commands that act on the current channel (/me, /part) act on the
// channel the page shows, not on the one last joined or written to.
func TestBrowserCommandsActOnTheChannelShown(t *testing.T) {
	b, webKey, cli := pageAndCLI(t, "shown", "lobby", "dev")
	show := func(ch string) {
		t.Helper()
		b.do("show "+ch, chromedp.Click(chromedp.CSS(`#channels button[title^="#`+ch+`,"]`)))
	}
	show("lobby") // dev, joined last, was shown
	warmUpChannel(t, "lobby", b, "webuser", cli, "cliuser")
	// Written to last: dev.
	show("dev")
	from := len(cli.Lines())
	b.typeLine("hello dev")
	cli.WaitFor(from, 30*time.Second, "the message in dev", func(l string) bool { return l == "webuser@dev - hello dev" })

	show("lobby")
	b.typeLine("/me waves in the lobby")
	cli.WaitFor(from, 30*time.Second, "the action in lobby", func(l string) bool { return l == "webuser@lobby - /me waves in the lobby" })
	b.typeLine("/part")
	cli.WaitFor(from, 30*time.Second, "the part from lobby", func(l string) bool { return l == "-- webuser ("+webKey[:8]+") left lobby" })
	// dev is shown next, and the user is still in it.
	b.typeLine("/me is still in dev")
	cli.WaitFor(from, 30*time.Second, "the action in dev", func(l string) bool { return l == "webuser@dev - /me is still in dev" })
	b.checkConsole()
}

// pageAndCLI starts one full node with a browser page (webuser) and a CLI
// user (cliuser) on it, both in channels, joined in order; it returns the
// page, its key and the CLI.
func pageAndCLI(t *testing.T, name string, channels ...string) (b *browser, webKey string, cli *client) {
	t.Helper()
	requireChromium(t)
	b = newBrowser(t, name)
	n := bins.StartNode(t, "N", "full")
	b.open(fmt.Sprintf("http://127.0.0.1:%d/", n.WSPort))
	webKey = b.pubkey()
	cli = bins.TCPClient(t, "cli", n, "--wait", "10m")
	for _, ch := range channels {
		b.typeLine("join " + ch + " webuser")
		b.waitLine("Joined " + ch + " as webuser")
		cli.Send("join " + ch + " cliuser")
		cli.WaitPrefix("Joined " + ch + " as cliuser")
	}
	return b, webKey, cli
}
