//go:build js && wasm

package main

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"syscall/js"

	"darkchat/client/command"
	"darkchat/identity"
)

// The API's functions run on the browser's event loop: none of them
// blocks. Work that waits (connecting, sending) runs on the app's
// goroutines.

var (
	runningMu sync.Mutex
	running   *app
)

func installAPI(global js.Value) {
	api := js.Global().Get("Object").New()
	funcs := map[string]func(args []js.Value) any{
		"generateKey": apiGenerateKey,
		"parseKey":    apiParseKey,
		"start":       apiStart,
		"exec":        apiExec,
		"isCommand":   apiIsCommand,
		"exportKey":   apiExportKey,
		"reconnect":   apiReconnect,
	}
	for name, fn := range funcs {
		// Never released: the API lives as long as the page.
		api.Set(name, js.FuncOf(func(_ js.Value, args []js.Value) any { return fn(args) }))
	}
	global.Set("darkchat", api)
}

func errorResult(err error) any {
	return map[string]any{"error": err.Error()}
}

func arg(args []js.Value, i int) js.Value {
	if i < len(args) {
		return args[i]
	}
	return js.Undefined()
}

func stringArg(args []js.Value, i int) string {
	if v := arg(args, i); v.Type() == js.TypeString {
		return v.String()
	}
	return ""
}

func apiGenerateKey([]js.Value) any {
	k, err := identity.GenerateKey()
	if err != nil {
		return errorResult(err)
	}
	return string(identity.MarshalKeyFile(k))
}

// parseKeyText accepts key-file text as exported, or pasted with
// whitespace around it.
func parseKeyText(text string) (identity.PrivateKey, error) {
	return identity.ParseKeyFile([]byte(strings.TrimSpace(text)))
}

func apiParseKey(args []js.Value) any {
	k, err := parseKeyText(stringArg(args, 0))
	if err != nil {
		return errorResult(err)
	}
	return map[string]any{"pubkey": k.Public().String(), "key": string(identity.MarshalKeyFile(k))}
}

func apiStart(args []js.Value) any {
	opts := arg(args, 0)
	if opts.Type() != js.TypeObject {
		return errorResult(fmt.Errorf("start: want an object {url, fallbacks, keyText, unlisted, onLine, onState}"))
	}
	str := func(name string) string {
		if v := opts.Get(name); v.Type() == js.TypeString {
			return v.String()
		}
		return ""
	}
	key, err := parseKeyText(str("keyText"))
	if err != nil {
		return errorResult(fmt.Errorf("start: keyText: %w", err))
	}
	urls := []string{str("url")}
	if fb := opts.Get("fallbacks"); fb.Type() != js.TypeUndefined && fb.Type() != js.TypeNull {
		if !js.Global().Get("Array").Call("isArray", fb).Bool() || fb.Length() > command.MaxFallbacks {
			return errorResult(fmt.Errorf("start: fallbacks must be an array of at most %d WebSocket URLs", command.MaxFallbacks))
		}
		for i := range fb.Length() {
			u := fb.Index(i)
			if u.Type() != js.TypeString || !isWebSocketURL(u.String()) {
				return errorResult(fmt.Errorf("start: fallback %d is not a ws:// or wss:// URL", i+1))
			}
			urls = append(urls, u.String())
		}
	}
	onLine, onState := opts.Get("onLine"), opts.Get("onState")
	if onLine.Type() != js.TypeFunction || onState.Type() != js.TypeFunction {
		return errorResult(fmt.Errorf("start: onLine and onState must be functions"))
	}
	runningMu.Lock()
	defer runningMu.Unlock()
	if running != nil {
		return errorResult(fmt.Errorf("start: already started"))
	}
	unlisted := opts.Get("unlisted").Truthy()
	a, err := newApp(key, urls, unlisted, onLine, onState)
	if err != nil {
		return errorResult(fmt.Errorf("start: %w", err))
	}
	running = a
	a.start()
	return map[string]any{"pubkey": key.Public().String()}
}

// isWebSocketURL reports whether s is an absolute ws:// or wss:// URL.
func isWebSocketURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "ws" || u.Scheme == "wss") && u.Host != ""
}

func current() *app {
	runningMu.Lock()
	defer runningMu.Unlock()
	return running
}

func apiExec(args []js.Value) any {
	if a := current(); a != nil {
		in := input{line: stringArg(args, 0)}
		if open := arg(args, 1); open.Type() == js.TypeString {
			in.open, in.hasOpen = open.String(), true
		}
		a.exec(in)
	}
	return nil
}

func apiIsCommand(args []js.Value) any {
	return isCommand(stringArg(args, 0))
}

// isCommand reports whether word is a command name. The parser reads
// "<word> x" as a message to channel <word> unless word is a command (whose
// arguments may then be wrong, which is an error).
func isCommand(word string) bool {
	if word == "" || strings.ContainsAny(word, " \t") {
		return false
	}
	cmd, err := command.Parse(word + " x")
	return err != nil || cmd.Name != "say"
}

func apiExportKey([]js.Value) any {
	if a := current(); a != nil {
		return string(identity.MarshalKeyFile(a.key))
	}
	return nil
}

func apiReconnect([]js.Value) any {
	if a := current(); a != nil {
		a.wakeUp()
	}
	return nil
}
