package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"zenmux/internal/testca"
)

// [proxy] tls_cert_file and tls_key_file serve the proxy listener over
// TLS (the API, the pages, Stripe's webhook): an HTTPS client that trusts
// the CA gets its answers, with HTTP/1.1 (fasthttp has no HTTP/2), and a
// plain-HTTP client gets none.
func TestProxyTLS(t *testing.T) {
	ca := testca.New(t, "proxy CA")
	dir := t.TempDir()
	cert, key := ca.Issue(t, "proxy", nil)
	n := StartNode(t, NodeOptions{Extra: fmt.Sprintf("\n[proxy]\ntls_cert_file = %q\ntls_key_file = %q\n",
		testca.WriteFile(t, dir, "proxy.pem", cert), testca.WriteFile(t, dir, "proxy.key", key))})
	secure := strings.Replace(n.Proxy, "http://", "https://", 1)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}, ForceAttemptHTTP2: true}}
	defer client.CloseIdleConnections()
	for _, path := range []string{"/healthz", "/api/v1/pricing", "/pricing"} {
		resp, err := client.Get(secure + path)
		if err != nil {
			t.Fatalf("https %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.TLS == nil || resp.Proto != "HTTP/1.1" {
			t.Fatalf("https %s: %d %s tls=%v: %.200s", path, resp.StatusCode, resp.Proto, resp.TLS != nil, body)
		}
	}
	plain := &http.Client{Timeout: 3 * time.Second}
	if resp, err := plain.Get(n.Proxy + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP was served on a TLS listener")
		}
	}
}
