package command

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"darkchat/client"
	"darkchat/identity"
	"darkchat/internal/fifo"
)

// A username is a label its author chooses, so two keys may use one name
// in one channel. The interpreter then shows each with its fingerprint,
// "alice(8a88e3dd)@dev - hi", which no username can look like (a
// parenthesis is not allowed in one), and says once that the name is
// shared.
const (
	// FingerprintLen is how many hex digits of a key tell apart two users
	// of one name: 32 bits, so that an impostor must try about 2^32 keys
	// to copy a given user's, and short enough to read.
	FingerprintLen = 8

	// nameBookSize bounds the (channel, username) pairs remembered: a
	// thousand-member channel's names many times over, for an
	// interpreter's whole life. The pair seen longest ago is forgotten
	// first.
	nameBookSize = 16384

	// keysPerName bounds the keys remembered for one name in one channel;
	// beyond it the name is shared anyway and the oldest key is forgotten.
	keysPerName = 8
)

// Fingerprint is the short form of a key shown beside a shared name.
func Fingerprint(k identity.PublicKey) string { return k.String()[:FingerprintLen] }

type nameKey struct{ channel, user string }

// nameBook remembers which keys used each username in each channel the
// user saw a message in (and, through the presence of members, what the
// node says). It is safe for concurrent use.
type nameBook struct {
	mu    sync.Mutex
	names *fifo.Map[nameKey, []identity.PublicKey]
}

func newNameBook() *nameBook {
	return &nameBook{names: fifo.NewMap[nameKey, []identity.PublicKey](nameBookSize)}
}

// see records that key used user in channel. It returns the keys using
// the name there when key is new to it and makes it shared (two or more),
// for a notice; nil otherwise.
func (b *nameBook) see(channel, user string, key identity.PublicKey) (nowShared []identity.PublicKey) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := nameKey{channel, user}
	keys, _ := b.names.Get(k)
	if slices.Contains(keys, key) {
		return nil
	}
	if len(keys) >= keysPerName {
		keys = slices.Delete(slices.Clone(keys), 0, 1)
	}
	keys = append(slices.Clip(keys), key)
	b.names.Set(k, keys)
	if len(keys) < 2 {
		return nil
	}
	return slices.Clone(keys)
}

// shared reports whether more than one key used user in channel.
func (b *nameBook) shared(channel, user string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	keys, _ := b.names.Get(nameKey{channel, user})
	return len(keys) > 1
}

// keysNamed returns the keys that used user in any channel, without
// duplicates.
func (b *nameBook) keysNamed(user string, into []identity.PublicKey) []identity.PublicKey {
	b.mu.Lock()
	defer b.mu.Unlock()
	// The book is small enough to walk; ResolveUser runs once per typed
	// command, not per message.
	b.names.Range(func(k nameKey, keys []identity.PublicKey) {
		if k.user != user {
			return
		}
		for _, key := range keys {
			if !slices.Contains(into, key) {
				into = append(into, key)
			}
		}
	})
	return into
}

// displayName is how user, the name key used in channel, is shown: the
// name alone, or with the key's fingerprint when another key uses the
// name there too.
func (b *nameBook) displayName(channel, user string, key identity.PublicKey) string {
	if b.shared(channel, user) {
		return user + "(" + Fingerprint(key) + ")"
	}
	return user
}

// sharedNotice says that a name is used by several keys in a channel.
func sharedNotice(channel, user string, keys []identity.PublicKey) string {
	shown := make([]string, len(keys))
	for i, k := range keys {
		shown[i] = user + "(" + Fingerprint(k) + ")"
	}
	return fmt.Sprintf("-- %d users are named %s in %s: they are shown as %s", len(keys), user, channel, strings.Join(shown, ", "))
}

// sawName records that key used user in channel, and says so when the
// name becomes shared.
func (c *Interpreter) sawName(channel, user string, key identity.PublicKey) {
	if keys := c.names.see(channel, user, key); keys != nil {
		c.notice(client.Sanitize(sharedNotice(channel, user, keys)))
	}
}
