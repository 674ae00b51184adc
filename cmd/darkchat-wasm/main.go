//go:build js && wasm

// Command darkchat-wasm is the darkchat client core (package client)
// compiled to WebAssembly for the browser page in package web. It runs the
// same command interpreter as the command-line client, over the browser's
// WebSocket (client.DialWS in its js build), and exposes a small API to the
// page's JavaScript as the global object darkchat:
//
//	darkchat.generateKey() → string
//	    a new identity as key-file text ("darkchat-identity-v1\n<seed hex>\n",
//	    the format of the CLI's --key file), from crypto.getRandomValues
//	darkchat.parseKey(text) → {pubkey, key} | {error}
//	    checks key-file text; key is its canonical form
//	darkchat.start({url, fallbacks, keyText, unlisted, onLine, onState}) → {pubkey} | {error}
//	    connects to url (ws:// or wss://…/ws; fallbacks: other nodes' URLs
//	    to move to when it is gone), logs in (unlisted: kept out of the
//	    channels' member lists), and from then on
//	    reconnects with backoff whenever the connection ends, joining the
//	    channels it was in again. onLine(line) receives every output line,
//	    onState(state) every change of the connection state (see lines.go)
//	darkchat.exec(line[, open])
//	    runs one input line exactly as the CLI would; lines run in order.
//	    open, when given, is the channel the page shows ("" for none): the
//	    line runs with it as the current channel
//	darkchat.isCommand(word) → bool
//	    whether word is a command name (else "<word> …" sends to a channel)
//	darkchat.exportKey() → string
//	    the running identity as key-file text
//	darkchat.reconnect()
//	    retries at once when waiting to reconnect
//
// When the API is installed the program dispatches the event
// "darkchat-ready" on globalThis.
package main

import "syscall/js"

func main() {
	installAPI(js.Global())
	js.Global().Call("dispatchEvent", js.Global().Get("Event").New("darkchat-ready"))
	// The page owns the program's lifetime: the API's callbacks need the
	// Go runtime alive until the page goes away, and nothing ends it
	// earlier.
	<-make(chan struct{})
}
