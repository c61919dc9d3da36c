package proxy

// Admission limits and the proxy's outer surface, end to end over
// 127.0.0.1: the rate bucket (Q8, Q9), quota windows and Extra Usage (Q1-Q6,
// E2, E3), model access (P3), keys (K3), GET /v1/models, routing and probes
// (W3.2, W3.8), bad input, and the headers every response carries.
// Each test has its own gateway with a frozen clock moved by g.advance.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	anthropic "github.com/anthropics/anthropic-sdk-go/v2"
	anthoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	openai "github.com/openai/openai-go/v3"
	oaioption "github.com/openai/openai-go/v3/option"
	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// ---- helpers (prefixed lim* so they cannot collide with other test files)

var limClient = &http.Client{Timeout: 10 * time.Second}

type limResp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r limResp) String() string {
	b := r.Body
	if len(b) > 400 {
		b = b[:400]
	}
	return fmt.Sprintf("%d %s", r.Status, b)
}

// limDo sends one request and reads the whole answer (bounded).
func limDo(t testing.TB, method, url, body string, hdr map[string]string) limResp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := limClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return limResp{resp.StatusCode, resp.Header, b}
}

func limBearer(key string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + key}
}

func limAnth(key string) map[string]string {
	return map[string]string{"x-api-key": key, "anthropic-version": "2023-06-01"}
}

func limChatBody(model string) string {
	return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hello there"}]}`, model)
}

func limMsgBody(model string) string {
	return fmt.Sprintf(`{"model":%q,"max_tokens":64,"messages":[{"role":"user","content":"hello there"}]}`, model)
}

// limChat posts an OpenAI chat completion with a Bearer key.
func limChat(t testing.TB, g *gateway, key, model string) limResp {
	t.Helper()
	return limDo(t, "POST", g.URL+"/v1/chat/completions", limChatBody(model), limBearer(key))
}

// limMsg posts an Anthropic message with x-api-key.
func limMsg(t testing.TB, g *gateway, key, model string) limResp {
	t.Helper()
	return limDo(t, "POST", g.URL+"/v1/messages", limMsgBody(model), limAnth(key))
}

func limJSON(t testing.TB, r limResp) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(string(r.Body)))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("body is not a JSON object (%v): %s", err, r)
	}
	return m
}

// limOpenAIError checks the OpenAI error shape of docs/api.md and returns the
// message: {"error":{"message","type","code","param":null}}.
func limOpenAIError(t testing.TB, r limResp, status int, code string) string {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status: want %d, got %s", status, r)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	m := limJSON(t, r)
	if _, ok := m["type"]; ok {
		t.Errorf("OpenAI path answered in the Anthropic shape: %s", r)
	}
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object: %s", r)
	}
	if e["code"] != code {
		t.Errorf("error.code %v, want %q: %s", e["code"], code, r)
	}
	if s, _ := e["type"].(string); s == "" {
		t.Errorf("error.type missing: %s", r)
	}
	if p, ok := e["param"]; !ok || p != nil {
		t.Errorf("error.param must be present and null: %s", r)
	}
	msg, _ := e["message"].(string)
	if msg == "" {
		t.Errorf("error.message missing: %s", r)
	}
	return msg
}

// limAnthError checks the Anthropic error shape of docs/api.md and returns the
// message: {"type":"error","error":{"type","message","code"}}. An empty
// typ accepts any non-empty type.
func limAnthError(t testing.TB, r limResp, status int, typ, code string) string {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status: want %d, got %s", status, r)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	m := limJSON(t, r)
	if m["type"] != "error" {
		t.Errorf(`top-level type %v, want "error": %s`, m["type"], r)
	}
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object: %s", r)
	}
	if got, _ := e["type"].(string); (typ != "" && got != typ) || got == "" {
		t.Errorf("error.type %q, want %q: %s", got, typ, r)
	}
	if e["code"] != code {
		t.Errorf("error.code %v, want %q: %s", e["code"], code, r)
	}
	msg, _ := e["message"].(string)
	if msg == "" {
		t.Errorf("error.message missing: %s", r)
	}
	return msg
}

func limNoRetry(t testing.TB, r limResp) {
	t.Helper()
	if got := r.Header.Get("x-should-retry"); got != "false" {
		t.Errorf("x-should-retry %q, want false (W3.7): %s", got, r)
	}
}

func limWantOK(t testing.TB, r limResp, billing string) {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("want 200, got %s", r)
	}
	if got := r.Header.Get("x-zenmux-billing"); got != billing {
		t.Errorf("x-zenmux-billing %q, want %q", got, billing)
	}
}

// limChatUsage is an OpenAI upstream answering with the given usage.
func limChatUsage(prompt, completion int64) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		fmt.Fprintf(ctx, `{"id":"chatcmpl-t","object":"chat.completion","created":0,"model":"up-gpt","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
			prompt, completion, prompt+completion)
	}
}

// limNewSubKey adds another subscription key to an account.
func limNewSubKey(g *gateway, acct, keyID string) string {
	g.t.Helper()
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	secret := ledger.PrefixSubscription + hex.EncodeToString(b)
	g.apply(&ledger.CreateKey{AccountID: acct, KeyID: keyID, Kind: ledger.KindSubscription, Name: keyID,
		Hash: ledger.HashSecret(secret), Last4: secret[len(secret)-4:]})
	return secret
}

func limWindow(t testing.TB, g *gateway, acct, window, field string) string {
	t.Helper()
	w, ok := g.usage(acct)[window].(map[string]any)
	if !ok {
		t.Fatalf("usage has no %s", window)
	}
	return fmt.Sprint(w[field])
}

func limBalance(t testing.TB, g *gateway, acct string) string {
	t.Helper()
	return fmt.Sprint(g.accountView(acct)["balance_usd"])
}

// limTopUp adds usd micro-dollars to the pay-as-you-go balance (E3).
func limTopUp(g *gateway, acct string, micro int64) {
	g.t.Helper()
	g.apply(&ledger.TopUp{Idem: ledger.Idem{IdemKey: fmt.Sprintf("top-%s-%d", acct, g.serial.Add(1)), Fingerprint: "t"}, AccountID: acct, MicroUSD: micro})
}

// limRaw sends a request (head and body) on a raw connection, writing in
// the background while it reads the answer, as a client that watches for
// an early answer does; for bodies over the size limit.
func limRaw(t testing.TB, g *gateway, head, body string) limResp {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(g.URL, "http://"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		_, _ = io.WriteString(conn, head+body) // the server may stop reading early
	}()
	defer func() { conn.Close(); <-wrote }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return limResp{resp.StatusCode, resp.Header, b}
}

func limRetryAfter(t testing.TB, r limResp) int64 {
	t.Helper()
	s := r.Header.Get("Retry-After")
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("Retry-After %q is not a positive integer of seconds: %s", s, r)
	}
	return n
}

// ---- Q8, Q9: the rate bucket

// rule Q8: the plan's bucket holds 15 and refills 10 a minute; over it,
// 429 rate_limit_exceeded with Retry-After and x-ratelimit-* headers, and
// nothing is charged.
func TestQ8RateBucket(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	ok := 0
	for i := 1; i <= 15; i++ { // rule Q8: burst 15
		r := limChat(t, g, key, ledger.EchoModelID)
		limWantOK(t, r, "subscription")
		ok++
		// The limit is the bucket's capacity, so remaining never
		// exceeds it (both describe the same bucket).
		if got := r.Header.Get("x-ratelimit-limit-requests"); got != "15" {
			t.Errorf("request %d: x-ratelimit-limit-requests %q, want 15 (the burst)", i, got)
		}
		if got := r.Header.Get("x-ratelimit-remaining-requests"); got != strconv.Itoa(15-i) {
			t.Errorf("request %d: x-ratelimit-remaining-requests %q, want %d", i, got, 15-i)
		}
	}
	check429 := func(r limResp) {
		t.Helper()
		limOpenAIError(t, r, 429, "rate_limit_exceeded")
		if n := limRetryAfter(t, r); n != 6 { // 60 s / 10 rpm
			t.Errorf("Retry-After %d, want 6", n)
		}
		if got := r.Header.Get("x-ratelimit-limit-requests"); got != "15" {
			t.Errorf("429: x-ratelimit-limit-requests %q, want 15", got)
		}
		if got := r.Header.Get("x-ratelimit-remaining-requests"); got != "0" {
			t.Errorf("429: x-ratelimit-remaining-requests %q, want 0", got)
		}
		d, err := time.ParseDuration(r.Header.Get("x-ratelimit-reset-requests"))
		if err != nil || d != 6*time.Second {
			t.Errorf("429: x-ratelimit-reset-requests %q, want a duration of 6s", r.Header.Get("x-ratelimit-reset-requests"))
		}
		if r.Header.Get("x-should-retry") == "false" {
			t.Errorf("a rate-limit 429 must stay retryable; got x-should-retry: false")
		}
	}
	check429(limChat(t, g, key, ledger.EchoModelID))
	// The Anthropic surface refuses in its own shape.
	r := limMsg(t, g, key, ledger.EchoModelID)
	limAnthError(t, r, 429, "rate_limit_error", "rate_limit_exceeded")
	if limRetryAfter(t, r) != 6 {
		t.Errorf("Anthropic 429 Retry-After %q, want 6", r.Header.Get("Retry-After"))
	}

	// rule Q8: six seconds refill exactly one request.
	g.advance(6 * time.Second)
	limWantOK(t, limChat(t, g, key, ledger.EchoModelID), "subscription")
	ok++
	check429(limChat(t, g, key, ledger.EchoModelID))

	// rule Q8: a further minute refills exactly ten.
	g.advance(time.Minute)
	for i := 1; i <= 10; i++ {
		r := limChat(t, g, key, ledger.EchoModelID)
		limWantOK(t, r, "subscription")
		ok++
		if got := r.Header.Get("x-ratelimit-remaining-requests"); got != strconv.Itoa(10-i) {
			t.Errorf("refill %d: remaining %q, want %d", i, got, 10-i)
		}
	}
	check429(limChat(t, g, key, ledger.EchoModelID))

	// rule Q8 / Q7: no 429 was charged.
	if logs := g.requests(acct); len(logs) != ok {
		t.Fatalf("request log has %d entries, want %d (only the answered requests)", len(logs), ok)
	}
}

// W3.5, W3.7: count_tokens is free but rate limited on its own
// bucket per account (proxy.count_tokens_rpm 100, burst 20 here), apart
// from the plan's (Q8); the Anthropic surface also gets the
// anthropic-ratelimit-requests-* headers, the reset an RFC 3339 time.
func TestCountTokensOwnBucket(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	body := `{"model":"zenmux/echo","messages":[{"role":"user","content":"count these"}]}`
	count := func() limResp { return limDo(t, "POST", g.URL+"/v1/messages/count_tokens", body, limAnth(key)) }
	now := time.Unix(0, g.now.Load()).UTC()
	for i := 1; i <= 20; i++ {
		r := count()
		if r.Status != 200 {
			t.Fatalf("count_tokens %d: %s", i, r)
		}
		if got := r.Header.Get("anthropic-ratelimit-requests-limit"); got != "20" {
			t.Errorf("count_tokens %d: anthropic-ratelimit-requests-limit %q, want 20 (the burst)", i, got)
		}
		if got := r.Header.Get("anthropic-ratelimit-requests-remaining"); got != strconv.Itoa(20-i) {
			t.Errorf("count_tokens %d: anthropic-ratelimit-requests-remaining %q, want %d", i, got, 20-i)
		}
	}
	r := count()
	limAnthError(t, r, 429, "rate_limit_error", "rate_limit_exceeded")
	if n := limRetryAfter(t, r); n != 1 { // 600 ms at 100 rpm, rounded up
		t.Errorf("count_tokens Retry-After %d, want 1", n)
	}
	if got, want := r.Header.Get("anthropic-ratelimit-requests-reset"), now.Add(time.Second).Format(time.RFC3339); got != want {
		t.Errorf("anthropic-ratelimit-requests-reset %q, want %q", got, want)
	}
	// The plan's bucket is untouched: a message still has 14 of 15 left,
	// and says so in both header families.
	r = limMsg(t, g, key, ledger.EchoModelID)
	limWantOK(t, r, "subscription")
	if got := r.Header.Get("anthropic-ratelimit-requests-remaining"); got != "14" {
		t.Errorf("message after count_tokens: anthropic-ratelimit-requests-remaining %q, want 14", got)
	}
	if got := r.Header.Get("x-ratelimit-remaining-requests"); got != "14" {
		t.Errorf("message after count_tokens: x-ratelimit-remaining-requests %q, want 14", got)
	}
	if _, err := time.Parse(time.RFC3339, r.Header.Get("anthropic-ratelimit-requests-reset")); err != nil {
		t.Errorf("anthropic-ratelimit-requests-reset: %v", err)
	}
	// 600 ms refill exactly one count.
	g.advance(600 * time.Millisecond)
	if r := count(); r.Status != 200 {
		t.Fatalf("count_tokens after 600 ms: %s", r)
	}
	limAnthError(t, count(), 429, "rate_limit_error", "rate_limit_exceeded")
	if logs := g.requests(acct); len(logs) != 1 {
		t.Fatalf("request log has %d entries, want 1 (the message; counting is free)", len(logs))
	}
}

// rule Q9: all keys of an account draw on one bucket; another account has
// its own. rule Q8: pay-as-you-go keys have their own 600/600 bucket.
func TestQ9SharedBucketAndPaygBucket(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key1, payg := g.account("pro")
	key2 := limNewSubKey(g, acct, acct+"-sub2")
	_, otherKey, _ := g.account("pro")
	for i := 0; i < 15; i++ {
		k := key1
		if i%2 == 1 {
			k = key2
		}
		limWantOK(t, limChat(t, g, k, ledger.EchoModelID), "subscription")
	}
	limOpenAIError(t, limChat(t, g, key2, ledger.EchoModelID), 429, "rate_limit_exceeded")
	limOpenAIError(t, limChat(t, g, key1, ledger.EchoModelID), 429, "rate_limit_exceeded")
	limWantOK(t, limChat(t, g, otherKey, ledger.EchoModelID), "subscription")

	// rule Q8: the pay-as-you-go key is not held by the empty subscription
	// bucket, and its own holds 600.
	limTopUp(g, acct, 10_000000)
	start := time.Now()
	for i := 1; i <= 600; i++ {
		r := limChat(t, g, payg, ledger.EchoModelID)
		if r.Status != 200 {
			t.Fatalf("payg request %d: %s", i, r)
		}
		if i == 1 {
			if got := r.Header.Get("x-zenmux-billing"); got != "payg" {
				t.Errorf("payg key: x-zenmux-billing %q, want payg", got)
			}
			if got := r.Header.Get("x-ratelimit-limit-requests"); got != "600" {
				t.Errorf("payg key: x-ratelimit-limit-requests %q, want 600", got)
			}
			if got := r.Header.Get("x-ratelimit-remaining-requests"); got != "599" {
				t.Errorf("payg key: x-ratelimit-remaining-requests %q, want 599", got)
			}
		}
		if time.Since(start) > 12*time.Second {
			t.Fatalf("600 payg requests took over 12 s (at %d)", i)
		}
	}
	r := limChat(t, g, payg, ledger.EchoModelID)
	limOpenAIError(t, r, 429, "rate_limit_exceeded")
	if n := limRetryAfter(t, r); n != 1 { // 100 ms at 600 rpm, rounded up
		t.Errorf("payg Retry-After %d, want 1", n)
	}
	if got := r.Header.Get("x-ratelimit-limit-requests"); got != "600" {
		t.Errorf("payg 429: x-ratelimit-limit-requests %q, want 600", got)
	}
	// The subscription bucket is still empty and unaffected.
	limOpenAIError(t, limChat(t, g, key1, ledger.EchoModelID), 429, "rate_limit_exceeded")
	if logs := g.requests(acct); len(logs) != 615 {
		t.Fatalf("request log has %d entries, want 615", len(logs))
	}
}

// ---- Q1-Q6, E2, E3: windows and Extra Usage

// rule Q4, Q5, Q6, E2, E3: one request that crosses the Free 5 h quota is
// charged in full; then 429 quota_exceeded naming window_5h; with Extra
// Usage and a balance the request runs on pay-as-you-go in USD; with Extra
// Usage and no balance, 429 saying so; after the reset, subscription again;
// a pay-as-you-go key with no balance, 402.
func TestQ5QuotaExhaustedAndExtraUsage(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("free")

	// rule Q4: 200,000 input tokens = $0.20 = 6.091989 Flows > 5, charged in full.
	g.OpenAI.Handle(limChatUsage(200_000, 0))
	limWantOK(t, limChat(t, g, key, modelGPT), "subscription")
	if got := limWindow(t, g, acct, "window_5h", "used_flows"); got != "6.091989" {
		t.Fatalf("window_5h used %s, want 6.091989 (the crossing request in full)", got)
	}
	if got := limWindow(t, g, acct, "window_5h", "resets_at"); got != "2026-04-01T05:00:00Z" {
		t.Fatalf("window_5h resets_at %s", got)
	}

	// rule Q5: refused, naming the window and its reset, with Retry-After.
	r := limChat(t, g, key, ledger.EchoModelID)
	msg := limOpenAIError(t, r, 429, "quota_exceeded")
	if !strings.Contains(msg, "window_5h") || !strings.Contains(msg, "2026-04-01T05:00:00Z") {
		t.Errorf("message %q must name window_5h and its resets_at", msg)
	}
	if n := limRetryAfter(t, r); n != 5*3600 {
		t.Errorf("Retry-After %d, want 18000", n)
	}
	limNoRetry(t, r)
	r = limMsg(t, g, key, ledger.EchoModelID)
	msg = limAnthError(t, r, 429, "rate_limit_error", "quota_exceeded")
	if !strings.Contains(msg, "window_5h") {
		t.Errorf("Anthropic message %q must name window_5h", msg)
	}
	limRetryAfter(t, r)
	limNoRetry(t, r)

	// rule E3 / Q5: Extra Usage on, balance 0 → still 429, and says why.
	g.apply(&ledger.SetExtra{AccountID: acct, Enabled: true, KeyID: acct + "-payg"})
	r = limChat(t, g, key, ledger.EchoModelID)
	msg = limOpenAIError(t, r, 429, "quota_exceeded")
	if !strings.Contains(msg, "balance is empty") {
		t.Errorf("message %q must say the pay-as-you-go balance is empty", msg)
	}
	limRetryAfter(t, r)
	limNoRetry(t, r)
	if n := len(g.requests(acct)); n != 1 {
		t.Fatalf("refused requests were charged: %d log entries, want 1", n)
	}

	// rule E2: with a balance the request runs on pay-as-you-go, in USD, not
	// in the windows. 1,000 in + 100 out = $0.001 + $0.0004.
	limTopUp(g, acct, 1_000000)
	g.OpenAI.Handle(limChatUsage(1000, 100))
	limWantOK(t, limChat(t, g, key, modelGPT), "payg")
	if got := limBalance(t, g, acct); got != "0.9986" {
		t.Errorf("balance %s, want 0.9986", got)
	}
	if got := limWindow(t, g, acct, "window_5h", "used_flows"); got != "6.091989" {
		t.Errorf("window_5h used %s after a payg request, want 6.091989 (unchanged)", got)
	}
	if got := limWindow(t, g, acct, "weekly", "used_flows"); got != "6.091989" {
		t.Errorf("weekly used %s after a payg request, want 6.091989 (unchanged)", got)
	}
	if ex, _ := g.usage(acct)["extra_usage"].(map[string]any); fmt.Sprint(ex["spent_usd"]) != "0.0014" {
		t.Errorf("extra_usage %v, want spent_usd 0.0014", ex)
	}
	logs := g.requests(acct)
	if len(logs) != 2 || logs[1].Billing != ledger.BillingPayg || logs[1].USDValue != 1400 || logs[1].Flows != 0 {
		t.Fatalf("request log: %+v", logs)
	}

	// rule Q6: at the reset, the subscription again (Extra Usage still on).
	g.advance(5 * time.Hour)
	limWantOK(t, limChat(t, g, key, ledger.EchoModelID), "subscription")
	if got := limBalance(t, g, acct); got != "0.9986" {
		t.Errorf("balance %s after a subscription request, want 0.9986", got)
	}
	if used := limWindow(t, g, acct, "window_5h", "used_flows"); used == "0" || strings.HasPrefix(used, "6.") {
		t.Errorf("new window_5h used %s, want only the new request", used)
	}

	// rule E3: a pay-as-you-go key used directly with balance 0 → 402.
	acct2, _, payg2 := g.account("free")
	r = limChat(t, g, payg2, ledger.EchoModelID)
	limOpenAIError(t, r, 402, "insufficient_balance")
	limNoRetry(t, r)
	r = limMsg(t, g, payg2, ledger.EchoModelID)
	limAnthError(t, r, 402, "", "insufficient_balance")
	limNoRetry(t, r)
	if n := len(g.requests(acct2)); n != 0 {
		t.Fatalf("402s were charged: %d log entries", n)
	}
}

// rule Q1, Q2, Q3, Q5, Q6: one request that exhausts all three Free
// windows; each refusal names the window still exhausted, in turn, with
// its resets_at and Retry-After; after the last reset the subscription
// answers again.
func TestQ5WindowsNamedInTurn(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("free")
	g.OpenAI.Handle(limChatUsage(170*32830, 0)) // exactly 170 Flows > 165.6 monthly
	limWantOK(t, limChat(t, g, key, modelGPT), "subscription")
	if got := limWindow(t, g, acct, "monthly", "used_flows"); got != "170" {
		t.Fatalf("monthly used %s, want 170", got)
	}
	steps := []struct {
		advance     time.Duration
		window, at  string
		retryAfterS int64
	}{
		{0, "window_5h", "2026-04-01T05:00:00Z", 5 * 3600},
		{5 * time.Hour, "weekly", "2026-04-08T00:00:00Z", 7*24*3600 - 5*3600},
		{7*24*time.Hour - 5*time.Hour, "monthly", "2026-05-01T00:00:00Z", 23 * 24 * 3600},
	}
	for _, s := range steps {
		g.advance(s.advance)
		r := limChat(t, g, key, ledger.EchoModelID)
		msg := limOpenAIError(t, r, 429, "quota_exceeded")
		if !strings.Contains(msg, s.window) || !strings.Contains(msg, s.at) {
			t.Errorf("message %q must name %s and %s", msg, s.window, s.at)
		}
		if n := limRetryAfter(t, r); n != s.retryAfterS {
			t.Errorf("%s: Retry-After %d, want %d", s.window, n, s.retryAfterS)
		}
		limNoRetry(t, r)
	}
	g.advance(23 * 24 * time.Hour) // 2026-05-01: a new month
	limWantOK(t, limChat(t, g, key, ledger.EchoModelID), "subscription")
	if n := len(g.requests(acct)); n != 2 {
		t.Fatalf("request log has %d entries, want 2", n)
	}
}

// rule Q5, E3: with Extra Usage on and a balance that requests in flight
// have already spoken for, the refusal is still Q5's: 429 quota_exceeded
// naming the window, with Retry-After.
func TestQ5ExtraUsageBalanceHeldByInflight(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("free")
	g.OpenAI.Handle(limChatUsage(200_000, 0))
	limWantOK(t, limChat(t, g, key, modelGPT), "subscription")
	g.apply(&ledger.SetExtra{AccountID: acct, Enabled: true, KeyID: acct + "-payg"})
	limTopUp(g, acct, 10_000) // $0.01, less than one request's reservation

	release := make(chan struct{})
	answer := limChatUsage(1000, 0)
	g.OpenAI.Handle(func(ctx *fasthttp.RequestCtx) {
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		answer(ctx)
	})
	before := func() int { g.OpenAI.mu.Lock(); defer g.OpenAI.mu.Unlock(); return len(g.OpenAI.Requests) }()
	done := make(chan limResp, 1)
	go func() { done <- limChat(t, g, key, modelGPT) }()
	for i := 0; i < 400; i++ { // ≤ 2 s for the first request to reach the upstream
		g.OpenAI.mu.Lock()
		n := len(g.OpenAI.Requests)
		g.OpenAI.mu.Unlock()
		if n > before {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := limChat(t, g, key, ledger.EchoModelID)
	close(release)
	first := <-done
	limWantOK(t, first, "payg")
	msg := limOpenAIError(t, r, 429, "quota_exceeded")
	limNoRetry(t, r)
	if !strings.Contains(msg, "window_5h") {
		t.Errorf("rule Q5: the quota_exceeded message must name the window (window_5h); got %q", msg)
	}
	if r.Header.Get("Retry-After") == "" {
		t.Errorf("rule Q5: quota_exceeded must carry Retry-After; headers %v", r.Header)
	}
	if got := limBalance(t, g, acct); got != "0.009" {
		t.Errorf("balance %s, want 0.009", got)
	}
}

// ---- P3: model access

// rule P3: a model outside the plan → 403 model_not_in_plan in both wire
// formats, never swapped; an unknown model → 404 model_not_found; nothing
// charged, nothing sent upstream.
func TestP3ModelNotInPlan(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")

	r := limChat(t, g, key, modelMax)
	limOpenAIError(t, r, 403, "model_not_in_plan")
	limNoRetry(t, r)
	r = limMsg(t, g, key, modelMax)
	limAnthError(t, r, 403, "permission_error", "model_not_in_plan")
	limNoRetry(t, r)
	r = limDo(t, "POST", g.URL+"/v1/responses", fmt.Sprintf(`{"model":%q,"input":"hi"}`, modelMax), limBearer(key))
	limOpenAIError(t, r, 403, "model_not_in_plan")

	r = limChat(t, g, key, "nobody/no-such-model")
	limOpenAIError(t, r, 404, "model_not_found")
	r = limMsg(t, g, key, "nobody/no-such-model")
	limAnthError(t, r, 404, "not_found_error", "model_not_found")

	// The SDKs see the codes, and x-should-retry: false stops their retries.
	var calls atomic.Int64
	hc := &http.Client{Timeout: 10 * time.Second, Transport: limCounting{&calls}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	oc := openai.NewClient(oaioption.WithAPIKey(key), oaioption.WithBaseURL(g.URL+"/v1/"), oaioption.WithMaxRetries(2), oaioption.WithHTTPClient(hc))
	_, err := oc.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: modelMax, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.StatusCode != 403 || oe.Code != "model_not_in_plan" {
		t.Errorf("openai-go: want 403 model_not_in_plan, got %v", err)
	}
	if n := calls.Swap(0); n != 1 {
		t.Errorf("openai-go sent %d requests for a 403, want 1 (x-should-retry: false)", n)
	}
	ac := anthropic.NewClient(anthoption.WithAPIKey(key), anthoption.WithBaseURL(g.URL), anthoption.WithMaxRetries(2), anthoption.WithHTTPClient(hc))
	_, err = ac.Messages.New(ctx, anthropic.MessageNewParams{Model: modelMax, MaxTokens: 64,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}})
	var ae *anthropic.Error
	if !errors.As(err, &ae) || ae.StatusCode != 403 || ae.Type() != "permission_error" {
		t.Errorf("anthropic-sdk-go: want 403 permission_error, got %v", err)
	}
	if n := calls.Swap(0); n != 1 {
		t.Errorf("anthropic-sdk-go sent %d requests for a 403, want 1 (x-should-retry: false)", n)
	}

	if n := len(g.requests(acct)); n != 0 {
		t.Fatalf("refused requests were charged: %d log entries", n)
	}
	g.OpenAI.mu.Lock()
	sent := len(g.OpenAI.Requests)
	g.OpenAI.mu.Unlock()
	if sent != 0 {
		t.Fatalf("a refused model reached the upstream %d times (never swapped, never sent)", sent)
	}

	// The same model on Max is served.
	_, maxKey, _ := g.account("max")
	g.OpenAI.Handle(limChatUsage(10, 1))
	limWantOK(t, limChat(t, g, maxKey, modelMax), "subscription")
}

type limCounting struct{ n *atomic.Int64 }

func (c limCounting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// ---- K3: keys

// rule K3 (and K2): the key is read from Authorization: Bearer, x-api-key or
// x-goog-api-key; a missing, unknown, revoked or rotated key → 401
// invalid_api_key with x-should-retry: false, in the path's shape.
func TestK3KeyHeaders(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	for _, h := range []map[string]string{
		{"Authorization": "Bearer " + key},
		{"x-api-key": key},
		{"x-goog-api-key": key},
	} {
		limWantOK(t, limDo(t, "POST", g.URL+"/v1/chat/completions", limChatBody(ledger.EchoModelID), h), "subscription")
		h["anthropic-version"] = "2023-06-01"
		limWantOK(t, limDo(t, "POST", g.URL+"/v1/messages", limMsgBody(ledger.EchoModelID), h), "subscription")
	}

	refused := func(name, secret string) {
		t.Helper()
		var oh, ah map[string]string
		if secret == "" {
			oh, ah = map[string]string{}, map[string]string{"anthropic-version": "2023-06-01"}
		} else {
			oh, ah = limBearer(secret), limAnth(secret)
		}
		r := limDo(t, "POST", g.URL+"/v1/chat/completions", limChatBody(ledger.EchoModelID), oh)
		limOpenAIError(t, r, 401, "invalid_api_key")
		limNoRetry(t, r)
		r = limDo(t, "POST", g.URL+"/v1/messages", limMsgBody(ledger.EchoModelID), ah)
		limAnthError(t, r, 401, "authentication_error", "invalid_api_key")
		limNoRetry(t, r)
		r = limDo(t, "GET", g.URL+"/v1/models", "", oh)
		limOpenAIError(t, r, 401, "invalid_api_key")
		limNoRetry(t, r)
		if t.Failed() {
			t.Logf("case %s", name)
		}
	}
	refused("missing", "")
	refused("unknown", ledger.PrefixSubscription+strings.Repeat("ab", 32))
	refused("bearer with no token", " ")

	// Revoked (K2): works, then 401 at once.
	revoked := limNewSubKey(g, acct, acct+"-rev")
	limWantOK(t, limChat(t, g, revoked, ledger.EchoModelID), "subscription")
	g.apply(&ledger.RevokeKey{KeyID: acct + "-rev"})
	refused("revoked", revoked)

	// Rotated (K2): the old secret stops, the new one works.
	old := limNewSubKey(g, acct, acct+"-rot")
	limWantOK(t, limChat(t, g, old, ledger.EchoModelID), "subscription")
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	fresh := ledger.PrefixSubscription + hex.EncodeToString(b)
	g.apply(&ledger.RotateKey{KeyID: acct + "-rot", Hash: ledger.HashSecret(fresh), Last4: fresh[len(fresh)-4:]})
	refused("rotated (old secret)", old)
	limWantOK(t, limChat(t, g, fresh, ledger.EchoModelID), "subscription")

	if n := len(g.requests(acct)); n != 9 {
		t.Fatalf("request log has %d entries, want 9 (401s are not charged)", n)
	}
}

// ---- GET /v1/models

// rule P3: GET /v1/models lists the caller's plan's models only, in the
// OpenAI shape by default and the Anthropic shape with anthropic-version
// (W2.7, W3.6); both SDKs list them.
func TestModelsListByPlan(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	_, freeKey, _ := g.account("free")
	_, maxKey, _ := g.account("max")
	for _, c := range []struct {
		plan    string
		key     string
		wantMax bool
	}{{"free", freeKey, false}, {"max", maxKey, true}} {
		// OpenAI shape.
		r := limDo(t, "GET", g.URL+"/v1/models", "", limBearer(c.key))
		if r.Status != 200 {
			t.Fatalf("%s: %s", c.plan, r)
		}
		m := limJSON(t, r)
		if m["object"] != "list" {
			t.Errorf("%s: object %v, want list", c.plan, m["object"])
		}
		ids := map[string]bool{}
		data, _ := m["data"].([]any)
		for _, d := range data {
			e, _ := d.(map[string]any)
			if e["object"] != "model" || e["owned_by"] == nil || e["created"] == nil {
				t.Errorf("%s: OpenAI model entry %v", c.plan, e)
			}
			ids[fmt.Sprint(e["id"])] = true
		}
		for _, want := range []string{ledger.EchoModelID, modelGPT, modelClaude} {
			if !ids[want] {
				t.Errorf("%s: OpenAI list lacks %s: %v", c.plan, want, ids)
			}
		}
		if ids[modelMax] != c.wantMax {
			t.Errorf("%s: OpenAI list has %s = %v, want %v", c.plan, modelMax, ids[modelMax], c.wantMax)
		}

		// Anthropic shape.
		r = limDo(t, "GET", g.URL+"/v1/models", "", limAnth(c.key))
		if r.Status != 200 {
			t.Fatalf("%s anthropic: %s", c.plan, r)
		}
		m = limJSON(t, r)
		if m["has_more"] != false {
			t.Errorf("%s: has_more %v", c.plan, m["has_more"])
		}
		data, _ = m["data"].([]any)
		if len(data) == 0 {
			t.Fatalf("%s: empty Anthropic list: %s", c.plan, r)
		}
		aids := map[string]bool{}
		for _, d := range data {
			e, _ := d.(map[string]any)
			if e["type"] != "model" || e["display_name"] == nil || e["created_at"] == nil {
				t.Errorf("%s: Anthropic model entry %v", c.plan, e)
			}
			aids[fmt.Sprint(e["id"])] = true
		}
		if m["first_id"] != data[0].(map[string]any)["id"] || m["last_id"] != data[len(data)-1].(map[string]any)["id"] {
			t.Errorf("%s: first_id %v last_id %v do not match the data", c.plan, m["first_id"], m["last_id"])
		}
		if aids[modelMax] != c.wantMax || len(aids) != len(ids) {
			t.Errorf("%s: Anthropic list %v differs from the OpenAI list %v", c.plan, aids, ids)
		}

		// The SDKs.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		oc := openai.NewClient(oaioption.WithAPIKey(c.key), oaioption.WithBaseURL(g.URL+"/v1/"), oaioption.WithMaxRetries(0))
		op, err := oc.Models.List(ctx)
		if err != nil {
			t.Fatalf("%s: openai-go Models.List: %v", c.plan, err)
		}
		sdkIDs := map[string]bool{}
		for _, x := range op.Data {
			sdkIDs[x.ID] = true
		}
		if len(sdkIDs) != len(ids) || sdkIDs[modelMax] != c.wantMax {
			t.Errorf("%s: openai-go listed %v", c.plan, sdkIDs)
		}
		ac := anthropic.NewClient(anthoption.WithAPIKey(c.key), anthoption.WithBaseURL(g.URL), anthoption.WithMaxRetries(0))
		ap, err := ac.Models.List(ctx, anthropic.ModelListParams{})
		if err != nil {
			cancel()
			t.Fatalf("%s: anthropic-sdk-go Models.List: %v", c.plan, err)
		}
		sdkIDs = map[string]bool{}
		for _, x := range ap.Data {
			sdkIDs[x.ID] = true
		}
		if len(sdkIDs) != len(ids) || sdkIDs[modelMax] != c.wantMax || ap.HasMore {
			t.Errorf("%s: anthropic-sdk-go listed %v (has_more %v)", c.plan, sdkIDs, ap.HasMore)
		}
		cancel()
	}
	// The aliases serve the list too; POST is refused with Allow.
	for _, p := range []string{"/api/v1/models", "/api/anthropic/v1/models"} {
		if r := limDo(t, "GET", g.URL+p, "", limBearer(freeKey)); r.Status != 200 {
			t.Errorf("GET %s: %s", p, r)
		}
	}
	r := limDo(t, "POST", g.URL+"/v1/models", "{}", limBearer(freeKey))
	if r.Status != 405 || r.Header.Get("Allow") != "GET" {
		t.Errorf("POST /v1/models: %s (Allow %q)", r, r.Header.Get("Allow"))
	}
}

// ---- routing, probes, pricing

// W3.2, W3.8, docs/api.md, "Proxy": HEAD probes without auth, the
// ?beta=true query, the /messages and /api/... aliases, 405 with Allow,
// 404 in JSON; rule P2: the public pricing.
func TestRoutingProbesAliasesPricing(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")

	for _, p := range []string{"/", "/api/hello"} {
		if r := limDo(t, "HEAD", g.URL+p, "", nil); r.Status != 200 {
			t.Errorf("HEAD %s without auth: %d, want 200", p, r.Status)
		}
	}

	for _, c := range []struct{ path, body string }{
		{"/v1/messages?beta=true", limMsgBody(ledger.EchoModelID)},
		{"/messages", limMsgBody(ledger.EchoModelID)},
		{"/api/anthropic/v1/messages", limMsgBody(ledger.EchoModelID)},
		{"/api/v1/chat/completions", limChatBody(ledger.EchoModelID)},
	} {
		h := limAnth(key)
		if strings.Contains(c.path, "chat") {
			h = limBearer(key)
		}
		r := limDo(t, "POST", g.URL+c.path, c.body, h)
		limWantOK(t, r, "subscription")
		m := limJSON(t, r)
		if strings.Contains(c.path, "messages") && m["type"] != "message" {
			t.Errorf("%s: not an Anthropic message: %s", c.path, r)
		}
		if strings.Contains(c.path, "chat") && m["object"] != "chat.completion" {
			t.Errorf("%s: not a chat completion: %s", c.path, r)
		}
	}
	if n := len(g.requests(acct)); n != 4 {
		t.Errorf("request log has %d entries, want 4", n)
	}

	// GET on a POST path: 405 with Allow, JSON in the path's shape.
	r := limDo(t, "GET", g.URL+"/v1/chat/completions", "", limBearer(key))
	limOpenAIError(t, r, 405, "method_not_allowed")
	if r.Header.Get("Allow") != "POST" {
		t.Errorf("405 without Allow: POST: %v", r.Header)
	}
	r = limDo(t, "GET", g.URL+"/v1/messages?beta=true", "", limAnth(key))
	limAnthError(t, r, 405, "", "method_not_allowed")
	if r.Header.Get("Allow") != "POST" {
		t.Errorf("405 without Allow: POST: %v", r.Header)
	}

	// Unknown path: 404 in JSON.
	for _, p := range []string{"/v1/nope", "/nope", "/v1/messages/nope"} {
		r = limDo(t, "POST", g.URL+p, "{}", limBearer(key))
		if r.Status != 404 {
			t.Errorf("POST %s: %s, want 404", p, r)
			continue
		}
		limJSON(t, r)
	}

	// rule P2: GET /api/v1/pricing without auth.
	r = limDo(t, "GET", g.URL+"/api/v1/pricing", "", nil)
	if r.Status != 200 {
		t.Fatalf("pricing: %s", r)
	}
	m := limJSON(t, r)
	if fmt.Sprint(m["usd_per_flow"]) != "0.03283" {
		t.Errorf("usd_per_flow %v, want 0.03283", m["usd_per_flow"])
	}
	want := map[string][2]string{"free": {"5.44", "<nil>"}, "pro": {"30.02", "1.5"}, "max": {"180.13", "1.8"}, "ultra": {"480.34", "2.4"}}
	plans, _ := m["plans"].([]any)
	seen := 0
	for _, p := range plans {
		pm, _ := p.(map[string]any)
		w, ok := want[fmt.Sprint(pm["id"])]
		if !ok {
			continue
		}
		seen++
		if _, has := pm["value_multiplier"]; !has {
			t.Errorf("plan %v has no value_multiplier field", pm["id"])
		}
		if !limSameNumber(fmt.Sprint(pm["usd_equivalent"]), w[0]) || !limSameNumber(fmt.Sprint(pm["value_multiplier"]), w[1]) {
			t.Errorf("plan %v: usd_equivalent %v value_multiplier %v, want %s %s", pm["id"], pm["usd_equivalent"], pm["value_multiplier"], w[0], w[1])
		}
	}
	if seen != 4 {
		t.Errorf("pricing lists %d of the four plans: %s", seen, r)
	}
}

// limSameNumber compares decimal strings by value ("1.5" == "1.50").
func limSameNumber(a, b string) bool {
	if a == b {
		return true
	}
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	return err1 == nil && err2 == nil && x == y
}

// ---- bad input

// docs/api.md, "Errors on the proxy": an unparsable body, a JSON array, a missing or
// non-string model → 400 invalid_request; a body over the limit → 413
// request_too_large; each in the path's format and none charged (rule Q7).
// count_tokens answers {"input_tokens":N} and is never charged.
func TestBadInputAndCountTokens(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	bodies := map[string]string{
		"non-JSON":      `this is not json`,
		"JSON array":    `[{"model":"zenmux/echo"}]`,
		"missing model": `{"messages":[{"role":"user","content":"hi"}]}`,
		"model: 5":      `{"model":5,"messages":[{"role":"user","content":"hi"}]}`,
		"model: null":   `{"model":null,"messages":[]}`,
		"truncated":     `{"model":"zenmux/echo","messages":[`,
		"empty":         ``,
	}
	for name, body := range bodies {
		r := limDo(t, "POST", g.URL+"/v1/chat/completions", body, limBearer(key))
		if r.Status != 400 {
			t.Errorf("chat, %s: %s", name, r)
		} else {
			limOpenAIError(t, r, 400, "invalid_request")
		}
		r = limDo(t, "POST", g.URL+"/v1/messages", body, limAnth(key))
		if r.Status != 400 {
			t.Errorf("messages, %s: %s", name, r)
		} else {
			limAnthError(t, r, 400, "invalid_request_error", "invalid_request")
		}
	}

	// 413 over the harness's 1 MiB limit: with a Content-Length, and chunked.
	big := `{"model":"zenmux/echo","messages":[{"role":"user","content":"` + strings.Repeat("a", 1<<20) + `"}]}`
	head := func(path string, extra string) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n", path, extra, len(big))
	}
	r := limRaw(t, g, head("/v1/chat/completions", "Authorization: Bearer "+key+"\r\n"), big)
	limOpenAIError(t, r, 413, "request_too_large")
	r = limRaw(t, g, head("/v1/messages", "x-api-key: "+key+"\r\nanthropic-version: 2023-06-01\r\n"), big)
	limAnthError(t, r, 413, "request_too_large", "request_too_large")
	// Chunked, with no Content-Length: the limit still holds.
	r = limRaw(t, g, "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "+key+"\r\nTransfer-Encoding: chunked\r\n\r\n",
		fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(big), big))
	limOpenAIError(t, r, 413, "request_too_large")

	// count_tokens (W3.5): plain, ?beta=true and the /messages alias.
	ctBody := `{"model":"zenmux/echo","messages":[{"role":"user","content":"count these words please"}]}`
	for _, p := range []string{"/v1/messages/count_tokens", "/v1/messages/count_tokens?beta=true", "/messages/count_tokens", "/api/anthropic/v1/messages/count_tokens"} {
		r := limDo(t, "POST", g.URL+p, ctBody, limAnth(key))
		if r.Status != 200 {
			t.Errorf("%s: %s", p, r)
			continue
		}
		m := limJSON(t, r)
		n, err := m["input_tokens"].(json.Number).Int64()
		if err != nil || n <= 0 || len(m) != 1 {
			t.Errorf(`%s: want {"input_tokens":N}, got %s`, p, r)
		}
	}
	if logs := g.requests(acct); len(logs) != 0 {
		t.Fatalf("bad input or count_tokens was charged: %+v", logs)
	}
	if got := limWindow(t, g, acct, "window_5h", "used_flows"); got != "0" {
		t.Fatalf("window_5h used %s, want 0", got)
	}
}

// docs/api.md, "Errors on the proxy": a body over proxy.max_body_bytes → 413 request_too_large,
// as seen by an ordinary client that sends its whole body (net/http, as the
// Go SDKs do) and is a little slow to read (its first read waits 20 ms, as
// a busy client's may). The server must let the client read the 413, not
// reset the connection under it while the body is still arriving; a
// net/http server (MaxBytesReader) delivers the 413 here every time.
func TestBadInputOversizeOrdinaryClient(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &limSlowReader{Conn: c}, nil
		}}}
	defer client.CloseIdleConnections()
	const attempts = 3
	saw413 := 0
	var firstErr error
	for i := 0; i < attempts; i++ {
		size := []int{1<<20 + 4<<10, 4 << 20, 16 << 20}[i%3]
		big := `{"model":"zenmux/echo","messages":[{"role":"user","content":"` + strings.Repeat("a", size) + `"}]}`
		req, _ := http.NewRequest("POST", g.URL+"/v1/chat/completions", strings.NewReader(big))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := client.Do(req)
		// The whole body was sent: the 413 must not wait for the drain's
		// cap (a server that did would answer after drainTotal, however
		// fast the machine; the bound is that behaviour, not a speed).
		if took := time.Since(start); took >= drainTotal {
			t.Errorf("attempt %d (%d bytes): the answer took %s after the whole body was sent: it waited for the drain's %s cap", i, len(big), took.Round(time.Millisecond), drainTotal)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode == 413 {
			saw413++
			limOpenAIError(t, limResp{resp.StatusCode, resp.Header, b}, 413, "request_too_large")
		} else {
			t.Errorf("attempt %d: %d %s", i, resp.StatusCode, b)
		}
	}
	if saw413 != attempts {
		t.Errorf("bodies of 1 MiB + 4 KiB, 4 MiB and 16 MiB over the 1 MiB limit: the client read the 413 in %d of %d attempts; the others ended in a transport error (first: %v)",
			saw413, attempts, firstErr)
	}
	if n := len(g.requests(acct)); n != 0 {
		t.Fatalf("oversize bodies were charged: %d", n)
	}
}

// limSlowReader delays a connection's first read by 20 ms.
type limSlowReader struct {
	net.Conn
	waited bool
}

func (c *limSlowReader) Read(b []byte) (int, error) {
	if !c.waited {
		c.waited = true
		time.Sleep(20 * time.Millisecond)
	}
	return c.Conn.Read(b)
}

// rule Q8: a bucket left idle refills to its burst, however long the idle
// time (15 min and more at 10 rpm, 15 s and more at 600 rpm, must not
// overflow the refill arithmetic).
func TestQ8BucketAfterIdle(t *testing.T) {
	for _, idle := range []time.Duration{10 * time.Minute, 16 * time.Minute, 5 * time.Hour, 8 * 24 * time.Hour} {
		t.Run("subscription idle "+idle.String(), func(t *testing.T) {
			g := newGateway(t, gatewayOptions{})
			_, key, _ := g.account("ultra")
			for i := 0; i < 15; i++ {
				limWantOK(t, limChat(t, g, key, ledger.EchoModelID), "subscription")
			}
			limOpenAIError(t, limChat(t, g, key, ledger.EchoModelID), 429, "rate_limit_exceeded")
			g.advance(idle)
			for i := 1; i <= 15; i++ {
				r := limChat(t, g, key, ledger.EchoModelID)
				if r.Status != 200 {
					t.Fatalf("after %s idle, request %d of the refilled burst of 15: %s", idle, i, r)
				}
				if got := r.Header.Get("x-ratelimit-remaining-requests"); got != strconv.Itoa(15-i) {
					t.Errorf("after %s idle, request %d: remaining %q, want %d", idle, i, got, 15-i)
				}
			}
			limOpenAIError(t, limChat(t, g, key, ledger.EchoModelID), 429, "rate_limit_exceeded")
		})
	}
	for _, idle := range []time.Duration{10 * time.Second, 20 * time.Second, time.Hour} {
		t.Run("payg idle "+idle.String(), func(t *testing.T) {
			g := newGateway(t, gatewayOptions{})
			acct, _, payg := g.account("pro")
			limTopUp(g, acct, 5_000000)
			limWantOK(t, limChat(t, g, payg, ledger.EchoModelID), "payg")
			g.advance(idle)
			r := limChat(t, g, payg, ledger.EchoModelID)
			limWantOK(t, r, "payg")
			if got := r.Header.Get("x-ratelimit-remaining-requests"); got != "599" {
				t.Errorf("payg after %s idle: remaining %q, want 599 (a full bucket of 600, less this request)", idle, got)
			}
		})
	}
}

// ---- every response's headers

// docs/api.md, "Response headers": every response carries a unique x-zenmux-request-id;
// successful ones carry x-zenmux-billing.
func TestLimitsRequestIDAndBillingHeaders(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gatewayOptions{})
	_, key, _ := g.account("pro")
	_, limited, _ := g.account("pro")
	for i := 0; i < 15; i++ {
		limWantOK(t, limChat(t, g, limited, ledger.EchoModelID), "subscription")
	}
	echo := ledger.EchoModelID
	type call struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		billed                   bool
	}
	calls := []call{
		{"chat", "POST", "/v1/chat/completions", limChatBody(echo), limBearer(key), 200, true},
		{"chat stream", "POST", "/v1/chat/completions", `{"model":"zenmux/echo","stream":true,"messages":[{"role":"user","content":"hi"}]}`, limBearer(key), 200, true},
		{"messages", "POST", "/v1/messages", limMsgBody(echo), limAnth(key), 200, true},
		{"messages stream", "POST", "/v1/messages?beta=true", `{"model":"zenmux/echo","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, limAnth(key), 200, true},
		{"responses", "POST", "/v1/responses", `{"model":"zenmux/echo","input":"hi"}`, limBearer(key), 200, true},
		{"embeddings", "POST", "/v1/embeddings", `{"model":"zenmux/echo","input":"hi"}`, limBearer(key), 200, true},
		{"images", "POST", "/v1/images/generations", `{"model":"zenmux/echo","prompt":"a cat"}`, limBearer(key), 200, true},
		{"count_tokens", "POST", "/v1/messages/count_tokens", `{"model":"zenmux/echo","messages":[{"role":"user","content":"hi"}]}`, limAnth(key), 200, true},
		{"400", "POST", "/v1/chat/completions", `nope`, limBearer(key), 400, false},
		{"401", "POST", "/v1/chat/completions", limChatBody(echo), nil, 401, false},
		{"403", "POST", "/v1/messages", limMsgBody(modelMax), limAnth(key), 403, false},
		{"404 model", "POST", "/v1/chat/completions", limChatBody("no/such"), limBearer(key), 404, false},
		{"429", "POST", "/v1/chat/completions", limChatBody(echo), limBearer(limited), 429, false},
		{"GET /v1/models", "GET", "/v1/models", "", limBearer(key), 200, false},
		{"405", "GET", "/v1/chat/completions", "", limBearer(key), 405, false},
		{"404 path", "POST", "/v1/nope", "{}", limBearer(key), 404, false},
	}
	ids := map[string]string{}
	seen := func(name, id string) {
		t.Helper()
		if id == "" {
			t.Errorf("%s: no x-zenmux-request-id", name)
			return
		}
		if prev, dup := ids[id]; dup {
			t.Errorf("%s: x-zenmux-request-id %q already used by %s", name, id, prev)
		}
		ids[id] = name
	}
	for _, c := range calls {
		r := limDo(t, c.method, g.URL+c.path, c.body, c.hdr)
		if r.Status != c.status {
			t.Errorf("%s: %s, want %d", c.name, r, c.status)
			continue
		}
		seen(c.name, r.Header.Get("x-zenmux-request-id"))
		if c.billed && r.Header.Get("x-zenmux-billing") != "subscription" {
			t.Errorf("%s: x-zenmux-billing %q, want subscription", c.name, r.Header.Get("x-zenmux-billing"))
		}
	}
	big := strings.Repeat("a", 2<<20)
	r := limRaw(t, g, fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", key, len(big)), big)
	if r.Status != 413 {
		t.Errorf("413: got %s", r)
	} else {
		seen("413", r.Header.Get("x-zenmux-request-id"))
	}
}

// The buckets' rates come from the node's validated configuration; the
// proxy has no defaults for them, so a rate outside 1..MaxRateLimit is
// refused instead of dividing by zero or guessing.
func TestNewRefusesRatesOutOfRange(t *testing.T) {
	ok := Options{PaygRPM: 600, PaygBurst: 600, CountTokensRPM: 100, CountTokensBurst: 20}
	if _, err := New(ok); err != nil {
		t.Fatalf("valid rates refused: %v", err)
	}
	for name, bad := range map[string]func(*Options){
		"PaygRPM":          func(o *Options) { o.PaygRPM = 0 },
		"PaygBurst":        func(o *Options) { o.PaygBurst = -1 },
		"CountTokensRPM":   func(o *Options) { o.CountTokensRPM = ledger.MaxRateLimit + 1 },
		"CountTokensBurst": func(o *Options) { o.CountTokensBurst = 0 },
	} {
		o := ok
		bad(&o)
		s, err := New(o)
		if !errors.Is(err, ErrInvalidOptions) || s != nil || !strings.Contains(err.Error(), name+" is ") {
			t.Errorf("%s out of range: %v, %v; want ErrInvalidOptions naming it", name, s, err)
		}
	}
}
