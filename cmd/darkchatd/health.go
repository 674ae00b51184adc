package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// runHealth is `darkchatd health [ADDR | URL]`: a health probe for
// containers and service managers that have no HTTP client (the testnet's
// image is FROM scratch). It asks a node's metrics listener for /readyz
// and exits 0 when the answer is 200, 1 otherwise, printing the answer's
// line either way. ADDR (host:port) means http://ADDR/readyz; a URL is
// fetched as it is (/healthz asks only whether the process serves).
// Without an argument it asks the listener DARKCHAT_METRICS names, an
// unspecified host (0.0.0.0, [::]) standing for loopback, so a container
// that starts its node with DARKCHAT_METRICS probes it with no arguments.
func runHealth(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprint(stdout, `Usage: darkchatd health [ADDR | URL]

Asks a node's metrics listener (--metrics ADDR) whether the node is ready:
GET http://ADDR/readyz, or URL. Exits 0 on 200, 1 otherwise. Without an
argument, ADDR is DARKCHAT_METRICS (0.0.0.0 meaning 127.0.0.1).
`)
		return 0
	}
	if len(args) > 1 {
		return usageFailure(stderr, usageErrorf("health takes one ADDR or URL, not %d arguments", len(args)))
	}
	target := getenv("DARKCHAT_METRICS")
	if len(args) == 1 {
		target = args[0]
	}
	if target == "" {
		return usageFailure(stderr, usageErrorf("health needs the metrics listener's ADDR or a URL (or DARKCHAT_METRICS)"))
	}
	url := target
	if !strings.Contains(target, "://") {
		host, port, err := net.SplitHostPort(target)
		if err != nil {
			return usageFailure(stderr, usageErrorf("health: %q is neither host:port nor a URL", target))
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
			if ip != nil && ip.To4() == nil {
				host = "::1"
			}
		}
		url = "http://" + net.JoinHostPort(host, port) + "/readyz"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return usageFailure(stderr, usageErrorf("health: %v", err))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stdout, "unhealthy: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	line := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stdout, "unhealthy: %s: %s\n", resp.Status, line)
		return 1
	}
	fmt.Fprintln(stdout, line)
	return 0
}
