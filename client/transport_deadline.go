//go:build !js

package client

import (
	"context"
	"errors"
	"net"
	"time"
)

// aLongTimeAgo is a deadline in the past: setting it makes a blocked read
// or write return at once.
var aLongTimeAgo = time.Unix(1, 0)

// bindDeadline applies ctx's deadline to a connection through set (a
// SetReadDeadline or SetWriteDeadline), and cancellation by moving the
// deadline into the past. The returned function must be called when the I/O
// is done; it waits for a racing cancellation so that it cannot leak into
// the next call's deadline.
func bindDeadline(ctx context.Context, set func(time.Time) error) (release func()) {
	deadline, _ := ctx.Deadline() // zero: no deadline
	set(deadline)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		set(aLongTimeAgo)
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired
		}
	}
}

// ctxErr prefers ctx's error to the timeout its deadline or cancellation
// caused. The connection's deadline can fire just before ctx's own timer.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var ne net.Error
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) && errors.As(err, &ne) && ne.Timeout() {
		return context.DeadlineExceeded
	}
	return err
}
