package identity_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"darkchat/identity"
)

const seed1Hex = "0101010101010101010101010101010101010101010101010101010101010101"

func TestParseKeyFile(t *testing.T) {
	const h = identity.KeyFileHeader
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; "" means success
	}{
		{"canonical", h + "\n" + seed1Hex + "\n", ""},
		{"no final newline", h + "\n" + seed1Hex, ""},
		{"CRLF", h + "\r\n" + seed1Hex + "\r\n", ""},
		{"CRLF no final newline", h + "\r\n" + seed1Hex, ""},
		{"mixed line ends", h + "\r\n" + seed1Hex + "\n", ""},
		{"empty", "", "first line must be"},
		{"header only", h, "missing the seed line"},
		{"header and newline", h + "\n", "missing the seed line"},
		{"wrong header", "darkchat-identity\n" + seed1Hex + "\n", "first line must be"},
		{"future version", "darkchat-identity-v2\n" + seed1Hex + "\n", `unsupported version "darkchat-identity-v2"`},
		{"BOM", "\ufeff" + h + "\n" + seed1Hex + "\n", "first line must be"},
		{"header trailing space", h + " \n" + seed1Hex + "\n", "first line must be"},
		{"seed short", h + "\n" + seed1Hex[:62] + "\n", "got 62 characters"},
		{"seed long", h + "\n" + seed1Hex + "01\n", "got 66 characters"},
		{"seed uppercase", h + "\n" + strings.Repeat("AB", 32) + "\n", "must be lowercase hex, character 1 is 'A'"},
		{"seed not hex", h + "\n" + seed1Hex[:63] + "z\n", "character 64 is 'z'"},
		{"seed trailing space", h + "\n" + seed1Hex + " \n", "got 65 characters"},
		{"lone CR at end", h + "\n" + seed1Hex + "\r", "got 65 characters"},
		{"blank line after", h + "\n" + seed1Hex + "\n\n", "exactly two lines"},
		{"comment after", h + "\n" + seed1Hex + "\n# comment\n", "exactly two lines"},
		{"blank line between", h + "\n\n" + seed1Hex + "\n", "got 0 characters"},
		{"too large", h + "\n" + seed1Hex + "\n" + strings.Repeat("x", 5000), "over the size limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := identity.ParseKeyFile([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := k.Public().String(); got != seed1PublicHex {
					t.Errorf("public key %s", got)
				}
				return
			}
			if !errors.Is(err, identity.ErrMalformed) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want ErrMalformed containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestMarshalKeyFile(t *testing.T) {
	k := mustKey(t, seedOf(1))
	want := identity.KeyFileHeader + "\n" + seed1Hex + "\n"
	if got := string(identity.MarshalKeyFile(k)); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func skipIfNoUnixPerms(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("Unix permission bits are not enforced on Windows")
	}
}

func TestCreateKeyFile(t *testing.T) {
	skipIfNoUnixPerms(t)
	path := filepath.Join(t.TempDir(), "sub", "dir", "identity.key")
	k, err := identity.CreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %04o, want 0600", perm)
	}
	if di, err := os.Stat(filepath.Dir(path)); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("parent directory: %v, %v", di.Mode(), err)
	}
	data, _ := os.ReadFile(path)
	if !bytes.Equal(data, identity.MarshalKeyFile(k)) {
		t.Errorf("file content %q", data)
	}
	loaded, err := identity.LoadKeyFile(path)
	if err != nil || loaded.Public() != k.Public() {
		t.Fatalf("LoadKeyFile = %v, %v", loaded, err)
	}

	// Refuses to overwrite, and leaves the existing identity untouched.
	_, err = identity.CreateKeyFile(path)
	if !errors.Is(err, identity.ErrKeyFileExists) {
		t.Errorf("second CreateKeyFile error = %v, want ErrKeyFileExists", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(after, data) {
		t.Error("CreateKeyFile changed an existing key file")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestLoadKeyFilePermissions(t *testing.T) {
	skipIfNoUnixPerms(t)
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o600, 0o400, 0o644, 0o640, 0o604, 0o660, 0o601, 0o610, 0o666} {
		path := filepath.Join(dir, "key-"+mode.String())
		if err := os.WriteFile(path, identity.MarshalKeyFile(mustKey(t, seedOf(1))), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // explicit: WriteFile is subject to umask
			t.Fatal(err)
		}
		_, err := identity.LoadKeyFile(path)
		if mode&0o077 == 0 {
			if err != nil {
				t.Errorf("mode %04o: %v", mode, err)
			}
			continue
		}
		if !errors.Is(err, identity.ErrKeyFilePermissions) || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("mode %04o: error = %v, want ErrKeyFilePermissions telling to chmod 600", mode, err)
		}
	}
}

func TestLoadKeyFileErrors(t *testing.T) {
	skipIfNoUnixPerms(t)
	dir := t.TempDir()
	if _, err := identity.LoadKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	sub := filepath.Join(dir, "adir")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.LoadKeyFile(sub); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.LoadKeyFile(big); !errors.Is(err, identity.ErrTooLarge) {
		t.Errorf("1 MiB file: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.LoadKeyFile(bad); !errors.Is(err, identity.ErrMalformed) || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad content: %v", err)
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	skipIfNoUnixPerms(t)
	path := filepath.Join(t.TempDir(), "identity.key")
	k1, created, err := identity.LoadOrCreateKeyFile(path)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	k2, created, err := identity.LoadOrCreateKeyFile(path)
	if err != nil || created || k2.Public() != k1.Public() {
		t.Fatalf("second call: created=%v err=%v same=%v", created, err, k2.Public() == k1.Public())
	}

	// A key file that cannot be loaded is reported, never replaced.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	if _, _, err := identity.LoadOrCreateKeyFile(path); !errors.Is(err, identity.ErrKeyFilePermissions) {
		t.Errorf("0644 key: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("LoadOrCreateKeyFile replaced an existing key")
	}
}
