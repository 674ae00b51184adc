package main

import (
	"log/slog"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestPrinterAddressChanges(t *testing.T) {
	a1 := ma.StringCast("/ip4/127.0.0.1/tcp/4001/p2p/" + selfID)
	a2 := ma.StringCast("/ip4/1.2.3.4/tcp/4001/p2p/" + selfID)
	var out syncBuffer
	p := &printer{w: &out}

	// Reported while the node starts: held back, then printed only if it
	// differs from the start-up list.
	p.addrsChanged([]ma.Multiaddr{a1})
	p.start([]string{"darkchatd cli node started", "Peer ID: " + selfID}, []string{a1.String()}, []string{"Admin socket: /s"})
	p.addrsChanged([]ma.Multiaddr{a1}) // unchanged: nothing printed
	p.addrsChanged([]ma.Multiaddr{a1, a2})
	want := "darkchatd cli node started\nPeer ID: " + selfID + "\nListening on:\n  " + a1.String() + "\nAdmin socket: /s\n" +
		"Addresses changed:\n  " + a1.String() + "\n  " + a2.String() + "\n"
	if out.String() != want {
		t.Fatalf("printout:\n%s\nwant:\n%s", out.String(), want)
	}

	out = syncBuffer{}
	p = &printer{w: &out}
	p.addrsChanged([]ma.Multiaddr{a2})
	p.start([]string{"h"}, []string{a1.String()}, nil)
	if want := "h\nListening on:\n  " + a1.String() + "\nAddresses changed:\n  " + a2.String() + "\n"; out.String() != want {
		t.Fatalf("a change during start-up:\n%s\nwant:\n%s", out.String(), want)
	}
}
