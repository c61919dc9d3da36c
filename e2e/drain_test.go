package e2e

import (
	"bufio"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// drainProviders makes echo stream slowly: 20 words at 10 a second keep a
// stream open about 2 s, so a SIGTERM lands in the middle of it.
const drainProviders = `
[[providers]]
name = "echo"
kind = "echo"
tokens_per_second = 10
`

// stopDuringStream opens an echo stream of the given number of words with
// key, sends the node SIGTERM once its first event is read, and returns
// the rest of the stream as read until it ended, and a channel closed
// once the node has exited.
func stopDuringStream(t *testing.T, n *Node, key string, words int) (string, <-chan struct{}) {
	t.Helper()
	text := strings.TrimSpace(strings.Repeat("word ", words))
	req, _ := http.NewRequest("POST", n.Proxy+"/v1/chat/completions",
		strings.NewReader(`{"model":"zenmux/echo","stream":true,"messages":[{"role":"user","content":"`+text+`"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatalf("first event: %v", err)
	}
	stopped := make(chan struct{})
	go func() { defer close(stopped); n.Stop() }()
	var rest strings.Builder
	for i := 0; i < 1000; i++ {
		line, err := r.ReadString('\n')
		rest.WriteString(line)
		if err != nil {
			break
		}
	}
	return rest.String(), stopped
}

// A SIGTERM drains the node: a stream in flight finishes whole (the client
// reads its [DONE]) and is charged; new connections are refused; the node
// exits cleanly, and after a restart the charge is in the request log.
func TestGracefulDrainFinishesStreams(t *testing.T) {
	n := StartNode(t, NodeOptions{Extra: drainProviders})
	acct := wtAccount(t, n, "drain@example.com")
	key := Get(wtWant(t, n.AdminDo("POST", "/admin/v1/accounts/"+acct+"/keys", `{"kind":"subscription","name":"d"}`), 201), "key")
	rest, stopped := stopDuringStream(t, n, key, 19)
	if !strings.Contains(rest, "data: [DONE]") {
		t.Fatalf("the stream in flight was cut by the drain:\n%s", rest)
	}
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("the node did not exit after draining")
	}
	if _, err := (&http.Client{Timeout: 2 * time.Second}).Get(n.Proxy + "/healthz"); err == nil {
		t.Fatal("the stopped node still answers")
	}
	log, _ := os.ReadFile(n.logPath)
	if !strings.Contains(string(log), "draining") || !strings.Contains(string(log), `"drained"`) {
		t.Errorf("the log does not show the drain:\n%s", tail(string(log), 2000))
	}
	n.Start()
	logs := wtWant(t, n.AdminDo("GET", "/admin/v1/accounts/"+acct+"/requests", ""), 200)
	if entries, _ := logs["data"].([]any); len(entries) != 1 || Get(logs, "data.0.status") != "ok" || Get(logs, "data.0.output_tokens") != "20" {
		t.Fatalf("after the restart the request log is %v, want the one stream, ok", logs)
	}
}

// A leader that is stopped hands leadership over before it exits: the
// other nodes know a leader the moment it is gone, without waiting an
// election timeout.
func TestGracefulDrainHandsOffLeadership(t *testing.T) {
	nodes := startCluster(t, 3)
	Expect(t, nodes[1].AdminDo("GET", "/admin/v1/cluster", "").JSON(t), "leader_id", "n1")
	nodes[0].Stop()
	c := nodes[1].AdminDo("GET", "/admin/v1/cluster", "").JSON(t)
	if got := Get(c, "leader_id"); got != "n2" && got != "n3" {
		t.Fatalf("right after the leader stopped, n2 sees leader %q, want n2 or n3 (handed over): %v", got, c)
	}
	log, _ := os.ReadFile(nodes[0].logPath)
	if !strings.Contains(string(log), `"drained"`) {
		t.Errorf("the stopped leader's log does not say it drained and handed over:\n%s", tail(string(log), 2000))
	}
}

// A stream still open when the drain grace runs out is cut, as a client
// going away cuts it, and charged for what it delivered (Q7: an estimate,
// client_closed); the node then exits, well before the stream would have
// ended, and after a restart the charge is in the request log.
func TestDrainGraceCutsAndChargesOpenStreams(t *testing.T) {
	n := StartNode(t, NodeOptions{Extra: "drain_grace = \"1s\"\n" + drainProviders})
	acct := wtAccount(t, n, "cut@example.com")
	key := Get(wtWant(t, n.AdminDo("POST", "/admin/v1/accounts/"+acct+"/keys", `{"kind":"subscription","name":"c"}`), 201), "key")
	start := time.Now()
	rest, stopped := stopDuringStream(t, n, key, 100) // 10 s at 10 a second
	if strings.Contains(rest, "data: [DONE]") {
		t.Fatal("the stream ended whole: it was not cut at the grace")
	}
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("the node did not exit after the grace")
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Fatalf("the stop took %v: the stream was not cut at the 1 s grace", took)
	}
	log, _ := os.ReadFile(n.logPath)
	if !strings.Contains(string(log), `"cut":1`) || !strings.Contains(string(log), `"still_open":0,"streams":0`) {
		t.Errorf("the log does not show the stream cut and its handler done:\n%s", tail(string(log), 2000))
	}
	n.Start()
	logs := wtWant(t, n.AdminDo("GET", "/admin/v1/accounts/"+acct+"/requests", ""), 200)
	out, _ := strconv.Atoi(Get(logs, "data.0.output_tokens"))
	if entries, _ := logs["data"].([]any); len(entries) != 1 || Get(logs, "data.0.status") != "client_closed" || Get(logs, "data.0.estimated") != "true" || out < 5 || out >= 100 {
		t.Fatalf("after the restart the request log is %v, want the cut stream, client_closed, estimated, 5–99 output tokens", logs)
	}
}
