package p2ptest_test

// How fast an owned channel's ban takes effect across the simulated mesh
// (PROTOCOL.md §2.13, §4.7): real darkchat nodes whose validators keep and
// enforce the channels' rules records (gateway.WithRules), the production
// gateway on each, and a member's session on every node, on synctest's
// fake time. RELIABILITY.md ("Owned channels: a ban across the mesh") has
// the figures.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"darkchat/gateway"
	"darkchat/identity"
	"darkchat/p2p"
	"darkchat/p2p/p2ptest"
	"darkchat/proto"
)

const (
	// banNodesEnv sets the honest nodes of TestOwnedChannelBanSpread
	// (default banDefaultNodes, small enough for every `go test`).
	banNodesEnv     = "DARKCHAT_RULES_NODES"
	banDefaultNodes = 20
	banSeed         = 7
	// banRate is how many messages a second the banned key sends, from
	// the rogue node and from its own session each.
	banRate = 10
	// banBefore and banAfter: how long it sends before the ban and after.
	banBefore, banAfter = 3 * time.Second, 10 * time.Second
	// banBound is the p99 the ban must reach every node's members within.
	banBound = time.Second
)

// An owned channel with a member on every node; the owner on one node,
// the banned key (bob) on another, both real sessions on the nodes'
// gateways. Bob sends 10 messages a second through his own session and 10
// more through a rogue node: one that runs no rules (as node D in the
// gateway's TestOwnedChannelBan), so that each honest node has to drop his
// messages itself. At time T, 50 ms between two of the rogue's messages,
// the owner sends a record banning bob. For each node, from T until:
//
//   - record: its member gets the new record (the rules object);
//   - drop: the first of the rogue's messages after which its member got
//     none: what the member sees. The rogue sends every 100 ms, so this
//     moves in 100 ms steps (-50 ms: the first message after T never came).
//
// p99 of both over the nodes must be under a second. After a member has
// the new record it must get no message of bob's at all; bob is told he
// was banned, his own node answers none of his sends after that with ok,
// and his join is refused.
func TestOwnedChannelBanSpread(t *testing.T) {
	nodes := banDefaultNodes
	if v := os.Getenv(banNodesEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 3 {
			t.Fatalf("%s=%q: want a number of nodes, at least 3", banNodesEnv, v)
		}
		nodes = n
	}
	wall := time.Now()
	synctest.Test(t, func(t *testing.T) { banSpread(t, nodes) })
	t.Logf("wall %v", time.Since(wall).Round(100*time.Millisecond))
}

func banSpread(t *testing.T, nodes int) {
	rogue := nodes // the last node
	tables := make([]*gateway.RulesTable, nodes)
	for i := range tables {
		tables[i] = gateway.NewRulesTable()
	}
	m, err := p2ptest.Start(t.Context(), p2ptest.Options{
		Nodes: nodes + 1, Seed: banSeed, Degree: 8, Gateway: true, Logger: simLogger(t),
		Config: func(i int, cfg *p2p.Config) {
			if i < nodes { // the rogue keeps the validator without rules
				cfg.Validator = gateway.ChannelValidator(nil, gateway.DefaultTimestampWindow, gateway.AuthorLimit{}, nil,
					gateway.WithRules(tables[i]))
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var pubs sync.WaitGroup
	defer func() {
		pubs.Wait()
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()

	ownerKey, bobKey := banKey(t, "owner"), banKey(t, "bob")
	bob := bobKey.Public()
	channel, err := identity.OwnedChannelName("dev", ownerKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	ownerNode, bobNode := 1%nodes, 2%nodes
	members := make([]*banSession, nodes)
	var bobSession *banSession
	errs := make([]error, nodes+1)
	var wg sync.WaitGroup
	for i := range nodes {
		// Bob's session sends 10 messages a second: over the default
		// 5 a second, which is not what this measures.
		g, err := m.StartGateway(i, gateway.Config{Rules: tables[i], Rate: 2 * banRate, Burst: 4 * banRate})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			key := banKey(t, fmt.Sprintf("member %d", i))
			if i == ownerNode {
				key = ownerKey
			}
			members[i], errs[i] = dialBanSession(g, key, channel, fmt.Sprintf("u%d", i))
		})
		if i == bobNode {
			wg.Go(func() { bobSession, errs[nodes] = dialBanSession(g, bobKey, channel, "bob") })
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, s := range append(members, bobSession) {
			s.conn.Close()
		}
	}()
	if err := m.JoinNode(rogue, channel, nopMember{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(meshFormation)

	// Version 1: open, no bans, on every node.
	owner := members[ownerNode]
	v1, err := identity.NewChannelRules(ownerKey, channel, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	owner.sendRules(t, &v1)
	waitAll(t, members, 10*time.Second, "every member to get version 1", func(s *banSession) bool { return s.recordAt(1) >= 0 })

	// Bob sends from the rogue and through his session; at T the owner
	// bans him.
	var sent []time.Time // the rogue's messages, by index
	var T time.Time
	start := time.Now()
	step := time.Second / banRate
	for k := 0; ; k++ {
		at := start.Add(time.Duration(k) * step)
		if T.IsZero() && at.Sub(start) >= banBefore+step/2 {
			time.Sleep(time.Until(start.Add(banBefore + step/2)))
			ban := v1.Clone()
			ban.Version = 2
			ban.SetBans([]identity.PublicKey{bob})
			ban.Timestamp = time.Now().UnixMilli()
			ban.Sign(ownerKey)
			T = time.Now()
			owner.sendRules(t, &ban)
		}
		if !T.IsZero() && at.Sub(T) > banAfter {
			break
		}
		time.Sleep(time.Until(at))
		cm, err := identity.NewChannelMessage(bobKey, channel, "bob", fmt.Sprintf("rogue %d", k), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		wire, err := cm.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, time.Now())
		pubs.Go(func() {
			if err := m.Nodes[rogue].Publish(context.Background(), channel, wire); err != nil {
				t.Errorf("rogue publish %d: %v", k, err)
			}
		})
		bobSession.say(channel, "bob", fmt.Sprintf("own %d", k))
	}
	// Bob tries to come back.
	bobSession.mu.Lock()
	joinAt := len(bobSession.frames)
	bobSession.mu.Unlock()
	bobSession.write(map[string]any{"type": "join", "channel": channel, "username": "bob"})
	// Drain: what is still in flight arrives within a few links.
	time.Sleep(2 * time.Second)
	pubs.Wait()

	// The figures.
	var recordD, dropD []time.Duration
	var beforeT, leaks []string
	for i, s := range members {
		s.mu.Lock()
		rec := s.recordAtLocked(2)
		if rec < 0 {
			s.mu.Unlock()
			t.Errorf("node %d's member never got the record with the ban", i)
			continue
		}
		recordD = append(recordD, s.frames[rec].at.Sub(T))
		last, got := -1, 0
		for j, f := range s.frames {
			if f.typ != "message" || f.key != bob.String() {
				continue
			}
			if j > rec {
				leaks = append(leaks, fmt.Sprintf("node %d: %q %v after T, after the record", i, f.body, f.at.Sub(T)))
			}
			if k, ok := strings.CutPrefix(f.body, "rogue "); ok {
				n, _ := strconv.Atoi(k)
				last = max(last, n)
				if sent[n].Before(T) {
					got++
				}
			}
		}
		s.mu.Unlock()
		if got == 0 {
			beforeT = append(beforeT, strconv.Itoa(i))
		}
		if last+1 >= len(sent) {
			t.Errorf("node %d's member got the rogue's last message", i)
			continue
		}
		dropD = append(dropD, sent[last+1].Sub(T))
	}
	slices.Sort(recordD)
	slices.Sort(dropD)
	t.Logf("ban in an owned channel, %d nodes (and a rogue node), banned key sending %d msg/s from the rogue and %d through its own session: "+
		"record at the members p50 %s p99 %s max %s; member sees the rogue's messages stop p50 %s p99 %s max %s",
		nodes, banRate, banRate, fd(rank(recordD, 0.5)), fd(rank(recordD, 0.99)), fd(rank(recordD, 1)),
		fd(rank(dropD, 0.5)), fd(rank(dropD, 0.99)), fd(rank(dropD, 1)))
	if len(beforeT) > 0 {
		t.Errorf("members on nodes %s got none of the rogue's messages sent before the ban: nothing was measured there", strings.Join(beforeT, ", "))
	}
	if p := rank(recordD, 0.99); p >= banBound {
		t.Errorf("the record reached the members at p99 %s, want < %v", fd(p), banBound)
	}
	if p := rank(dropD, 0.99); p >= banBound {
		t.Errorf("the rogue's messages stopped at the members at p99 %s, want < %v", fd(p), banBound)
	}
	for _, l := range leaks {
		t.Errorf("a member got a banned key's message after its node had the ban: %s", l)
	}

	// Bob: told, his later sends refused by his own node, his join too.
	bobSession.mu.Lock()
	defer bobSession.mu.Unlock()
	rec := bobSession.recordAtLocked(2)
	var kicked, oks, refused int
	var joinRefused bool
	for j, f := range bobSession.frames {
		switch {
		case f.typ == "kicked" && f.key == bob.String() && f.banned:
			kicked++
		case f.typ == "ok" && rec >= 0 && j > rec:
			oks++
		case f.typ == "error" && f.code == string(proto.CodeChannelBanned) && j >= joinAt:
			joinRefused = true
		case f.typ == "error" && rec >= 0 && j > rec:
			refused++
		}
	}
	if rec < 0 || kicked != 1 {
		t.Fatalf("bob's session got the record at frame %d and %d kicked objects, want the record and one", rec, kicked)
	}
	t.Logf("bob's session: record %s after T; kicked (banned) %d; sends refused after it %d", fd(bobSession.frames[rec].at.Sub(T)), kicked, refused)
	if oks != 0 {
		t.Errorf("bob's node answered %d of his sends after the ban with ok", oks)
	}
	if !joinRefused {
		t.Errorf("bob's join after the ban was not refused with %s", proto.CodeChannelBanned)
	}
}

// rank is the q-quantile of sorted d by nearest rank.
func rank(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return never
	}
	i := int(q*float64(len(d))+0.999999) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func banKey(t *testing.T, name string) identity.PrivateKey {
	seed := make([]byte, 32)
	copy(seed, "p2ptest rules "+name)
	binary.BigEndian.PutUint32(seed[28:], banSeed)
	k, err := identity.NewKeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// waitAll polls until ok holds for every session, or fails after d.
func waitAll(t *testing.T, ss []*banSession, d time.Duration, what string, ok func(*banSession) bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		missing := 0
		for _, s := range ss {
			if !ok(s) {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %d of %d sessions still waiting after %v", what, missing, len(ss), d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type nopMember struct{}

func (nopMember) DeliverMessage(*p2p.Message) {}

// banSession is a raw client session (the line protocol over the
// gateway's in-memory connection) that records, in order and with the
// fake time, what the node sent it.
type banSession struct {
	conn net.Conn
	key  identity.PrivateKey
	wmu  sync.Mutex

	mu     sync.Mutex
	frames []banFrame
}

// banFrame is what the test reads of a frame.
type banFrame struct {
	at      time.Time
	typ     string
	key     string // message: author; kicked: target
	body    string
	code    string
	version int64 // rules: the record's version
	banned  bool
}

// wireFrame holds the fields of the objects the test reads.
type wireFrame struct {
	Type      string `json:"type"`
	Key       string `json:"key"`
	Body      string `json:"body"`
	Code      string `json:"code"`
	Challenge string `json:"challenge"`
	Channel   string `json:"channel"`
	Record    string `json:"record"`
	Banned    bool   `json:"banned"`
}

// dialBanSession logs key in on g and joins channel as user, then reads
// the session's frames until the connection closes.
func dialBanSession(g *p2ptest.Gateway, key identity.PrivateKey, channel, user string) (*banSession, error) {
	conn, err := g.Dial()
	if err != nil {
		return nil, err
	}
	s := &banSession{conn: conn, key: key}
	r := bufio.NewReaderSize(conn, 64<<10)
	next := func(typ string) (wireFrame, error) {
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return wireFrame{}, err
			}
			var f wireFrame
			if err := json.Unmarshal(line, &f); err != nil {
				return f, err
			}
			if f.Type == "error" {
				return f, fmt.Errorf("%s: %s", f.Code, line)
			}
			if f.Type == typ {
				return f, nil
			}
		}
	}
	hello, err := next("hello")
	if err != nil {
		conn.Close()
		return nil, err
	}
	s.write(map[string]any{"type": "login", "key": key.Public().String(), "sig": hex.EncodeToString(identity.SignLogin(key, hello.Challenge))})
	if _, err := next("welcome"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s login: %w", user, err)
	}
	s.write(map[string]any{"type": "join", "channel": channel, "username": user})
	if _, err := next("joined"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s join: %w", user, err)
	}
	go s.read(r)
	return s, nil
}

func (s *banSession) read(r *bufio.Reader) {
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var f wireFrame
		if json.Unmarshal(line, &f) != nil {
			continue
		}
		bf := banFrame{at: time.Now(), typ: f.Type, key: f.Key, body: f.Body, code: f.Code, banned: f.Banned}
		switch f.Type {
		case "ping":
			go s.write(map[string]any{"type": "pong"})
		case "rules":
			obj := proto.Rules{Channel: f.Channel, Record: f.Record}
			if rec, _, err := obj.ChannelRules(); err == nil {
				bf.version = rec.Version
			}
		}
		s.mu.Lock()
		s.frames = append(s.frames, bf)
		s.mu.Unlock()
	}
}

func (s *banSession) write(obj any) {
	b, _ := json.Marshal(obj)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.conn.Write(append(b, '\n')) // a closed session's writes fail; its frames say why
}

func (s *banSession) sendRules(t *testing.T, rec *identity.ChannelRules) {
	obj, err := proto.NewRules(rec)
	if err != nil {
		t.Fatal(err)
	}
	s.write(map[string]any{"type": "rules", "channel": obj.Channel, "record": obj.Record})
}

// say signs and sends a message without waiting for its answer.
func (s *banSession) say(channel, user, body string) {
	m, err := identity.NewChannelMessage(s.key, channel, user, body, time.Now())
	if err != nil {
		return
	}
	s.write(map[string]any{"type": "send", "channel": channel, "username": user, "body": body,
		"ts": m.Timestamp, "id": hex.EncodeToString(m.ID[:]), "sig": hex.EncodeToString(m.Sig[:])})
}

// recordAt is the index of the first rules frame of at least version (-1:
// none yet).
func (s *banSession) recordAt(version int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recordAtLocked(version)
}

func (s *banSession) recordAtLocked(version int64) int {
	for j, f := range s.frames {
		if f.typ == "rules" && f.version >= version {
			return j
		}
	}
	return -1
}
