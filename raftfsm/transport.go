package raftfsm

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// authStream is a raft.StreamLayer over TCP whose every connection starts
// with a mutual challenge-response on the cluster secret, so only nodes
// that hold the secret can append entries, vote or install snapshots:
//
//	server → client: nonceS (32 bytes)
//	client → server: HMAC(secret, "client" ‖ nonceS) ‖ nonceC (32 bytes)
//	server → client: HMAC(secret, "server" ‖ nonceC)
//
// Handshakes run off the accept loop with a deadline, so a silent peer
// cannot stall Raft's listener.
//
// With TLS configured (Options.TLS), every connection is first wrapped in
// mutual TLS 1.3 and the challenge above runs inside it, so the secret is
// still required:
//
//   - the accepting side requires a client certificate that chains to the
//     cluster CA (ClientCAs) with the client-auth key usage;
//   - the dialing side verifies the server's chain against the cluster CA
//     (RootCAs) with the server-auth key usage AND its name against the
//     host of the dial address (ServerName = host of the peer's raft
//     address, usually an IP): node certificates carry their raft_listen
//     and admin_listen hosts as IP (or DNS) SANs. Standard verification,
//     no InsecureSkipVerify anywhere; a certificate stolen from one node
//     does not let its holder answer for another node's address.
//   - both HMACs also cover a TLS exporter value of the session
//     (channel binding, RFC 5705/8446 §7.5), so a holder of some CA-signed
//     certificate but not the secret cannot relay the challenge between
//     two real nodes and sit in the middle of their traffic.
type authStream struct {
	ln        net.Listener
	advertise net.Addr
	secret    []byte
	tls       *tls.Config // nil: plain TCP
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
	// dial opens a peer connection (nil: net.DialTimeout).
	dial func(addr string, timeout time.Duration) (net.Conn, error)
}

const handshakeTimeout = 5 * time.Second

// exporterLabel names the TLS exporter value the HMACs are bound to.
const exporterLabel = "EXPORTER-zenmux-raft-cluster-secret"

var errHandshake = errors.New("raft peer failed the cluster-secret handshake")

func newAuthStream(bind string, advertise net.Addr, secret []byte, tlsConf *tls.Config) (*authStream, error) {
	if len(secret) == 0 {
		return nil, errors.New("raft transport: a cluster secret is required")
	}
	var conf *tls.Config
	if tlsConf != nil {
		var err error
		if conf, err = transportTLS(tlsConf); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	s := &authStream{ln: ln, advertise: advertise, secret: secret, tls: conf, conns: make(chan net.Conn), closed: make(chan struct{})}
	go s.acceptLoop()
	return s, nil
}

// transportTLS checks the caller's TLS config and returns a copy that
// enforces mutual authentication against the cluster CA: a config that
// would fall back to the system roots or skip verification is refused
// rather than silently weakened.
func transportTLS(in *tls.Config) (*tls.Config, error) {
	switch {
	case len(in.Certificates) == 0 && in.GetCertificate == nil:
		return nil, errors.New("raft transport TLS: no node certificate")
	case in.RootCAs == nil || in.ClientCAs == nil:
		return nil, errors.New("raft transport TLS: RootCAs and ClientCAs must both hold the cluster CA")
	case in.InsecureSkipVerify:
		return nil, errors.New("raft transport TLS: InsecureSkipVerify is not allowed")
	}
	c := in.Clone()
	c.ClientAuth = tls.RequireAndVerifyClientCert
	if c.MinVersion < tls.VersionTLS13 {
		c.MinVersion = tls.VersionTLS13 // both ends are zenmuxd
	}
	c.NextProtos = nil
	return c, nil
}

func (s *authStream) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.Close()
			return
		}
		go func() {
			c, err := s.serverConn(c)
			if err != nil {
				return
			}
			select {
			case s.conns <- c:
			case <-s.closed:
				c.Close()
			}
		}()
	}
}

// serverConn authenticates an accepted connection (TLS when configured,
// then the secret) under one deadline; it closes raw on failure.
func (s *authStream) serverConn(raw net.Conn) (net.Conn, error) {
	_ = raw.SetDeadline(time.Now().Add(handshakeTimeout))
	c, binding := raw, []byte(nil)
	if s.tls != nil {
		tc := tls.Server(raw, s.tls)
		var err error
		if binding, err = tlsHandshake(tc); err != nil {
			raw.Close()
			return nil, err
		}
		c = tc
	}
	if err := s.serverHandshake(c, binding); err != nil {
		raw.Close()
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	return c, nil
}

// tlsHandshake completes a TLS handshake and returns the session's
// exporter value, which both ends then mix into their HMACs.
func tlsHandshake(tc *tls.Conn) ([]byte, error) {
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("raft transport TLS: %w", err)
	}
	st := tc.ConnectionState()
	if st.Version < tls.VersionTLS13 {
		return nil, errors.New("raft transport TLS: TLS 1.3 required")
	}
	return st.ExportKeyingMaterial(exporterLabel, nil, 32)
}

// mac is HMAC(secret, label ‖ nonce ‖ binding); binding is empty on plain
// TCP, which keeps the plain wire format unchanged.
func (s *authStream) mac(label string, nonce, binding []byte) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(label))
	m.Write(nonce)
	m.Write(binding)
	return m.Sum(nil)
}

func (s *authStream) serverHandshake(c net.Conn, binding []byte) error {
	nonceS := make([]byte, 32)
	if _, err := rand.Read(nonceS); err != nil {
		return err
	}
	if _, err := c.Write(nonceS); err != nil {
		return err
	}
	reply := make([]byte, 64)
	if _, err := io.ReadFull(c, reply); err != nil {
		return err
	}
	if !hmac.Equal(reply[:32], s.mac("client", nonceS, binding)) {
		return errHandshake
	}
	_, err := c.Write(s.mac("server", reply[32:], binding))
	return err
}

func (s *authStream) clientHandshake(c net.Conn, binding []byte) error {
	nonceS := make([]byte, 32)
	if _, err := io.ReadFull(c, nonceS); err != nil {
		return err
	}
	nonceC := make([]byte, 32)
	if _, err := rand.Read(nonceC); err != nil {
		return err
	}
	if _, err := c.Write(append(s.mac("client", nonceS, binding), nonceC...)); err != nil {
		return err
	}
	proof := make([]byte, 32)
	if _, err := io.ReadFull(c, proof); err != nil {
		return err
	}
	if !hmac.Equal(proof, s.mac("server", nonceC, binding)) {
		return errHandshake
	}
	return nil
}

// Accept returns the next authenticated connection.
func (s *authStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

// Close stops accepting.
func (s *authStream) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return s.ln.Close()
}

// Addr is the address other nodes dial.
func (s *authStream) Addr() net.Addr { return s.advertise }

// namedAddr is an advertised address as configured: a host name stays a
// name for peers to resolve, the same string the node's member record
// carries.
type namedAddr string

func (a namedAddr) Network() string { return "tcp" }
func (a namedAddr) String() string  { return string(a) }

// dialTCP is the dial of a stream that was given none.
func dialTCP(addr string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, timeout)
}

// Dial connects to a peer and authenticates both ends.
func (s *authStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 || timeout > handshakeTimeout {
		timeout = handshakeTimeout
	}
	deadline := time.Now().Add(timeout)
	dial := s.dial
	if dial == nil {
		dial = dialTCP
	}
	raw, err := dial(string(address), timeout)
	if err != nil {
		return nil, err
	}
	_ = raw.SetDeadline(deadline)
	c, binding := raw, []byte(nil)
	if s.tls != nil {
		host, _, err := net.SplitHostPort(string(address))
		if err != nil {
			raw.Close()
			return nil, err
		}
		conf := s.tls.Clone()
		conf.ServerName = host // verify the peer's certificate for the address dialed
		tc := tls.Client(raw, conf)
		if binding, err = tlsHandshake(tc); err != nil {
			raw.Close()
			return nil, err
		}
		c = tc
	}
	if err := s.clientHandshake(c, binding); err != nil {
		raw.Close()
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	return c, nil
}
