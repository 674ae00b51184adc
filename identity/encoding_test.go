package identity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestEncoder(t *testing.T) {
	b := []byte("P\x00")
	b = append(b, 1)
	b = appendStr(b, "ab")
	b = appendBytes(b, nil)
	b = appendInt64(b, -2)
	b = append(b, 9, 9)
	want := "5000" + "01" + "00000002" + "6162" + "00000000" + "fffffffffffffffe" + "0909"
	if got := hex.EncodeToString(b); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}

	d := decoder{buf: b[2:]}
	if v := d.uint8("v"); v != 1 {
		t.Errorf("uint8 %d", v)
	}
	if s := d.bytes("s", 2); string(s) != "ab" {
		t.Errorf("bytes %q", s)
	}
	if s := d.bytes("empty", 0); len(s) != 0 {
		t.Errorf("empty %q", s)
	}
	if v := d.int64("i"); v != -2 {
		t.Errorf("int64 %d", v)
	}
	if r := d.raw("r", 2); !bytes.Equal(r, []byte{9, 9}) {
		t.Errorf("raw %v", r)
	}
	if err := d.finish(); err != nil {
		t.Error(err)
	}
}

func TestDecoderErrors(t *testing.T) {
	// Over the bound: rejected before looking at the remaining bytes.
	d := decoder{buf: []byte{0, 0, 0, 3, 'a', 'b', 'c'}}
	d.bytes("name", 2)
	if err := d.finish(); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "name is 3 bytes") {
		t.Errorf("bound: %v", err)
	}
	// Within the bound but past the end.
	d = decoder{buf: []byte{0, 0, 0, 9, 'a'}}
	d.bytes("name", 100)
	if err := d.finish(); err == nil || !strings.Contains(err.Error(), "truncated name: need 9 bytes, 1 left") {
		t.Errorf("past end: %v", err)
	}
	// The first error sticks; later reads return zero values.
	d = decoder{buf: []byte{1}}
	d.int64("first")
	if v := d.uint8("second"); v != 0 {
		t.Errorf("read after error returned %d", v)
	}
	if err := d.finish(); err == nil || !strings.Contains(err.Error(), "first") {
		t.Errorf("sticky: %v", err)
	}
	// Trailing bytes.
	d = decoder{buf: []byte{1, 2}}
	d.uint8("v")
	if err := d.finish(); err == nil || !strings.Contains(err.Error(), "1 unexpected bytes") {
		t.Errorf("trailing: %v", err)
	}
}

// The domain prefixes must be distinct, NUL-terminated, and none a prefix of
// another, so no signed statement of one purpose can start like another's.
func TestDomainPrefixes(t *testing.T) {
	all := []string{DomainLogin, DomainChannelMessage, DomainDM, DomainKeyBundle, DomainReceipt}
	for i, a := range all {
		if !strings.HasSuffix(a, "\x00") || strings.Count(a, "\x00") != 1 || !strings.HasPrefix(a, "darkchat/v1/") {
			t.Errorf("prefix %q: want darkchat/v1/<purpose> and one final NUL", a)
		}
		for j, b := range all {
			if i != j && strings.HasPrefix(a, b) {
				t.Errorf("%q starts with %q", a, b)
			}
		}
	}
}
