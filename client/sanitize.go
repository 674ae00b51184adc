package client

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Sanitize makes untrusted text (usernames, bodies, the node's error
// messages) safe to print as part of one terminal line:
//
//   - a line feed or carriage return becomes a visible \n or \r, so a body
//     can never start a line of its own (a forged "bob@lobby - …");
//   - a tab becomes a space;
//   - other control characters (C0, DEL, C1) become \xNN or \u00NN, so
//     no escape sequence reaches the terminal (they can move the cursor,
//     rewrite earlier lines, retitle the window or, on some terminals,
//     inject input);
//   - bidirectional controls and the Unicode line and paragraph separators
//     become \uNNNN, so text cannot be reordered or broken across lines
//     on display;
//   - invalid UTF-8 becomes U+FFFD.
//
// Everything else, emoji and other scripts included, is kept.
func Sanitize(s string) string {
	if isSafe(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case needsEscape(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return false
		}
		if c >= utf8.RuneSelf {
			return isSafeUnicode(s[i:])
		}
	}
	return true
}

func isSafeUnicode(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r < 0x20 || r == 0x7f || needsEscape(r) {
			return false
		}
		i += size
	}
	return true
}

// needsEscape reports the non-ASCII runes Sanitize escapes: C1 controls,
// bidirectional controls, and the line and paragraph separators.
func needsEscape(r rune) bool {
	return 0x80 <= r && r <= 0x9f || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r)
}
