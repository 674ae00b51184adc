package client

import (
	"fmt"
	"testing"
)

func TestDMReason(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w 00ff", ErrUnknownUser), "unknown recipient: no key bundle"},
		{ErrRecipientOffline, "recipient offline"},
		{fmt.Errorf("%w within %v", ErrNoReceipt, DefaultReceiptTimeout), "timed out: no receipt within 10s"},
		{ErrConnectionLost, "connection lost before a receipt"},
		{&Error{Code: "rate_limited", Message: "over\nthe rate"}, `refused by the node: over\nthe rate`},
	} {
		if got := dmReason(tt.err); got != tt.want {
			t.Errorf("dmReason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
