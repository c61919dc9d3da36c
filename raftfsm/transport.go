package raftfsm

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
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
type authStream struct {
	ln        net.Listener
	advertise net.Addr
	secret    []byte
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

const handshakeTimeout = 5 * time.Second

var errHandshake = errors.New("raft peer failed the cluster-secret handshake")

func newAuthStream(bind string, advertise net.Addr, secret []byte) (*authStream, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	s := &authStream{ln: ln, advertise: advertise, secret: secret, conns: make(chan net.Conn), closed: make(chan struct{})}
	go s.acceptLoop()
	return s, nil
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
			if err := s.serverHandshake(c); err != nil {
				c.Close()
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

func (s *authStream) mac(label string, nonce []byte) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(label))
	m.Write(nonce)
	return m.Sum(nil)
}

func (s *authStream) serverHandshake(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	defer c.SetDeadline(time.Time{})
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
	if !hmac.Equal(reply[:32], s.mac("client", nonceS)) {
		return errHandshake
	}
	_, err := c.Write(s.mac("server", reply[32:]))
	return err
}

func (s *authStream) clientHandshake(c net.Conn, timeout time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	nonceS := make([]byte, 32)
	if _, err := io.ReadFull(c, nonceS); err != nil {
		return err
	}
	nonceC := make([]byte, 32)
	if _, err := rand.Read(nonceC); err != nil {
		return err
	}
	if _, err := c.Write(append(s.mac("client", nonceS), nonceC...)); err != nil {
		return err
	}
	proof := make([]byte, 32)
	if _, err := io.ReadFull(c, proof); err != nil {
		return err
	}
	if !hmac.Equal(proof, s.mac("server", nonceC)) {
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

// Dial connects to a peer and authenticates both ends.
func (s *authStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 || timeout > handshakeTimeout {
		timeout = handshakeTimeout
	}
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	if err := s.clientHandshake(c, timeout); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
