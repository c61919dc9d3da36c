package proxy

import (
	"encoding/json"
	"testing"

	"zenmux/ledger"
)

// A model whose provider has no API key on this node, or is not
// configured on it at all, is refused in the client's wire format with 503
// model_unavailable naming the cause (not a 502 that reads as an upstream
// fault), tells the SDKs not to retry, and charges nothing (Q7: only what
// was served is charged).
func TestModelOfUnusableProviderUnavailable(t *testing.T) {
	g := newGateway(t, gatewayOptions{problems: map[string]string{"nokey": "has no API key on this node"}})
	for _, m := range []struct{ id, provider string }{{"test/nokey", "nokey"}, {"test/elsewhere", "elsewhere"}} {
		pm := testPrices
		pm.ID, pm.Provider, pm.Upstream, pm.Plans = m.id, m.provider, "up", []string{"free", "pro", "max", "ultra"}
		g.apply(&ledger.PutModel{Model: pm})
	}
	acct, key, _ := g.account("pro")
	for _, c := range []struct {
		model, why string
		anthropic  bool
	}{
		{"test/nokey", `model "test/nokey" is unavailable: its provider "nokey" has no API key on this node`, false},
		{"test/nokey", `model "test/nokey" is unavailable: its provider "nokey" has no API key on this node`, true},
		{"test/elsewhere", `model "test/elsewhere" is unavailable: its provider "elsewhere" is not configured on this node`, false},
	} {
		path, body := "/v1/chat/completions", `{"model":"`+c.model+`","messages":[{"role":"user","content":"hi"}]}`
		if c.anthropic {
			path, body = "/v1/messages", `{"model":"`+c.model+`","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`
		}
		var hdr []string
		if c.anthropic {
			hdr = []string{"anthropic-version", "2023-06-01"}
		}
		resp, b := rawPost(t, g.URL+path, key, body, hdr...)
		var got struct {
			Type  string `json:"type"`
			Error struct {
				Type, Code, Message string
			} `json:"error"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: %s", path, b)
		}
		wantType := map[bool]string{false: "server_error", true: "api_error"}[c.anthropic]
		if resp.StatusCode != 503 || got.Error.Code != "model_unavailable" || got.Error.Message != c.why || got.Error.Type != wantType ||
			resp.Header.Get("x-should-retry") != "false" || (c.anthropic && got.Type != "error") {
			t.Errorf("%s %s: %d %s (x-should-retry %q), want 503 model_unavailable %q of type %s", path, c.model, resp.StatusCode, b, resp.Header.Get("x-should-retry"), c.why, wantType)
		}
	}
	g.noCharge(t, acct)
}
