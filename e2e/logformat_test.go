package e2e

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// Every line a node writes — its own entries, Raft's (through go-hclog),
// Pebble's, fasthttp's — is one JSON object with a "level" and a
// "message", so one log pipeline reads a whole cluster. The test drives a
// three-node cluster through joins, forwarded writes, proxied requests and
// a malformed request on each listener (which fasthttp logs), stops every
// node with SIGTERM, and reads each node's whole log.
func TestLogFormat(t *testing.T) {
	nodes := startCluster(t, 3)
	r := nodes[1].AdminDo("POST", "/admin/v1/accounts", `{"email":"log@example.com","name":"Log"}`)
	if r.Status != 201 {
		t.Fatalf("create account through a follower: %d %s", r.Status, r.Body)
	}
	acct := r.JSON(t)["id"].(string)
	if r := nodes[2].AdminDo("POST", "/admin/v1/accounts/"+acct+"/balance", `{"add_usd":1}`, "Idempotency-Key: log-1"); r.Status != 200 {
		t.Fatalf("top up through a follower: %d %s", r.Status, r.Body)
	}
	key := nodes[0].AdminDo("POST", "/admin/v1/accounts/"+acct+"/keys", `{"kind":"subscription","name":"k"}`).JSON(t)["key"].(string)
	for _, n := range nodes {
		r := Do(t, "POST", n.Proxy+"/v1/chat/completions", `{"model":"zenmux/echo","messages":[{"role":"user","content":"log line"}]}`, "Authorization: Bearer "+key)
		if r.Status != 200 {
			t.Fatalf("proxy on %s: %d %s", n.ID, r.Status, r.Body)
		}
		for _, base := range []string{n.Proxy, n.Admin} {
			sendGarbage(t, strings.TrimPrefix(base, "http://"))
		}
	}
	// Followers first, the leader last: no election runs while the cluster
	// shuts down, so each stop is quick.
	for i := len(nodes) - 1; i >= 0; i-- {
		nodes[i].Stop()
	}

	for _, n := range nodes {
		b, err := os.ReadFile(n.logPath)
		if err != nil {
			t.Fatal(err)
		}
		loggers := map[string]int{}
		lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
		for i, line := range lines {
			var entry map[string]any
			if err := json.Unmarshal(line, &entry); err != nil {
				t.Errorf("%s line %d is not a JSON object (%v): %s", n.ID, i+1, err, line)
				continue
			}
			level, _ := entry["level"].(string)
			msg, _ := entry["message"].(string)
			if level == "" || msg == "" {
				t.Errorf("%s line %d has no level or no message: %s", n.ID, i+1, line)
			}
			if name, ok := entry["logger"].(string); ok {
				loggers[name]++
			}
		}
		t.Logf("%s wrote %d lines; by library: %v", n.ID, len(lines), loggers)
		// Each listener logged the malformed request through zerolog.
		if loggers["fasthttp.proxy"] == 0 || loggers["fasthttp.admin"] == 0 {
			t.Errorf("%s: no fasthttp entry from both listeners after a malformed request to each: %v", n.ID, loggers)
		}
	}
	// A bootstrapping node's Raft starts an election with a warning: the
	// hclog adapter is wired.
	b, _ := os.ReadFile(nodes[0].logPath)
	if !bytes.Contains(b, []byte(`"logger":"raft"`)) {
		t.Errorf("n1 logged nothing from Raft; its log:\n%s", tail(string(b), 2000))
	}
}

// sendGarbage writes a request fasthttp cannot parse to addr and reads the
// answer, so that the server logs the failed connection.
func sendGarbage(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("NOT HTTP AT ALL\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	var buf [512]byte
	n, _ := c.Read(buf[:])
	if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 400")) {
		t.Errorf("malformed request to %s: answered %q, want a 400", addr, buf[:n])
	}
}
