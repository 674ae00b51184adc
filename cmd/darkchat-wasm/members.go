//go:build js && wasm

package main

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"darkchat/client"
	"darkchat/identity"
)

// The page's member list beside the log: the users listed in each channel
// the session is in, seeded by a names request when a join is confirmed
// (on every reconnect too) and kept with the presence events.
const (
	// maxMembersShown bounds the members of one channel sent to the page
	// (sorted by name); the count says how many there are in all. A
	// channel may list 10,000 (the node's bound), more than a page should
	// render on each change.
	maxMembersShown = 500
	// membersTimeout bounds a names request.
	membersTimeout = 20 * time.Second
)

// memberEntry is one listed user, as the page gets it.
type memberEntry struct {
	key  string
	user string
}

// members holds the member lists; its lock is its own.
type members struct {
	mu    sync.Mutex
	chans map[string]map[identity.PublicKey]string // channel → key → username
}

// joined seeds channel's list with a names request, on its own goroutine:
// OnJoined runs on the session's reader, which the answer needs.
func (a *app) membersJoined(s *client.Session, channel, _ string) {
	go func() {
		ctx, cancel := context.WithTimeout(a.ctx, membersTimeout)
		defer cancel()
		list, err := s.Names(ctx, channel)
		if err != nil {
			return // the session ended, or the user left meanwhile
		}
		m := make(map[identity.PublicKey]string, len(list))
		for _, e := range list {
			if k, err := identity.ParsePublicKey(e.Key); err == nil {
				m[k] = client.Sanitize(e.Username)
			}
		}
		a.members.mu.Lock()
		if a.members.chans == nil {
			a.members.chans = make(map[string]map[identity.PublicKey]string)
		}
		a.members.chans[channel] = m
		a.members.mu.Unlock()
		a.sendMembers(channel)
	}()
}

// membersPresence applies a presence event.
func (a *app) membersPresence(e client.EventPresence) {
	a.members.mu.Lock()
	m := a.members.chans[e.Channel]
	if m == nil {
		a.members.mu.Unlock()
		return // not seeded yet: the names answer will have it
	}
	if e.State == "gone" {
		delete(m, e.Key)
	} else {
		m[e.Key] = client.Sanitize(e.Username)
	}
	a.members.mu.Unlock()
	a.sendMembers(e.Channel)
}

// membersLeft forgets a channel's list.
func (a *app) membersLeft(channel string) {
	a.members.mu.Lock()
	delete(a.members.chans, channel)
	a.members.mu.Unlock()
	a.sendMembers(channel)
}

// sendMembers sends the page channel's list: {kind: "members", channel,
// count, members: [{key, user}]}, sorted by name, at most
// maxMembersShown.
func (a *app) sendMembers(channel string) {
	a.members.mu.Lock()
	m := a.members.chans[channel]
	list := make([]memberEntry, 0, len(m))
	for k, u := range m {
		list = append(list, memberEntry{key: k.String(), user: u})
	}
	a.members.mu.Unlock()
	slices.SortFunc(list, func(x, y memberEntry) int {
		return cmp.Or(cmp.Compare(x.user, y.user), cmp.Compare(x.key, y.key))
	})
	count := len(list)
	if len(list) > maxMembersShown {
		list = list[:maxMembersShown]
	}
	out := outLine{at: time.Now(), kind: "members", count: count, members: list}
	out.Channel = channel
	a.lines <- out
}
