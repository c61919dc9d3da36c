package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"zenmux/config"
	"zenmux/internal/testca"
)

// withTLS is the default config (listeners on 127.0.0.1, which testca's
// certificates name) with the three TLS files set.
func withTLS(cert, key, ca string) *config.Config {
	c := config.Default()
	c.Cluster.SecretFile = "s"
	c.Cluster.TLSCertFile, c.Cluster.TLSKeyFile, c.Cluster.TLSCAFile = cert, key, ca
	return c
}

func TestClusterTLS(t *testing.T) {
	_, f := testca.NodeFiles(t)
	conf, err := clusterTLS(withTLS(f.Cert, f.Key, f.CA))
	if err != nil || conf == nil {
		t.Fatalf("clusterTLS = %v, %v", conf, err)
	}
	if conf.MinVersion != tls.VersionTLS13 || len(conf.Certificates) != 1 || conf.Certificates[0].Leaf == nil || conf.Certificates[0].PrivateKey == nil ||
		conf.RootCAs == nil || conf.ClientCAs == nil || conf.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("clusterTLS = %+v", conf)
	}
	if conf, err := clusterTLS(config.Default()); conf != nil || err != nil {
		t.Fatalf("clusterTLS without TLS = %+v, %v; want nil, nil", conf, err)
	}
}

// Peers verify the advertised addresses, not a wildcard listener's; a DNS
// name is checked as well as an IP.
func TestClusterTLSHosts(t *testing.T) {
	_, f := testca.NodeFiles(t)
	wild := func(advertiseRaft string) *config.Config {
		c := withTLS(f.Cert, f.Key, f.CA)
		c.Node.RaftListen, c.Node.AdminListen = "0.0.0.0:8300", ":8081"
		c.Node.AdvertiseAdmin, c.Node.AdvertiseRaft = "127.0.0.1:8081", advertiseRaft
		return c
	}
	if _, err := clusterTLS(wild("127.0.0.1:8300")); err != nil {
		t.Fatalf("wildcard listeners: %v", err)
	}
	if _, err := clusterTLS(wild("10.9.9.9:8300")); !errors.Is(err, ErrClusterTLS) || !strings.Contains(err.Error(), "node.advertise_raft") ||
		strings.Contains(err.Error(), "node.advertise_admin") {
		t.Fatalf("advertised address outside the certificate: %v", err)
	}
	ca, _ := testca.NodeFiles(t)
	dc, dk := ca.Issue(t, "node", func(c *x509.Certificate) { c.IPAddresses = nil; c.DNSNames = []string{"n1.cluster.internal"} })
	c := withTLS(testca.WriteFile(t, f.Dir, "dns.pem", dc), testca.WriteFile(t, f.Dir, "dns.key", dk), testca.WriteFile(t, f.Dir, "ca2.pem", ca.PEM))
	c.Node.RaftListen, c.Node.AdminListen = "n1.cluster.internal:8300", "n1.cluster.internal:8081"
	if _, err := clusterTLS(c); err != nil {
		t.Fatalf("DNS SAN: %v", err)
	}
}

func TestClusterTLSBad(t *testing.T) {
	ca, f := testca.NodeFiles(t)
	garbage := testca.WriteFile(t, f.Dir, "garbage.pem", []byte("not a certificate\n"))
	other := testca.New(t, "other CA")
	otherCert, otherKey := other.Issue(t, "node", nil)
	otherCertPath := testca.WriteFile(t, f.Dir, "other.pem", otherCert)
	otherKeyPath := testca.WriteFile(t, f.Dir, "other.key", otherKey)
	issue := func(name string, edit func(*x509.Certificate)) string {
		c, k := ca.Issue(t, "node", edit)
		testca.WriteFile(t, f.Dir, name+".key", k)
		return testca.WriteFile(t, f.Dir, name+".pem", c)
	}
	serverOnly := issue("server-only", func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} })
	clientOnly := issue("client-only", func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} })
	expired := issue("expired", func(c *x509.Certificate) { c.NotAfter = time.Now().Add(-time.Minute) })
	wrongIP := issue("wrong-ip", func(c *x509.Certificate) { c.IPAddresses = []net.IP{net.ParseIP("10.9.9.9")} })
	keyOf := func(certPath string) string { return strings.TrimSuffix(certPath, ".pem") + ".key" }

	tests := []struct {
		name             string
		cert, key, caPEM string
		keys             []string // every one must be named
	}{
		{"cert garbage", garbage, f.Key, f.CA, []string{"cluster.tls_cert_file"}},
		{"key garbage", f.Cert, garbage, f.CA, []string{"cluster.tls_key_file"}},
		{"ca garbage", f.Cert, f.Key, garbage, []string{"cluster.tls_ca_file"}},
		{"key of another cert", f.Cert, otherKeyPath, f.CA, []string{"cluster.tls_key_file"}},
		{"cert from another CA", otherCertPath, otherKeyPath, f.CA, []string{"cluster.tls_cert_file"}},
		{"cert server auth only", serverOnly, keyOf(serverOnly), f.CA, []string{"cluster.tls_cert_file"}},
		{"cert client auth only", clientOnly, keyOf(clientOnly), f.CA, []string{"cluster.tls_cert_file"}},
		{"cert expired", expired, keyOf(expired), f.CA, []string{"cluster.tls_cert_file"}},
		{"cert not for raft host", wrongIP, keyOf(wrongIP), f.CA, []string{"cluster.tls_cert_file", "node.raft_listen", "node.admin_listen"}},
		{"ca is a node cert", f.Cert, f.Key, otherCertPath, []string{"cluster.tls_cert_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := clusterTLS(withTLS(tt.cert, tt.key, tt.caPEM))
			if err == nil || conf != nil {
				t.Fatalf("clusterTLS = %+v, %v; want an error", conf, err)
			}
			if !errors.Is(err, ErrClusterTLS) {
				t.Errorf("error %q is not ErrClusterTLS", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "cluster tls: ") {
					t.Errorf("line %q lacks the \"cluster tls: \" prefix", line)
				}
			}
			for _, key := range tt.keys {
				if !strings.Contains(err.Error(), key) {
					t.Errorf("error %q does not name %s", err, key)
				}
			}
		})
	}
}

// The node reads the files when it starts: a file gone since the config
// was validated is an error naming its key.
func TestClusterTLSFileGone(t *testing.T) {
	_, f := testca.NodeFiles(t)
	c := withTLS(f.Cert, f.Key, f.CA)
	for _, tt := range []struct{ path, key string }{{f.CA, "cluster.tls_ca_file"}, {f.Key, "cluster.tls_key_file"}, {f.Cert, "cluster.tls_cert_file"}} {
		if err := os.Remove(tt.path); err != nil {
			t.Fatal(err)
		}
		conf, err := clusterTLS(c)
		if conf != nil || !errors.Is(err, ErrClusterTLS) || !strings.Contains(err.Error(), tt.key) {
			t.Fatalf("clusterTLS without %s = %+v, %v", tt.key, conf, err)
		}
	}
}
