package command

import (
	"fmt"
	"testing"

	"darkchat/client"
)

func TestDMReason(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w 00ff", client.ErrUnknownUser), "unknown recipient: no key bundle"},
		{client.ErrRecipientOffline, "recipient offline"},
		{fmt.Errorf("%w within %v", client.ErrNoReceipt, client.DefaultReceiptTimeout), "recipient offline: timed out: no receipt within 10s"},
		{client.ErrConnectionLost, "connection lost before a receipt"},
		{&client.Error{Code: "rate_limited", Message: "over\nthe rate"}, `refused by the node: over\nthe rate`},
	} {
		if got := dmReason(tt.err); got != tt.want {
			t.Errorf("dmReason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
