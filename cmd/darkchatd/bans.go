package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"darkchat/gateway"
)

// The operator's ban list on the console and through ctl: ban, unban and
// bans. The list itself (what a ban does, its file and its bounds) is
// gateway.BanList's.

// loadBans opens the ban list in the node's data dir dir, or keeps one in
// memory when the node has none ("": an ephemeral node).
func loadBans(dir string) (*gateway.BanList, error) {
	if dir == "" {
		return gateway.NewBanList(), nil
	}
	return gateway.LoadBanList(filepath.Join(dir, gateway.BansFile))
}

const (
	banUsage   = "usage: ban <public-key> [reason]"
	unbanUsage = "usage: unban <public-key>"
)

func (c *console) ban(_ context.Context, args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, errors.New("ban: which key? " + banUsage)
	}
	if c.bans == nil {
		return nil, errors.New("ban: this node keeps no ban list")
	}
	key, err := gateway.ParseBanKey(args[0])
	if err != nil {
		return nil, fmt.Errorf("ban: %q is not a public key (64 hex digits)", args[0])
	}
	reason := strings.Join(args[1:], " ")
	if err := gateway.CheckBanReason(reason); err != nil {
		return nil, fmt.Errorf("ban: %w", err)
	}
	added, err := c.bans.Ban(key, reason, time.Now())
	if errors.Is(err, gateway.ErrTooManyBans) {
		return nil, fmt.Errorf("ban: %w; unban some first", err)
	}
	if err != nil {
		return nil, fmt.Errorf("ban: %w", err)
	}
	k := args[0]
	if !added {
		b, _ := c.bans.Lookup(key)
		return []string{fmt.Sprintf("%s is already banned (since %s)", strings.ToLower(k), b.Since.UTC().Format(time.RFC3339))}, nil
	}
	c.logger().Info("operator banned a key", "key", strings.ToLower(k), "reason", reason, "bans", c.bans.Len())
	out := []string{fmt.Sprintf("Banned %s: its channel messages are no longer delivered or forwarded by this node, and its logins are refused", strings.ToLower(k))}
	if c.bans.Path() == "" {
		out = append(out, "This node has no data dir: the ban lasts until it stops")
	}
	return out, nil
}

func (c *console) unban(_ context.Context, args []string) ([]string, error) {
	if len(args) != 1 {
		return nil, errors.New("unban: " + unbanUsage)
	}
	if c.bans == nil {
		return nil, errors.New("unban: this node keeps no ban list")
	}
	key, err := gateway.ParseBanKey(args[0])
	if err != nil {
		return nil, fmt.Errorf("unban: %q is not a public key (64 hex digits)", args[0])
	}
	removed, err := c.bans.Unban(key)
	if err != nil {
		return nil, fmt.Errorf("unban: %w", err)
	}
	if !removed {
		return nil, fmt.Errorf("unban: %s is not banned", strings.ToLower(args[0]))
	}
	c.logger().Info("operator unbanned a key", "key", strings.ToLower(args[0]), "bans", c.bans.Len())
	return []string{"Unbanned " + strings.ToLower(args[0])}, nil
}

// bansList is `bans`: "BANNED KEYS (N):", then "<n>. <key> <since> <reason>"
// a line, oldest first; "No Banned Keys" when there are none.
func (c *console) bansList(_ context.Context, args []string) ([]string, error) {
	if err := noArgs("bans", args); err != nil {
		return nil, err
	}
	bans := c.bans.List()
	if len(bans) == 0 {
		return []string{"No Banned Keys"}, nil
	}
	out := make([]string, 0, len(bans)+1)
	out = append(out, fmt.Sprintf("BANNED KEYS (%d):", len(bans)))
	for i, b := range bans {
		line := fmt.Sprintf("%d. %s %s", i+1, b.Key, b.Since.UTC().Format(time.RFC3339))
		if b.Reason != "" {
			line += " " + b.Reason
		}
		out = append(out, line)
	}
	return out, nil
}

func (c *console) logger() *slog.Logger {
	if c.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.log
}
