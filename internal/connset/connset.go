// Package connset tracks the connections a listener accepted, so that a
// server whose graceful shutdown ran out of time can cut the ones still
// open: their handlers then see the cut and finish, as when a client goes
// away, instead of being killed with the process.
package connset

import (
	"net"
	"sync"
)

// Listener is a net.Listener that remembers its open connections.
type Listener struct {
	net.Listener
	mu    sync.Mutex
	conns map[*conn]struct{}
	cut   bool
}

// Wrap tracks the connections ln accepts.
func Wrap(ln net.Listener) *Listener {
	return &Listener{Listener: ln, conns: map[*conn]struct{}{}}
}

// Accept returns the next connection, tracked until it is closed; once
// CloseAll has run, an accepted connection is closed at once.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &conn{Conn: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		c.Close()
		return tc, nil
	}
	l.conns[tc] = struct{}{}
	return tc, nil
}

// CloseAll closes every open connection and any accepted later; it
// returns how many were open.
func (l *Listener) CloseAll() int {
	l.mu.Lock()
	l.cut = true
	open := make([]*conn, 0, len(l.conns))
	for c := range l.conns {
		open = append(open, c)
	}
	l.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
	return len(open)
}

type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return err
}
