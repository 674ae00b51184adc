package proto

import (
	"slices"
	"strconv"
	"unicode/utf8"

	"darkchat/identity"
)

// Objects written for every message, by hand: encoding/json with
// reflection cost most of a busy node's CPU in them (and of the benchmark's
// clients, which share the machine with the nodes they measure). Each is
// byte for byte what Encode makes of the same object (FuzzAppendMessageFrame
// holds them to it), so a peer cannot tell which path wrote an object.

// AppendOK appends the ok object for a message ID.
func AppendOK(b []byte, id string) []byte {
	b = slices.Grow(b, len(`{"type":"ok","id":""}`)+len(id))
	b = append(b, `{"type":"ok","id":`...)
	b = appendJSONString(b, id)
	return append(b, '}')
}

// AppendMessageFrame appends the message object (Message) that delivers
// msg to a client.
func AppendMessageFrame(b []byte, msg *identity.ChannelMessage) []byte {
	size := len(`{"type":"message","channel":"","username":"","key":"","body":"","ts":-9223372036854775808,"id":"","prev":"","refs":"","sig":""}`) + 2*identity.MaxCausalRefs*identity.ShortIDSize + 2*identity.ShortIDSize +
		len(msg.Channel) + len(msg.Username) + 2*len(msg.Author) + len(msg.Body) + 2*len(msg.ID) + 2*len(msg.Sig)
	b = slices.Grow(b, size+8)
	b = append(b, `{"type":"message","channel":`...)
	b = appendJSONString(b, msg.Channel)
	b = append(b, `,"username":`...)
	b = appendJSONString(b, msg.Username)
	b = append(b, `,"key":"`...)
	b = AppendHex(b, msg.Author[:])
	b = append(b, `","body":`...)
	b = appendJSONString(b, msg.Body)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, msg.Timestamp, 10)
	b = append(b, `,"id":"`...)
	b = AppendHex(b, msg.ID[:])
	b = append(b, '"')
	b = appendCausal(b, &msg.Causal)
	b = append(b, `,"sig":"`...)
	b = AppendHex(b, msg.Sig[:])
	return append(b, `"}`...)
}

// AppendSend appends the send object (Send) that hands the signed
// message m to a node: what NewSend and Encode make of it.
func AppendSend(b []byte, m *identity.ChannelMessage) []byte {
	size := len(`{"type":"send","channel":"","username":"","body":"","ts":-9223372036854775808,"id":"","prev":"","refs":"","sig":""}`) + 2*identity.MaxCausalRefs*identity.ShortIDSize + 2*identity.ShortIDSize +
		len(m.Channel) + len(m.Username) + len(m.Body) + 2*len(m.ID) + 2*len(m.Sig)
	b = slices.Grow(b, size+8)
	b = append(b, `{"type":"send","channel":`...)
	b = appendJSONString(b, m.Channel)
	b = append(b, `,"username":`...)
	b = appendJSONString(b, m.Username)
	b = append(b, `,"body":`...)
	b = appendJSONString(b, m.Body)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, m.Timestamp, 10)
	b = append(b, `,"id":"`...)
	b = AppendHex(b, m.ID[:])
	b = append(b, '"')
	b = appendCausal(b, &m.Causal)
	b = append(b, `,"sig":"`...)
	b = AppendHex(b, m.Sig[:])
	return append(b, `"}`...)
}

// EncodedPing and EncodedPong are the ping and pong objects as Encode
// writes them, for the many senders of either; they are shared, and must
// not be modified.
var (
	EncodedPing = []byte(`{"type":"ping"}`)
	EncodedPong = []byte(`{"type":"pong"}`)
)

// appendJSONString appends s as a JSON string exactly as encoding/json
// does with HTML escaping off: \, \" and the short escapes of \b \f \n
// \r \t, other control bytes as \u00xx, invalid UTF-8 as \ufffd, and
// U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
