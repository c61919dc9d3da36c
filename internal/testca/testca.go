// Package testca is a throwaway certificate authority for tests: a CA and
// node certificates for 127.0.0.1 with server and client authentication,
// valid for an hour either side of now.
package testca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// CA signs test certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte // the CA certificate
	Pool *x509.CertPool
}

var serial atomic.Int64

// New makes a CA named name.
func New(t testing.TB, name string) *CA {
	t.Helper()
	tmpl := template(name)
	tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign|x509.KeyUsageCRLSign
	der, key := sign(t, tmpl, nil, nil)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Pool: pool}
}

// Issue signs a certificate named name for 127.0.0.1 with server and
// client authentication; edit, if set, changes the template first. It
// returns the certificate and its PKCS #8 key as PEM.
func (ca *CA) Issue(t testing.TB, name string, edit func(*x509.Certificate)) (certPEM, keyPEM []byte) {
	t.Helper()
	tmpl := template(name)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	if edit != nil {
		edit(tmpl)
	}
	der, key := sign(t, tmpl, ca.Cert, ca.Key)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// template is a certificate named name, valid an hour either side of now.
func template(name string) *x509.Certificate {
	return &x509.Certificate{SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
}

// sign makes a key and signs tmpl with parent's key (itself when parent
// is nil), returning the certificate's DER and the new key.
func sign(t testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

// Files are the paths of a CA's certificate and a node's certificate and
// key, written as PEM into Dir.
type Files struct{ Dir, Cert, Key, CA string }

// NodeFiles makes a CA and a node certificate for 127.0.0.1 and writes the
// three PEM files into a temporary directory.
func NodeFiles(t testing.TB) (*CA, Files) {
	t.Helper()
	dir := t.TempDir()
	ca := New(t, "test cluster CA")
	c, k := ca.Issue(t, "node", nil)
	return ca, Files{Dir: dir, Cert: WriteFile(t, dir, "node.pem", c), Key: WriteFile(t, dir, "node.key", k), CA: WriteFile(t, dir, "ca.pem", ca.PEM)}
}

// WriteFile writes data to dir/name (mode 0600) and returns the path.
func WriteFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
