package raftfsm

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"zenmux/internal/testca"
	"zenmux/ledger"
)

var testSecret = []byte("test-cluster-secret-0123456789")

// testCA writes the certificates it issues as PEM files into a
// t.TempDir() and reads them back the way a node reads operator-supplied
// files.
type testCA struct {
	*testca.CA
	t   *testing.T
	dir string
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	return &testCA{CA: testca.New(t, name), t: t, dir: t.TempDir()}
}

// issue signs a node certificate (127.0.0.1, server and client auth unless
// edit changes it), writes it and its key as PEM files and loads them.
func (ca *testCA) issue(name string, edit func(*x509.Certificate)) tls.Certificate {
	ca.t.Helper()
	certPEM, keyPEM := ca.Issue(ca.t, name, edit)
	certPath, keyPath := filepath.Join(ca.dir, name+".pem"), filepath.Join(ca.dir, name+".key")
	for path, data := range map[string][]byte{certPath: certPEM, keyPath: keyPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			ca.t.Fatal(err)
		}
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		ca.t.Fatal(err)
	}
	return cert
}

// nodeTLS is a node's transport config: its certificate, trusting ca.
func nodeTLS(cert tls.Certificate, ca *testCA) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: ca.Pool, ClientCAs: ca.Pool,
		ClientAuth: tls.RequireAndVerifyClientCert}
}

// listen starts an authStream on a free loopback port and collects what it
// accepts.
func listen(t *testing.T, secret []byte, conf *tls.Config) (*authStream, <-chan net.Conn) {
	t.Helper()
	addr := freeAddr(t)
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newAuthStream(addr, tcp, secret, conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := s.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	return s, accepted
}

// dialer is the client side only: Dial uses nothing but the secret and the
// TLS config, so a peer with a config newAuthStream would refuse (no
// certificate) can still be built here to play an attacker.
func dialer(secret []byte, conf *tls.Config) *authStream {
	return &authStream{secret: secret, tls: conf}
}

// connected checks that a dial succeeded and the server delivered the
// connection, then that bytes flow both ways.
func connected(t *testing.T, c net.Conn, err error, accepted <-chan net.Conn) net.Conn {
	t.Helper()
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	var srv net.Conn
	select {
	case srv = <-accepted:
		t.Cleanup(func() { srv.Close() })
	case <-time.After(5 * time.Second):
		t.Fatal("server never accepted the connection")
	}
	for _, dir := range []struct{ from, to net.Conn }{{c, srv}, {srv, c}} {
		if _, err := dir.from.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		_ = dir.to.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(dir.to, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("read %q, %v", buf, err)
		}
	}
	return srv
}

// refused checks that a dial failed and that the server delivered nothing.
func refused(t *testing.T, c net.Conn, err error, accepted <-chan net.Conn) {
	t.Helper()
	if err == nil {
		c.Close()
		t.Fatal("dial succeeded; want it refused")
	}
	select {
	case srv := <-accepted:
		srv.Close()
		t.Fatalf("server accepted a connection the client saw fail with %v", err)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestTransportTLSConnects(t *testing.T) {
	ca := newTestCA(t, "cluster")
	srv, accepted := listen(t, testSecret, nodeTLS(ca.issue("n1", nil), ca))
	cli := dialer(testSecret, mustTransportTLS(t, nodeTLS(ca.issue("n2", nil), ca)))
	c, err := cli.Dial(raft.ServerAddress(srv.Addr().String()), time.Second)
	sc := connected(t, c, err, accepted)
	for side, conn := range map[string]net.Conn{"client": c, "server": sc} {
		tc, ok := conn.(*tls.Conn)
		if !ok {
			t.Fatalf("%s conn is %T, want *tls.Conn", side, conn)
		}
		st := tc.ConnectionState()
		if st.Version != tls.VersionTLS13 || len(st.VerifiedChains) == 0 {
			t.Fatalf("%s: version %x, verified chains %d", side, st.Version, len(st.VerifiedChains))
		}
	}
	if cn := sc.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "n2" {
		t.Fatalf("server sees client %q", cn)
	}
}

func TestTransportTLSRefuses(t *testing.T) {
	ca := newTestCA(t, "cluster")
	other := newTestCA(t, "other")
	good := nodeTLS(ca.issue("n1", nil), ca)
	srv, accepted := listen(t, testSecret, good)
	addr := raft.ServerAddress(srv.Addr().String())

	noCert := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ca.Pool}
	otherCA := nodeTLS(other.issue("intruder", nil), ca) // trusts the cluster CA, holds a foreign cert
	serverOnly := nodeTLS(ca.issue("server-only", func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}), ca)
	for _, tt := range []struct {
		name   string
		secret []byte
		conf   *tls.Config
	}{
		{"no client certificate", testSecret, noCert},
		{"client certificate from another CA", testSecret, otherCA},
		{"client certificate without client auth", testSecret, serverOnly},
		{"wrong secret", []byte("another-secret-0123456789abcdef"), good},
		{"no TLS", testSecret, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := dialer(tt.secret, tt.conf).Dial(addr, time.Second)
			refused(t, c, err, accepted)
		})
	}

	// The client refuses servers it cannot verify.
	for _, tt := range []struct {
		name string
		conf *tls.Config
	}{
		{"server certificate from another CA", nodeTLS(other.issue("impostor", nil), other)},
		{"server certificate for another address", nodeTLS(ca.issue("elsewhere", func(c *x509.Certificate) {
			c.IPAddresses = []net.IP{net.ParseIP("10.1.2.3")}
		}), ca)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The impostor accepts the cluster's client certificates and
			// knows the secret, so only the client's check can stop it.
			tt.conf.ClientCAs = ca.Pool
			bad, badAccepted := listen(t, testSecret, tt.conf)
			c, err := dialer(testSecret, good).Dial(raft.ServerAddress(bad.Addr().String()), time.Second)
			refused(t, c, err, badAccepted)
			if err != nil && !strings.Contains(err.Error(), "certificate") {
				t.Errorf("error %q does not mention the certificate", err)
			}
		})
	}

	// A TLS client cannot talk to a plain server either.
	plain, plainAccepted := listen(t, testSecret, nil)
	c, err := dialer(testSecret, good).Dial(raft.ServerAddress(plain.Addr().String()), time.Second)
	refused(t, c, err, plainAccepted)

	// The good peer still gets in after all that.
	c, err = dialer(testSecret, good).Dial(addr, time.Second)
	connected(t, c, err, accepted)
}

// A man in the middle who holds a certificate from the cluster CA but not
// the secret relays the challenge between two real nodes. The HMACs are
// bound to each TLS session, so the relayed answers do not verify.
func TestTransportTLSRelayRefused(t *testing.T) {
	ca := newTestCA(t, "cluster")
	srv, accepted := listen(t, testSecret, nodeTLS(ca.issue("n1", nil), ca))
	mitmConf := nodeTLS(ca.issue("stolen", nil), ca)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", mitmConf)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		defer in.Close()
		conf := mitmConf.Clone()
		conf.ServerName = "127.0.0.1"
		out, err := tls.Dial("tcp", srv.Addr().String(), conf)
		if err != nil {
			return
		}
		defer out.Close()
		for _, step := range []struct {
			from, to net.Conn
			n        int
		}{{out, in, 32}, {in, out, 64}, {out, in, 32}} {
			buf := make([]byte, step.n)
			if _, err := io.ReadFull(step.from, buf); err != nil {
				return
			}
			if _, err := step.to.Write(buf); err != nil {
				return
			}
		}
		io.Copy(io.Discard, in)
	}()
	c, err := dialer(testSecret, nodeTLS(ca.issue("n2", nil), ca)).Dial(raft.ServerAddress(ln.Addr().String()), 2*time.Second)
	refused(t, c, err, accepted)
}

func TestTransportPlainHMAC(t *testing.T) {
	srv, accepted := listen(t, testSecret, nil)
	addr := raft.ServerAddress(srv.Addr().String())
	c, err := dialer(testSecret, nil).Dial(addr, time.Second)
	sc := connected(t, c, err, accepted)
	if _, ok := sc.(*tls.Conn); ok {
		t.Fatal("plain transport produced a TLS conn")
	}
	c, err = dialer([]byte("another-secret-0123456789abcdef"), nil).Dial(addr, time.Second)
	refused(t, c, err, accepted)
	// A silent peer does not hold up the accept loop.
	silent, err := net.Dial("tcp", string(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c, err = dialer(testSecret, nil).Dial(addr, time.Second)
	connected(t, c, err, accepted)
}

func mustTransportTLS(t *testing.T, c *tls.Config) *tls.Config {
	t.Helper()
	out, err := transportTLS(c)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTransportTLSConfigChecks(t *testing.T) {
	ca := newTestCA(t, "cluster")
	cert := ca.issue("n1", nil)
	addr := freeAddr(t)
	tcp, _ := net.ResolveTCPAddr("tcp", addr)
	for _, tt := range []struct {
		name string
		edit func(*tls.Config)
	}{
		{"no certificate", func(c *tls.Config) { c.Certificates = nil }},
		{"no RootCAs (system roots)", func(c *tls.Config) { c.RootCAs = nil }},
		{"no ClientCAs", func(c *tls.Config) { c.ClientCAs = nil }},
		{"InsecureSkipVerify", func(c *tls.Config) { c.InsecureSkipVerify = true }},
	} {
		conf := nodeTLS(cert, ca)
		tt.edit(conf)
		if s, err := newAuthStream(addr, tcp, testSecret, conf); err == nil {
			s.Close()
			t.Errorf("%s: accepted", tt.name)
		}
	}
	if s, err := newAuthStream(addr, tcp, nil, nodeTLS(cert, ca)); err == nil {
		s.Close()
		t.Error("TLS without a secret: accepted")
	}
	// The transport enforces mutual TLS 1.3 whatever the caller asked.
	lax := nodeTLS(cert, ca)
	lax.ClientAuth, lax.MinVersion = tls.NoClientCert, tls.VersionTLS10
	got := mustTransportTLS(t, lax)
	if got.ClientAuth != tls.RequireAndVerifyClientCert || got.MinVersion != tls.VersionTLS13 {
		t.Fatalf("transportTLS kept ClientAuth %v, MinVersion %x", got.ClientAuth, got.MinVersion)
	}
	if lax.ClientAuth != tls.NoClientCert {
		t.Fatal("transportTLS changed the caller's config")
	}
	if _, err := Open(Options{NodeID: "n1", Dir: t.TempDir(), RaftAddr: addr, Bootstrap: true, TLS: nodeTLS(cert, ca)}); err == nil {
		t.Fatal("Open accepted TLS without a secret")
	}
}

// Two stores replicate over the TLS transport.
func TestClusterOverTLS(t *testing.T) {
	ca := newTestCA(t, "cluster")
	var stores []*Store
	for i, id := range []string{"n1", "n2"} {
		s, err := Open(Options{NodeID: id, Dir: t.TempDir(), RaftAddr: freeAddr(t), Bootstrap: i == 0, Secret: testSecret,
			TLS: nodeTLS(ca.issue(id, nil), ca), HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	leader, follower := stores[0], stores[1]
	if err := leader.WaitLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := leader.AddVoter("n2", string(follower.trans.LocalAddr()), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	seed(t, leader)
	propose(t, leader, &ledger.CreateAccount{ID: "a1", Email: "a1@x.io"}, t0)
	if err := follower.WaitApplied(leader.AppliedIndex(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	lh, _, err := leader.StateHash()
	if err != nil {
		t.Fatal(err)
	}
	fh, _, err := follower.StateHash()
	if err != nil || fh != lh {
		t.Fatalf("follower state %x (%v), leader %x", fh, err, lh)
	}
}

// A node advertises node.advertise_raft as configured: a host name stays a
// name for its peers to resolve, and need not resolve (yet) where the node
// starts — a DNS record published once the node is up must not stop it.
func TestAdvertisedNameNeedNotResolve(t *testing.T) {
	const name = "n9.zenmux-test.invalid:8300"
	s, err := Open(Options{NodeID: "n9", Dir: t.TempDir(), RaftAddr: freeAddr(t), RaftAdvertise: name, Bootstrap: true,
		Secret: testSecret, HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("open with an advertised name that does not resolve: %v", err)
	}
	defer s.Close()
	if got := s.LocalAddr(); got != name {
		t.Fatalf("raft advertises %q, want %q", got, name)
	}
}
