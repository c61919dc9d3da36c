package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"zenmux/config"
	"zenmux/internal/testca"
)

// serveTLS accepts TLS connections on 127.0.0.1 with conf and completes
// each handshake, until the test ends; it returns the address.
func serveTLS(t *testing.T, conf *tls.Config) string {
	t.Helper()
	ln, err := listenAdmin("127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// shown dials addr with conf and returns the common name of the
// certificate the server showed and the protocol ALPN chose.
func shown(addr string, conf *tls.Config) (name, proto string, err error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, conf)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	cs := c.ConnectionState()
	return cs.PeerCertificates[0].Subject.CommonName, cs.NegotiatedProtocol, nil
}

// With [admin] tls_* and cluster TLS, the admin listener shows operators
// (no peer ALPN) the operator's certificate, read again after a renewal
// without a restart, and peers (the cluster TLS client, which offers
// "zenmux-peer") the node's cluster certificate, with a client certificate
// of the cluster CA required; without [admin] tls_* everyone gets the
// cluster certificate as before.
func TestAdminTLSServesOperatorAndPeers(t *testing.T) {
	_, f := testca.NodeFiles(t)
	opCA := testca.New(t, "operator CA")
	dir := t.TempDir()
	certA, keyA := opCA.Issue(t, "admin-a", nil)
	cfg := withTLS(f.Cert, f.Key, f.CA)
	cfg.Admin.TLSCertFile, cfg.Admin.TLSKeyFile = testca.WriteFile(t, dir, "admin.pem", certA), testca.WriteFile(t, dir, "admin.key", keyA)
	peer, err := clusterTLS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := adminTLS(cfg, peer, zerolog.New(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, conf)

	operator := &tls.Config{RootCAs: opCA.Pool, ServerName: "127.0.0.1", NextProtos: []string{"h2", "http/1.1"}}
	if name, proto, err := shown(addr, operator); err != nil || name != "admin-a" || proto != "http/1.1" {
		t.Fatalf("operator: %q %q %v, want admin-a over http/1.1", name, proto, err)
	}
	peerClient := peer.Clone()
	peerClient.ServerName = "127.0.0.1"
	if name, proto, err := shown(addr, peerClient); err != nil || name != "node" || proto != peerALPN {
		t.Fatalf("peer: %q %q %v, want the cluster certificate over %s", name, proto, err, peerALPN)
	}
	// Offering the peer protocol without a cluster client certificate gets
	// no handshake (TLS 1.3 reports it on the first read).
	anon := &tls.Config{RootCAs: peer.RootCAs, ServerName: "127.0.0.1", NextProtos: []string{peerALPN}}
	if c, err := tls.Dial("tcp", addr, anon); err == nil {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a peer without a client certificate was served: %v", err)
		}
	}

	// A renewal is served within a few seconds (looked at once a second).
	certB, keyB := opCA.Issue(t, "admin-b", nil)
	testca.WriteFile(t, dir, "admin.pem", certB)
	testca.WriteFile(t, dir, "admin.key", keyB)
	later := time.Now().Add(time.Minute)
	for _, p := range []string{cfg.Admin.TLSCertFile, cfg.Admin.TLSKeyFile} {
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
	}
	name := ""
	for deadline := time.Now().Add(5 * time.Second); name != "admin-b" && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		if name, _, err = shown(addr, operator); err != nil {
			t.Fatal(err)
		}
	}
	if name != "admin-b" {
		t.Fatalf("after the renewal the operator is shown %q, want admin-b", name)
	}
	if name, _, err := shown(addr, peerClient); err != nil || name != "node" {
		t.Fatalf("peer after the renewal: %q %v", name, err)
	}

	// Without [admin] tls_*: the cluster certificate for both.
	cfg.Admin.TLSCertFile, cfg.Admin.TLSKeyFile = "", ""
	conf, err = adminTLS(cfg, peer, zerolog.New(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	addr = serveTLS(t, conf)
	curl := &tls.Config{RootCAs: peer.RootCAs, ServerName: "127.0.0.1", NextProtos: []string{"h2", "http/1.1"}}
	for _, c := range []*tls.Config{curl, peerClient} {
		if name, _, err := shown(addr, c); err != nil || name != "node" {
			t.Fatalf("without [admin] tls_*: %q %v, want the cluster certificate", name, err)
		}
	}
	if conf, err := adminTLS(config.Default(), nil, zerolog.Nop()); conf != nil || err != nil {
		t.Fatalf("no TLS at all: %v %v, want nil, nil", conf, err)
	}
}

// [admin] tls_* alone serves a single node's admin listener; its pair
// must load at start; and config refuses half a pair, and a clustered
// node without cluster TLS (its peers would call an https listener
// without a way to verify it).
func TestAdminTLSConfig(t *testing.T) {
	opCA := testca.New(t, "operator CA")
	dir := t.TempDir()
	cert, key := opCA.Issue(t, "admin", nil)
	certFile, keyFile := testca.WriteFile(t, dir, "admin.pem", cert), testca.WriteFile(t, dir, "admin.key", key)

	cfg := config.Default()
	cfg.Admin.TLSCertFile, cfg.Admin.TLSKeyFile = certFile, keyFile
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a single node with [admin] tls_*: %v", err)
	}
	conf, err := adminTLS(cfg, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if name, _, err := shown(serveTLS(t, conf), &tls.Config{RootCAs: opCA.Pool, ServerName: "127.0.0.1"}); err != nil || name != "admin" {
		t.Fatalf("single node: %q %v", name, err)
	}

	cfg.Admin.TLSKeyFile = certFile
	if _, err := adminTLS(cfg, nil, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "admin TLS") {
		t.Fatalf("a pair that does not load: %v, want an admin TLS error", err)
	}
	if problems, _ := Check(cfg, func(string) string { return "" }); len(problems) != 1 || !strings.Contains(problems[0].Error(), "admin TLS") {
		t.Fatalf("check: %v, want the admin pair's one problem", problems)
	}

	cfg.Admin.TLSKeyFile = ""
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "admin.tls_key_file: must be set when the other of admin.tls_cert_file, admin.tls_key_file is (both or neither)") {
		t.Fatalf("half a pair: %v", err)
	}
	cfg.Admin.TLSKeyFile = keyFile
	cfg.Cluster.SecretFile = certFile
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "admin.tls_cert_file: needs cluster TLS") {
		t.Fatalf("a clustered node without cluster TLS: %v", err)
	}
	_, f := testca.NodeFiles(t)
	cfg.Cluster.TLSCertFile, cfg.Cluster.TLSKeyFile, cfg.Cluster.TLSCAFile = f.Cert, f.Key, f.CA
	if err := cfg.Validate(); err != nil {
		t.Fatalf("clustered with cluster TLS: %v", err)
	}
	var x509Err x509.UnknownAuthorityError
	if _, _, err := shown(serveTLS(t, conf), &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "127.0.0.1"}); !errors.As(err, &x509Err) {
		t.Fatalf("a client that does not trust the operator CA: %v, want an unknown authority", err)
	}
}
