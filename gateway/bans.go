package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"darkchat/identity"
	"darkchat/internal/atomicfile"
	"darkchat/p2p"
)

// The node operator's ban list: keys whose channel messages this node
// neither delivers nor forwards, and whose logins its gateways refuse
// (code banned). It is the operator's decision for this node alone:
// other nodes carry the key's messages as before, which is why the
// validator ignores them (p2p.ErrIgnore) rather than rejecting them, so
// that the peer that forwarded one is not penalised for what its node
// allows.
//
// The check costs a map lookup, after the message is decoded and before
// its signature is verified: a banned author costs the node no
// verification.
//
// The list lives in the node's data dir (BansFile), one ban a line:
//
//	<key, 64 hex digits> <since, Unix ms> <reason, the rest of the line>
//
// written atomically with mode 0600 at every change. Besides the node key
// it is the only thing darkchatd writes to disk.

// BansFile is the ban list's file name in the node's data dir.
const BansFile = "bans"

// MaxBans bounds the ban list. A key is 32 bytes, and an entry with its
// reason and map overhead about 300 bytes: 10,000 keys are about 3 MB in
// memory and on disk, loaded at start in a few milliseconds. An operator
// facing more keys than that faces a flood of fresh keys, which a ban per
// key cannot stop anyway (the author limit and peer scoring do). Beyond it
// ban fails with ErrTooManyBans; nothing is evicted, since an operator's
// ban must not lapse silently.
const MaxBans = 10_000

// MaxBanReason bounds a ban's reason, in bytes: a note for the operator,
// one line of the console and of the file.
const MaxBanReason = 200

// maxBanLine bounds one line of the bans file: key, time, reason and
// separators; maxBansFileSize the whole file, so that a corrupt or
// hostile file cannot make the node read without end at start.
const (
	maxBanLine      = 2*identity.PublicKeySize + 1 + 20 + 1 + MaxBanReason
	maxBansFileSize = MaxBans * (maxBanLine + 1)
)

// Ban list errors.
var (
	ErrTooManyBans = fmt.Errorf("the ban list is full (%d keys)", MaxBans)
	ErrBadReason   = fmt.Errorf("a ban's reason must be printable text of at most %d bytes", MaxBanReason)
)

// Ban is one entry of the ban list.
type Ban struct {
	Key    identity.PublicKey
	Since  time.Time
	Reason string
}

// BanList is the node operator's set of banned keys. Its methods are safe
// for concurrent use, and a nil *BanList bans nothing.
type BanList struct {
	path string // "" keeps the list in memory only

	mu   sync.RWMutex
	keys map[identity.PublicKey]Ban
	// watchers are told each key banned (the gateways, which close its
	// sessions); one per Server, removed by its Close.
	watchers map[*Server]struct{}

	// What the ban refused, for the metrics (Config.Registerer): channel
	// messages (live, and in history answers) and logins. Counted, never
	// logged one by one: the banned author decides how many there are.
	messages, answers, logins, closed atomic.Uint64
}

// NewBanList returns an empty ban list kept in memory only.
func NewBanList() *BanList {
	return &BanList{keys: make(map[identity.PublicKey]Ban), watchers: make(map[*Server]struct{})}
}

// LoadBanList returns the ban list kept in the file at path, empty if there
// is no file yet; every change is written back there. A file that does not
// parse is an error, not an empty list: the node must not start without
// the bans its operator made.
func LoadBanList(path string) (*BanList, error) {
	b := NewBanList()
	b.path = path
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ban list: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, maxBansFileSize+1))
	sc.Buffer(make([]byte, 0, 4096), maxBanLine+1)
	read, line := 0, 0
	for sc.Scan() {
		line++
		read += len(sc.Bytes()) + 1
		if read > maxBansFileSize {
			return nil, fmt.Errorf("ban list %s: over %d bytes", path, maxBansFileSize)
		}
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		ban, err := parseBanLine(text)
		if err != nil {
			return nil, fmt.Errorf("ban list %s line %d: %w", path, line, err)
		}
		if _, dup := b.keys[ban.Key]; !dup && len(b.keys) >= MaxBans {
			return nil, fmt.Errorf("ban list %s: %w", path, ErrTooManyBans)
		}
		b.keys[ban.Key] = ban
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("ban list %s line %d: longer than %d bytes", path, line+1, maxBanLine)
		}
		return nil, fmt.Errorf("ban list %s: %w", path, err)
	}
	return b, nil
}

func parseBanLine(text string) (Ban, error) {
	keyHex, rest, _ := strings.Cut(text, " ")
	key, err := identity.ParsePublicKey(strings.ToLower(keyHex))
	if err != nil {
		return Ban{}, err
	}
	msText, reason, _ := strings.Cut(rest, " ")
	ms, err := strconv.ParseInt(msText, 10, 64)
	if err != nil || ms < 0 {
		return Ban{}, fmt.Errorf("bad time %q: want Unix milliseconds", msText)
	}
	if err := CheckBanReason(reason); err != nil {
		return Ban{}, err
	}
	return Ban{Key: key, Since: time.UnixMilli(ms), Reason: reason}, nil
}

// ParseBanKey reads a key to ban as the operator types it: 64 hex digits,
// either case.
func ParseBanKey(s string) (identity.PublicKey, error) {
	return identity.ParsePublicKey(strings.ToLower(s))
}

// CheckBanReason reports whether reason can be a ban's: printable UTF-8 on
// one line, at most MaxBanReason bytes.
func CheckBanReason(reason string) error {
	if len(reason) > MaxBanReason || !utf8.ValidString(reason) ||
		strings.ContainsFunc(reason, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) {
		return ErrBadReason
	}
	return nil
}

// Path is the file the list is kept in, "" when it is kept in memory only.
func (b *BanList) Path() string {
	if b == nil {
		return ""
	}
	return b.path
}

// Banned reports whether key is banned.
func (b *BanList) Banned(key identity.PublicKey) bool {
	if b == nil {
		return false
	}
	b.mu.RLock()
	_, ok := b.keys[key]
	b.mu.RUnlock()
	return ok
}

// Lookup returns key's ban, if it is banned.
func (b *BanList) Lookup(key identity.PublicKey) (Ban, bool) {
	if b == nil {
		return Ban{}, false
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	ban, ok := b.keys[key]
	return ban, ok
}

// Ban bans key from now on, with reason, and closes its sessions on the
// gateways that use the list. It reports false, and changes nothing, if
// key was banned already. The list is written to its file before the ban
// takes effect; if that fails, the ban is not made.
func (b *BanList) Ban(key identity.PublicKey, reason string, now time.Time) (bool, error) {
	if err := CheckBanReason(reason); err != nil {
		return false, err
	}
	b.mu.Lock()
	if _, ok := b.keys[key]; ok {
		b.mu.Unlock()
		return false, nil
	}
	if len(b.keys) >= MaxBans {
		b.mu.Unlock()
		return false, ErrTooManyBans
	}
	b.keys[key] = Ban{Key: key, Since: time.UnixMilli(now.UnixMilli()), Reason: reason}
	if err := b.saveLocked(); err != nil {
		delete(b.keys, key)
		b.mu.Unlock()
		return false, err
	}
	watchers := make([]*Server, 0, len(b.watchers))
	for s := range b.watchers {
		watchers = append(watchers, s)
	}
	b.mu.Unlock()
	for _, s := range watchers {
		s.closeBanned(key)
	}
	return true, nil
}

// Unban lifts key's ban. It reports false if key was not banned.
func (b *BanList) Unban(key identity.PublicKey) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ban, ok := b.keys[key]
	if !ok {
		return false, nil
	}
	delete(b.keys, key)
	if err := b.saveLocked(); err != nil {
		b.keys[key] = ban
		return false, err
	}
	return true, nil
}

// List returns the bans, oldest first (then by key).
func (b *BanList) List() []Ban {
	if b == nil {
		return nil
	}
	b.mu.RLock()
	out := make([]Ban, 0, len(b.keys))
	for _, ban := range b.keys {
		out = append(out, ban)
	}
	b.mu.RUnlock()
	slices.SortFunc(out, func(x, y Ban) int {
		if c := x.Since.Compare(y.Since); c != 0 {
			return c
		}
		return bytes.Compare(x.Key[:], y.Key[:])
	})
	return out
}

// Len is the number of banned keys.
func (b *BanList) Len() int {
	if b == nil {
		return 0
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.keys)
}

// BanCounts are what the bans refused since the node started.
type BanCounts struct {
	// Messages: channel messages of banned authors, not delivered and not
	// forwarded. Answers: history answers carrying one.
	Messages, Answers uint64
	// Logins refused with code banned; live sessions closed by a ban.
	Logins, Closed uint64
}

// Counts returns what the bans refused since the node started.
func (b *BanList) Counts() BanCounts {
	if b == nil {
		return BanCounts{}
	}
	return BanCounts{Messages: b.messages.Load(), Answers: b.answers.Load(), Logins: b.logins.Load(), Closed: b.closed.Load()}
}

func (b *BanList) saveLocked() error {
	if b.path == "" {
		return nil
	}
	bans := make([]Ban, 0, len(b.keys))
	for _, ban := range b.keys {
		bans = append(bans, ban)
	}
	slices.SortFunc(bans, func(x, y Ban) int { return x.Since.Compare(y.Since) })
	var buf bytes.Buffer
	for _, ban := range bans {
		fmt.Fprintf(&buf, "%s %d %s\n", ban.Key, ban.Since.UnixMilli(), ban.Reason)
	}
	if err := atomicfile.Write(b.path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("save the ban list: %w", err)
	}
	return nil
}

// watch makes s close the sessions of each key banned from now on, until
// unwatch.
func (b *BanList) watch(s *Server) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.watchers[s] = struct{}{}
	b.mu.Unlock()
}

func (b *BanList) unwatch(s *Server) {
	if b == nil {
		return
	}
	b.mu.Lock()
	delete(b.watchers, s)
	b.mu.Unlock()
}

// refuseMessage is the validator's check of a channel message's author.
func (b *BanList) refuseMessage(author identity.PublicKey) error {
	if !b.Banned(author) {
		return nil
	}
	b.messages.Add(1)
	return errBannedAuthor
}

// refuseAnswer is the validator's check of each message of a history
// answer. An answer carrying a banned author's message is ignored whole:
// GossipSub forwards a message as it came or not at all, so the node can
// neither pass the answer on without that message nor deliver the rest
// without forwarding it. Its other messages reach this node's users in
// another member's answer, or not at all while every answer carries the
// banned author's.
func (b *BanList) refuseAnswer(author identity.PublicKey) error {
	if !b.Banned(author) {
		return nil
	}
	b.answers.Add(1)
	return errBannedAnswer
}

var errBannedAnswer = fmt.Errorf("history answer carries a message of an author banned by this node's operator: %w", p2p.ErrIgnore)

var errBannedAuthor = fmt.Errorf("author banned by this node's operator: %w", p2p.ErrIgnore)

// refuseLogin is the login's check, after the signature: only the key's
// owner learns that it is banned.
func (s *session) refuseLogin() *clientError {
	if !s.srv.cfg.Bans.Banned(s.key) {
		return nil
	}
	s.srv.cfg.Bans.logins.Add(1)
	e := errorf(codeBanned, "this node's operator has banned your key %s; other nodes may let you in", s.key)
	e.closes = true
	return e
}

// closeBanned closes the live sessions of a key just banned: an error
// banned, then the close, as other closing codes do.
func (s *Server) closeBanned(key identity.PublicKey) {
	s.identities.mu.Lock()
	sessions := s.identities.listLocked(key, 1)
	s.identities.mu.Unlock()
	for _, sess := range sessions {
		s.cfg.Bans.closed.Add(1)
		sess.shutdown(errorf(codeBanned, "this node's operator has banned your key %s", key))
	}
}

// registerBanMetrics registers the ban list's figures on reg: its size and
// what it refused, read at scrape time. A nil list registers nothing.
func registerBanMetrics(reg prometheus.Registerer, b *BanList) error {
	if b == nil {
		return nil
	}
	refused := func(what string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "darkchat_bans_refused_total",
			Help:        "What the node operator's ban list refused, by what: message (a banned author's channel message, not delivered or forwarded), history_answer (an answer carrying one), login (refused with code banned), session (closed when its key was banned).",
			ConstLabels: prometheus.Labels{"what": what}}, func() float64 { return float64(f()) })
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "darkchat_bans",
			Help: "Keys on the node operator's ban list (darkchatd console ban, unban, bans)."},
			func() float64 { return float64(b.Len()) }),
		refused("message", b.messages.Load),
		refused("history_answer", b.answers.Load),
		refused("login", b.logins.Load),
		refused("session", b.closed.Load),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
