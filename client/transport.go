package client

import "context"

// Transport carries whole protocol objects, one per call, in either
// framing. Send and Recv may be called concurrently with each other, and
// Send concurrently with itself; Recv has one caller at a time (a Session's
// reader). Close is idempotent and unblocks both.
//
// When ctx ends during Send or Recv the call returns ctx's error and the
// transport may have lost part of an object: the caller must Close it.
type Transport interface {
	// Send writes one encoded object (without a line end).
	Send(ctx context.Context, obj []byte) error
	// Recv returns the next object, at most MaxRecvSize bytes. A longer
	// one is an error wrapping ErrTooLarge, and the transport is then
	// unusable (a line-framed stream cannot be resynchronised).
	Recv(ctx context.Context) ([]byte, error)
	Close() error
}
