//go:build js && wasm

package main

import (
	"errors"
	"syscall/js"

	"darkchat/identity"
)

// localIgnore keeps the user's ignore list (command.IgnoreStore) in the
// browser's localStorage, beside the identity the page keeps there
// (darkchat.identity), under darkchat.ignore.<public key>: a list per
// identity, as the CLI keeps one per key file. The value is the list's
// text, one key a line.
type localIgnore struct{ item string }

func newLocalIgnore(key identity.PublicKey) localIgnore {
	return localIgnore{item: "darkchat.ignore." + key.String()}
}

// storage is localStorage, or an error where the page may not use it
// (private modes, storage disabled): the list then lasts for the page.
func storage() (js.Value, error) {
	var st js.Value
	err := catch(func() { st = js.Global().Get("localStorage") })
	if err == nil && (st.IsUndefined() || st.IsNull()) {
		err = errors.New("this browser keeps no localStorage")
	}
	return st, err
}

func (l localIgnore) LoadIgnored() ([]byte, error) {
	st, err := storage()
	if err != nil {
		return nil, err
	}
	var v js.Value
	if err := catch(func() { v = st.Call("getItem", l.item) }); err != nil {
		return nil, err
	}
	if v.Type() != js.TypeString {
		return nil, nil // never saved
	}
	return []byte(v.String()), nil
}

func (l localIgnore) SaveIgnored(data []byte) error {
	st, err := storage()
	if err != nil {
		return err
	}
	return catch(func() { st.Call("setItem", l.item, string(data)) })
}

// catch runs f, turning a JavaScript exception (localStorage throws when
// it is disabled or full) into an error.
func catch(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if jsErr, ok := r.(js.Error); ok {
				err = jsErr
				return
			}
			err = errors.New("localStorage failed")
		}
	}()
	f()
	return nil
}
