//go:build js && wasm

package main

import (
	"strings"
	"syscall/js"

	"darkchat/client/command"
)

// lineValue is the page's view of one output line:
//
//	{kind, text, time, own?, channel?, user?, body?, author?, peer?, late?, ts?, mark?}
//
// kind is "message" (a channel message or a DM: "<user>@<channel> - <body>"),
// "error" ("ERROR: …"), "notice" (anything else, DM statuses included) or
// "status" (a failed automatic reconnect, shown as connection status rather
// than in the log). text is the line exactly as the CLI prints it, already
// sanitised. For a message the parts are given too, so the page can colour
// the user by author (the public key, hex); a DM's channel is
// "private(<sender key>)" and peer is the sender's key. author is also set
// on a DM status line: the recipient. own marks the echo of the user's own
// message (see app.echo); for a DM, peer is then the recipient. time is
// Unix milliseconds, when the line was produced. late marks a message that
// answers a history request: ts is its author's time (Unix milliseconds)
// and mark the text before the parts ("[late 14:03] "), so that mark,
// user, "@", channel, " - " and body still add up to text.
//
// All of it is untrusted text: the page must insert it as text, never as
// HTML.
//
// News about the user's own channel messages comes as
//
//	{kind: "sent", channel, id}              the last echo for channel was sent as id
//	{kind: "seen", channel, id, count, by}   id has been seen by count members (usernames by)
//	{kind: "members", channel, count, members: [{key, user}]}
//	                                         the users listed in channel (count in all; the
//	                                         first 500 by name), on join and on each change
func lineValue(l outLine) js.Value {
	if l.kind != "" {
		v := map[string]any{"kind": l.kind, "channel": l.Channel, "id": l.id, "time": l.at.UnixMilli()}
		if l.kind == "members" {
			ms := make([]any, len(l.members))
			for i, m := range l.members {
				ms[i] = map[string]any{"key": m.key, "user": m.user}
			}
			v["count"] = l.count
			v["members"] = ms
		}
		if l.kind == "seen" {
			by := make([]any, len(l.by))
			for i, u := range l.by {
				by[i] = u
			}
			v["count"] = l.count
			v["by"] = by
		}
		return js.ValueOf(v)
	}
	v := map[string]any{
		"kind": kindName(l.Kind),
		"text": l.Text,
		"time": l.at.UnixMilli(),
	}
	if l.status {
		v["kind"] = "status"
	}
	if !l.Author.IsZero() {
		v["author"] = l.Author.String()
	}
	if l.Kind == command.LineMessage {
		v["channel"] = l.Channel
		v["user"] = l.User
		v["body"] = l.Body
		if peer, ok := strings.CutPrefix(l.Channel, "private("); ok {
			v["peer"] = strings.TrimSuffix(peer, ")")
		}
		if !l.Time.IsZero() {
			// The author's signed time: the page shows it, in the
			// viewer's local time.
			v["ts"] = l.Time.UnixMilli()
		}
		if l.Late {
			v["late"] = true
			v["mark"] = l.Mark
		}
		if l.Action {
			v["action"] = true
		}
	}
	if l.own {
		v["own"] = true
		if l.peer != "" {
			v["peer"] = l.peer
		}
	}
	return js.ValueOf(v)
}

func kindName(k command.LineKind) string {
	switch k {
	case command.LineError:
		return "error"
	case command.LineMessage:
		return "message"
	}
	return "notice"
}

// stateValue is the page's view of the connection:
//
//	{state, pubkey, node, name, channels: [{name, username}], retryIn, attempt}
//
// state is "connecting", "ready", "reconnecting" or "offline"; retryIn
// (milliseconds) says when the next attempt comes while reconnecting.
func stateValue(st state) js.Value {
	chans := make([]any, 0, len(st.Channels))
	for _, c := range st.Channels {
		name, user, _ := strings.Cut(c, " ")
		chans = append(chans, map[string]any{"name": name, "username": user})
	}
	return js.ValueOf(map[string]any{
		"state":    st.Status,
		"pubkey":   st.PubKey,
		"node":     st.Node,
		"name":     st.Name,
		"channels": chans,
		"retryIn":  st.RetryIn.Milliseconds(),
		"attempt":  st.Attempt,
	})
}
