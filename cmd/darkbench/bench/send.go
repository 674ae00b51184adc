package bench

import (
	"errors"
	"fmt"
	"time"

	"darkchat/proto"
)

// windowedSend sends n requests over c, built by build into buf, with at
// most window of them awaiting their acknowledgement (frames of type ack),
// and waits while ahead(seq) says the receivers are too far behind (the
// end-to-end window). It flushes whenever it would wait. who names the
// sender in errors.
func windowedSend(c *protoClient, who, ack string, n, window int, stalled <-chan struct{},
	ahead func(seq int) bool, build func(buf []byte, seq int) ([]byte, error)) error {
	sem := make(chan struct{}, window)
	acks := make(chan error, 1)
	go func() {
		for got := 0; got < n; {
			f, err := c.next()
			if err != nil {
				acks <- fmt.Errorf("%s after %d %s: %w", who, got, ack, err)
				return
			}
			switch {
			case isType(f, ack):
				got++
				<-sem
			case isType(f, "error"):
				acks <- fmt.Errorf("%s: %s", who, f)
				return
			case isType(f, "ping"):
				c.write(proto.EncodedPong)
			}
		}
		acks <- nil
	}()
	var buf []byte
	for seq := range n {
		if ahead(seq) {
			if err := c.flush(); err != nil {
				return err
			}
			for ahead(seq) {
				select {
				case <-stalled:
					return fmt.Errorf("%s: receivers stalled at %d", who, seq)
				case <-time.After(100 * time.Microsecond):
				}
			}
		}
		select {
		case sem <- struct{}{}:
		default:
			if err := c.flush(); err != nil {
				return err
			}
			select {
			case sem <- struct{}{}:
			case <-stalled:
				return fmt.Errorf("%s stalled at %d", who, seq)
			case err := <-acks:
				if err == nil {
					err = fmt.Errorf("%s: more %s than requests", who, ack)
				}
				return err
			}
		}
		var err error
		if buf, err = build(buf[:0], seq); err != nil {
			return err
		}
		if err := c.queue(buf); err != nil {
			return err
		}
	}
	if err := c.flush(); err != nil {
		return err
	}
	select {
	case err := <-acks:
		return err
	case <-stalled:
		return errors.New(who + ": " + ack + " stalled")
	}
}
