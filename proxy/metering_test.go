package proxy

// Metering tests (Q7, C2, E3; W2.3, W2.4, W3.3–W3.4, W5): what
// each answer is charged, driven by the official SDKs (or raw HTTP where
// the wire itself is under test) against fake upstreams that speak each
// provider's format.
//
// Prices of the test models: input $1/M (1 µUSD a token), output $4/M
// (4 µUSD), cache read $0.10/M (0.1 µUSD), cache write $1.25/M (1.25 µUSD).
// One Flow is $0.03283 = 32,830 µUSD, so (M2, M4 at multiplier 1.0):
//
//	32,830 input tokens       = 32,830 µUSD = 1 Flow
//	 8,207.5 output tokens    = 1 Flow  (16,415 output = 65,660 µUSD = 2 Flows)
//	26,264 cache-write tokens = 32,830 µUSD = 1 Flow
//	328,300 cache-read tokens = 32,830 µUSD = 1 Flow
//
// Subscription charges are logged with flows and usd_value; pay-as-you-go
// charges with usd_value (flows 0).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// ---- helpers ---------------------------------------------------------------

// wireCapture is an SDK middleware that keeps the request body as the
// client sent it and every byte of the answer the client read.
type wireCapture struct {
	mu   sync.Mutex
	req  []byte
	resp bytes.Buffer
}

type teeBody struct {
	rc io.ReadCloser
	c  *wireCapture
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.c.mu.Lock()
	b.c.resp.Write(p[:n])
	b.c.mu.Unlock()
	return n, err
}

func (b *teeBody) Close() error { return b.rc.Close() }

func (c *wireCapture) mw(req *http.Request, next func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.req = b
		c.mu.Unlock()
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.ContentLength = int64(len(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	resp, err := next(req)
	if resp != nil && resp.Body != nil {
		resp.Body = &teeBody{rc: resp.Body, c: c}
	}
	return resp, err
}

func (c *wireCapture) reqBody() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.req...)
}

func (c *wireCapture) respBody() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resp.String()
}

func oaiClient(g *gateway, key string, c *wireCapture) openai.Client {
	opts := []option.RequestOption{option.WithBaseURL(g.URL + "/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0),
		option.WithRequestTimeout(10 * time.Second)}
	if c != nil {
		opts = append(opts, option.WithMiddleware(c.mw))
	}
	return openai.NewClient(opts...)
}

func anthClient(g *gateway, key string, c *wireCapture) anthropic.Client {
	opts := []aoption.RequestOption{aoption.WithBaseURL(g.URL), aoption.WithAPIKey(key), aoption.WithMaxRetries(0),
		aoption.WithRequestTimeout(10 * time.Second)}
	if c != nil {
		opts = append(opts, aoption.WithMiddleware(c.mw))
	}
	return anthropic.NewClient(opts...)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// priced is a charge computed by hand from M2/M4 at the test prices:
// pico-USD = in×1e6 + out×4e6 + cacheRead×1e5 + cacheWrite×1.25e6,
// µUSD = round(pico/1e6), µFlows = round(pico×1e9/(32,830,000 nano-USD ×
// 1e6 ppm)) = round(pico/32,830), both half up.
func priced(in, out, cr, cw int64) (microUSD, microFlows int64) {
	pico := in*1_000_000 + out*4_000_000 + cr*100_000 + cw*1_250_000
	return (pico + 500_000) / 1_000_000, (pico + 16_415) / 32_830
}

// want is an expected request-log entry.
type want struct {
	in, out, cr, cw int64
	flows, usd      int64
	status          string
	estimated       bool
	billing         string // "" = subscription
}

func checkEntry(t *testing.T, e ledger.LogEntryView, w want) {
	t.Helper()
	if w.billing == "" {
		w.billing = ledger.BillingSubscription
	}
	got := want{in: e.InputTokens, out: e.OutputTokens, cr: e.CacheReadTokens, cw: e.CacheWriteTokens,
		flows: int64(e.Flows), usd: int64(e.USDValue), status: e.Status, estimated: e.Estimated, billing: e.Billing}
	if got != w {
		t.Errorf("request log entry %s:\n got  %+v\n want %+v", e.ID, got, w)
	}
}

// waitLogs waits (bounded) until acct has n request-log entries.
func (g *gateway) waitLogs(acct string, n int) []ledger.LogEntryView {
	g.t.Helper()
	var logs []ledger.LogEntryView
	for i := 0; i < 300; i++ {
		if logs = g.requests(acct); len(logs) >= n {
			return logs
		}
		time.Sleep(10 * time.Millisecond)
	}
	g.t.Fatalf("request log of %s: %d entries, want %d: %+v", acct, len(logs), n, logs)
	return nil
}

// oneCharge waits for exactly one request-log entry and checks it, and
// that the 5 h window holds the same Flows (subscription).
func (g *gateway) oneCharge(t *testing.T, acct string, w want) ledger.LogEntryView {
	t.Helper()
	logs := g.waitLogs(acct, 1)
	if len(logs) != 1 {
		t.Fatalf("want one charge, got %d: %+v", len(logs), logs)
	}
	checkEntry(t, logs[0], w)
	if w.billing == "" || w.billing == ledger.BillingSubscription {
		if got := g.usedFlows(acct); got != w.flows {
			t.Errorf("window_5h used %d µFlows, want %d", got, w.flows)
		}
	}
	return logs[0]
}

// noCharge checks that nothing at all was charged to acct.
func (g *gateway) noCharge(t *testing.T, acct string) {
	t.Helper()
	time.Sleep(100 * time.Millisecond) // a charge would be queued before the answer ends
	if logs := g.requests(acct); len(logs) != 0 {
		t.Errorf("nothing should be charged, request log has %+v", logs)
	}
	if got := g.usedFlows(acct); got != 0 {
		t.Errorf("nothing should be charged, window_5h used %d µFlows", got)
	}
}

func microOf(t testing.TB, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("not a number: %#v", v)
	}
	m, err := ledger.ParseDecimal(string(n), 6, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (g *gateway) usedFlows(acct string) int64 {
	return microOf(g.t, g.usage(acct)["window_5h"].(map[string]any)["used_flows"])
}

func (g *gateway) balance(acct string) int64 {
	return microOf(g.t, g.accountView(acct)["balance_usd"])
}

// rawPost sends body and returns the answer read in full.
func rawPost(t *testing.T, url, key, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), "POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// request returns the i-th request body the upstream received.
func (u *upstream) request(t *testing.T, i int) []byte {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if i >= len(u.Requests) {
		t.Fatalf("the upstream received %d requests, want more than %d", len(u.Requests), i)
	}
	return u.Requests[i]
}

func ceilDiv4(n int) int64 { return int64(n+3) / 4 }

func userMsg(text string) []openai.ChatCompletionMessageParamUnion {
	return []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}
}

func anthMsgs(text string) []anthropic.MessageParam {
	return []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(text))}
}

// ---- 1. Chat Completions ---------------------------------------------------

// rule Q7, W2.3/W5: prompt_tokens includes cached_tokens; input is
// charged without them, cache reads at their own price.
func TestMeterChatNonStreamCached(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	// prompt 361,130 of which 328,300 cached → input 32,830 (1 Flow) +
	// cache read 328,300 (1 Flow) + output 16,415 (2 Flows) = 4 Flows =
	// 131,320 µUSD. Counting cached twice would add 328,300 µUSD.
	g.OpenAI.Handle(jsonHandler(200, chatCompletion("Hello", `{"prompt_tokens":361130,"completion_tokens":16415,"total_tokens":377545,"prompt_tokens_details":{"cached_tokens":328300,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":2000,"audio_tokens":0}}`)))
	c := oaiClient(g, key, nil)
	resp, err := c.Chat.Completions.New(testCtx(t), openai.ChatCompletionNewParams{Model: modelGPT, Messages: userMsg("hi")})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Message.Content != "Hello" || resp.Usage.PromptTokens != 361130 || resp.Usage.PromptTokensDetails.CachedTokens != 328300 {
		t.Fatalf("answer not relayed intact: %+v", resp)
	}
	g.oneCharge(t, acct, want{in: 32830, cr: 328300, out: 16415, flows: 4_000_000, usd: 131_320, status: "ok"})
}

// W2.3: a stream whose client did not ask include_usage is sent
// upstream with include_usage:true; the usage-only chunk is metered but
// not shown to the client. Regression: streamed spend recorded as 0.
func TestMeterChatStreamForcedUsage(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	// prompt 32,830 (1 Flow) + output 16,415 (2 Flows) = 3 Flows = 98,490 µUSD.
	s := newScript(chatStream([]string{"Hel", "lo"}, `{"prompt_tokens":32830,"completion_tokens":16415,"total_tokens":49245,"prompt_tokens_details":{"cached_tokens":0}}`))
	g.OpenAI.Handle(s.handler())
	capt := &wireCapture{}
	c := oaiClient(g, key, capt)
	st := c.Chat.Completions.NewStreaming(testCtx(t), openai.ChatCompletionNewParams{Model: modelGPT, Messages: userMsg("hi")})
	acc := openai.ChatCompletionAccumulator{}
	chunks := 0
	for st.Next() {
		ch := st.Current()
		acc.AddChunk(ch)
		chunks++
		if len(ch.Choices) == 0 || ch.Usage.TotalTokens != 0 {
			t.Errorf("client saw a usage chunk it did not ask for: %s", ch.RawJSON())
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Choices[0].Message.Content != "Hello" || chunks != 4 {
		t.Errorf("accumulated %q in %d chunks, want \"Hello\" in 4", acc.Choices[0].Message.Content, chunks)
	}
	raw := capt.respBody()
	if strings.Contains(raw, `"choices":[]`) || strings.Contains(raw, `"total_tokens"`) {
		t.Errorf("the usage-only chunk reached the client:\n%s", raw)
	}
	if !strings.Contains(raw, "data: [DONE]") {
		t.Errorf("[DONE] missing:\n%s", raw)
	}
	var up struct {
		Model         string `json:"model"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	upBody := g.OpenAI.request(t, 0)
	if err := json.Unmarshal(upBody, &up); err != nil {
		t.Fatalf("upstream body %s: %v", upBody, err)
	}
	if up.StreamOptions == nil || !up.StreamOptions.IncludeUsage || up.Model != "up-gpt" {
		t.Errorf("upstream body must force stream_options.include_usage and the upstream model: %s", upBody)
	}
	g.oneCharge(t, acct, want{in: 32830, out: 16415, flows: 3_000_000, usd: 98_490, status: "ok"})
}

// The client asked include_usage itself: it sees the chunk, unchanged.
func TestMeterChatStreamClientAskedUsage(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	// Same usage as above: 3 Flows, 98,490 µUSD.
	s := newScript(chatStream([]string{"Hel", "lo"}, `{"prompt_tokens":32830,"completion_tokens":16415,"total_tokens":49245,"prompt_tokens_details":{"cached_tokens":0}}`))
	g.OpenAI.Handle(s.handler())
	c := oaiClient(g, key, nil)
	st := c.Chat.Completions.NewStreaming(testCtx(t), openai.ChatCompletionNewParams{Model: modelGPT, Messages: userMsg("hi"),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
	acc := openai.ChatCompletionAccumulator{}
	usageChunks := 0
	for st.Next() {
		ch := st.Current()
		acc.AddChunk(ch)
		if len(ch.Choices) == 0 && ch.Usage.PromptTokens == 32830 && ch.Usage.CompletionTokens == 16415 {
			usageChunks++
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if usageChunks != 1 || acc.Usage.TotalTokens != 49245 || acc.Choices[0].Message.Content != "Hello" {
		t.Errorf("client asked include_usage: usage chunks %d, accumulated usage %+v, content %q", usageChunks, acc.Usage, acc.Choices[0].Message.Content)
	}
	g.oneCharge(t, acct, want{in: 32830, out: 16415, flows: 3_000_000, usd: 98_490, status: "ok"})
}

// A client that sent stream_options with include_usage:false: upstream
// gets true (other options kept), the client still does not see usage.
func TestMeterChatStreamIncludeUsageFalse(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	s := newScript(chatStream([]string{"Hello"}, `{"prompt_tokens":32830,"completion_tokens":16415,"total_tokens":49245}`))
	g.OpenAI.Handle(s.handler())
	resp, body := rawPost(t, g.URL+"/v1/chat/completions", key,
		`{"model":"test/gpt","stream":true,"stream_options":{"include_usage":false,"x_keep":1},"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || strings.Contains(string(body), `"choices":[]`) || !strings.Contains(string(body), "data: [DONE]") {
		t.Errorf("status %d body:\n%s", resp.StatusCode, body)
	}
	up := string(g.OpenAI.request(t, 0))
	if !strings.Contains(up, `"include_usage":true`) || !strings.Contains(up, `"x_keep":1`) || strings.Contains(up, `"include_usage":false`) {
		t.Errorf("upstream body: %s", up)
	}
	g.oneCharge(t, acct, want{in: 32830, out: 16415, flows: 3_000_000, usd: 98_490, status: "ok"})
}

// W2.3/W5: DeepSeek reports prompt_cache_hit/miss_tokens.
func TestMeterChatDeepSeekCache(t *testing.T) {
	// miss 32,830 (1 Flow) + hit 328,300 at cache-read price (1 Flow) +
	// output 16,415 (2 Flows) = 4 Flows = 131,320 µUSD.
	usage := `{"prompt_tokens":361130,"completion_tokens":16415,"total_tokens":377545,"prompt_cache_hit_tokens":328300,"prompt_cache_miss_tokens":32830}`
	w := want{in: 32830, cr: 328300, out: 16415, flows: 4_000_000, usd: 131_320, status: "ok"}
	t.Run("unary", func(t *testing.T) {
		g := newGateway(t, gatewayOptions{})
		acct, key, _ := g.account("pro")
		g.OpenAI.Handle(jsonHandler(200, chatCompletion("Hello", usage)))
		c := oaiClient(g, key, nil)
		if _, err := c.Chat.Completions.New(testCtx(t), openai.ChatCompletionNewParams{Model: modelGPT, Messages: userMsg("hi")}); err != nil {
			t.Fatal(err)
		}
		g.oneCharge(t, acct, w)
	})
	t.Run("stream", func(t *testing.T) {
		g := newGateway(t, gatewayOptions{})
		acct, key, _ := g.account("pro")
		g.OpenAI.Handle(newScript(chatStream([]string{"Hello"}, usage)).handler())
		c := oaiClient(g, key, nil)
		st := c.Chat.Completions.NewStreaming(testCtx(t), openai.ChatCompletionNewParams{Model: modelGPT, Messages: userMsg("hi")})
		for st.Next() {
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		g.oneCharge(t, acct, w)
	})
	// Only the hit count: the uncached input is prompt_tokens less the
	// hits, not 0 (it was charged as 0 before).
	t.Run("hit only", func(t *testing.T) {
		g := newGateway(t, gatewayOptions{})
		acct, key, _ := g.account("pro")
		g.OpenAI.Handle(jsonHandler(200, chatCompletion("Hello", `{"prompt_tokens":361130,"completion_tokens":16415,"prompt_cache_hit_tokens":328300}`)))
		c := oaiClient(g, key, nil)
		if _, err := c.Chat.Completions.New(testCtx(t), openai.ChatCompletionNewParams{Model: modelGPT, Messages: userMsg("hi")}); err != nil {
			t.Fatal(err)
		}
		g.oneCharge(t, acct, w)
	})
}

// ---- 2. Anthropic Messages -------------------------------------------------

const anthFullUsage = `{"input_tokens":32830,"cache_creation_input_tokens":26264,"cache_read_input_tokens":328300,"output_tokens":16415,` +
	`"cache_creation":{"ephemeral_5m_input_tokens":26264,"ephemeral_1h_input_tokens":0},"output_tokens_details":{"thinking_tokens":0},` +
	`"server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},"service_tier":"standard","speed":"standard","inference_geo":""}`

// W3.3: input_tokens excludes cache reads and writes; each of the
// three is charged once, at its own price. Regression: cache tokens
// counted twice.
func TestMeterAnthropicNonStreamCache(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	// input 32,830 (1 Flow) + cache write 26,264 × $1.25/M = 32,830 µUSD
	// (1 Flow) + cache read 328,300 × $0.10/M = 32,830 µUSD (1 Flow) +
	// output 16,415 (2 Flows) = 5 Flows = 164,150 µUSD.
	g.Anth.Handle(jsonHandler(200, anthMessage("Hello", anthFullUsage)))
	c := anthClient(g, key, nil)
	msg, err := c.Messages.New(testCtx(t), anthropic.MessageNewParams{Model: modelClaude, MaxTokens: 64, Messages: anthMsgs("hi")})
	if err != nil {
		t.Fatal(err)
	}
	if msg.Content[0].Text != "Hello" || msg.Usage.InputTokens != 32830 || msg.Usage.CacheCreationInputTokens != 26264 || msg.Usage.CacheReadInputTokens != 328300 {
		t.Fatalf("message not relayed intact: %+v", msg)
	}
	g.oneCharge(t, acct, want{in: 32830, cw: 26264, cr: 328300, out: 16415, flows: 5_000_000, usd: 164_150, status: "ok"})
}

// W3.4: message_start usage, then several message_delta events with
// cumulative usage: the last values are charged, never the sum.
func TestMeterAnthropicStreamCumulativeDeltas(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	// Final state: input 32,830 + write 26,264 + read 328,300 + output
	// 16,415 = 5 Flows = 164,150 µUSD (as the non-stream case). Summing the
	// deltas' output (4,000 + 9,000 + 16,415) or adding message_start's
	// input to the last delta's would charge more.
	s := newScript([]string{
		anthStart(`{"input_tokens":32830,"cache_creation_input_tokens":26264,"cache_read_input_tokens":328300,"output_tokens":1}`),
		anthBlockStart(0), anthPing(),
		anthTextDelta(0, "Hello"), anthTextDelta(0, ", "), anthTextDelta(0, "world"),
		anthBlockStop(0),
		anthDelta(`null`, `{"output_tokens":4000}`),
		anthDelta(`null`, `{"output_tokens":9000}`),
		anthDelta(`"end_turn"`, anthFullUsage),
		anthStop(),
	})
	g.Anth.Handle(s.handler())
	c := anthClient(g, key, nil)
	st := c.Messages.NewStreaming(testCtx(t), anthropic.MessageNewParams{Model: modelClaude, MaxTokens: 64, Messages: anthMsgs("hi")})
	msg := anthropic.Message{}
	var last string
	for st.Next() {
		ev := st.Current()
		if err := msg.Accumulate(ev); err != nil {
			t.Fatal(err)
		}
		last = ev.Type
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	u := msg.Usage
	if last != "message_stop" || len(msg.Content) != 1 || msg.Content[0].Text != "Hello, world" || msg.StopReason != "end_turn" ||
		u.InputTokens != 32830 || u.CacheCreationInputTokens != 26264 || u.CacheReadInputTokens != 328300 || u.OutputTokens != 16415 {
		t.Errorf("accumulated message: last event %q, %+v", last, msg)
	}
	g.oneCharge(t, acct, want{in: 32830, cw: 26264, cr: 328300, out: 16415, flows: 5_000_000, usd: 164_150, status: "ok"})
}

// ---- 3. Responses ----------------------------------------------------------

// W2.4: a stream ending in response.incomplete carries usage and is
// charged, status "incomplete". Regression: Responses incomplete not
// charged.
func TestMeterResponsesIncomplete(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	// input 32,830 (1 Flow) + output 16,415 (2 Flows) = 3 Flows = 98,490 µUSD.
	g.OpenAI.Handle(newScript(respStream([]string{"Hel", "lo"}, "incomplete",
		`{"input_tokens":32830,"input_tokens_details":{"cached_tokens":0},"output_tokens":16415,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":49245}`)).handler())
	c := oaiClient(g, key, nil)
	st := c.Responses.NewStreaming(testCtx(t), responses.ResponseNewParams{Model: modelGPT, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	var last responses.ResponseStreamEventUnion
	text := ""
	for st.Next() {
		last = st.Current()
		if last.Type == "response.output_text.delta" {
			text += last.Delta
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if last.Type != "response.incomplete" || last.Response.Usage.OutputTokens != 16415 || text != "Hello" {
		t.Errorf("client: last event %q usage %+v text %q", last.Type, last.Response.Usage, text)
	}
	g.oneCharge(t, acct, want{in: 32830, out: 16415, flows: 3_000_000, usd: 98_490, status: "incomplete"})
}

// W2.4/W5: response.completed with cached tokens: input_tokens
// includes cached_tokens.
func TestMeterResponsesCompletedCached(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	// input 361,130 of which 328,300 cached → 32,830 (1 Flow) + cache read
	// (1 Flow) + output 16,415 (2 Flows) = 4 Flows = 131,320 µUSD.
	g.OpenAI.Handle(newScript(respStream([]string{"Hello"}, "completed",
		`{"input_tokens":361130,"input_tokens_details":{"cached_tokens":328300},"output_tokens":16415,"output_tokens_details":{"reasoning_tokens":100},"total_tokens":377545}`)).handler())
	c := oaiClient(g, key, nil)
	st := c.Responses.NewStreaming(testCtx(t), responses.ResponseNewParams{Model: modelGPT, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	var last responses.ResponseStreamEventUnion
	for st.Next() {
		last = st.Current()
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if last.Type != "response.completed" || last.Response.Usage.InputTokensDetails.CachedTokens != 328300 || last.Response.OutputText() != "Hello" {
		t.Errorf("client: last event %q usage %+v", last.Type, last.Response.Usage)
	}
	g.oneCharge(t, acct, want{in: 32830, cr: 328300, out: 16415, flows: 4_000_000, usd: 131_320, status: "ok"})
}

// ---- 4. A stream without usage ---------------------------------------------

// Q7: an upstream that ignores include_usage: the stream completes with no
// usage at all, and is charged an estimate: input ceil(client body
// bytes / 4), output ceil(text bytes / 4), estimated.
func TestMeterChatStreamNoUsageEstimated(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	g.OpenAI.Handle(newScript(chatStream([]string{"Hello", ", world!"}, "")).handler())
	capt := &wireCapture{}
	c := oaiClient(g, key, capt)
	st := c.Chat.Completions.NewStreaming(testCtx(t), openai.ChatCompletionNewParams{Model: modelGPT, Messages: userMsg("Tell me something nice, please.")})
	acc := openai.ChatCompletionAccumulator{}
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Choices[0].Message.Content != "Hello, world!" {
		t.Errorf("content %q", acc.Choices[0].Message.Content)
	}
	// input = ceil(len(body the client sent)/4); output = ceil(13/4) = 4;
	// µUSD = input×1 + 4×4; µFlows = round(µUSD×1e6/32,830).
	body := capt.reqBody()
	if len(body) == 0 || bytes.Contains(body, []byte("stream_options")) {
		t.Fatalf("client body %q", body)
	}
	in := ceilDiv4(len(body))
	usd, flows := priced(in, 4, 0, 0)
	t.Logf("client body %d bytes → %d input tokens; %d µUSD, %d µFlows", len(body), in, usd, flows)
	g.oneCharge(t, acct, want{in: in, out: 4, flows: flows, usd: usd, status: "ok", estimated: true})
}

// ---- 5. Streams cut by the upstream ----------------------------------------

// Q7: an Anthropic stream broken midway (connection closed, no
// message_stop): charged the input from message_start (real counts) and
// the output estimated from the text delivered. Regression: an
// interrupted /v1/messages stream not charged.
func TestMeterAnthropicUpstreamCut(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	s := newScript([]string{
		anthStart(`{"input_tokens":32830,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}`),
		anthBlockStart(0),
		anthTextDelta(0, "abcdefgh"), anthTextDelta(0, "abcdefgh"), anthTextDelta(0, "abcdefgh"),
	})
	s.cut = true
	g.Anth.Handle(s.handler())
	c := anthClient(g, key, nil)
	st := c.Messages.NewStreaming(testCtx(t), anthropic.MessageNewParams{Model: modelClaude, MaxTokens: 64, Messages: anthMsgs("hi")})
	msg := anthropic.Message{}
	for st.Next() {
		_ = msg.Accumulate(st.Current())
	}
	t.Logf("client after the cut: err=%v blocks=%d", st.Err(), len(msg.Content))
	if len(msg.Content) != 1 || msg.Content[0].Text != "abcdefghabcdefghabcdefgh" {
		t.Errorf("the client should have the text produced before the cut: %+v", msg.Content)
	}
	// input 32,830 (from message_start, not estimated); output =
	// ceil(24 bytes / 4) = 6 (estimated, above message_start's 1).
	// µUSD = 32,830 + 6×4 = 32,854; µFlows = round(32,854e6/32,830) =
	// round(1,000,731.04) = 1,000,731.
	g.oneCharge(t, acct, want{in: 32830, out: 6, flows: 1_000_731, usd: 32_854, status: "upstream_cut", estimated: true})
}

// Q7: a chat stream broken midway, before its usage chunk: everything is
// estimated (input from the request body, output from the text).
func TestMeterChatUpstreamCut(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	s := newScript([]string{chatRoleChunk(), chatChunk("abcdefgh"), chatChunk("abcd")})
	s.cut = true
	g.OpenAI.Handle(s.handler())
	body := `{"model":"test/gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	resp, got := rawPost(t, g.URL+"/v1/chat/completions", key, body)
	if resp.StatusCode != 200 || !strings.Contains(string(got), "abcdefgh") {
		t.Fatalf("status %d body %s", resp.StatusCode, got)
	}
	// input = ceil(len(body)/4); output = ceil(12/4) = 3.
	in := ceilDiv4(len(body))
	usd, flows := priced(in, 3, 0, 0)
	g.oneCharge(t, acct, want{in: in, out: 3, flows: flows, usd: usd, status: "upstream_cut", estimated: true})
}

// ---- 6. Upstream errors ----------------------------------------------------

// Q7: an upstream 5xx before any output is a 502 upstream_error in the
// client's wire format and charges nothing; a 4xx is relayed as is.
func TestMeterUpstreamErrorsNotCharged(t *testing.T) {
	t.Run("openai-500", func(t *testing.T) {
		g := newGateway(t, gatewayOptions{})
		acct, key, _ := g.account("pro")
		g.OpenAI.Handle(jsonHandler(500, `{"error":{"message":"boom","type":"server_error","param":null,"code":null}}`))
		c := oaiClient(g, key, nil)
		_, err := c.Chat.Completions.New(testCtx(t), openai.ChatCompletionNewParams{Model: modelGPT, Messages: userMsg("hi")})
		var ae *openai.Error
		if !errors.As(err, &ae) || ae.StatusCode != 502 || ae.Code != "upstream_error" {
			t.Errorf("want 502 upstream_error, got %v", err)
		}
		st := c.Chat.Completions.NewStreaming(testCtx(t), openai.ChatCompletionNewParams{Model: modelGPT, Messages: userMsg("hi")})
		for st.Next() {
		}
		if !errors.As(st.Err(), &ae) || ae.StatusCode != 502 || ae.Code != "upstream_error" {
			t.Errorf("stream: want 502 upstream_error, got %v", st.Err())
		}
		g.noCharge(t, acct)
	})
	t.Run("anthropic-500", func(t *testing.T) {
		g := newGateway(t, gatewayOptions{})
		acct, key, _ := g.account("pro")
		g.Anth.Handle(jsonHandler(500, `{"type":"error","error":{"type":"api_error","message":"boom"}}`))
		c := anthClient(g, key, nil)
		st := c.Messages.NewStreaming(testCtx(t), anthropic.MessageNewParams{Model: modelClaude, MaxTokens: 64, Messages: anthMsgs("hi")})
		for st.Next() {
		}
		var ae *anthropic.Error
		if !errors.As(st.Err(), &ae) || ae.StatusCode != 502 {
			t.Errorf("want 502, got %v", st.Err())
		}
		resp, body := rawPost(t, g.URL+"/v1/messages", key, `{"model":"test/claude","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`, "anthropic-version", "2023-06-01")
		var e struct {
			Type  string `json:"type"`
			Error struct {
				Type, Message, Code string
			} `json:"error"`
		}
		if resp.StatusCode != 502 || json.Unmarshal(body, &e) != nil || e.Type != "error" || e.Error.Type != "api_error" || e.Error.Code != "upstream_error" {
			t.Errorf("want Anthropic-shaped 502 upstream_error, got %d %s", resp.StatusCode, body)
		}
		g.noCharge(t, acct)
	})
	t.Run("openai-400-relayed", func(t *testing.T) {
		g := newGateway(t, gatewayOptions{})
		acct, key, _ := g.account("pro")
		up := `{"error":{"message":"max_tokens is too large","type":"invalid_request_error","param":"max_tokens","code":"invalid_value"}}`
		g.OpenAI.Handle(jsonHandler(400, up))
		resp, body := rawPost(t, g.URL+"/v1/chat/completions", key, `{"model":"test/gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 400 || string(body) != up {
			t.Errorf("want the upstream 400 relayed, got %d %s", resp.StatusCode, body)
		}
		c := oaiClient(g, key, nil)
		_, err := c.Chat.Completions.New(testCtx(t), openai.ChatCompletionNewParams{Model: modelGPT, Messages: userMsg("hi")})
		var ae *openai.Error
		if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Code != "invalid_value" || ae.Param != "max_tokens" {
			t.Errorf("SDK: want 400 invalid_value, got %v", err)
		}
		g.noCharge(t, acct)
	})
	t.Run("anthropic-400-relayed", func(t *testing.T) {
		g := newGateway(t, gatewayOptions{})
		acct, key, _ := g.account("pro")
		up := `{"type":"error","error":{"type":"invalid_request_error","message":"temperature is not supported"},"request_id":"req_x"}`
		g.Anth.Handle(jsonHandler(400, up))
		c := anthClient(g, key, nil)
		_, err := c.Messages.New(testCtx(t), anthropic.MessageNewParams{Model: modelClaude, MaxTokens: 64, Messages: anthMsgs("hi")})
		var ae *anthropic.Error
		if !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.RawJSON(), "temperature is not supported") {
			t.Errorf("want 400 relayed, got %v", err)
		}
		g.noCharge(t, acct)
	})
}

// Q7: an upstream that answers 200 but fails with an error event before
// any output: nothing was produced, so nothing is charged. Anthropic sends
// message_start (with its input counts and a placeholder output_tokens:1)
// before an overloaded_error.
func TestMeterStreamErrorBeforeOutputNotCharged(t *testing.T) {
	t.Run("anthropic", func(t *testing.T) {
		g := newGateway(t, gatewayOptions{})
		acct, key, _ := g.account("pro")
		g.Anth.Handle(newScript([]string{
			anthStart(`{"input_tokens":32830,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}`),
			anthError("overloaded_error", "Overloaded"),
		}).handler())
		c := anthClient(g, key, nil)
		st := c.Messages.NewStreaming(testCtx(t), anthropic.MessageNewParams{Model: modelClaude, MaxTokens: 64, Messages: anthMsgs("hi")})
		for st.Next() {
		}
		if st.Err() == nil || !strings.Contains(st.Err().Error(), "overloaded") {
			t.Errorf("client should see the overloaded error, got %v", st.Err())
		}
		g.noCharge(t, acct)
	})
	t.Run("chat", func(t *testing.T) {
		g := newGateway(t, gatewayOptions{})
		acct, key, _ := g.account("pro")
		g.OpenAI.Handle(newScript([]string{`data: {"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}` + "\n\n"}).handler())
		c := oaiClient(g, key, nil)
		st := c.Chat.Completions.NewStreaming(testCtx(t), openai.ChatCompletionNewParams{Model: modelGPT, Messages: userMsg("hi")})
		for st.Next() {
		}
		if st.Err() == nil {
			t.Errorf("client should see the error")
		}
		g.noCharge(t, acct)
	})
}

// ---- 7. The client goes away -----------------------------------------------

func oaiSlots(g *gateway, name string) int {
	return len(g.Server.o.Providers[name].(*httpProvider).slots)
}

// waitReleased waits (bounded) until the upstream stream stopped early on
// a failed write (the gateway closed it) and the provider slot is free.
func waitReleased(t *testing.T, g *gateway, s *sseScript, provider string) {
	t.Helper()
	select {
	case <-s.finished:
	case <-time.After(3 * time.Second):
		t.Fatalf("upstream still streaming 3 s after the client left (sent %d of %d)", s.sent.Load(), len(s.events))
	}
	if !s.writeErr.Load() || int(s.sent.Load()) >= len(s.events) {
		t.Errorf("the upstream connection should be closed when the client leaves: sent %d of %d, write error %v", s.sent.Load(), len(s.events), s.writeErr.Load())
	}
	for i := 0; i < 200 && oaiSlots(g, provider) != 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := oaiSlots(g, provider); n != 0 {
		t.Errorf("provider %s still holds %d connection slots", provider, n)
	}
}

// Q7: a chat client that disconnects midway (raw TCP close) is charged
// what was produced (estimated: no usage arrived), status client_closed,
// and the upstream stream is abandoned.
func TestMeterChatClientClosed(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	events := []string{chatRoleChunk()}
	for i := 0; i < 40; i++ {
		events = append(events, chatChunk("abcd"))
	}
	events = append(events, chatFinishChunk(), chatUsageChunk(`{"prompt_tokens":32830,"completion_tokens":40,"total_tokens":32870}`), chatDone)
	s := newScript(events)
	s.pace = 50 * time.Millisecond
	g.OpenAI.Handle(s.handler())

	body := `{"model":"test/gpt","stream":true,"messages":[{"role":"user","content":"count slowly"}]}`
	conn, err := net.Dial("tcp", strings.TrimPrefix(g.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", key, len(body), body)
	br := bufio.NewReader(conn)
	seen := 0
	for seen < 2 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d deltas: %v", seen, err)
		}
		if strings.Contains(line, `"content":"abcd"`) {
			seen++
		}
	}
	conn.Close()
	waitReleased(t, g, s, "oai")

	logs := g.waitLogs(acct, 1)
	e := logs[0]
	// input = ceil(len(body)/4); output = one token per 4-byte delta the
	// gateway read: at least the 2 the client saw, at most what the
	// upstream sent; µUSD = input + 4×output.
	in := ceilDiv4(len(body))
	n := e.OutputTokens
	if n < 2 || n > int64(s.sent.Load()) {
		t.Errorf("output %d tokens, want between 2 and %d", n, s.sent.Load())
	}
	usd, flows := priced(in, n, 0, 0)
	checkEntry(t, e, want{in: in, out: n, flows: flows, usd: usd, status: "client_closed", estimated: true})
	if len(logs) != 1 {
		t.Errorf("want one charge: %+v", logs)
	}
}

// Q7: an Anthropic client that cancels midway is charged message_start's
// input and the output estimated from the text produced, client_closed.
func TestMeterAnthropicClientClosed(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	events := []string{anthStart(`{"input_tokens":32830,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}`), anthBlockStart(0)}
	for i := 0; i < 40; i++ {
		events = append(events, anthTextDelta(0, "abcd"))
	}
	events = append(events, anthBlockStop(0), anthDelta(`"end_turn"`, `{"output_tokens":40}`), anthStop())
	s := newScript(events)
	s.pace = 50 * time.Millisecond
	g.Anth.Handle(s.handler())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", g.URL+"/v1/messages",
		strings.NewReader(`{"model":"test/claude","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"count slowly"}]}`))
	req.Header.Set("x-api-key", key)
	req.Header.Set("anthropic-version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	seen := 0
	for seen < 2 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d deltas: %v", seen, err)
		}
		if strings.Contains(line, `"text":"abcd"`) {
			seen++
		}
	}
	cancel()
	resp.Body.Close()
	waitReleased(t, g, s, "anth")

	e := g.waitLogs(acct, 1)[0]
	// input 32,830 from message_start; output = one token per 4-byte delta
	// the gateway read (2 ≤ n ≤ sent); µUSD = 32,830 + 4n.
	n := e.OutputTokens
	if n < 2 || n > int64(s.sent.Load()) {
		t.Errorf("output %d tokens, want between 2 and %d", n, s.sent.Load())
	}
	usd, flows := priced(32830, n, 0, 0)
	checkEntry(t, e, want{in: 32830, out: n, flows: flows, usd: usd, status: "client_closed", estimated: true})
}

// ---- 8. Pay-as-you-go balance under concurrency (E3) -----------------------

// topUp adds whole cents to acct's balance.
func (g *gateway) topUp(acct string, microUSD int64) {
	g.t.Helper()
	g.apply(&ledger.TopUp{Idem: ledger.Idem{IdemKey: fmt.Sprintf("topup-%s-%d", acct, g.serial.Add(1)), Fingerprint: "t"}, AccountID: acct, MicroUSD: microUSD})
}

// paddedChatBody is a chat body of exactly n bytes.
func paddedChatBody(t testing.TB, n, maxTokens int) string {
	head := fmt.Sprintf(`{"model":"test/gpt","max_tokens":%d,"messages":[{"role":"user","content":"`, maxTokens)
	tail := `"}]}`
	pad := n - len(head) - len(tail)
	if pad < 0 {
		t.Fatalf("body of %d bytes is too small", n)
	}
	return head + strings.Repeat("x", pad) + tail
}

type outcome struct {
	status int
	code   string
}

func firePayg(url, key, body string, n int) []outcome {
	out := make([]outcome, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	client := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := client.Do(req)
			if err != nil {
				out[i] = outcome{status: -1, code: err.Error()}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var e struct{ Error struct{ Code string } }
			_ = json.Unmarshal(b, &e)
			out[i] = outcome{status: resp.StatusCode, code: e.Error.Code}
		}(i)
	}
	close(start)
	wg.Wait()
	return out
}

// E3: 20 concurrent pay-as-you-go requests at a $0.05 balance, each
// costing exactly $0.03283: the balance may end below 0 by at most one
// request's cost; every admitted request is charged exactly; the others
// get 402 insufficient_balance. Regression: balance overdrawn by
// concurrency.
func TestMeterPaygConcurrentBalance(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, _, payg := g.account("pro")
	g.topUp(acct, 50_000) // $0.05
	// Each request: a body of 131,320 bytes (the gateway's estimate: 32,830
	// input tokens) and max_tokens 1, so the reservation (32,830 + 4 µUSD)
	// is tight; the upstream reports 32,830 prompt tokens and no output:
	// cost 32,830 µUSD. The balance allows 2 (50,000 → 17,170 → −15,660 ≥
	// −32,830); a third would leave −48,490.
	const cost = 32_830
	g.OpenAI.Handle(func(ctx *fasthttp.RequestCtx) {
		time.Sleep(30 * time.Millisecond)
		jsonHandler(200, chatCompletion("", `{"prompt_tokens":32830,"completion_tokens":0,"total_tokens":32830}`))(ctx)
	})
	body := paddedChatBody(t, 4*32830, 1)
	res := firePayg(g.URL, payg, body, 20)
	ok := 0
	for _, r := range res {
		switch {
		case r.status == 200:
			ok++
		case r.status == 402 && r.code == "insufficient_balance":
		default:
			t.Errorf("unexpected answer %+v", r)
		}
	}
	logs := g.waitLogs(acct, ok)
	if len(logs) != ok || ok == 0 {
		t.Fatalf("%d admitted, %d charged", ok, len(logs))
	}
	for _, e := range logs {
		checkEntry(t, e, want{in: 32830, usd: cost, status: "ok", billing: ledger.BillingPayg})
	}
	bal := g.balance(acct)
	t.Logf("admitted %d of 20, balance %d µUSD", ok, bal)
	if bal != 50_000-int64(ok)*cost {
		t.Errorf("balance %d, want 50,000 − %d × %d", bal, ok, cost)
	}
	if bal < -cost {
		t.Errorf("E3: balance %d µUSD is below −(one request's cost) = %d (%d requests admitted)", bal, -cost, ok)
	}
	if len(g.Server.reserved.m) != 0 {
		t.Errorf("reservations left after all requests: %v", g.Server.reserved.m)
	}
}

// E3 under sustained load: clients keep retrying their 402s while the
// admitted requests commit, so admissions race the commits. Each round
// is a fresh account with $0.01; a request costs exactly 6,030 µUSD
// (reservation = cost), so at most 2 may run: 10,000 − 2 × 6,030 =
// −2,060 ≥ −6,030, while 3 would leave −8,090.
func TestMeterPaygBalanceRacesCommit(t *testing.T) {
	g := newGatewayWith(t, gatewayOptions{}, nil, func(o *Options) { o.PaygRPM, o.PaygBurst = 1_000_000, 1_000_000 })
	// body 120 bytes → 30 input tokens (30 µUSD); max_tokens 1,500 → 6,000
	// µUSD; the upstream reports exactly that.
	const cost = 30 + 1500*4
	body := paddedChatBody(t, 120, 1500)
	g.OpenAI.Handle(func(ctx *fasthttp.RequestCtx) {
		time.Sleep(10 * time.Millisecond)
		jsonHandler(200, chatCompletion("ok", `{"prompt_tokens":30,"completion_tokens":1500,"total_tokens":1530}`))(ctx)
	})
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	for round := 0; round < 20; round++ {
		acct, _, payg := g.account("pro")
		g.topUp(acct, 10_000)
		var wg sync.WaitGroup
		var admitted atomic.Int32
		deadline := time.Now().Add(40 * time.Millisecond)
		for w := 0; w < 48; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					req, _ := http.NewRequest("POST", g.URL+"/v1/chat/completions", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+payg)
					resp, err := client.Do(req)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						admitted.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		logs := g.waitLogs(acct, int(admitted.Load()))
		bal := g.balance(acct)
		if bal != 10_000-int64(len(logs))*cost {
			t.Errorf("round %d: balance %d with %d charges", round, bal, len(logs))
		}
		if bal < -cost {
			t.Errorf("E3 round %d: %d requests admitted, balance %d µUSD is below −%d", round, admitted.Load(), bal, cost)
		}
	}
}

// E3, one interleaving made deterministic: request C reads the balance at
// admission ($0.01, before any charge), then a running request A commits
// (balance −6,030) and releases its reservation before C reserves. C must
// still be refused: with B in flight, admitting C lets the balance end at
// 10,000 − 3 × 6,030 = −8,090, below −(one request's cost) = −6,030.
// The window between admission and reservation is widened by holding the
// rate limiter's locks, which C takes in between.
func TestMeterPaygAdmissionRacesCommit(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, _, payg := g.account("pro")
	g.topUp(acct, 10_000)
	const cost = 30 + 1500*4 // 120-byte body → 30 input tokens; max_tokens 1,500 × 4 µUSD
	body := paddedChatBody(t, 120, 1500)
	gate := make(chan struct{})
	var arrived atomic.Int32
	g.OpenAI.Handle(func(ctx *fasthttp.RequestCtx) {
		arrived.Add(1)
		select {
		case <-gate:
		case <-time.After(5 * time.Second):
		}
		jsonHandler(200, chatCompletion("ok", `{"prompt_tokens":30,"completion_tokens":1500,"total_tokens":1530}`))(ctx)
	})
	results := make(chan outcome, 3)
	send := func() {
		go func() { results <- firePayg(g.URL, payg, body, 1)[0] }()
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for i := 0; i < 300 && !cond(); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if !cond() {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	reserved := func() int64 {
		g.Server.reserved.mu.Lock()
		defer g.Server.reserved.mu.Unlock()
		return g.Server.reserved.m[acct]
	}
	send() // A
	waitFor("A upstream", func() bool { return arrived.Load() == 1 })
	send() // B: 10,000 − 6,030 > 0
	waitFor("B upstream", func() bool { return arrived.Load() == 2 })
	if r := reserved(); r != 2*cost {
		t.Fatalf("reserved %d µUSD, want %d", r, 2*cost)
	}
	shards := &g.Server.limiter.(*Limiter).shards
	for i := range shards {
		shards[i].mu.Lock()
	}
	locked := true
	defer func() {
		if locked {
			for i := range shards {
				shards[i].mu.Unlock()
			}
		}
	}()
	send()                             // C: admitted against balance 10,000, now waiting for the limiter
	time.Sleep(100 * time.Millisecond) // bounded: C's admission has run
	gate <- struct{}{}                 // A answers, is charged, its reservation released
	waitFor("A's charge", func() bool { return len(g.requests(acct)) == 1 && reserved() == cost })
	for i := range shards {
		shards[i].mu.Unlock()
	}
	locked = false
	time.Sleep(100 * time.Millisecond) // C reserves now (or is refused)
	close(gate)
	ok := 0
	for i := 0; i < 3; i++ {
		select {
		case r := <-results:
			switch {
			case r.status == 200:
				ok++
			case r.status == 402 && r.code == "insufficient_balance":
			default:
				t.Errorf("unexpected answer %+v", r)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("requests did not finish")
		}
	}
	logs := g.waitLogs(acct, ok)
	bal := g.balance(acct)
	t.Logf("admitted %d, charged %d, balance %d µUSD", ok, len(logs), bal)
	if bal < -cost || ok > 2 {
		t.Errorf("E3: %d requests admitted; balance %d µUSD is below −(one request's cost) = %d", ok, bal, -cost)
	}
}

// ---- 9. Quorum hold-back (C2) ----------------------------------------------

// newGatewayWith is newGateway with the charge proposer wrapped and the
// server options tuned: it takes newGateway's ledger, store and upstreams,
// and puts in front of them a second Server (same options, tuned) with its
// own batcher and listener. The first server gets no traffic.
func newGatewayWith(t testing.TB, o gatewayOptions, wrap func(ChargeProposer) ChargeProposer, tune func(*Options)) *gateway {
	t.Helper()
	g := newGateway(t, o)
	old := g.charges
	var prop ChargeProposer = proposer{g}
	if wrap != nil {
		prop = wrap(prop)
	}
	g.charges = NewBatcher(prop, BatcherOptions{MaxCharges: 1000}) // closed by newGateway's cleanup
	old.Close()
	opts := g.Server.o
	opts.Charges = g.charges
	if tune != nil {
		tune(&opts)
	}
	var err error
	if g.Server, err = New(opts); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: g.Server.Handler, ErrorHandler: g.Server.TransportError, MaxRequestBodySize: 1 << 20, StreamRequestBody: true}
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Shutdown() })
	g.URL = "http://" + ln.Addr().String()
	return g
}

// slowProposer commits after a delay and counts the charges applied.
type slowProposer struct {
	inner   ChargeProposer
	delay   time.Duration
	applied *atomic.Int32
}

func (p slowProposer) ProposeCharges(b *ledger.ChargeBatch) ([]ledger.ChargeResult, error) {
	time.Sleep(p.delay)
	r, err := p.inner.ProposeCharges(b)
	if err == nil {
		p.applied.Add(int32(len(b.Charges)))
	}
	return r, err
}

const commitDelay = 300 * time.Millisecond

func slowGateway(t *testing.T, async bool) (*gateway, *atomic.Int32) {
	applied := &atomic.Int32{}
	g := newGatewayWith(t, gatewayOptions{async: async}, func(p ChargeProposer) ChargeProposer {
		return slowProposer{inner: p, delay: commitDelay, applied: applied}
	}, nil)
	return g, applied
}

// streamSeen is one SSE line the client read, when, and how many charges
// were applied at that moment.
type streamSeen struct {
	line    string
	at      time.Time
	applied int32
}

func readStream(t *testing.T, g *gateway, path, key, body string, applied *atomic.Int32, hdr ...string) []streamSeen {
	t.Helper()
	req, _ := http.NewRequestWithContext(testCtx(t), "POST", g.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var out []streamSeen
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if l := strings.TrimSpace(line); l != "" {
			out = append(out, streamSeen{line: l, at: time.Now(), applied: applied.Load()})
		}
		if err != nil {
			return out
		}
	}
}

func findLine(seen []streamSeen, sub string) (streamSeen, bool) {
	for _, s := range seen {
		if strings.Contains(s.line, sub) {
			return s, true
		}
	}
	return streamSeen{}, false
}

// C2: with quorum acks, a stream's final event ([DONE], message_stop,
// response.completed) and a unary body reach the client only once the
// charge is committed; earlier events are not held.
func TestMeterQuorumHoldBack(t *testing.T) {
	usage := `{"prompt_tokens":32830,"completion_tokens":16415,"total_tokens":49245}`
	t.Run("chat-stream", func(t *testing.T) {
		g, applied := slowGateway(t, false)
		acct, key, _ := g.account("pro")
		g.OpenAI.Handle(newScript(chatStream([]string{"Hello"}, usage)).handler())
		seen := readStream(t, g, "/v1/chat/completions", key, `{"model":"test/gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`, applied)
		first, ok1 := findLine(seen, `"content":"Hello"`)
		done, ok2 := findLine(seen, "data: [DONE]")
		if !ok1 || !ok2 {
			t.Fatalf("stream: %+v", seen)
		}
		if first.applied != 0 {
			t.Errorf("content should stream before the charge commits (applied %d)", first.applied)
		}
		if done.applied != 1 || done.at.Sub(first.at) < commitDelay*8/10 {
			t.Errorf("[DONE] reached the client %v after the content with %d charges applied; want after the commit (≥ %v)", done.at.Sub(first.at), done.applied, commitDelay)
		}
		g.oneCharge(t, acct, want{in: 32830, out: 16415, flows: 3_000_000, usd: 98_490, status: "ok"})
	})
	t.Run("anthropic-stream", func(t *testing.T) {
		g, applied := slowGateway(t, false)
		acct, key, _ := g.account("pro")
		g.Anth.Handle(newScript([]string{
			anthStart(`{"input_tokens":32830,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}`),
			anthBlockStart(0), anthTextDelta(0, "Hello"), anthBlockStop(0),
			anthDelta(`"end_turn"`, `{"output_tokens":16415}`), anthStop(),
		}).handler())
		seen := readStream(t, g, "/v1/messages", key, `{"model":"test/claude","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, applied, "anthropic-version", "2023-06-01")
		delta, ok1 := findLine(seen, `"message_delta"`)
		stop, ok2 := findLine(seen, "event: message_stop")
		if !ok1 || !ok2 {
			t.Fatalf("stream: %+v", seen)
		}
		if delta.applied != 0 || stop.applied != 1 || stop.at.Sub(delta.at) < commitDelay*8/10 {
			t.Errorf("message_delta (applied %d) then message_stop %v later (applied %d): message_stop must wait for the commit", delta.applied, stop.at.Sub(delta.at), stop.applied)
		}
		g.oneCharge(t, acct, want{in: 32830, out: 16415, flows: 3_000_000, usd: 98_490, status: "ok"})
	})
	t.Run("responses-stream", func(t *testing.T) {
		g, applied := slowGateway(t, false)
		acct, key, _ := g.account("pro")
		g.OpenAI.Handle(newScript(respStream([]string{"Hello"}, "completed", `{"input_tokens":32830,"input_tokens_details":{"cached_tokens":0},"output_tokens":16415,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":49245}`)).handler())
		seen := readStream(t, g, "/v1/responses", key, `{"model":"test/gpt","stream":true,"input":"hi"}`, applied)
		delta, ok1 := findLine(seen, "event: response.output_text.delta")
		done, ok2 := findLine(seen, "event: response.completed")
		if !ok1 || !ok2 {
			t.Fatalf("stream: %+v", seen)
		}
		if delta.applied != 0 || done.applied != 1 {
			t.Errorf("delta applied %d, response.completed applied %d: the final event must wait for the commit", delta.applied, done.applied)
		}
		g.oneCharge(t, acct, want{in: 32830, out: 16415, flows: 3_000_000, usd: 98_490, status: "ok"})
	})
	t.Run("unary", func(t *testing.T) {
		g, applied := slowGateway(t, false)
		acct, key, _ := g.account("pro")
		g.OpenAI.Handle(jsonHandler(200, chatCompletion("Hello", usage)))
		t0 := time.Now()
		resp, body := rawPost(t, g.URL+"/v1/chat/completions", key, `{"model":"test/gpt","messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 200 || !strings.Contains(string(body), "Hello") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if n := applied.Load(); n != 1 || time.Since(t0) < commitDelay*8/10 {
			t.Errorf("the body arrived after %v with %d charges applied; want after the commit", time.Since(t0), n)
		}
		g.oneCharge(t, acct, want{in: 32830, out: 16415, flows: 3_000_000, usd: 98_490, status: "ok"})
	})
	t.Run("async", func(t *testing.T) {
		g, applied := slowGateway(t, true)
		acct, key, _ := g.account("pro")
		g.OpenAI.Handle(newScript(chatStream([]string{"Hello"}, usage)).handler())
		seen := readStream(t, g, "/v1/chat/completions", key, `{"model":"test/gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`, applied)
		done, ok := findLine(seen, "data: [DONE]")
		first, _ := findLine(seen, `"content":"Hello"`)
		if !ok || done.applied != 0 || done.at.Sub(first.at) > commitDelay/2 {
			t.Errorf("async: [DONE] should not wait for the commit: %v after content, applied %d", done.at.Sub(first.at), done.applied)
		}
		g.OpenAI.Handle(jsonHandler(200, chatCompletion("Hello", usage)))
		t0 := time.Now()
		resp, _ := rawPost(t, g.URL+"/v1/chat/completions", key, `{"model":"test/gpt","messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 200 || time.Since(t0) > commitDelay/2 || applied.Load() == 2 {
			t.Errorf("async: the unary body should not wait for the commit (%v, applied %d)", time.Since(t0), applied.Load())
		}
		// Both are still charged, once each: 2 × 3 Flows.
		logs := g.waitLogs(acct, 2)
		for _, e := range logs {
			checkEntry(t, e, want{in: 32830, out: 16415, flows: 3_000_000, usd: 98_490, status: "ok"})
		}
		if got := g.usedFlows(acct); got != 6_000_000 || len(logs) != 2 {
			t.Errorf("used %d µFlows over %d charges, want 6,000,000 over 2", got, len(logs))
		}
	})
}

// Q7, W5: a count written as a float (11.0, 1e3) is that count. The
// reader took only integers and charged such counts as 0.
func TestMeterCountWrittenAsFloat(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	g.OpenAI.Handle(jsonHandler(200, chatCompletion("Hello", `{"prompt_tokens":3.283e4,"completion_tokens":16415.0,"total_tokens":49245}`)))
	c := oaiClient(g, key, nil)
	if _, err := c.Chat.Completions.New(testCtx(t), openai.ChatCompletionNewParams{Model: modelGPT, Messages: userMsg("hi")}); err != nil {
		t.Fatal(err)
	}
	g.oneCharge(t, acct, want{in: 32830, out: 16415, flows: 3_000_000, usd: 98_490, status: "ok"})
}
