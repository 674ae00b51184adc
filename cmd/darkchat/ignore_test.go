package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"darkchat/tstest/clienttest"
)

// The ignore list lasts across runs in <key-file>.ignore, mode 0600, one
// key a line.
func TestIgnoreListKeptBesideTheKey(t *testing.T) {
	host, port := serve(t, &clienttest.Server{})
	env := testEnv(t)
	keyFile := filepath.Join(t.TempDir(), "alice.key")
	other := strings.Repeat("ab", 32)

	r := runBin(t, env, "ignore "+other+"\n", "--key", keyFile, host, port)
	if r.code != 0 || !strings.Contains(r.stdout, "\nIgnoring "+other+": ") {
		t.Fatalf("first run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	path := keyFile + ".ignore"
	data, err := os.ReadFile(path)
	if err != nil || string(data) != other+"\n" {
		t.Fatalf("%s holds %q (%v)", path, data, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}

	r = runBin(t, env, "ignore\nunignore "+other+"\nignore\n", "--key", keyFile, host, port)
	if r.code != 0 || !strings.Contains(r.stdout, "\nIGNORED USERS (1):\n1. "+other+"\nNo longer ignoring "+other+"\nNo Ignored Users\n") {
		t.Fatalf("second run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if data, _ := os.ReadFile(path); len(data) != 0 {
		t.Fatalf("%s holds %q after unignore", path, data)
	}
}
