package node

import (
	"crypto/tls"
	"net"

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
//     raft_listen and admin_listen — as IP (or DNS) SANs, which
//     config.Validate checks for this node;
//   - as the Raft server it requires a client certificate from the CA.
//
// The admin listener serves the same certificate but only verifies a
// client certificate when one is given: operators call the admin API over
// https with their admin token and no certificate, and node-to-node calls
// (/internal/v1) show both their certificate and the cluster token derived
// from the secret.
//
// Certificates are read once at start; rotating them needs a restart.

// clusterTLS loads the node's TLS config; nil when TLS is not configured.
func clusterTLS(cfg *config.Config) (*tls.Config, error) {
	m, err := cfg.Cluster.LoadTLS()
	if err != nil || m == nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{m.Cert},
		RootCAs:      m.CA,
		ClientCAs:    m.CA,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// listenAdmin opens the admin listener: TLS when conf is set, else plain
// TCP. Handshakes happen on each connection's first read, in fasthttp's
// per-connection goroutine, under the server's read timeout.
func listenAdmin(addr string, conf *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil || conf == nil {
		return ln, err
	}
	s := conf.Clone()
	s.ClientAuth = tls.VerifyClientCertIfGiven
	return tls.NewListener(ln, s), nil
}

// peerURL is the URL of path on another node's admin listener: https when
// the peers client has a TLS config.
func (n *Node) peerURL(addr, path string) string {
	if n.peers.TLSConfig != nil {
		return "https://" + addr + path
	}
	return "http://" + addr + path
}
