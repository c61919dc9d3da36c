package node

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"zenmux/config"
)

// Node-to-node TLS ([cluster] tls_cert_file, tls_key_file, tls_ca_file).
//
// One config serves every node-to-node path: the Raft transport (server
// and client), the admin listener, and the peers client that calls other
// nodes' /internal/v1/ endpoints. It is TLS 1.3 only, presents this node's
// certificate, and trusts the cluster CA alone, never the system roots:
//
//   - as a client it verifies the peer's chain against the CA and the
//     peer's certificate against the host it dialed (ServerName is left
//     empty: fasthttp and the Raft transport fill it with the host of the
//     address, usually an IP). Node certificates therefore carry the hosts
//     peers dial — node.advertise_raft and node.advertise_admin, by default
//     raft_listen and admin_listen — as IP (or DNS) SANs, which clusterTLS
//     checks for this node;
//   - as the Raft server it requires a client certificate from the CA.
//
// The admin listener serves the same certificate but only verifies a
// client certificate when one is given: operators call the admin API over
// https with their admin token and no certificate, and node-to-node calls
// (/internal/v1) show both their certificate and the cluster token derived
// from the secret.
//
// The cluster certificates are read once at start; rotating them needs a
// restart.
//
// # The admin listener with the operator's certificate
//
// [admin] tls_cert_file and tls_key_file give the admin listener a second
// certificate, the operator's (a public CA's, say, for the names operators
// type), reloaded like the proxy's (certReloader). Peers dial the same
// listener at node.advertise_admin, often an IP no public CA certifies,
// and trust the cluster CA alone; so the listener serves two certificates
// and chooses per connection by ALPN: every node-to-node TLS client offers
// the protocol "zenmux-peer" (peerALPN), and a ClientHello that offers it
// gets the cluster configuration (the node's certificate, a client
// certificate of the cluster CA required); any other (curl, a browser, an
// SDK) gets the operator's certificate and is asked for no client
// certificate, though one of the cluster CA is still verified when given.
// /internal/v1 keeps requiring a verified cluster client certificate
// (cluster.InternalHandler) whichever certificate the server showed, so
// the choice by ALPN decides only what the client is shown, never what it
// may do. ALPN rather than the server name: peers send the host they
// dial, which operators may dial too. A node of an older release offers no
// ALPN and would be shown the operator's certificate: set [admin] tls_*
// once every node runs a release with this.

// ErrClusterTLS is a [cluster] TLS file that cannot serve: unreadable, not
// PEM, a key that does not match, a certificate the CA does not sign for
// both server and client use, or one that does not name this node's hosts.
var ErrClusterTLS = errors.New("cluster tls")

// clusterTLS reads and checks the [cluster] TLS files and returns the
// node's TLS config; nil when TLS is not configured. Config only checks
// that the three files are named together and exist; Run calls this before
// it starts anything, so a certificate that cannot serve stops the node
// at once rather than at its first peer's handshake. Every error names
// its key.
func clusterTLS(cfg *config.Config) (*tls.Config, error) {
	c := &cfg.Cluster
	if !c.TLSEnabled() {
		return nil, nil
	}
	fail := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrClusterTLS, key, fmt.Sprintf(format, args...))
	}
	files := []struct{ key, path string }{
		{"cluster.tls_cert_file", c.TLSCertFile},
		{"cluster.tls_key_file", c.TLSKeyFile},
		{"cluster.tls_ca_file", c.TLSCAFile},
	}
	data := make([][]byte, len(files))
	var errs []error
	for i, f := range files {
		b, err := os.ReadFile(f.path)
		if err != nil {
			errs = append(errs, fail(f.key, "%v", err))
		}
		data[i] = b
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	certPEM, keyPEM, caPEM := data[0], data[1], data[2]
	chain, err := parseCerts(certPEM)
	if err != nil {
		return nil, fail("cluster.tls_cert_file", "%s: %v", c.TLSCertFile, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fail("cluster.tls_key_file", "%s: %v (a PEM private key matching cluster.tls_cert_file)", c.TLSKeyFile, err)
	}
	cas, err := parseCerts(caPEM)
	if err != nil {
		return nil, fail("cluster.tls_ca_file", "%s: %v", c.TLSCAFile, err)
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	inter := x509.NewCertPool()
	for _, ic := range chain[1:] {
		inter.AddCert(ic)
	}
	leaf := chain[0]
	// Every node is both a server and a client of its peers.
	for _, u := range []struct {
		usage x509.ExtKeyUsage
		name  string
	}{{x509.ExtKeyUsageServerAuth, "server"}, {x509.ExtKeyUsageClientAuth, "client"}} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{u.usage}}); err != nil {
			return nil, fail("cluster.tls_cert_file", "%s does not verify against cluster.tls_ca_file for %s authentication (node certificates need both server and client authentication): %v",
				c.TLSCertFile, u.name, err)
		}
	}
	// Peers verify the host they dial; a wildcard listener is no host.
	n := &cfg.Node
	raftKey, adminKey := "node.raft_listen", "node.admin_listen"
	if n.AdvertiseRaft != "" {
		raftKey = "node.advertise_raft"
	}
	if n.AdvertiseAdmin != "" {
		adminKey = "node.advertise_admin"
	}
	for _, l := range []struct{ key, addr string }{{raftKey, n.RaftAddr()}, {adminKey, n.AdminAddr()}} {
		if config.WildcardHost(l.addr) {
			continue
		}
		host, _, _ := net.SplitHostPort(l.addr)
		if err := leaf.VerifyHostname(host); err != nil {
			errs = append(errs, fail("cluster.tls_cert_file", "%s is not valid for the host of %s, which peers verify: %v", c.TLSCertFile, l.key, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cert.Leaf = leaf
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		NextProtos:   []string{peerALPN},
	}, nil
}

// peerALPN is the ALPN protocol node-to-node TLS clients offer, by which
// the admin listener tells a peer from an operator.
const peerALPN = "zenmux-peer"

// errNoCertificate is a PEM file without a CERTIFICATE block.
var errNoCertificate = errors.New("no PEM certificate found")

// parseCerts returns every CERTIFICATE block of a PEM file, in order.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errNoCertificate
	}
	return out, nil
}

// listenAdmin opens the admin listener: TLS when conf is set, else plain
// TCP. Handshakes happen on each connection's first read, in fasthttp's
// per-connection goroutine, under the server's read timeout.
func listenAdmin(addr string, conf *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil || conf == nil {
		return ln, err
	}
	return tls.NewListener(ln, conf), nil
}

// adminTLS is the admin listener's TLS configuration from the cluster's
// (peer, nil without cluster TLS) and the operator's [admin] pair; nil
// when neither is set. A ClientHello offering peerALPN gets the cluster
// configuration, any other the operator's certificate, or the cluster's
// when [admin] names none (see the package comment on this file).
func adminTLS(cfg *config.Config, peer *tls.Config, log zerolog.Logger) (*tls.Config, error) {
	var operator *tls.Config
	if cfg.Admin.TLSCertFile != "" {
		r, err := newCertReloader("admin", cfg.Admin.TLSCertFile, cfg.Admin.TLSKeyFile, log, time.Now)
		if err != nil {
			return nil, err
		}
		operator = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate, NextProtos: []string{"http/1.1"}}
		if peer != nil {
			operator.ClientCAs, operator.ClientAuth = peer.ClientCAs, tls.VerifyClientCertIfGiven
		}
	}
	switch {
	case peer == nil:
		return operator, nil
	case operator == nil:
		// Today's listener: the cluster certificate for everyone, a client
		// certificate verified when given. ALPN is not negotiated (curl's
		// h2 and http/1.1 would match no protocol of a peer's).
		operator = peer.Clone()
		operator.ClientAuth, operator.NextProtos = tls.VerifyClientCertIfGiven, nil
	}
	peers := peer.Clone()
	peers.ClientAuth = tls.RequireAndVerifyClientCert
	return &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		if slices.Contains(h.SupportedProtos, peerALPN) {
			return peers, nil
		}
		return operator, nil
	}}, nil
}

// certReloader serves a certificate and key from files, read again when
// either file's modification time or size changes, looked at no more than
// once a second (reloadEvery). A pair that no longer loads (a half-written
// renewal, say) keeps the last good one serving and is logged; the next
// look tries again. The proxy and the admin listener each have one.
type certReloader struct {
	listener          string // "proxy" or "admin", in errors and logs
	certFile, keyFile string
	log               zerolog.Logger
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string // the files' modification times and sizes when cert was read
	checkedAt time.Time
}

// reloadEvery bounds how often the files are looked at.
const reloadEvery = time.Second

// newCertReloader reads the pair once; a pair that does not load now is
// the node's start failing.
func newCertReloader(listener, certFile, keyFile string, log zerolog.Logger, now func() time.Time) (*certReloader, error) {
	r := &certReloader{listener: listener, certFile: certFile, keyFile: keyFile, log: log, now: now}
	stamp, err := r.stampOf()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s TLS: %w", listener, err)
	}
	r.cert, r.stamp, r.checkedAt = &cert, stamp, now()
	return r, nil
}

func (r *certReloader) stampOf() (string, error) {
	var b strings.Builder
	for _, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("%s TLS: %w", r.listener, err)
		}
		fmt.Fprintf(&b, "%d/%d;", st.ModTime().UnixNano(), st.Size())
	}
	return b.String(), nil
}

// GetCertificate is tls.Config's hook: the current certificate, reloaded
// first when the files changed.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checkedAt) >= reloadEvery {
		r.checkedAt = now
		if stamp, err := r.stampOf(); err == nil && stamp != r.stamp {
			cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
			if err != nil {
				r.log.Error().Err(err).Str("listener", r.listener).Str("cert", r.certFile).Msg("the listener's new TLS certificate does not load; still serving the previous one")
			} else {
				r.cert, r.stamp = &cert, stamp
				r.log.Info().Str("listener", r.listener).Str("cert", r.certFile).Msg("TLS certificate reloaded")
			}
		}
	}
	return r.cert, nil
}

// proxyTLS is the proxy listener's TLS configuration, or nil when
// [proxy] names no certificate. HTTP/2 is not offered: fasthttp speaks
// HTTP/1.1 only.
func proxyTLS(cfg *config.Config, log zerolog.Logger) (*tls.Config, error) {
	if cfg.Proxy.TLSCertFile == "" {
		return nil, nil
	}
	r, err := newCertReloader("proxy", cfg.Proxy.TLSCertFile, cfg.Proxy.TLSKeyFile, log, time.Now)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate, NextProtos: []string{"http/1.1"}}, nil
}
