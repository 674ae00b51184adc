package secretfile

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	if err := os.WriteFile(path, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(path, 6); err != nil || string(got) != "secret" {
		t.Fatalf("Read = %q, %v; want the contents", got, err)
	}
	if _, err := Read(path, 5); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a file over the bound: %v, want ErrTooLarge", err)
	}
	if _, err := Read(dir, 100); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a directory: %v, want not a regular file", err)
	}
	if _, err := Read(filepath.Join(dir, "missing"), 100); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing file: %v, want os.ErrNotExist", err)
	}
	if runtime.GOOS == "windows" {
		return
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Read(path, 100)
		if !errors.Is(err, ErrTooOpen) || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("mode %04o: %v, want ErrTooOpen saying chmod 600", mode, err)
		}
	}
}
