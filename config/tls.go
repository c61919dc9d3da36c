package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
)

// ClusterTLS is the loaded and checked [cluster] TLS material.
type ClusterTLS struct {
	Cert tls.Certificate // this node's chain and key
	CA   *x509.CertPool  // the cluster CA: peers' chains must end there
}

// LoadTLS reads and checks the [cluster] TLS files, as Validate does; it
// returns nil, nil when none is set. The node calls it at start, so files
// changed since Validate are checked again. Errors name the key.
func (c Cluster) LoadTLS() (*ClusterTLS, error) {
	var p problems
	m := c.loadTLS(&p, nil)
	if err := errors.Join(p...); err != nil {
		return nil, err
	}
	return m, nil
}

// loadTLS checks the [cluster] TLS keys: all three or none, and then that
// the files exist and parse, that the key matches the certificate, and
// that the certificate chains to the CA for both server and client use
// (every node is both) and is valid now. When node is given, it also
// checks that the certificate names the hosts of node.raft_listen and
// node.admin_listen, which peers dial and verify (wildcard hosts are not
// checked). It returns nil when TLS is off or a problem was found.
func (c Cluster) loadTLS(p *problems, node *Node) *ClusterTLS {
	if !c.TLSEnabled() {
		return nil
	}
	files := []struct{ key, path string }{
		{"cluster.tls_cert_file", c.TLSCertFile},
		{"cluster.tls_key_file", c.TLSKeyFile},
		{"cluster.tls_ca_file", c.TLSCAFile},
	}
	data := make([][]byte, len(files))
	ok := true
	for i, f := range files {
		if f.path == "" {
			p.add(f.key, "must be set when any of cluster.tls_cert_file, cluster.tls_key_file, cluster.tls_ca_file is (all three or none)")
			ok = false
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			p.add(f.key, "%v", err)
			ok = false
			continue
		}
		data[i] = b
	}
	if !ok {
		return nil
	}
	certPEM, keyPEM, caPEM := data[0], data[1], data[2]
	chain, err := parseCerts(certPEM)
	if err != nil {
		p.add("cluster.tls_cert_file", "%s: %v", c.TLSCertFile, err)
		return nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		p.add("cluster.tls_key_file", "%s: %v (a PEM private key matching cluster.tls_cert_file)", c.TLSKeyFile, err)
		return nil
	}
	cas, err := parseCerts(caPEM)
	if err != nil {
		p.add("cluster.tls_ca_file", "%s: %v", c.TLSCAFile, err)
		return nil
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
	for _, u := range []struct {
		usage x509.ExtKeyUsage
		name  string
	}{{x509.ExtKeyUsageServerAuth, "server"}, {x509.ExtKeyUsageClientAuth, "client"}} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{u.usage}}); err != nil {
			p.add("cluster.tls_cert_file", "%s does not verify against cluster.tls_ca_file for %s authentication (node certificates need both server and client authentication): %v",
				c.TLSCertFile, u.name, err)
			return nil
		}
	}
	if node != nil {
		raftKey, adminKey := "node.raft_listen", "node.admin_listen"
		if node.AdvertiseRaft != "" {
			raftKey = "node.advertise_raft"
		}
		if node.AdvertiseAdmin != "" {
			adminKey = "node.advertise_admin"
		}
		for _, l := range []struct{ key, addr string }{{raftKey, node.RaftAddr()}, {adminKey, node.AdminAddr()}} {
			host, _, err := net.SplitHostPort(l.addr)
			if err != nil || wildcard(host) {
				continue
			}
			if err := leaf.VerifyHostname(host); err != nil {
				p.add("cluster.tls_cert_file", "%s is not valid for the host of %s, which peers verify: %v", c.TLSCertFile, l.key, err)
			}
		}
	}
	cert.Leaf = leaf
	return &ClusterTLS{Cert: cert, CA: pool}
}

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
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}
