package e2e

import (
	"bufio"
	"strings"
	"testing"
)

// The developer half of the README: a subscription key calls the built-in
// echo model through the real binary, streamed and not, on both wire
// formats, and the usage it reads back is exactly what the answers reported
// (Q7, U1). The charges are committed before the answers end (C2), so the
// usage read right after is complete.
func TestREADMEDeveloperWalkthrough(t *testing.T) {
	n := StartNode(t, NodeOptions{})
	acct := n.AdminDo("POST", "/admin/v1/accounts", `{"email":"dev@example.com","name":"Dev"}`).JSON(t)["id"].(string)
	key := n.AdminDo("POST", "/admin/v1/accounts/"+acct+"/keys", `{"kind":"subscription","name":"laptop"}`).JSON(t)["key"].(string)

	r := Do(t, "POST", n.Proxy+"/v1/chat/completions", `{"model":"zenmux/echo","messages":[{"role":"user","content":"hello zenmux"}]}`, "Authorization: Bearer "+key)
	if r.Status != 200 || r.Header.Get("x-zenmux-billing") != "subscription" || r.Header.Get("x-zenmux-request-id") == "" {
		t.Fatalf("chat: %d %v %s", r.Status, r.Header, r.Body)
	}
	chat := r.JSON(t)
	// The echo provider counts input as the upstream body's bytes / 4: the
	// body with the model rewritten to "echo" is 70 bytes → 18 tokens.
	Expect(t, chat, "choices.0.message.content", "echo: hello zenmux", "usage.prompt_tokens", "18", "usage.completion_tokens", "3")

	r = Do(t, "POST", n.Proxy+"/v1/messages?beta=true", `{"model":"zenmux/echo","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"stream me"}]}`,
		"x-api-key: "+key, "anthropic-version: 2023-06-01")
	if r.Status != 200 || !strings.HasSuffix(strings.TrimSpace(string(r.Body)), `data: {"type":"message_stop"}`) {
		t.Fatalf("messages stream: %d %s", r.Status, r.Body)
	}
	events := 0
	sc := bufio.NewScanner(strings.NewReader(string(r.Body)))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "event: ") {
			events++
		}
	}
	if events != 8 { // start, block start, 3 deltas, block stop, message_delta, stop
		t.Fatalf("%d events: %s", events, r.Body)
	}

	// Input 18 + 25 tokens (the second body is 97 bytes upstream), output
	// 3 + 3, at $1 and $4 per million: 30 + 37 = 67 µUSD. In Flows at
	// $0.03283, rounded half-up per request: 0.000914 + 0.001127.
	u := n.AdminDo("GET", "/admin/v1/accounts/"+acct+"/usage", "").JSON(t)
	Expect(t, u, "by_model.0.model", "zenmux/echo", "by_model.0.requests", "2", "by_model.0.input_tokens", "43",
		"by_model.0.output_tokens", "6", "by_model.0.usd_value", "0.000067", "window_5h.used_flows", "0.002041")
	logs := n.AdminDo("GET", "/admin/v1/accounts/"+acct+"/requests?limit=10", "").JSON(t)
	Expect(t, logs, "data.0.billing", "subscription", "data.0.status", "ok", "data.0.estimated", "false", "data.1.input_tokens", "18",
		"data.0.flows", "0.001127", "data.1.flows", "0.000914")

	bad := Do(t, "POST", n.Proxy+"/v1/chat/completions", `{"model":"zenmux/echo","messages":[]}`, "Authorization: Bearer sk-ss-v1-nope")
	if bad.Status != 401 || bad.Header.Get("x-should-retry") != "false" {
		t.Fatalf("bad key: %d %v", bad.Status, bad.Header)
	}
	Expect(t, bad.JSON(t), "error.code", "invalid_api_key")
}
