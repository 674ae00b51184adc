package browsertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"darkchat/tstest"
)

// chromiumPath is the browser the tests drive, found by TestMain.
var chromiumPath string

// ScreenshotPath is where TestBrowserChatWithCLI saves a picture of the
// page during the conversation.
const ScreenshotPath = "/tmp/darkchat-screenshot.png"

func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func requireChromium(t *testing.T) {
	t.Helper()
	if chromiumPath != "" {
		return
	}
	if os.Getenv("DARKCHAT_REQUIRE_ALL") == "1" {
		t.Fatal("chromium is not installed and DARKCHAT_REQUIRE_ALL=1: install Debian's chromium package (apt-get install chromium)")
	}
	t.Skip("chromium is not installed: the browser tests need Debian's chromium package (apt-get install chromium)")
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// browser is one headless Chromium with one tab, and what its console said.
type browser struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu         sync.Mutex
	console    []string
	exceptions []string
}

// newBrowser starts Chromium with a fresh profile. It is closed when the
// test ends.
func newBrowser(t *testing.T, name string, opts ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	requireChromium(t)
	home := t.TempDir()
	opts = append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 800),
		chromedp.Env("HOME="+home, "XDG_CONFIG_HOME="+home+"/.config", "XDG_CACHE_HOME="+home+"/.cache"),
	}, opts...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{t: t, name: name, ctx: ctx}
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil { // starts the browser and opens the tab
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Logf("%s: chromium started in %v", name, time.Since(start).Round(time.Millisecond))
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("set the viewport: %v", err)
	}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			if m.IsException() {
				b.exceptions = append(b.exceptions, m.Text)
			} else {
				b.console = append(b.console, m.String())
			}
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			b.dump()
		}
		cancel()
		cancelAlloc()
		<-done
	})
	return b
}

// checkConsole fails the test on uncaught exceptions and on anything the
// Content Security Policy refused.
func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.exceptions {
		b.t.Errorf("%s: uncaught exception: %s", b.name, e)
	}
	if testing.Verbose() && len(b.console) > 0 {
		b.t.Logf("%s: console:\n%s", b.name, strings.Join(b.console, "\n"))
	}
	for _, c := range b.console {
		if strings.Contains(c, "Content Security Policy") || strings.Contains(c, "Content-Security-Policy") {
			b.t.Errorf("%s: %s", b.name, c)
		}
	}
}

func (b *browser) dump() {
	b.mu.Lock()
	b.t.Logf("--- %s console:\n%s\n--- exceptions:\n%s", b.name, strings.Join(b.console, "\n"), strings.Join(b.exceptions, "\n"))
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	lines, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](logJS))
	state, err2 := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.dataset.state`))
	if err == nil && err2 == nil {
		b.t.Logf("--- %s #log (state %q):\n%s", b.name, state, strings.Join(lines, "\n"))
	}
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %s: %v", b.name, what, err)
	}
}

// tryEval evaluates a JavaScript expression in the page, reporting failure
// (the page may be between documents while it reloads).
func tryEval[T any](b *browser, expr string) (T, bool) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	return v, err == nil
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("%s: evaluate %s: %v", b.name, expr, err)
	}
	return v
}

// logJS reads the log the way the hook is defined: one element per line.
const logJS = `Array.from(document.getElementById('log').children, e => e.textContent)`

func (b *browser) logLines() []string {
	b.t.Helper()
	return eval[[]string](b, logJS)
}

// waitLog waits for a line of #log (from index from on) that match accepts,
// and returns it and its index.
func (b *browser) waitLog(from int, what string, match func(string) bool) (string, int) {
	b.t.Helper()
	var found string
	idx := -1
	tstest.WaitFor(b.t, 30*time.Second, b.name+": "+what, func() (bool, string) {
		lines := b.logLines()
		for i := from; i < len(lines); i++ {
			if match(lines[i]) {
				found, idx = lines[i], i
				return true, ""
			}
		}
		return false, fmt.Sprintf("log ends %q", lines[min(max(from, len(lines)-3), len(lines)):])
	})
	return found, idx
}

func (b *browser) waitLine(line string) int {
	b.t.Helper()
	_, i := b.waitLog(0, fmt.Sprintf("%q in #log", line), func(l string) bool { return l == line })
	return i
}

// state is body[data-state], or "" while there is no body.
func (b *browser) state() string {
	b.t.Helper()
	s, _ := tryEval[string](b, `document.body ? document.body.dataset.state : ''`)
	return s
}

func (b *browser) waitState(want string) {
	b.t.Helper()
	tstest.WaitFor(b.t, 30*time.Second, b.name+": body[data-state="+want+"]", func() (bool, string) {
		state := b.state()
		return state == want, "state " + state
	})
}

// open loads the page and waits until it has logged in.
func (b *browser) open(url string) {
	b.t.Helper()
	start := time.Now()
	b.do("navigate to "+url, chromedp.Navigate(url))
	b.waitState("ready")
	b.t.Logf("%s: %s ready in %v", b.name, url, time.Since(start).Round(time.Millisecond))
}

func (b *browser) pubkey() string {
	b.t.Helper()
	k := eval[string](b, `document.getElementById('pubkey').textContent.trim()`)
	if !hex64.MatchString(k) {
		b.t.Fatalf("%s: #pubkey is %q, not a public key", b.name, k)
	}
	return k
}

// typeLine types line into #input and presses Enter.
func (b *browser) typeLine(line string) {
	b.t.Helper()
	b.do("type "+line, chromedp.SendKeys(chromedp.ID("input"), line+kb.Enter))
}

func (b *browser) screenshot(path string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("%s: screenshot: %v", b.name, err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("%s: screenshot saved to %s", b.name, path)
}

// innerTextLines is #log as the browser renders it to text: the lines must
// read exactly as the CLI's, with nothing (such as the time) added.
func (b *browser) innerTextLines() []string {
	b.t.Helper()
	return strings.Split(eval[string](b, `document.getElementById('log').innerText`), "\n")
}

// warmUpChannel repeats a message each way until the other side has seen
// one: a message sent before the nodes have exchanged subscriptions reaches
// nobody. Only lines that arrive after the call count.
func warmUpChannel(t *testing.T, ch string, b *browser, bUser string, c *client, cUser string) {
	t.Helper()
	start := time.Now()
	bFrom, cFrom := len(b.logLines()), len(c.Lines())
	sent := 0
	tstest.WaitFor(t, 45*time.Second, "the CLI's messages to reach the browser", func() (bool, string) {
		if slices.Contains(b.logLines()[bFrom:], cUser+"@"+ch+" - anyone here?") {
			return true, ""
		}
		c.Send(ch + " anyone here?")
		sent++
		return false, fmt.Sprintf("none of %d seen", sent)
	})
	sent = 0
	tstest.WaitFor(t, 45*time.Second, "the browser's messages to reach the CLI", func() (bool, string) {
		if slices.Contains(c.Lines()[cFrom:], bUser+"@"+ch+" - hi, I'm here") {
			return true, ""
		}
		b.typeLine("hi, I'm here")
		sent++
		return false, fmt.Sprintf("none of %d seen", sent)
	})
	t.Logf("channel %s works both ways after %v", ch, time.Since(start).Round(time.Millisecond))
}

// TestBrowserChatWithCLI is the judged scenario: a browser user on node A
// and a CLI user on node C, with B between them and no member on B, chat
// in a channel and by end-to-end encrypted DM; the browser keeps its
// identity over a reload and reconnects, joining its channel again, when
// its node restarts.
func TestBrowserChatWithCLI(t *testing.T) {
	requireChromium(t)
	b := newBrowser(t, "browser")
	nb := bins.StartNode(t, "B", "full")
	hub := fmt.Sprintf("127.0.0.1:%d", nb.PeerPort)
	na := bins.StartNode(t, "A", "full", "--peer", hub)
	nc := bins.StartNode(t, "C", "full", "--peer", hub)
	na.WaitPeer(nc.ID) // discovered through B

	url := fmt.Sprintf("http://127.0.0.1:%d/", na.WSPort)
	b.open(url)
	webKey := b.pubkey()
	b.waitLine("Your PUBLIC KEY : " + webKey)
	b.waitLog(0, "the login notice", func(l string) bool { return strings.HasPrefix(l, "Connected to Network as "+webKey) })

	b.typeLine("join lobby webuser")
	b.waitLine("Joined lobby as webuser")

	cli := bins.TCPClient(t, "cli", nc)
	cli.Send("join lobby cliuser")
	cli.WaitPrefix("Joined lobby as cliuser")
	warmUpChannel(t, "lobby", b, "webuser", cli, "cliuser")

	// The browser sends by the CLI's command and, in the current channel,
	// by plain text; the CLI's lines arrive in the CLI's format.
	b.typeLine("lobby welcome to darkchat, typed as a CLI command")
	cli.WaitFor(0, 30*time.Second, "the browser's command-form message", func(l string) bool {
		return l == "webuser@lobby - welcome to darkchat, typed as a CLI command"
	})
	b.typeLine("and this one went to #lobby without naming it")
	cli.WaitFor(0, 30*time.Second, "the browser's plain message", func(l string) bool {
		return l == "webuser@lobby - and this one went to #lobby without naming it"
	})
	cli.Send("lobby hello from the terminal! nice to see a browser here")
	b.waitLine("cliuser@lobby - hello from the terminal! nice to see a browser here")
	b.typeLine("<b>markup</b> & <script>alert(1)</script> stays text")
	cli.WaitFor(0, 30*time.Second, "the markup message", func(l string) bool {
		return l == "webuser@lobby - <b>markup</b> & <script>alert(1)</script> stays text"
	})
	cli.Send("lobby <img src=x onerror=alert(2)> is text here too")
	b.waitLine("cliuser@lobby - <img src=x onerror=alert(2)> is text here too")
	if imgs := eval[int](b, `document.querySelectorAll('#log img, #log script, #log b').length`); imgs != 0 {
		t.Errorf("#log has %d elements made from message text", imgs)
	}

	// DMs both ways: the recipient sees the sender's line, the
	// sender sees "delivered".
	start := time.Now()
	b.typeLine("private " + cli.Pub + " psst, this one is end-to-end encrypted")
	cli.WaitFor(0, 30*time.Second, "the browser's DM", func(l string) bool {
		return l == "webuser@private("+webKey+") - psst, this one is end-to-end encrypted"
	})
	b.waitLine("DM to " + cli.Pub + ": delivered")
	t.Logf("DM browser → CLI delivered and acknowledged in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	cli.Send("private " + webKey + " got it, replying privately")
	b.waitLine("cliuser@private(" + cli.Pub + ") - got it, replying privately")
	cli.WaitFor(0, 30*time.Second, "the CLI's DM status", func(l string) bool { return l == "DM to "+webKey+": delivered" })
	t.Logf("DM CLI → browser delivered and acknowledged in %v", time.Since(start).Round(time.Millisecond))
	cli.Send("lobby see you in the channel")
	b.waitLine("cliuser@lobby - see you in the channel")

	// The log reads as the CLI's lines when rendered to text too.
	rendered := b.innerTextLines()
	for _, want := range []string{
		"cliuser@lobby - hello from the terminal! nice to see a browser here",
		"cliuser@private(" + cli.Pub + ") - got it, replying privately",
		"DM to " + cli.Pub + ": delivered",
	} {
		if !slices.Contains(rendered, want) {
			t.Errorf("#log's innerText has no line %q:\n%s", want, strings.Join(rendered, "\n"))
		}
	}
	b.screenshot(ScreenshotPath)
	if dir := os.Getenv("DARKCHAT_SCREENSHOTS"); dir != "" {
		extraScreenshots(t, b, dir)
	}

	// A reload keeps the identity and the channel.
	b.do("reload", chromedp.Reload())
	b.waitState("ready")
	if got := b.pubkey(); got != webKey {
		t.Fatalf("after a reload #pubkey is %s, was %s", got, webKey)
	}
	b.waitLine("Joined lobby as webuser")
	if n := eval[int](b, `document.querySelectorAll('#dms .conv').length`); n != 1 {
		t.Errorf("after a reload the page lists %d DM conversations, want 1", n)
	}
	warmUpChannel(t, "lobby", b, "webuser", cli, "cliuser")

	// The node goes away: the page says so and keeps trying, with backoff;
	// when the node is back it reconnects by itself and joins again.
	from := len(b.logLines())
	start = time.Now()
	na.Terminate()
	b.waitLog(from, "the disconnect", func(l string) bool {
		return strings.HasPrefix(l, "ERROR: disconnected") || l == "Disconnected by the node"
	})
	tstest.WaitFor(t, 30*time.Second, "a failed reconnect shown in the banner", func() (bool, string) {
		banner := eval[string](b, `document.getElementById('banner').hidden ? '' : document.getElementById('banner').textContent`)
		return strings.Contains(banner, "dial websocket gateway"), fmt.Sprintf("banner %q", banner)
	})
	if b.state() != "reconnecting" && b.state() != "connecting" {
		t.Errorf("with its node down the page is in state %q", b.state())
	}
	if dir := os.Getenv("DARKCHAT_SCREENSHOTS"); dir != "" {
		b.screenshot(filepath.Join(dir, "reconnecting.png"))
	}
	na = na.Again(t)
	b.waitLog(from, "the reconnect", func(l string) bool { return strings.HasPrefix(l, "Connected to Network as "+webKey) })
	b.waitLog(from, "the channel joined again", func(l string) bool { return l == "Joined lobby as webuser" })
	b.waitState("ready")
	t.Logf("reconnected and joined again %v after the restart began", time.Since(start).Round(time.Millisecond))
	if got := b.pubkey(); got != webKey {
		t.Fatalf("after reconnecting #pubkey is %s, was %s", got, webKey)
	}
	warmUpChannel(t, "lobby", b, "webuser", cli, "cliuser")
	b.checkConsole()
}

// extraScreenshots saves pictures of more of the page's states in dir,
// for looking at the design (DARKCHAT_SCREENSHOTS=dir).
func extraScreenshots(t *testing.T, b *browser, dir string) {
	t.Helper()
	b.do("open the DM", chromedp.Click(chromedp.CSS("#dms .conv")))
	b.do("filter", chromedp.Click(chromedp.ID("filter")))
	b.screenshot(filepath.Join(dir, "dm.png"))
	b.do("unfilter", chromedp.Click(chromedp.ID("filter")))
	b.do("open the identity dialog", chromedp.Click(chromedp.ID("identity-open")))
	b.screenshot(filepath.Join(dir, "identity.png"))
	b.do("close the dialog", chromedp.Click(chromedp.ID("identity-close")))
	b.do("narrow", chromedp.EmulateViewport(420, 860))
	b.screenshot(filepath.Join(dir, "narrow.png"))
	b.do("wide", chromedp.EmulateViewport(1280, 800))
	b.do("back to the channel", chromedp.Click(chromedp.CSS("#channels .conv")))
	b.typeLine("help")
	b.waitLog(0, "help", func(l string) bool { return strings.HasPrefix(l, "  <channel> <message…>") })
	b.screenshot(filepath.Join(dir, "help.png"))
}

// The page works over TLS: https for the page, wss for the session.
func TestBrowserOverTLS(t *testing.T) {
	requireChromium(t)
	cert, key := selfSignedCert(t)
	b := newBrowser(t, "browser-tls", chromedp.Flag("ignore-certificate-errors", true))
	n := bins.StartNode(t, "T", "full", "--tls-cert", cert, "--tls-key", key)
	b.open(fmt.Sprintf("https://127.0.0.1:%d/", n.WSPort))
	if proto := eval[string](b, `location.protocol`); proto != "https:" {
		t.Fatalf("page protocol %q", proto)
	}
	webKey := b.pubkey()
	b.typeLine("join secure webuser")
	b.waitLine("Joined secure as webuser")
	cli := bins.TCPClient(t, "cli", n)
	cli.Send("join secure cliuser")
	cli.WaitPrefix("Joined secure as cliuser")
	// One node: no mesh to warm up.
	cli.Send("secure hello over wss")
	b.waitLine("cliuser@secure - hello over wss")
	b.typeLine("secure hello back")
	cli.WaitFor(0, 30*time.Second, "the browser's message", func(l string) bool { return l == "webuser@secure - hello back" })
	cli.Send("private " + webKey + " private over wss")
	b.waitLine("cliuser@private(" + cli.Pub + ") - private over wss")
	cli.WaitFor(0, 30*time.Second, "the DM status", func(l string) bool { return l == "DM to "+webKey+": delivered" })
	for _, e := range eval[[]string](b, `performance.getEntriesByType('resource').map(e => e.name)`) {
		if !strings.HasPrefix(e, "https://127.0.0.1:") {
			t.Errorf("the page fetched %s", e)
		}
	}
	b.checkConsole()
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key, PEM.
func selfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "darkchat test node"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// The identity is the CLI's key file both ways: a key the page made
// exports as a file the CLI reads, and a key file the CLI made imports
// into the page, which keeps it over reloads.
func TestBrowserIdentityExportImport(t *testing.T) {
	requireChromium(t)
	b := newBrowser(t, "browser-id")
	n := bins.StartNode(t, "N", "websock")
	b.open(fmt.Sprintf("http://127.0.0.1:%d/", n.WSPort))
	made := b.pubkey()

	// Export: the dialog shows the key file, which the CLI reads.
	b.do("open the identity dialog", chromedp.Click(chromedp.ID("identity-open")), chromedp.Click(chromedp.ID("identity-reveal")))
	exported := eval[string](b, `document.getElementById('identity-text').value`)
	if exported != eval[string](b, `darkchat.exportKey()`) || !strings.HasPrefix(exported, "darkchat-identity-v1\n") {
		t.Fatalf("exported key file %q", exported)
	}
	file := filepath.Join(t.TempDir(), "exported.key")
	if err := os.WriteFile(file, []byte(exported), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := cliOutput(t, "id", "--key", file); got != made {
		t.Fatalf("darkchat id of the exported key says %s, the page showed %s", got, made)
	}

	// A bad key file is refused with a reason, and changes nothing.
	b.do("import garbage", chromedp.SetValue(chromedp.ID("import-text"), "darkchat-identity-v1\nnot hex"), chromedp.Click(chromedp.ID("import-apply")))
	if msg := eval[string](b, `document.getElementById('import-error').textContent`); msg == "" {
		t.Fatal("importing a malformed key file showed no error")
	}

	// Import: a key file from darkchat keygen replaces the identity.
	cliKey := filepath.Join(t.TempDir(), "cli.key")
	cliOutput(t, "keygen", "--key", cliKey)
	want := cliOutput(t, "id", "--key", cliKey)
	text, err := os.ReadFile(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	b.do("import the CLI's key", chromedp.SetValue(chromedp.ID("import-text"), string(text)), chromedp.Click(chromedp.ID("import-apply")))
	tstest.WaitFor(t, 30*time.Second, "the page to log in with the imported key", func() (bool, string) {
		s, _ := tryEval[string](b, `document.body.dataset.state + ' ' + document.getElementById('pubkey').textContent`)
		return s == "ready "+want, fmt.Sprintf("state and key %q", s)
	})
	b.waitLog(0, "the login with the imported key", func(l string) bool { return strings.HasPrefix(l, "Connected to Network as "+want) })
	b.do("reload", chromedp.Reload())
	b.waitState("ready")
	if got := b.pubkey(); got != want {
		t.Fatalf("after a reload the page is %s, want the imported %s", got, want)
	}
	b.checkConsole()
}

// cliOutput runs the darkchat binary and returns its trimmed output.
func cliOutput(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(bins.Darkchat, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("darkchat %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}
