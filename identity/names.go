package identity

import "fmt"

const (
	// MaxChannelLen is the longest channel name, in bytes (all ASCII).
	MaxChannelLen = 64
	// MaxUsernameLen is the longest username, in bytes (all ASCII).
	MaxUsernameLen = 32
)

// The rules, as written in error messages and docs.
const (
	channelNameRule = "[a-z0-9][a-z0-9._-]{0,63}"
	usernameRule    = "1 to 32 characters from [A-Za-z0-9._-], starting with a letter or digit"
)

// ValidateChannelName checks s against [a-z0-9][a-z0-9._-]{0,63}. Channel
// names are lowercase ASCII so that two names that look alike are the same
// channel (no case or Unicode look-alikes), and they are safe in topic names,
// file names and terminal output.
func ValidateChannelName(s string) error {
	ok := len(s) >= 1 && len(s) <= MaxChannelLen && isLowerAlnum(s[0])
	for i := 1; ok && i < len(s); i++ {
		c := s[i]
		ok = isLowerAlnum(c) || c == '.' || c == '_' || c == '-'
	}
	if !ok {
		return fmt.Errorf("%w %q: must match %s", ErrInvalidChannelName, clip(s), channelNameRule)
	}
	return nil
}

// ValidateUsername checks that s is 1..32 characters from [A-Za-z0-9._-]
// starting with a letter or digit. Usernames are display labels chosen by
// the author (the public key is the identity), kept to ASCII so they cannot
// carry terminal escapes or mimic the "user@channel - " output format.
func ValidateUsername(s string) error {
	ok := len(s) >= 1 && len(s) <= MaxUsernameLen && isAlnum(s[0])
	for i := 1; ok && i < len(s); i++ {
		c := s[i]
		ok = isAlnum(c) || c == '.' || c == '_' || c == '-'
	}
	if !ok {
		return fmt.Errorf("%w %q: must be %s", ErrInvalidUsername, clip(s), usernameRule)
	}
	return nil
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
func isAlnum(c byte) bool      { return isLowerAlnum(c) || 'A' <= c && c <= 'Z' }

// clip shortens untrusted input quoted in an error message, so a 4 KiB name
// does not become a 4 KiB error line.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
