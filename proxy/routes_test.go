package proxy

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// A model's route and Gemini's surface (docs/api.md "Proxy"; W4, W5):
// each test runs a second gateway over the harness's ledger and batcher,
// with the providers and routes it needs.

// routed starts a gateway whose models all take routes (the harness's
// models are put back without their own provider, as catalog models are),
// and returns its URL.
func routed(t *testing.T, g *gateway, providers map[string]Provider, routes []Route) string {
	t.Helper()
	models := ledger.DefaultModels()
	for _, m := range []struct {
		id    string
		plans []string
	}{{modelGPT, []string{"free", "pro", "max", "ultra"}}, {modelClaude, []string{"free", "pro", "max", "ultra"}}, {modelMax, []string{"max", "ultra"}}} {
		pm := testPrices
		pm.ID, pm.Plans = m.id, m.plans
		models = append(models, pm)
	}
	for _, m := range models {
		m.Provider, m.Upstream = "", ""
		g.apply(&ledger.PutModel{Model: m})
	}
	return routedServer(t, g, providers, routes)
}

// routedServer starts a second gateway over the harness's ledger with
// these providers and routes, and returns its URL.
func routedServer(t *testing.T, g *gateway, providers map[string]Provider, routes []Route) string {
	t.Helper()
	s, err := New(Options{
		NodeID: "t2", Ledger: func() *ledger.Ledger { return g.L }, Now: g.now.Load, Charges: g.charges, AckQuorum: true,
		Providers: providers, Routes: func(string) []Route { return routes },
		ProviderProblems: map[string]string{"keyless": "has no API key on this node"},
		PaygRPM:          600, PaygBurst: 600, CountTokensRPM: 100, CountTokensBurst: 20, Ready: func() bool { return true }, Log: zerolog.New(io.Discard),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: s.Handler, ErrorHandler: s.TransportError}
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

func newTestProvider(t *testing.T, kind, url string) Provider {
	t.Helper()
	suffix := map[string]string{"openai": "/v1"}[kind]
	p, err := NewHTTPProvider(HTTPOptions{Kind: kind, BaseURL: url + suffix, APIKey: "upstream-secret-" + kind,
		MaxConcurrent: 8, ConnectTimeout: time.Second, FirstByteTimeout: 5 * time.Second, IdleTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// closedURL is an address nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func answerWith(status int, body string) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(status)
		ctx.SetContentType("application/json")
		ctx.SetBodyString(body)
	}
}

const routeUsage = `{"prompt_tokens":1200,"completion_tokens":300,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":200}}`

// A 429, a 5xx or a connection refused before any byte reached the client
// moves the call to the next provider on the route; the answer served is
// the one charged, once (M2, Q7).
func TestRouteFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first func(t *testing.T, up *upstream) string
	}{
		{"500", func(t *testing.T, up *upstream) string {
			up.Handle(answerWith(500, `{"error":{"message":"boom","type":"server_error"}}`))
			return up.URL
		}},
		{"429", func(t *testing.T, up *upstream) string {
			up.Handle(answerWith(429, `{"error":{"message":"slow down","type":"rate_limit_error"}}`))
			return up.URL
		}},
		{"connection refused", func(t *testing.T, _ *upstream) string { return closedURL(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t, gatewayOptions{})
			first := startUpstream(t)
			firstURL := tc.first(t, first)
			g.OpenAI.Handle(answerWith(200, chatCompletion("from the second", routeUsage)))
			url := routed(t, g, map[string]Provider{"a": newTestProvider(t, "openai", firstURL), "b": newTestProvider(t, "openai", g.OpenAI.URL)},
				[]Route{{Provider: "a", Upstream: "up-a"}, {Provider: "b", Upstream: "up-b"}})
			acct, key, _ := g.account("pro")
			resp, body := rawPost(t, url+"/v1/chat/completions", key, `{"model":"test/gpt","messages":[{"role":"user","content":"hi"}]}`)
			if resp.StatusCode != 200 || !strings.Contains(string(body), "from the second") || !strings.Contains(string(body), `"model":"test/gpt"`) {
				t.Fatalf("answer %d %s", resp.StatusCode, body)
			}
			if len(g.OpenAI.Requests) != 1 || !strings.Contains(string(g.OpenAI.Requests[0]), `"model":"up-b"`) {
				t.Fatalf("second provider got %q", g.OpenAI.Requests)
			}
			usd, flows := priced(1000, 300, 200, 0)
			g.oneCharge(t, acct, want{in: 1000, out: 300, cr: 200, flows: flows, usd: usd, status: "ok"})
		})
	}
}

// A refusal about the request itself (400) is the client's to see: it is
// not retried elsewhere, and nothing is charged.
func TestRouteDoesNotFallBackOn400(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	first := startUpstream(t)
	first.Handle(answerWith(400, `{"error":{"message":"bad field","type":"invalid_request_error","param":"messages","code":null}}`))
	url := routed(t, g, map[string]Provider{"a": newTestProvider(t, "openai", first.URL), "b": newTestProvider(t, "openai", g.OpenAI.URL)},
		[]Route{{Provider: "a", Upstream: "up-a"}, {Provider: "b", Upstream: "up-b"}})
	acct, key, _ := g.account("pro")
	resp, body := rawPost(t, url+"/v1/chat/completions", key, `{"model":"test/gpt","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "bad field") {
		t.Fatalf("answer %d %s", resp.StatusCode, body)
	}
	if len(g.OpenAI.Requests) != 0 {
		t.Fatalf("the second provider was called: %q", g.OpenAI.Requests)
	}
	g.noCharge(t, acct)
}

// The last provider's failure is the client's: a 5xx is 502
// upstream_error, nothing charged.
func TestRouteLastFailureIs502(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	g.OpenAI.Handle(answerWith(503, `{"error":{"message":"down"}}`))
	url := routed(t, g, map[string]Provider{"a": newTestProvider(t, "openai", closedURL(t)), "b": newTestProvider(t, "openai", g.OpenAI.URL)},
		[]Route{{Provider: "a", Upstream: "up-a"}, {Provider: "b", Upstream: "up-b"}})
	acct, key, _ := g.account("pro")
	resp, body := rawPost(t, url+"/v1/chat/completions", key, `{"model":"test/gpt","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 502 || !strings.Contains(string(body), `"code":"upstream_error"`) {
		t.Fatalf("answer %d %s", resp.StatusCode, body)
	}
	g.noCharge(t, acct)
}

// Providers this node lacks are skipped; none at all is 503
// model_unavailable naming each provider and why, before anything is
// spent.
func TestRouteNoProvider(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	url := routed(t, g, map[string]Provider{}, []Route{{Provider: "keyless", Upstream: "x"}, {Provider: "gone", Upstream: "y"}})
	acct, key, _ := g.account("pro")
	resp, body := rawPost(t, url+"/v1/chat/completions", key, `{"model":"test/gpt","messages":[{"role":"user","content":"hi"}]}`)
	wantMsg := `model \"test/gpt\" is unavailable: no provider on its route can serve it (\"keyless\" has no API key on this node; \"gone\" is not configured on this node)`
	if resp.StatusCode != 503 || !strings.Contains(string(body), wantMsg) || resp.Header.Get("x-should-retry") != "false" {
		t.Fatalf("answer %d %s", resp.StatusCode, body)
	}
	g.noCharge(t, acct)
}

func TestGeminiPath(t *testing.T) {
	for _, tc := range []struct {
		path   string
		model  string
		f      Format
		stream bool
		ok     bool
	}{
		{"/v1beta/models/google/gemini-2.5-pro:generateContent", "google/gemini-2.5-pro", FormatGemini, false, true},
		{"/v1/models/google/gemini-2.5-pro:streamGenerateContent", "google/gemini-2.5-pro", FormatGemini, true, true},
		{"/v1beta/models/models/gemini-2.5-flash:countTokens", "gemini-2.5-flash", FormatGeminiCount, false, true},
		{"/api/v1beta/models/zenmux/echo:generateContent", "zenmux/echo", FormatGemini, false, true},
		{"/v1/models/anthropic/claude-opus-4.6", "", 0, false, false},
		{"/v1beta/models/:generateContent", "", 0, false, false},
		{"/v1beta/models/x:embedContent", "", 0, false, false},
		{"/v1/chat/completions", "", 0, false, false},
	} {
		model, f, stream, ok := geminiPath(tc.path)
		if model != tc.model || f != tc.f || stream != tc.stream || ok != tc.ok {
			t.Errorf("geminiPath(%q) = %q %d %v %v, want %q %d %v %v", tc.path, model, f, stream, ok, tc.model, tc.f, tc.stream, tc.ok)
		}
	}
}

const geminiUsageJSON = `{"promptTokenCount":1500,"cachedContentTokenCount":500,"candidatesTokenCount":200,"thoughtsTokenCount":100,"toolUsePromptTokenCount":20,"totalTokenCount":1820}`

// Gemini's surface over a gemini upstream passes the bytes through, with
// the client's model in modelVersion, and meters usageMetadata (W5):
// input = prompt − cached + tool-use prompt, output = candidates +
// thoughts.
func TestGeminiPassThrough(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	up := startUpstream(t)
	url := routed(t, g, map[string]Provider{"gem": newTestProvider(t, "gemini", up.URL)}, []Route{{Provider: "gem", Upstream: "gemini-up"}})
	usd, flows := priced(1020, 300, 500, 0)

	t.Run("whole", func(t *testing.T) {
		up.Handle(func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Path()) != "/v1beta/models/gemini-up:generateContent" || string(ctx.Request.Header.Peek("x-goog-api-key")) != "upstream-secret-gemini" {
				ctx.SetStatusCode(404)
				return
			}
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"candidates":[{"content":{"role":"model","parts":[{"text":"hello"}]},"finishReason":"STOP","index":0}],"usageMetadata":` + geminiUsageJSON + `,"modelVersion":"gemini-up","responseId":"r1"}`)
		})
		acct, key, _ := g.account("pro")
		req, _ := json.Marshal(map[string]any{"contents": []any{map[string]any{"role": "user", "parts": []any{map[string]any{"text": "hi"}}}}})
		resp, body := rawPost(t, url+"/v1beta/models/test/gpt:generateContent?key="+key, "", string(req))
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"modelVersion":"test/gpt"`) || !strings.Contains(string(body), `"hello"`) {
			t.Fatalf("answer %d %s", resp.StatusCode, body)
		}
		g.oneCharge(t, acct, want{in: 1020, out: 300, cr: 500, flows: flows, usd: usd, status: "ok"})
	})

	t.Run("stream", func(t *testing.T) {
		chunk := func(text, tail string) string {
			return `data: {"candidates":[{"content":{"role":"model","parts":[{"text":"` + text + `"}]},"index":0` + tail + `}],"usageMetadata":` + geminiUsageJSON + `,"modelVersion":"gemini-up"}` + "\r\n\r\n"
		}
		up.Handle(func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Path()) != "/v1beta/models/gemini-up:streamGenerateContent" || string(ctx.QueryArgs().Peek("alt")) != "sse" {
				ctx.SetStatusCode(404)
				return
			}
			ctx.SetContentType("text/event-stream")
			ctx.SetBodyString(chunk("hel", "") + chunk("lo", `,"finishReason":"STOP"`))
		})
		acct, key, _ := g.account("pro")
		resp, body := rawPost(t, url+"/v1/models/test/gpt:streamGenerateContent?alt=sse", key, `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`, "x-goog-api-key", key)
		if resp.StatusCode != 200 || strings.Count(string(body), `"modelVersion":"test/gpt"`) != 2 || !strings.Contains(string(body), `"finishReason":"STOP"`) {
			t.Fatalf("answer %d %s", resp.StatusCode, body)
		}
		g.oneCharge(t, acct, want{in: 1020, out: 300, cr: 500, flows: flows, usd: usd, status: "ok"})
	})

	t.Run("error shape", func(t *testing.T) {
		resp, body := rawPost(t, url+"/v1beta/models/test/gpt:generateContent", "", `{"contents":[]}`)
		var e struct {
			Error struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
				Status  string `json:"status"`
			} `json:"error"`
		}
		if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != 401 || e.Error.Code != 401 || e.Error.Status != "UNAUTHENTICATED" {
			t.Fatalf("answer %d %s", resp.StatusCode, body)
		}
	})
}

// The public pricing says which models this node can serve now, so
// Studio's picker offers those first; a model whose route names no
// configured provider is unavailable, and calling it says so plainly.
func TestPricingAvailable(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	available := func(url string) map[string]bool {
		r, err := http.Get(url + "/api/v1/pricing")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		var p struct {
			Models []struct {
				ID        string `json:"id"`
				Available bool   `json:"available"`
			} `json:"models"`
		}
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil || len(p.Models) != 4 {
			t.Fatalf("pricing: %v %+v", err, p)
		}
		out := map[string]bool{}
		for _, m := range p.Models {
			out[m.ID] = m.Available
		}
		return out
	}
	served := routed(t, g, map[string]Provider{"echo": &Echo{}}, []Route{{Provider: "echo", Upstream: "echo"}})
	for id, ok := range available(served) {
		if !ok {
			t.Errorf("%s is unavailable with echo on its route", id)
		}
	}
	url := routed(t, g, map[string]Provider{"echo": &Echo{}}, nil)
	for id, ok := range available(url) {
		if ok {
			t.Errorf("%s is available with no route at all", id)
		}
	}
	_, key, _ := g.account("pro")
	resp, body := rawPost(t, url+"/v1/chat/completions", key, `{"model":"test/gpt","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 503 || !strings.Contains(string(body), `no provider that serves it is configured on this node`) {
		t.Fatalf("answer %d %s", resp.StatusCode, body)
	}
}

// A model that names its provider (a config or admin model) is served by
// that provider alone: Options.Routes, the catalog's, is not asked.
func TestRouteOwnProviderFirst(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	g.OpenAI.Handle(answerWith(200, chatCompletion("own", routeUsage)))
	url := routedServer(t, g, map[string]Provider{"oai": newTestProvider(t, "openai", g.OpenAI.URL), "other": newTestProvider(t, "openai", closedURL(t))},
		[]Route{{Provider: "other", Upstream: "nope"}})
	acct, key, _ := g.account("pro")
	resp, body := rawPost(t, url+"/v1/chat/completions", key, `{"model":"test/gpt","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "own") || !strings.Contains(string(g.OpenAI.request(t, 0)), `"model":"up-gpt"`) {
		t.Fatalf("answer %d %s", resp.StatusCode, body)
	}
	usd, flows := priced(1000, 300, 200, 0)
	g.oneCharge(t, acct, want{in: 1000, out: 300, cr: 200, flows: flows, usd: usd, status: "ok"})
}
