package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// With --tls-cert and --tls-key the WebSocket gateway serves wss, and its
// per-IP limit applies before the TLS handshake: a connection over it is
// closed without one.
func TestWebSocketGatewayOverTLS(t *testing.T) {
	t.Parallel()
	cert, key := writeSelfSigned(t)
	d := startDaemon(t, "node", daemonSpec{
		args: []string{"websock", "127.0.0.1", "0", "0", "--no-console", "--tls-cert", cert, "--tls-key", key, "--max-sessions-per-ip", "2"},
	})
	if !strings.HasPrefix(d.wsURL, "wss://") {
		t.Fatalf("WebSocket gateway at %q, want wss://", d.wsURL)
	}
	dialer := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, HandshakeTimeout: 5 * time.Second}
	for i := range 2 {
		ws, _, err := dialer.Dial(d.wsURL+"ws", nil)
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		defer ws.Close()
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, msg, err := ws.ReadMessage(); err != nil || !strings.Contains(string(msg), `"hello"`) {
			t.Fatalf("session %d: %q %v", i, msg, err)
		}
	}
	raw, err := net.DialTimeout("tcp", strings.TrimSuffix(strings.TrimPrefix(d.wsURL, "wss://"), "/"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err == nil {
		t.Fatal("a third connection from one address completed a TLS handshake")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("a third connection from one address was left open: %v", err)
	}
}

// writeSelfSigned writes a certificate for 127.0.0.1 and its key, PEM, and
// returns their paths.
func writeSelfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "darkchat test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
