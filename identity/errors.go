package identity

import "errors"

// Sentinel errors. Every error returned by this package wraps one (or more)
// of them, so callers branch with errors.Is and show err.Error() to users:
// the text names the field and the rule or limit that was broken.
//
// The sentinel texts are written to read naturally at the front of the
// message, e.g. "malformed public key: want 64 hex characters, got 10".
var (
	// ErrMalformed: input does not follow the encoding (bad length, bad
	// characters, truncated, trailing bytes, oversized field, ...).
	ErrMalformed = errors.New("malformed")

	// ErrTooLarge is wrapped together with ErrMalformed when a size limit is
	// exceeded, so callers that only care about "bad input" need one check.
	ErrTooLarge = errors.New("over the size limit")

	// ErrInvalidChannelName and ErrInvalidUsername: a name breaks the rules
	// of ValidateChannelName / ValidateUsername.
	ErrInvalidChannelName = errors.New("invalid channel name")
	ErrInvalidUsername    = errors.New("invalid username")

	// ErrBadSignature: a signature has the wrong length or does not verify.
	ErrBadSignature = errors.New("bad signature")

	// ErrExpired: a login challenge is past its expiry.
	ErrExpired = errors.New("expired")

	// ErrWrongNode: a login challenge names a different node.
	ErrWrongNode = errors.New("wrong node")

	// ErrKeyFileExists: CreateKeyFile refuses to overwrite an identity.
	ErrKeyFileExists = errors.New("key file already exists")

	// ErrKeyFilePermissions: a key file is accessible by group or others.
	ErrKeyFilePermissions = errors.New("key file permissions are too open")

	// ErrInvalidKey: a PrivateKey is the zero value (not generated or loaded).
	ErrInvalidKey = errors.New("invalid private key")
)

// Direct messages and key bundles (see dm.go, bundle.go).
var (
	// ErrWrongIdentity: a key bundle is for another identity than the
	// address it was looked up for.
	ErrWrongIdentity = errors.New("wrong identity")

	// ErrNotYetValid: a key bundle is issued too far in the future.
	ErrNotYetValid = errors.New("not yet valid")

	// ErrNotForMe: a DM envelope's routing tag is not the opener's.
	ErrNotForMe = errors.New("not for me")

	// ErrDecrypt: a DM envelope does not decrypt (tampered, truncated, or
	// sealed to another key).
	ErrDecrypt = errors.New("cannot decrypt")

	// ErrReaddressed: a DM decrypted, but its signed recipient is someone
	// else: it was signed for another user and re-encrypted.
	ErrReaddressed = errors.New("re-addressed")
)
