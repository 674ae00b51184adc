package client

import "testing"

func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"hello", "hello"},
		{"héllo wörld 👋🏽 日本", "héllo wörld 👋🏽 日本"},
		{"👨‍👩‍👧", "👨‍👩‍👧"}, // zero-width joiners are kept
		{"a\nbob@lobby - forged", `a\nbob@lobby - forged`},
		{"a\r\nb", `a\r\nb`},
		{"tab\there", "tab here"},
		{"\x1b[2J\x1b]0;title\x07", `\x1b[2J\x1b]0;title\x07`},
		{"del\x7f", `del\x7f`},
		{"nul\x00", `nul\x00`},
		{"c1\u009b31m", `c1\u009b31m`},
		{"bidi \u202egnp.exe", `bidi \u202egnp.exe`},
		{"isolate \u2066x\u2069", `isolate \u2066x\u2069`},
		{"sep\u2028x\u2029", `sep\u2028x\u2029`},
		{"bad \xff\xfe utf8", "bad \ufffd\ufffd utf8"},
	}
	for _, tt := range tests {
		if got := Sanitize(tt.in); got != tt.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzSanitize: the output never holds a control character, a bidi
// control or invalid UTF-8, whatever the input.
func FuzzSanitize(f *testing.F) {
	f.Add("a\nb\x1b[31m\u202e\xff")
	f.Fuzz(func(t *testing.T, s string) {
		out := Sanitize(s)
		if !isSafe(out) {
			t.Fatalf("Sanitize(%q) = %q, not safe", s, out)
		}
	})
}
