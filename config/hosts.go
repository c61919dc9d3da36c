package config

import (
	"net"
	"strconv"
	"strings"
	"unicode"
)

// checkHostPort checks that addr is host:port with a numeric port in
// 1..65535. A listener may leave the host empty (all interfaces); a peer
// address (listener false) may not. It reports whether addr was valid.
func checkHostPort(p *problems, key, addr string, listener bool) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add(key, "%q is not host:port: %v", addr, err)
		return false
	}
	if host == "" && !listener {
		p.add(key, "%q has no host", addr)
		return false
	}
	if strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' }) {
		p.add(key, "%q: the host holds a space, a control character or a slash", addr)
		return false
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		p.add(key, "%q: port must be a number in 1..65535", addr)
		return false
	}
	return true
}

// sameListener reports whether two valid host:port listen addresses would
// bind the same port: equal hosts, or either one the wildcard.
func sameListener(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	if pa != pb {
		return false
	}
	return strings.EqualFold(ha, hb) || wildcard(ha) || wildcard(hb)
}

// wildcard reports whether a listen host means every interface.
func wildcard(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
}

// WildcardHost reports whether host:port has no host or one meaning every
// interface (or is not host:port): an address to listen on, not to dial.
func WildcardHost(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	return wildcard(host)
}
