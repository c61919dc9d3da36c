package proxy

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// studioCall runs one Studio Chat completion for acct through the handler.
func studioCall(t *testing.T, g *gateway, acct, billing, body string) *fasthttp.Response {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/api/v1/me/studio/chat/completions")
	ctx.Request.SetBodyString(body)
	g.Server.ServeStudio(&ctx, acct, billing)
	var r fasthttp.Response
	ctx.Response.CopyTo(&r)
	return &r
}

// rule B1: a Studio Chat request is charged exactly as a request sent
// with a key of its conversation's billing kind — the same Flows on the
// subscription's window, the same USD off the balance.
func TestB1StudioBilledAsItsKind(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, subKey, paygKey := g.account("pro")
	g.topUp(acct, 5_000000)
	body := `{"model":"zenmux/echo","messages":[{"role":"user","content":"one two three four"}]}`

	for _, tc := range []struct {
		billing, key string
	}{{ledger.BillingSubscription, subKey}, {ledger.BillingPayg, paygKey}} {
		t.Run(tc.billing, func(t *testing.T) {
			before := len(g.requests(acct))
			resp, answer := rawPost(t, g.URL+"/v1/chat/completions", tc.key, body)
			if resp.StatusCode != 200 || resp.Header.Get("x-zenmux-billing") != tc.billing {
				t.Fatalf("with a key: %d %s %s", resp.StatusCode, resp.Header.Get("x-zenmux-billing"), answer)
			}
			r := studioCall(t, g, acct, tc.billing, body)
			if r.StatusCode() != 200 || string(r.Header.Peek("x-zenmux-billing")) != tc.billing || !strings.Contains(string(r.Body()), `"model":"zenmux/echo"`) {
				t.Fatalf("studio: %d %s %s", r.StatusCode(), r.Header.Peek("x-zenmux-billing"), r.Body())
			}
			logs := g.waitLogs(acct, before+2)
			keyed, studio := logs[len(logs)-2], logs[len(logs)-1]
			if keyed.Billing != tc.billing || studio.Billing != tc.billing || studio.Flows != keyed.Flows || studio.USDValue != keyed.USDValue ||
				studio.InputTokens != keyed.InputTokens || studio.OutputTokens != keyed.OutputTokens || studio.KeyID != "" {
				t.Fatalf("charged differently:\n with a key %+v\n in Studio  %+v", keyed, studio)
			}
		})
	}
	if r := studioCall(t, g, acct, "free-lunch", `{"model":"zenmux/echo","messages":[{"role":"user","content":"x"}]}`); r.StatusCode() != 400 {
		t.Fatalf("unknown billing: %d %s", r.StatusCode(), r.Body())
	}
}
