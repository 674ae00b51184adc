package bench

import (
	"context"
	"fmt"
	"time"
)

// HonestTraffic is what an honest user saw of n channel messages sent at
// rate through one running node's TCP gateway to a receiver on another's.
type HonestTraffic struct {
	Sent         int
	DeliveredPct float64
	P50, P99     time.Duration
}

// MeasureHonest logs in a sender at sendAddr and a receiver at recvAddr
// (TCP gateways of running nodes), waits until the channel carries
// messages between them, then sends n messages at rate per second and
// reports their one-way delays. Attack tests run it before and during an
// attack.
func MeasureHonest(ctx context.Context, sendAddr, recvAddr, channel string, n, rate int) (HonestTraffic, error) {
	send, err := loggedInClients(ctx, sendAddr, 1, "s", channel)
	if err != nil {
		return HonestTraffic{}, fmt.Errorf("honest sender at %s: %w", sendAddr, err)
	}
	defer closeAll(send)
	recv, err := loggedInClients(ctx, recvAddr, 1, "r", channel)
	if err != nil {
		return HonestTraffic{}, fmt.Errorf("honest receiver at %s: %w", recvAddr, err)
	}
	defer closeAll(recv)
	if err := probeRouteOn(ctx, channel, send[0], recv); err != nil {
		return HonestTraffic{}, err
	}
	lat, delivered, err := measureLatencyAt(ctx, send[0], recv[0], channel, n, rate)
	h := HonestTraffic{Sent: n, DeliveredPct: delivered}
	if len(lat) > 0 {
		h.P50, h.P99 = quantileOf(lat, 0.5), quantileOf(lat, 0.99)
	}
	return h, err
}

// quantileOf returns the q-quantile of sorted durations.
func quantileOf(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
