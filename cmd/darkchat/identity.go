package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"darkchat/identity"
)

// keygen creates an identity and refuses to replace one: a key file is the
// identity, and overwriting it would lose the user's address for good.
func keygen(args []string, stdout, stderr io.Writer) error {
	flagKey, _, err := parseKeyCommand("keygen", 0, args, stdout)
	if err != nil {
		return err
	}
	path, err := keyPath(flagKey)
	if err != nil {
		return err
	}
	k, err := identity.CreateKeyFile(path)
	if errors.Is(err, identity.ErrKeyFileExists) {
		return fmt.Errorf("keygen: an identity already exists at %s; refusing to overwrite it (use --key FILE for another one)", path)
	}
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintf(stdout, "Created identity %s\nYour PUBLIC KEY : %s\n", path, k.Public())
	return nil
}

// printID prints the public key alone on one line, for scripts.
func printID(args []string, stdout, stderr io.Writer) error {
	flagKey, _, err := parseKeyCommand("id", 0, args, stdout)
	if err != nil {
		return err
	}
	k, err := loadKey(flagKey, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, k.Public())
	return nil
}

// signChallenge prints the login signature for a challenge, offline: the
// challenge names the node and the expiry itself, so nothing else is
// needed (the seed's manual flow).
func signChallenge(args []string, stdout, stderr io.Writer) error {
	flagKey, pos, err := parseKeyCommand("sign", 1, args, stdout)
	if err != nil {
		return err
	}
	challenge := strings.Trim(pos[0], `"`) // as copied from VERIFY : "…"
	if _, err := identity.ParseChallenge(challenge); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	k, err := loadKey(flagKey, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, hex.EncodeToString(identity.SignLogin(k, challenge)))
	return nil
}

// loadKey loads the identity, creating it on first use; the notice goes
// to stderr so stdout stays machine-readable.
func loadKey(flagKey string, stderr io.Writer) (identity.PrivateKey, error) {
	path, err := keyPath(flagKey)
	if err != nil {
		return identity.PrivateKey{}, err
	}
	k, created, err := identity.LoadOrCreateKeyFile(path)
	if err != nil {
		return identity.PrivateKey{}, err
	}
	if created {
		fmt.Fprintf(stderr, "darkchat: created a new identity in %s\n", path)
	}
	return k, nil
}

// chatKey loads the identity for a chat, or makes a new one in memory when
// there is none yet: save, then not nil, writes it to the identity file
// and returns its path, which the chat does once the node has accepted the
// login, so that a client that never connected leaves no identity behind.
func chatKey(flagKey string) (k identity.PrivateKey, save func() (created string, err error), err error) {
	path, err := keyPath(flagKey)
	if err != nil {
		return identity.PrivateKey{}, nil, err
	}
	k, err = identity.LoadKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, nil, err
	}
	if k, err = identity.GenerateKey(); err != nil {
		return identity.PrivateKey{}, nil, err
	}
	return k, func() (string, error) {
		err := identity.SaveNewKeyFile(path, k)
		if errors.Is(err, identity.ErrKeyFileExists) {
			return "", fmt.Errorf("another darkchat created an identity in %s meanwhile; this session's identity %s is not saved (use --key FILE to keep a second identity)", path, k.Public())
		}
		return path, err
	}, nil
}
