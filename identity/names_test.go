package identity_test

import (
	"errors"
	"strings"
	"testing"

	"darkchat/identity"
)

func TestValidateChannelName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"general", true},
		{"a", true},
		{"0", true},
		{"dev.go_1-x", true},
		{"a-", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"", false},
		{"General", false},
		{"Foo!", false},
		{"-dev", false},
		{".dev", false},
		{"_dev", false},
		{"dev chat", false},
		{"dev/chat", false},
		{"dév", false},
		{"dev\x00", false},
		{"dev\n", false},
	}
	for _, tt := range tests {
		err := identity.ValidateChannelName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateChannelName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, identity.ErrInvalidChannelName) {
			t.Errorf("ValidateChannelName(%q) error does not wrap ErrInvalidChannelName: %v", tt.name, err)
		}
	}
}

func TestValidateChannelNameMessage(t *testing.T) {
	err := identity.ValidateChannelName("Foo!")
	want := `invalid channel name "Foo!": must match [a-z0-9][a-z0-9._-]{0,63}`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	// Untrusted input is clipped in messages.
	err = identity.ValidateChannelName(strings.Repeat("X", 5000))
	if err == nil || len(err.Error()) > 200 {
		t.Errorf("long name error not clipped: %d bytes", len(err.Error()))
	}
}

func TestValidateUsername(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"A", true},
		{"9", true},
		{"Bob_2.x-Y", true},
		{strings.Repeat("U", 32), true},
		{strings.Repeat("U", 33), false},
		{"", false},
		{"_alice", false},
		{".alice", false},
		{"-alice", false},
		{"al ice", false},
		{"alice@general", false},
		{"ålice", false},
		{"alice\x1b[31m", false},
	}
	for _, tt := range tests {
		err := identity.ValidateUsername(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateUsername(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, identity.ErrInvalidUsername) {
			t.Errorf("ValidateUsername(%q) error does not wrap ErrInvalidUsername: %v", tt.name, err)
		}
	}
}
