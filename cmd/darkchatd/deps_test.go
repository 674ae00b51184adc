package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// What the daemon must never link: the browser driver and the NATS server
// the tests and benchmarks use, the test-only tree (tstest/), the web
// client's asset builder (it runs the go tool), and os/exec with it.
var forbiddenDeps = []string{
	"github.com/chromedp/",
	"github.com/nats-io/",
	"darkchat/web/internal/",
	"darkchat/cmd/darkbench/bench",
	"darkchat/tstest/",
	"os/exec",
}

// TestDependencies pins the modules the daemon links to deps.txt (like
// tailscale's depaware.txt): a new module in the daemon is a change a
// reviewer sees, and no test-only or build-only package ends up in it.
// After a deliberate change, regenerate the file with
//
//	go list -deps -f '{{if .Module}}{{.Module.Path}}{{end}}' ./cmd/darkchatd | sort -u > cmd/darkchatd/deps.txt
func TestDependencies(t *testing.T) {
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		if os.Getenv("DARKCHAT_REQUIRE_ALL") == "1" {
			t.Fatalf("no go tool at %s to list the daemon's dependencies and DARKCHAT_REQUIRE_ALL=1", goTool)
		}
		t.Skipf("no go tool at %s to list the daemon's dependencies", goTool)
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}} {{if .Module}}{{.Module.Path}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var modules []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, module, _ := strings.Cut(line, " ")
		for _, f := range forbiddenDeps {
			if pkg == f || strings.HasPrefix(pkg, f) {
				t.Errorf("the daemon links %s", pkg)
			}
		}
		if module != "" && !slices.Contains(modules, module) {
			modules = append(modules, module)
		}
	}
	slices.Sort(modules)
	want, err := os.ReadFile("deps.txt")
	if err != nil {
		t.Fatal(err)
	}
	pinned := strings.Fields(string(want))
	for _, m := range modules {
		if !slices.Contains(pinned, m) {
			t.Errorf("the daemon now links module %s, not in deps.txt (review it, then regenerate the file)", m)
		}
	}
	for _, m := range pinned {
		if !slices.Contains(modules, m) {
			t.Errorf("deps.txt lists module %s, which the daemon no longer links (regenerate the file)", m)
		}
	}
}
