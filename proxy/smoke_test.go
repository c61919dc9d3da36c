package proxy

import (
	"net/http"
	"strings"
	"testing"
)

// The harness itself: an echo chat completion is admitted, answered and
// charged exactly once.
func TestHarnessEchoCharge(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	req, _ := http.NewRequest("POST", g.URL+"/v1/chat/completions", strings.NewReader(`{"model":"zenmux/echo","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("x-zenmux-billing") != "subscription" {
		t.Fatalf("status %d billing %q", resp.StatusCode, resp.Header.Get("x-zenmux-billing"))
	}
	logs := g.requests(acct)
	if len(logs) != 1 || logs[0].ID != resp.Header.Get("x-zenmux-request-id") || logs[0].OutputTokens != 2 {
		t.Fatalf("request log: %+v", logs)
	}
}
