package command

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"

	"darkchat/identity"
)

// The user's ignore list: `ignore <key|name>` hides that user's channel
// messages and direct messages from this client, `unignore` shows them
// again, `ignore` alone lists the keys. It is the user's own filter: the
// node and the other members see nothing of it, and the ignored user's
// messages still reach the channel (and this client's store, so that
// history answers and gap repair go on as before). An ignored sender's
// DM gets no receipt: its sender sees it as not delivered, which is true,
// rather than being told "delivered".
//
// The list lasts across runs through an IgnoreStore: the CLI keeps it in a
// file beside the identity file, the browser in localStorage.

// MaxIgnored bounds the ignore list. A person ignores a few users; a
// thousand keys is a 65 KB file, checked with a map lookup per message.
// Beyond it ignore fails with an error (unignore some first): dropping an
// older entry would show someone the user asked not to see.
const MaxIgnored = 1000

// IgnoreStore keeps the ignore list between runs. Load returns what Save
// last stored (nothing, the first time); Save replaces it. The list is
// FormatIgnored's text: one key a line.
type IgnoreStore interface {
	LoadIgnored() ([]byte, error)
	SaveIgnored([]byte) error
}

// maxIgnoredText bounds the stored list's text: a key and a line end per
// entry.
const maxIgnoredText = MaxIgnored * (2*identity.PublicKeySize + 1)

// ParseIgnored reads an ignore list stored as FormatIgnored writes it:
// one public key a line; blank lines and lines starting with # are
// skipped.
func ParseIgnored(data []byte) ([]identity.PublicKey, error) {
	if len(data) > maxIgnoredText+64*1024 { // room for comments and blank lines
		return nil, fmt.Errorf("ignore list: over %d bytes", maxIgnoredText)
	}
	var keys []identity.PublicKey
	seen := make(map[identity.PublicKey]bool)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := identity.ParsePublicKey(strings.ToLower(line))
		if err != nil {
			return nil, fmt.Errorf("ignore list line %d: %w", n, err)
		}
		if seen[k] {
			continue
		}
		if len(keys) >= MaxIgnored {
			return nil, fmt.Errorf("ignore list: over %d keys", MaxIgnored)
		}
		seen[k] = true
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ignore list: %w", err)
	}
	return keys, nil
}

// FormatIgnored is the stored form of an ignore list: one key a line.
func FormatIgnored(keys []identity.PublicKey) []byte {
	var b bytes.Buffer
	for _, k := range keys {
		b.WriteString(k.String())
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ignoreList is the Interpreter's ignore list. Sessions ask it about every
// message and DM (from their readers); commands change it.
type ignoreList struct {
	store IgnoreStore // nil: kept in memory only

	mu    sync.RWMutex
	keys  []identity.PublicKey // in the order ignored
	index map[identity.PublicKey]struct{}
}

// newIgnoreList loads the list from store. A list that cannot be read
// starts empty, and the error is returned for the user to see.
func newIgnoreList(store IgnoreStore) (*ignoreList, error) {
	l := &ignoreList{store: store, index: make(map[identity.PublicKey]struct{})}
	if store == nil {
		return l, nil
	}
	data, err := store.LoadIgnored()
	if err != nil {
		return l, fmt.Errorf("ignore list: %w", err)
	}
	keys, err := ParseIgnored(data)
	if err != nil {
		return l, err
	}
	l.keys = keys
	for _, k := range keys {
		l.index[k] = struct{}{}
	}
	return l, nil
}

// has reports whether key is ignored. It is safe on a nil list.
func (l *ignoreList) has(key identity.PublicKey) bool {
	if l == nil {
		return false
	}
	l.mu.RLock()
	_, ok := l.index[key]
	l.mu.RUnlock()
	return ok
}

func (l *ignoreList) list() []identity.PublicKey {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return slices.Clone(l.keys)
}

var errIgnoreFull = fmt.Errorf("your ignore list is full (%d keys): unignore someone first", MaxIgnored)

// add ignores key, saving the list; false if it was ignored already.
func (l *ignoreList) add(key identity.PublicKey) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.index[key]; ok {
		return false, nil
	}
	if len(l.keys) >= MaxIgnored {
		return false, errIgnoreFull
	}
	keys := append(slices.Clip(l.keys), key)
	if err := l.saveLocked(keys); err != nil {
		return false, err
	}
	l.keys = keys
	l.index[key] = struct{}{}
	return true, nil
}

// remove stops ignoring key, saving the list; false if it was not ignored.
func (l *ignoreList) remove(key identity.PublicKey) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.index[key]; !ok {
		return false, nil
	}
	keys := withoutKey(l.keys, key)
	if err := l.saveLocked(keys); err != nil {
		return false, err
	}
	l.keys = keys
	delete(l.index, key)
	return true, nil
}

func (l *ignoreList) saveLocked(keys []identity.PublicKey) error {
	if l.store == nil {
		return nil
	}
	if err := l.store.SaveIgnored(FormatIgnored(keys)); err != nil {
		return fmt.Errorf("save your ignore list: %w", err)
	}
	return nil
}

// ignore is the ignore command: with no argument it lists the ignored
// keys ("IGNORED USERS (N):", then "<n>. <key>" a line, or "No Ignored
// Users"), else it ignores a key or a name seen in the user's channels.
func (c *Interpreter) ignore(args []string) {
	if len(args) == 0 {
		keys := c.ignored.list()
		if len(keys) == 0 {
			c.notice("No Ignored Users")
			return
		}
		c.notice(fmt.Sprintf("IGNORED USERS (%d):", len(keys)))
		for i, k := range keys {
			c.notice(fmt.Sprintf("%d. %s", i+1, k))
		}
		return
	}
	k, ok := c.userKey(args[0])
	if !ok {
		return
	}
	if k == c.cfg.Key.Public() {
		c.errorf("you cannot ignore yourself")
		return
	}
	added, err := c.ignored.add(k)
	switch {
	case err != nil:
		c.errorf("%v", err)
	case !added:
		c.notice(k.String() + " is already ignored")
	default:
		c.notice("Ignoring " + k.String() + ": their channel messages and direct messages are hidden, and their direct messages get no receipt (they see them as not delivered)")
	}
}

// unignore is the unignore command.
func (c *Interpreter) unignore(arg string) {
	k, ok := c.userKey(arg)
	if !ok {
		return
	}
	removed, err := c.ignored.remove(k)
	switch {
	case err != nil:
		c.errorf("%v", err)
	case !removed:
		c.errorf("%s is not ignored (type ignore for the list)", k)
	default:
		c.notice("No longer ignoring " + k.String())
	}
}
