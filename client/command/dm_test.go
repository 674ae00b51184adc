//go:build !js

package command_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"darkchat/client"
	"darkchat/client/command"
	"darkchat/identity"
	"darkchat/tstest/clienttest"
)

// rawClient logs key in to the scripted server at addr as a bare client:
// it publishes a key bundle, then does only what the test makes it do. It
// never answers a DM with a receipt.
func rawClient(t *testing.T, addr string, key identity.PrivateKey) *rawPeer {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p := &rawPeer{t: t, conn: conn, r: bufio.NewReader(conn)}
	hello, ok := p.recv().(*client.Hello)
	if !ok {
		t.Fatal("no hello")
	}
	b, err := identity.NewKeyBundle(key, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := client.EncodeKeyBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	p.sendObj(&client.Login{Key: key.Public().String(), Sig: hex.EncodeToString(identity.SignLogin(key, hello.Challenge)), Bundle: enc})
	if _, ok := p.recv().(*client.Welcome); !ok {
		t.Fatal("no welcome")
	}
	return p
}

// nextDM returns the next DM the peer receives, opened with key's DM key,
// skipping the node's dm_sent answers and pings.
func (p *rawPeer) nextDM(key identity.PrivateKey) identity.DM {
	p.t.Helper()
	dk, err := key.DMKey()
	if err != nil {
		p.t.Fatal(err)
	}
	for {
		switch o := p.recv().(type) {
		case *client.DMSent, *client.Pong:
		case *client.Ping:
			p.sendObj(&client.Pong{})
		case *client.DM:
			env, err := o.EnvelopeBytes()
			if err != nil {
				p.t.Fatal(err)
			}
			m, err := identity.OpenDM(dk, env)
			if err != nil {
				p.t.Fatalf("a DM that does not open: %v", err)
			}
			return m
		case nil:
			p.t.Fatal("connection closed while waiting for a DM")
		default:
			p.t.Fatalf("waiting for a DM, got %#v", o)
		}
	}
}

// bundleOf returns the bundle the server holds for key.
func bundleOf(t *testing.T, srv *clienttest.Server, key identity.PublicKey) identity.KeyBundle {
	t.Helper()
	enc, ok := srv.Bundle(key)
	if !ok {
		t.Fatalf("the server has no bundle for %s", key)
	}
	b, err := client.DecodeKeyBundle(enc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sealDM(t *testing.T, from identity.PrivateKey, to identity.KeyBundle, username, body string, at time.Time) ([]byte, [identity.MessageIDSize]byte) {
	t.Helper()
	env, id, err := identity.SealDM(from, to, username, body, at)
	if err != nil {
		t.Fatal(err)
	}
	return env, id
}

func sealReceipt(t *testing.T, from identity.PrivateKey, to identity.KeyBundle, ack [identity.MessageIDSize]byte) []byte {
	t.Helper()
	env, _, err := identity.SealReceipt(from, to, ack, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return env
}

var whoisLine = regexp.MustCompile(`^([0-9a-f]{64}): key bundle valid until (\S+), DM key ([0-9a-f]{16})$`)

func TestClientDMRoundTrip(t *testing.T) {
	srv := &clienttest.Server{}
	addr := srv.StartTCP(t)
	ctx := testCtx(t)
	aliceKey, bobKey := newKey(t), newKey(t)
	alice, aliceOut := newClient(t, addr, command.Config{Key: aliceKey, Name: "alice"})
	bob, bobOut := newClient(t, addr, command.Config{Key: bobKey})
	a, b := aliceKey.Public(), bobKey.Public()

	alice.Execute(ctx, "private "+b.String()+" hello   bob\x1b[2J")
	got := bobOut.next(t)
	want := command.Line{Kind: command.LineMessage, Text: "alice@private(" + a.String() + `) - hello   bob\x1b[2J`,
		Author: a, Channel: "private(" + a.String() + ")", User: "alice", Body: `hello   bob\x1b[2J`, Time: got.Time}
	if got != want || time.Since(got.Time).Abs() > time.Minute {
		t.Fatalf("bob got %+v, want %+v", got, want)
	}
	got = aliceOut.next(t)
	want = command.Line{Kind: command.LineDMStatus, Text: "DM to " + b.String() + ": delivered", Author: b, DM: got.DM}
	if got != want || len(got.DM) != 32 {
		t.Fatalf("alice got %+v, want %+v", got, want)
	}

	// Bob's receipt fetched alice's bundle; his answer uses it.
	bob.Execute(ctx, "private "+a.String()+" hi alice, "+b.String())
	if l := aliceOut.next(t); l.Text != "anonymous@private("+b.String()+") - hi alice, "+b.String() {
		t.Fatalf("alice got %q", l.Text)
	}
	if l := bobOut.next(t); l.Text != "DM to "+a.String()+": delivered" {
		t.Fatalf("bob got %q", l.Text)
	}

	alice.Execute(ctx, "whois "+b.String())
	l := aliceOut.next(t)
	m := whoisLine.FindStringSubmatch(l.Text)
	if m == nil || l.Kind != command.LineNotice {
		t.Fatalf("whois printed %+v", l)
	}
	bb := bundleOf(t, srv, b)
	sum := sha256.Sum256(bb.DM[:])
	dk, _ := bobKey.DMKey()
	sum2 := sha256.Sum256(dk.Public().Bytes())
	if m[1] != b.String() || m[2] != bb.ExpiresTime().UTC().Format(time.RFC3339) || m[3] != hex.EncodeToString(sum[:8]) || sum != sum2 {
		t.Fatalf("whois printed %q; want bundle expiry %v and DM key %x", l.Text, bb.ExpiresTime().UTC(), sum[:8])
	}
	if l := aliceOut.next(t); l.Text != b.String()+": not seen online in your channels" {
		t.Fatalf("whois's presence line: %q", l.Text)
	}
	if exp, _ := time.Parse(time.RFC3339, m[2]); exp.Sub(time.Now()) < 23*time.Hour || exp.Sub(time.Now()) > 24*time.Hour {
		t.Fatalf("bundle valid until %s, want about 24h from now", m[2])
	}

	for _, c := range []*command.Interpreter{alice, bob} {
		if err := c.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.SettleDMs(ctx); err != nil {
			t.Fatal(err)
		}
		if n := c.Session().PendingDMs(); n != 0 {
			t.Fatalf("%d DMs pending", n)
		}
	}
	aliceOut.none(t)
	bobOut.none(t)
}

func TestClientDMUnknownRecipient(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	c, out := newClient(t, addr, command.Config{})
	k := newKey(t).Public().String()
	c.Execute(ctx, "private "+k+" anyone there?")
	want := command.Line{Kind: command.LineDMStatus, Text: "DM to " + k + ": not delivered (unknown recipient: no key bundle)"}
	want.Author, _ = identity.ParsePublicKey(k)
	if got := out.next(t); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	c.Execute(ctx, "whois "+k)
	if got := out.next(t); got.Text != "ERROR: unknown user "+k || got.Kind != command.LineError {
		t.Fatalf("whois printed %+v", got)
	}
	// The session is still usable.
	c.Execute(ctx, "join lobby a")
	if got := out.next(t); got.Text != "Joined lobby as a" {
		t.Fatalf("got %q", got.Text)
	}
}

func TestClientDMOffline(t *testing.T) {
	srv := &clienttest.Server{}
	addr := srv.StartTCP(t)
	ctx := testCtx(t)
	carolKey := newKey(t)
	carol, _ := newClient(t, addr, command.Config{Key: carolKey})
	c, out := newClient(t, addr, command.Config{})
	carol.Close() // her bundle stays known, as in the DHT
	for deadline := time.Now().Add(waitTimeout); srv.Sessions() != 1; {
		if time.Now().After(deadline) {
			t.Fatal("carol's session is still open on the server")
		}
		time.Sleep(time.Millisecond)
	}
	carolHex := carolKey.Public().String()
	c.Execute(ctx, "private "+carolHex+" are you there?")
	if got := out.next(t); got.Text != "DM to "+carolHex+": not delivered (recipient offline)" || got.Kind != command.LineDMStatus {
		t.Fatalf("got %+v", got)
	}
	c.Execute(ctx, "whois "+carolHex)
	if got := out.next(t); !whoisLine.MatchString(got.Text) {
		t.Fatalf("whois printed %q", got.Text)
	}
	if n := c.Session().PendingDMs(); n != 0 {
		t.Fatalf("%d DMs pending", n)
	}
}

func TestClientDMTimeout(t *testing.T) {
	srv := &clienttest.Server{}
	addr := srv.StartTCP(t)
	ctx := testCtx(t)
	aliceKey, rk := newKey(t), newKey(t)
	c, out := newClient(t, addr, command.Config{Key: aliceKey, DMTimeout: 200 * time.Millisecond})
	raw := rawClient(t, addr, rk) // never answers with a receipt
	rHex := rk.Public().String()

	c.Execute(ctx, "private "+rHex+" are you there?")
	m := raw.nextDM(rk)
	if m.Kind != identity.DMKindMessage || m.Sender != aliceKey.Public() || m.Username != "anonymous" || m.Body != "are you there?" {
		t.Fatalf("the recipient got %+v", m)
	}
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.SettleDMs(ctx); err != nil {
		t.Fatal(err)
	}
	if got := out.next(t); got.Text != "DM to "+rHex+": not delivered (recipient offline: timed out: no receipt within 200ms)" || got.Kind != command.LineDMStatus {
		t.Fatalf("got %+v", got)
	}

	// A receipt after the timeout changes nothing.
	raw.sendObj(client.NewDM("late", sealReceipt(t, rk, bundleOf(t, srv, aliceKey.Public()), m.ID)))
	env, _ := sealDM(t, rk, bundleOf(t, srv, aliceKey.Public()), "r", "sync", time.Now())
	raw.sendObj(client.NewDM("sync", env))
	if got := out.next(t); got.Text != "r@private("+rHex+") - sync" {
		t.Fatalf("got %q", got.Text)
	}
	out.none(t)
}

func TestClientDMReplayTamperAndWindow(t *testing.T) {
	srv := &clienttest.Server{}
	addr := srv.StartTCP(t)
	bobKey := newKey(t)
	_, out := newClient(t, addr, command.Config{Key: bobKey})
	bobBundle := bundleOf(t, srv, bobKey.Public())
	x := newKey(t) // knows bob's bundle; has none of its own, so bob's receipts go nowhere
	xHex := x.Public().String()
	inject := func(env []byte) {
		srv.Inject([]byte(`{"type":"dm","envelope":"` + base64.StdEncoding.EncodeToString(env) + `"}`))
	}

	first, _ := sealDM(t, x, bobBundle, "x", "first", time.Now())
	inject(first)
	if got := out.next(t); got.Text != "x@private("+xHex+") - first" {
		t.Fatalf("got %q", got.Text)
	}
	inject(first) // replayed
	tampered := append([]byte(nil), first...)
	tampered[len(tampered)-20] ^= 1
	inject(tampered)
	oldEnv, _ := sealDM(t, x, bobBundle, "x", "too old", time.Now().Add(-identity.DMTimestampWindow-time.Minute))
	inject(oldEnv)
	newEnv, _ := sealDM(t, x, bobBundle, "x", "too new", time.Now().Add(identity.DMTimestampWindow+time.Minute))
	inject(newEnv)
	other, _ := identity.NewKeyBundle(newKey(t), time.Now(), time.Hour)
	notForBob, _ := sealDM(t, x, other, "x", "not for bob", time.Now())
	inject(notForBob)
	srv.Inject([]byte(`{"type":"dm","envelope":"AQID"}`)) // not an envelope

	marker, _ := sealDM(t, x, bobBundle, "x", "marker", time.Now())
	inject(marker)
	if got := out.next(t); got.Text != "x@private("+xHex+") - marker" {
		t.Fatalf("got %q: a dropped DM was shown", got.Text)
	}
	out.none(t)
}

func TestClientDMBundleForWrongKeyRefused(t *testing.T) {
	srv := &clienttest.Server{}
	addr := srv.StartTCP(t)
	ctx := testCtx(t)
	c, out := newClient(t, addr, command.Config{})
	otherKey := newKey(t)
	raw := rawClient(t, addr, otherKey)
	otherEnc, _ := srv.Bundle(otherKey.Public())

	// The node serves other's (valid) bundle for victim's address.
	victim := newKey(t).Public().String()
	srv.SetBundle(mustKey(t, victim), otherEnc)
	c.Execute(ctx, "private "+victim+" secret")
	wantErr := "ERROR: whois " + victim + ": key bundle: wrong identity: it is for " + otherKey.Public().String()
	if got := out.next(t); got.Kind != command.LineError || !strings.HasPrefix(got.Text, wantErr) {
		t.Fatalf("got %q, want %q…", got.Text, wantErr)
	}
	c.Execute(ctx, "whois "+victim)
	if got := out.next(t); !strings.HasPrefix(got.Text, wantErr) {
		t.Fatalf("whois got %q", got.Text)
	}

	// A bundle with a bad signature, and an expired one.
	forged := newKey(t)
	fb, _ := identity.NewKeyBundle(forged, time.Now(), time.Hour)
	fb.Sig[0] ^= 1
	fenc, _ := client.EncodeKeyBundle(fb)
	srv.SetBundle(forged.Public(), fenc)
	c.Execute(ctx, "private "+forged.Public().String()+" secret")
	if got := out.next(t); !strings.HasPrefix(got.Text, "ERROR: whois "+forged.Public().String()+": key bundle: bad signature") {
		t.Fatalf("got %q", got.Text)
	}
	old := newKey(t)
	ob, _ := identity.NewKeyBundle(old, time.Now().Add(-2*time.Hour), time.Hour)
	oenc, _ := client.EncodeKeyBundle(ob)
	srv.SetBundle(old.Public(), oenc)
	c.Execute(ctx, "private "+old.Public().String()+" secret")
	if got := out.next(t); !strings.HasPrefix(got.Text, "ERROR: whois "+old.Public().String()+": key bundle: expired") {
		t.Fatalf("got %q", got.Text)
	}
	srv.SetBundle(old.Public(), "AQID")
	c.Execute(ctx, "whois "+old.Public().String())
	if got := out.next(t); !strings.HasPrefix(got.Text, "ERROR: whois "+old.Public().String()+": malformed key bundle") {
		t.Fatalf("got %q", got.Text)
	}

	// Nothing was sent: the first DM other gets is the next proper one.
	c.Execute(ctx, "private "+otherKey.Public().String()+" the real one")
	if m := raw.nextDM(otherKey); m.Body != "the real one" {
		t.Fatalf("other got %q first", m.Body)
	}
}

func mustKey(t *testing.T, s string) identity.PublicKey {
	t.Helper()
	k, err := identity.ParsePublicKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestClientDMUsername(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	aliceKey := newKey(t)
	alice, aliceOut := newClient(t, addr, command.Config{Key: aliceKey})
	bobKey := newKey(t)
	_, bobOut := newClient(t, addr, command.Config{Key: bobKey})
	from := "@private(" + aliceKey.Public().String() + ") - "
	dm := func(body, wantUser string) {
		t.Helper()
		alice.Execute(ctx, "private "+bobKey.Public().String()+" "+body)
		if got := bobOut.next(t); got.Text != wantUser+from+body || got.User != wantUser {
			t.Fatalf("bob got %q, want %q", got.Text, wantUser+from+body)
		}
		aliceOut.waitLine(t, "DM to "+bobKey.Public().String()+": delivered")
	}
	dm("no name yet", "anonymous")
	alice.Execute(ctx, "join lobby al")
	aliceOut.waitLine(t, "Joined lobby as al")
	dm("after a join", "al")
	alice.Execute(ctx, "join other zed")
	aliceOut.waitLine(t, "Joined other as zed")
	dm("after another join", "zed")
	alice.Execute(ctx, "nick alice")
	aliceOut.waitLine(t, "Your direct messages will carry the name alice")
	dm("with a nick", "alice")
	alice.Execute(ctx, "join lobby al2")
	aliceOut.waitLine(t, "Joined lobby as al2")
	dm("the nick wins", "alice")

	// --name is the nick from the start.
	carol, _ := newClient(t, addr, command.Config{Name: "carol"})
	carol.Execute(ctx, "join lobby c")
	carol.Execute(ctx, "private "+bobKey.Public().String()+" hi")
	if got := bobOut.next(t); got.User != "carol" {
		t.Fatalf("bob got %q", got.Text)
	}
}

func TestClientDMReceipts(t *testing.T) {
	srv := &clienttest.Server{}
	addr := srv.StartTCP(t)
	ctx := testCtx(t)
	aliceKey, rk := newKey(t), newKey(t)
	c, out := newClient(t, addr, command.Config{Key: aliceKey})
	raw := rawClient(t, addr, rk)
	aliceBundle := bundleOf(t, srv, aliceKey.Public())
	rHex := rk.Public().String()
	send := func(ref string, env []byte) { raw.sendObj(client.NewDM(ref, env)) }
	message := func(body string) [identity.MessageIDSize]byte {
		t.Helper()
		env, id := sealDM(t, rk, aliceBundle, "r", body, time.Now())
		send("m-"+body, env)
		if got := out.next(t); got.Text != "r@private("+rHex+") - "+body {
			t.Fatalf("got %q, want the DM %q", got.Text, body)
		}
		return id
	}
	wantReceipt := func(ack [identity.MessageIDSize]byte) {
		t.Helper()
		m := raw.nextDM(rk)
		if m.Kind != identity.DMKindReceipt || m.Ack != ack || m.Sender != aliceKey.Public() || m.Recipient != rk.Public() {
			t.Fatalf("want a receipt for %x, got %+v", ack, m)
		}
	}

	// A message is answered with one receipt.
	id1 := message("one")
	wantReceipt(id1)
	// A receipt is not answered: the next thing r gets is the receipt
	// for the next message.
	send("r-1", sealReceipt(t, rk, aliceBundle, id1))
	id2 := message("two")
	wantReceipt(id2)

	// Alice's DM to r: a receipt from someone else is ignored, r's shows
	// delivered once, and neither a replay of it nor a second receipt
	// shows anything.
	c.Execute(ctx, "private "+rHex+" hello r")
	m := raw.nextDM(rk)
	if m.Body != "hello r" {
		t.Fatalf("r got %+v", m)
	}
	send("q", sealReceipt(t, newKey(t), aliceBundle, m.ID))
	wantReceipt(message("sync"))
	receipt := sealReceipt(t, rk, aliceBundle, m.ID)
	send("r-2", receipt)
	if got := out.next(t); got.Text != "DM to "+rHex+": delivered" {
		t.Fatalf("got %q", got.Text)
	}
	send("r-3", receipt)
	send("r-4", sealReceipt(t, rk, aliceBundle, m.ID))
	message("three")
	out.none(t)
}

// IRC habits: /join #channel (the username defaults to the nick), a
// message to #channel, /msg by a name seen in a shared channel, and a
// name two keys use is refused with both keys.
func TestClientIRCCommands(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	aliceKey, bobKey := newKey(t), newKey(t)
	alice, aliceOut := newClient(t, addr, command.Config{Key: aliceKey, Name: "alice"})
	bob, bobOut := newClient(t, addr, command.Config{Key: bobKey, Name: "bob"})
	a, b := aliceKey.Public(), bobKey.Public()

	alice.Execute(ctx, "/join #dev")
	aliceOut.waitLine(t, "Joined dev as alice")
	bob.Execute(ctx, "/join #dev")
	bobOut.waitLine(t, "Joined dev as bob")
	bob.Execute(ctx, "#dev hi all")
	if l := aliceOut.waitLine(t, "bob@dev - "); l.Text != "bob@dev - hi all" || l.Author != b {
		t.Fatalf("alice got %+v", l)
	}

	alice.Execute(ctx, "/msg bob psst")
	if l := bobOut.waitLine(t, "alice@private("); l.Text != "alice@private("+a.String()+") - psst" {
		t.Fatalf("bob got %q", l.Text)
	}
	aliceOut.waitLine(t, "DM to "+b.String()+": delivered")

	// A second bob, with another key: alice is told, every bob line
	// from then on carries the key's fingerprint, and /msg bob asks
	// which one.
	bob2Key := newKey(t)
	b2 := bob2Key.Public()
	bob2, _ := newClient(t, addr, command.Config{Key: bob2Key})
	bob2.Execute(ctx, "join dev bob")
	bob2.Execute(ctx, "dev me too")
	fp, fp2 := b.String()[:8], b2.String()[:8]
	if l := aliceOut.waitLine(t, "-- 2 users are named bob"); l.Text != "-- 2 users are named bob in dev: they are shown as bob("+fp+"), bob("+fp2+")" || l.Kind != command.LineNotice {
		t.Fatalf("alice got %+v", l)
	}
	if l := aliceOut.waitLine(t, "bob("); l.Text != "bob("+fp2+")@dev - me too" || l.User != "bob("+fp2+")" || l.Author != b2 {
		t.Fatalf("alice got %+v", l)
	}
	bob.Execute(ctx, "dev me first")
	if l := aliceOut.waitLine(t, "bob("); l.Text != "bob("+fp+")@dev - me first" {
		t.Fatalf("alice got %+v", l)
	}
	alice.Execute(ctx, "/msg bob which one?")
	if l := aliceOut.waitLine(t, "ERROR: "); !strings.HasPrefix(l.Text, "ERROR: 2 users are named bob: which one?") || !strings.Contains(l.Text, b.String()) || !strings.Contains(l.Text, b2.String()) {
		t.Fatalf("alice got %q, want both bobs' keys", l.Text)
	}

	bob.Execute(ctx, "/part #dev")
	bobOut.waitLine(t, "Left dev")
	if !bob.Execute(ctx, "/quit") {
		t.Fatal("/quit did not quit")
	}
}
