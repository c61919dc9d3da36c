package connset

import (
	"io"
	"net"
	"testing"
	"time"
)

// CloseAll cuts the connections still open (a reader blocked on one sees
// it end), forgets the ones closed before, and cuts any accepted after.
func TestCloseAllCutsOpenConnections(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Wrap(raw)
	defer l.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for range 3 {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() (client, server net.Conn) {
		t.Helper()
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		select {
		case s := <-accepted:
			return c, s
		case <-time.After(5 * time.Second):
			t.Fatal("not accepted within 5 s")
			return nil, nil
		}
	}
	_, done := dial()
	done.Close()
	_, open := dial()
	read := make(chan error, 1)
	go func() { _, err := open.Read(make([]byte, 1)); read <- err }()
	if n := l.CloseAll(); n != 1 {
		t.Fatalf("CloseAll closed %d, want 1 (the one still open)", n)
	}
	select {
	case err := <-read:
		if err == nil {
			t.Fatal("a read on a cut connection returned data")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a reader on the cut connection still blocked after 5 s")
	}
	client, _ := dial() // accepted after CloseAll: cut at once
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a connection accepted after CloseAll: read %v, want EOF", err)
	}
}
