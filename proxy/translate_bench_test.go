package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// The translation's cost, measured against pass-through in one run
// (bench/README.md, "Translation"): the same Anthropic Messages request
// (Claude Code's shape, ~2 KB with a tool) to a provider that speaks
// Messages (bytes pass through) and to one that speaks only Chat
// Completions (translated both ways).

// formatProvider answers in process in the one format it speaks: a whole
// body, or a stream whose events it writes as fast as it can.
type formatProvider struct {
	speaks Format
	body   []byte
	events []string
}

func (p *formatProvider) Speaks(f Format) bool { return f == p.speaks }

func (p *formatProvider) Do(call *Call) (*Response, error) {
	if !call.Stream {
		return &Response{Status: 200, ContentType: "application/json", Body: io.NopCloser(bytes.NewReader(p.body))}, nil
	}
	pr, pw := io.Pipe()
	go func() {
		for _, e := range p.events {
			if _, err := pw.Write([]byte(e)); err != nil {
				return
			}
		}
		pw.Close()
	}()
	return &Response{Status: 200, ContentType: "text/event-stream", Body: pr}, nil
}

// benchMessagesBody is a Messages request as Claude Code shapes it, cut
// down: a system prompt, two turns, one tool.
var benchMessagesBody = []byte(`{"model":"bench/x","max_tokens":4096,"stream":false,"system":[{"type":"text","text":"You are a careful coding assistant. Answer briefly and use tools when a file must be read.","cache_control":{"type":"ephemeral"}}],` +
	`"messages":[{"role":"user","content":[{"type":"text","text":"` + strings.Repeat("Please look at the build script and tell me what it does. ", 12) + `"}]},` +
	`{"role":"assistant","content":[{"type":"text","text":"I will read it."},{"type":"tool_use","id":"toolu_1","name":"Read","input":{"file_path":"/src/build.sh"}}]},` +
	`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"#!/bin/sh\ngo build ./...\ngo test ./...\n"}]}],` +
	`"tools":[{"name":"Read","description":"Reads a file from the local filesystem. The file_path must be absolute.","input_schema":{"type":"object","properties":{"file_path":{"type":"string","description":"The absolute path to the file to read"},"offset":{"type":"number"},"limit":{"type":"number"}},"required":["file_path"],"additionalProperties":false}}],` +
	`"temperature":1,"metadata":{"user_id":"bench"}}`)

var (
	benchAnthropicAnswer = []byte(`{"id":"msg_1","type":"message","role":"assistant","model":"x-up","content":[{"type":"text","text":"It builds every package and then runs every test."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":610,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":12}}`)
	benchChatAnswer      = []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"x-up","choices":[{"index":0,"message":{"role":"assistant","content":"It builds every package and then runs every test."},"finish_reason":"stop"}],"usage":{"prompt_tokens":610,"completion_tokens":12,"total_tokens":622,"prompt_tokens_details":{"cached_tokens":0}}}`)
)

// benchServer is a gateway over one bench model served by p.
func benchServer(b *testing.B, p Provider) *Server {
	g := newGateway(b, gatewayOptions{async: true})
	g.apply(&ledger.PutPlan{Plan: ledger.Plan{ID: "bench", Name: "Bench", PriceMicroUSD: 1_000000, Window5hMicroFlows: ledger.MaxPlanMicroFlows,
		WeeklyMicroFlows: ledger.MaxPlanMicroFlows, MonthlyMicroFlows: ledger.MaxPlanMicroFlows, RPM: ledger.MaxRateLimit, Burst: ledger.MaxRateLimit}})
	m := testPrices
	m.ID, m.Provider, m.Upstream, m.Plans = "bench/x", "p", "x-up", []string{"bench"}
	g.apply(&ledger.PutModel{Model: m})
	_, key, _ := g.account("bench")
	benchKey = key
	batcher := NewBatcher(nopProposer{}, BatcherOptions{MaxCharges: 1000, MaxQueue: 1 << 14})
	b.Cleanup(func() { batcher.Close() })
	s, err := New(Options{NodeID: "b", Ledger: func() *ledger.Ledger { return g.L }, Now: g.now.Load, Charges: batcher,
		Providers: map[string]Provider{"p": p}, PaygRPM: 600, PaygBurst: 600,
		CountTokensRPM: 100, CountTokensBurst: 20, Ready: func() bool { return true }, Log: zerolog.New(io.Discard)})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

var benchKey string

// cpuTime is the CPU this process has used, user and system, on every
// thread: the handler's, the batcher's and the garbage collector's.
// Unlike ns/op it does not count time the machine gave to others.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTranslateUnary: ns/op of the same non-streamed Messages call,
// passed through and translated to Chat Completions and back. The
// difference in cpu-ns/op (the process's CPU time per call, garbage
// collection included) is the translation's CPU per request.
func BenchmarkTranslateUnary(b *testing.B) {
	for _, bc := range []struct {
		name string
		p    *formatProvider
	}{
		{"passthrough", &formatProvider{speaks: FormatMessages, body: benchAnthropicAnswer}},
		{"translated", &formatProvider{speaks: FormatChat, body: benchChatAnswer}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := benchServer(b, bc.p)
			var ctx fasthttp.RequestCtx
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			defer func() { b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op") }()
			for i := 0; i < b.N; i++ {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.Header.SetMethod("POST")
				ctx.Request.SetRequestURI("/v1/messages")
				ctx.Request.Header.Set("x-api-key", benchKey)
				ctx.Request.Header.Set("anthropic-version", "2023-06-01")
				ctx.Request.SetBody(benchMessagesBody)
				s.Handler(&ctx)
				if ctx.Response.StatusCode() != 200 || !bytes.Contains(ctx.Response.Body(), []byte("every test")) {
					b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}

// BenchmarkTranslateStreamTTFB: the time from sending a streamed Messages
// call over loopback to its first byte, passed through and translated,
// alternating request by request so both see the same machine; reports
// each one's p50 and the difference in µs.
func BenchmarkTranslateStreamTTFB(b *testing.B) {
	chatEvents := []string{
		`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"x-up","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n",
		`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"x-up","choices":[{"index":0,"delta":{"content":"It builds"},"finish_reason":null}]}` + "\n\n",
		`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"x-up","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n",
		`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"x-up","choices":[],"usage":{"prompt_tokens":610,"completion_tokens":2,"total_tokens":612}}` + "\n\n",
		"data: [DONE]\n\n",
	}
	anthEvents := []string{
		anthStart(`{"input_tokens":610,"output_tokens":1}`), anthBlockStart(0), anthTextDelta(0, "It builds"),
		sse("content_block_stop", `{"type":"content_block_stop","index":0}`),
		sse("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}`),
		sse("message_stop", `{"type":"message_stop"}`),
	}
	urls := map[string]string{}
	for name, p := range map[string]*formatProvider{
		"passthrough": {speaks: FormatMessages, events: anthEvents},
		"translated":  {speaks: FormatChat, events: chatEvents},
	} {
		s := benchServer(b, p)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &fasthttp.Server{Handler: s.Handler}
		go srv.Serve(ln)
		b.Cleanup(func() { _ = srv.Shutdown() })
		urls[name] = "http://" + ln.Addr().String() + "/v1/messages"
		urls[name+".key"] = benchKey
	}
	body := bytes.Replace(benchMessagesBody, []byte(`"stream":false`), []byte(`"stream":true`), 1)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	ttfb := map[string][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, name := range []string{"passthrough", "translated"} {
			req, _ := http.NewRequest("POST", urls[name], bytes.NewReader(body))
			req.Header.Set("x-api-key", urls[name+".key"])
			req.Header.Set("anthropic-version", "2023-06-01")
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			br := bufio.NewReader(resp.Body)
			if _, err := br.ReadByte(); err != nil {
				b.Fatal(err)
			}
			ttfb[name] = append(ttfb[name], time.Since(start))
			rest, _ := io.ReadAll(br)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Contains(rest, []byte("message_stop")) {
				b.Fatalf("%s: status %d: %s", name, resp.StatusCode, rest)
			}
		}
	}
	b.StopTimer()
	p50 := func(d []time.Duration) float64 {
		d = slices.Clone(d)
		slices.Sort(d)
		return float64(d[len(d)/2].Nanoseconds()) / 1e3
	}
	pass, tr := p50(ttfb["passthrough"]), p50(ttfb["translated"])
	b.ReportMetric(pass, "pass-p50-µs")
	b.ReportMetric(tr, "translated-p50-µs")
	b.ReportMetric(tr-pass, "added-p50-µs")
}
