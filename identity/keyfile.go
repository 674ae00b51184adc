package identity

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"darkchat/internal/atomicfile"
	"darkchat/internal/secretfile"
)

// KeyFileHeader is the first line of a key file. The "v1" names the format,
// so a future format can be told apart instead of misread.
const KeyFileHeader = "darkchat-identity-v1"

// MaxKeyFileSize bounds how much of a key file is read. A valid file is 86
// bytes; the slack only exists to give a clear error for large wrong files.
const MaxKeyFileSize = 4096

// keyFileMode is the only mode CreateKeyFile writes: owner read/write.
const keyFileMode = 0o600

// MarshalKeyFile returns the key-file text for k:
//
//	darkchat-identity-v1\n<64 lowercase hex chars of the seed>\n
//
// The browser client exports and imports the same text. It returns nil for
// the zero key.
func MarshalKeyFile(k PrivateKey) []byte {
	if k.IsZero() {
		return nil
	}
	b := make([]byte, 0, len(KeyFileHeader)+1+2*SeedSize+1)
	b = append(b, KeyFileHeader...)
	b = append(b, '\n')
	b = hex.AppendEncode(b, k.key[:SeedSize])
	return append(b, '\n')
}

// ParseKeyFile parses key-file text. It accepts exactly the MarshalKeyFile
// form, plus CRLF line endings and a missing final newline (files that went
// through an editor or a clipboard); anything else is an error.
func ParseKeyFile(data []byte) (PrivateKey, error) {
	if len(data) > MaxKeyFileSize {
		return PrivateKey{}, fmt.Errorf("%w key file: %d bytes is %w (%d bytes)", ErrMalformed, len(data), ErrTooLarge, MaxKeyFileSize)
	}
	rest := string(data)
	header, rest, ok := cutLine(rest)
	if header != KeyFileHeader {
		if v, found := strings.CutPrefix(header, "darkchat-identity-v"); found && isDecimal(v) {
			return PrivateKey{}, fmt.Errorf("%w key file: unsupported version %q, this program reads %q", ErrMalformed, clip(header), KeyFileHeader)
		}
		return PrivateKey{}, fmt.Errorf("%w key file: first line must be %q", ErrMalformed, KeyFileHeader)
	}
	if !ok || rest == "" {
		return PrivateKey{}, fmt.Errorf("%w key file: missing the seed line after %q", ErrMalformed, KeyFileHeader)
	}
	seedHex, rest, _ := cutLine(rest)
	if len(seedHex) != 2*SeedSize {
		return PrivateKey{}, fmt.Errorf("%w key file: seed line must be %d lowercase hex characters, got %d characters", ErrMalformed, 2*SeedSize, len(seedHex))
	}
	if i := firstNonLowerHex(seedHex); i >= 0 {
		return PrivateKey{}, fmt.Errorf("%w key file: seed line must be lowercase hex, character %d is %q", ErrMalformed, i+1, seedHex[i])
	}
	if rest != "" {
		return PrivateKey{}, fmt.Errorf("%w key file: unexpected data after the seed line (the file must have exactly two lines)", ErrMalformed)
	}
	var seed [SeedSize]byte
	hex.Decode(seed[:], []byte(seedHex)) // cannot fail: checked above
	return NewKeyFromSeed(seed[:])
}

// cutLine splits s after its first "\n", dropping the "\n" and one "\r"
// before it. Without a "\n" the whole of s is the line, unchanged (so a lone
// trailing "\r" is kept and rejected by the caller's checks).
func cutLine(s string) (line, rest string, found bool) {
	line, rest, found = strings.Cut(s, "\n")
	if found {
		line = strings.TrimSuffix(line, "\r")
	}
	return line, rest, found
}

// LoadKeyFile reads and parses the key file at path. Like ssh, it refuses a
// file that group or others can access (mode & 0o077 != 0): a key that others
// could have read must be treated as compromised, and silently accepting it
// would hide that.
func LoadKeyFile(path string) (PrivateKey, error) {
	data, err := secretfile.Read(path, MaxKeyFileSize)
	switch {
	case errors.Is(err, secretfile.ErrTooOpen):
		return PrivateKey{}, fmt.Errorf("load key file: %w: %w", ErrKeyFilePermissions, err)
	case errors.Is(err, secretfile.ErrTooLarge):
		return PrivateKey{}, fmt.Errorf("load key file %s: %w key file: %w", path, ErrMalformed, ErrTooLarge)
	case err != nil:
		return PrivateKey{}, fmt.Errorf("load key file: %w", err)
	}
	k, err := ParseKeyFile(data)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("load key file %s: %w", path, err)
	}
	return k, nil
}

// CreateKeyFile generates a new key and writes it to path with mode 0600,
// atomically (a crash leaves no partial key) and creating missing parent
// directories with mode 0700. It never overwrites: if path exists it returns
// an error wrapping ErrKeyFileExists, because replacing a key file destroys
// the identity it holds.
func CreateKeyFile(path string) (PrivateKey, error) {
	k, err := GenerateKey()
	if err != nil {
		return PrivateKey{}, err
	}
	if err := SaveNewKeyFile(path, k); err != nil {
		return PrivateKey{}, err
	}
	return k, nil
}

// SaveNewKeyFile writes k to path as CreateKeyFile does, for a key made
// before it is known to be wanted (a client saves a new identity once it
// has logged in with it); it never overwrites.
func SaveNewKeyFile(path string, k PrivateKey) error {
	if err := atomicfile.Create(path, MarshalKeyFile(k), keyFileMode); err != nil {
		if errors.Is(err, atomicfile.ErrExists) {
			return fmt.Errorf("create key file %s: %w, refusing to overwrite an identity", path, ErrKeyFileExists)
		}
		return fmt.Errorf("create key file: %w", err)
	}
	return nil
}

// LoadOrCreateKeyFile loads the key at path, or creates it if the file does
// not exist (first run). created reports which happened, so the caller can
// tell the user a new identity was made. Any other load error (bad
// permissions, bad content) is returned as is: it is never "fixed" by
// creating a new key.
func LoadOrCreateKeyFile(path string) (key PrivateKey, created bool, err error) {
	k, err := LoadKeyFile(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return PrivateKey{}, false, err
	}
	k, err = CreateKeyFile(path)
	if errors.Is(err, ErrKeyFileExists) {
		// Another process created it between our load and create: use theirs.
		k, err = LoadKeyFile(path)
		return k, false, err
	}
	if err != nil {
		return PrivateKey{}, false, err
	}
	return k, true, nil
}
