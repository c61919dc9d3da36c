package node

import (
	"crypto/x509"
	"io"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"zenmux/internal/testca"
)

// The proxy listener's certificate is read again when its files change,
// looked at no more than once a second, without a restart; a pair that
// does not load keeps the last good one serving.
func TestProxyCertReloads(t *testing.T) {
	ca := testca.New(t, "proxy CA")
	dir := t.TempDir()
	certA, keyA := ca.Issue(t, "proxy-a", nil)
	certFile, keyFile := testca.WriteFile(t, dir, "proxy.pem", certA), testca.WriteFile(t, dir, "proxy.key", keyA)
	clock := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	r, err := newCertReloader("proxy", certFile, keyFile, zerolog.New(io.Discard), func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	name := func() string {
		t.Helper()
		c, err := r.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.Subject.CommonName
	}
	if got := name(); got != "proxy-a" {
		t.Fatalf("serving %q, want proxy-a", got)
	}
	// A renewal: new files, a later modification time.
	certB, keyB := ca.Issue(t, "proxy-b", nil)
	testca.WriteFile(t, dir, "proxy.pem", certB)
	testca.WriteFile(t, dir, "proxy.key", keyB)
	later := time.Now().Add(time.Minute)
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	clock = clock.Add(reloadEvery - 1)
	if got := name(); got != "proxy-a" {
		t.Fatalf("looked at the files within a second: serving %q", got)
	}
	clock = clock.Add(1)
	if got := name(); got != "proxy-b" {
		t.Fatalf("after the renewal: serving %q, want proxy-b", got)
	}
	// A half-written renewal does not load: proxy-b keeps serving.
	testca.WriteFile(t, dir, "proxy.pem", []byte("-----BEGIN CERTIFICATE-----\ntruncated"))
	later = later.Add(time.Minute)
	if err := os.Chtimes(certFile, later, later); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(reloadEvery)
	if got := name(); got != "proxy-b" {
		t.Fatalf("after a broken renewal: serving %q, want proxy-b", got)
	}
	// A node starting with that pair does not start.
	if _, err := newCertReloader("proxy", certFile, keyFile, zerolog.New(io.Discard), time.Now); err == nil {
		t.Fatal("a start with a pair that does not load must fail")
	}
}
