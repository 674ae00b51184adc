package proto

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var identityTestTime = time.UnixMilli(1764086400123)

// Binary values are read in lowercase hex only; anything else, uppercase
// included, is refused with ErrHex.
func TestDecodeHex(t *testing.T) {
	var dst [3]byte
	for _, tc := range []struct {
		in   string
		want []byte
		ok   bool
	}{
		{"00ff7a", []byte{0x00, 0xff, 0x7a}, true},
		{"abcdef", []byte{0xab, 0xcd, 0xef}, true},
		{"00ff7A", nil, false},
		{"ABCDEF", nil, false},
		{"00ff7", nil, false},
		{"00ff7a00", nil, false},
		{"00fg7a", nil, false},
		{"  ff7a", nil, false},
	} {
		err := DecodeHex(dst[:], "id", tc.in)
		switch {
		case tc.ok && (err != nil || string(dst[:]) != string(tc.want)):
			t.Errorf("%q: got %x, %v", tc.in, dst, err)
		case !tc.ok && !errors.Is(err, ErrHex):
			t.Errorf("%q: accepted or wrong error %v", tc.in, err)
		}
	}
}

func TestParseKey(t *testing.T) {
	const key = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
	k, err := ParseKey(key)
	if err != nil || k.String() != key {
		t.Fatalf("ParseKey(%s) = %s, %v", key, k, err)
	}
	if _, err := ParseKey(strings.ToUpper(key)); !errors.Is(err, ErrHex) {
		t.Fatalf("uppercase key: %v, want ErrHex", err)
	}
}
