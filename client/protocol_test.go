package client

import (
	"errors"
	"strings"
	"testing"
)

const testKey = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"

// The client's protocol is package proto's (tested there); what the
// client adds is that its errors are proto's, so a caller of the client
// branches on client.ErrMalformed and friends whatever layer failed.
func TestDecodeErrorsAreTheClients(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []error
	}{
		{`{"type":"ping","pad":"` + strings.Repeat("x", MaxRecvSize) + `"}`, []error{ErrMalformed, ErrTooLarge}},
		{`{"type":"ok","id":"` + strings.ToUpper(testKey[:32]) + `"}`, []error{ErrMalformed}},
		{`{"type":"a_later_type"}`, []error{ErrUnknownType}},
	} {
		_, err := Decode([]byte(tc.in))
		for _, want := range tc.want {
			if !errors.Is(err, want) {
				t.Errorf("Decode(%.60s…) = %v, want an error wrapping %v", tc.in, err, want)
			}
		}
	}
}

// An error object closes the session when PROTOCOL.md says so, and only
// then: a whois's bad_key or a join's node_full leaves a logged-in session
// open.
func TestErrorClosesSession(t *testing.T) {
	for code, closes := range map[string]bool{
		"too_large": true, "slow_consumer": true, "idle_timeout": true, "too_many_errors": true,
		"bad_key": false, "node_full": false, "bad_signature": false, "rate_limited": false, "a_later_code": false,
	} {
		obj, err := Decode([]byte(`{"type":"error","code":"` + code + `","message":"m"}`))
		if err != nil {
			t.Fatal(err)
		}
		if got := obj.(*Error).ClosesSession(true); got != closes {
			t.Errorf("%s after welcome: closes %v, want %v", code, got, closes)
		}
	}
}
