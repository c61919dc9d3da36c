package proxy

import (
	"bytes"
	"io"
	"testing"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// fixedProvider answers every call with the same non-streamed body, in
// process, so the benchmark measures the gateway alone.
type fixedProvider struct{ body []byte }

func (p *fixedProvider) Speaks(f Format) bool { return true }

func (p *fixedProvider) Do(*Call) (*Response, error) {
	return &Response{Status: 200, ContentType: "application/json", Body: io.NopCloser(bytes.NewReader(p.body))}, nil
}

// nopProposer commits nothing; it answers every charge as charged.
type nopProposer struct{}

func (nopProposer) ProposeCharges(b *ledger.ChargeBatch) ([]ledger.ChargeResult, error) {
	return make([]ledger.ChargeResult, len(b.Charges)), nil
}

// BenchmarkHandlerChat measures one non-streamed chat completion through
// the handler: parse, admit, bucket, rewrite, upstream (in process),
// meter, charge (queued, ack async). It reports allocations per request on
// the hot path.
func BenchmarkHandlerChat(b *testing.B) {
	g := newGateway(b, gatewayOptions{async: true})
	g.apply(&ledger.PutPlan{Plan: ledger.Plan{ID: "bench", Name: "Bench", PriceMicroUSD: 1_000000, Window5hMicroFlows: ledger.MaxPlanMicroFlows,
		WeeklyMicroFlows: ledger.MaxPlanMicroFlows, MonthlyMicroFlows: ledger.MaxPlanMicroFlows, RPM: ledger.MaxRateLimit, Burst: ledger.MaxRateLimit}})
	m := testPrices
	m.ID, m.Provider, m.Upstream, m.Plans = "bench/fixed", "fixed", "fixed-model", []string{"bench"}
	g.apply(&ledger.PutModel{Model: m})
	_, key, _ := g.account("bench")
	upstream := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"fixed-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20,"prompt_tokens_details":{"cached_tokens":0}}}`)
	batcher := NewBatcher(nopProposer{}, BatcherOptions{MaxCharges: 1000, MaxQueue: 1 << 20})
	defer batcher.Close()
	s, err := New(Options{NodeID: "b", Ledger: func() *ledger.Ledger { return g.L }, Now: g.now.Load, Charges: batcher,
		Providers: map[string]Provider{"fixed": &fixedProvider{body: upstream}}, PaygRPM: 600, PaygBurst: 600,
		CountTokensRPM: 100, CountTokensBurst: 20, Ready: func() bool { return true }, Log: zerolog.New(io.Discard)})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"model":"bench/fixed","messages":[{"role":"user","content":"Say hello in five words."}],"temperature":0.2}`)
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/v1/chat/completions")
		ctx.Request.Header.Set("Authorization", "Bearer "+key)
		ctx.Request.SetBody(body)
		s.Handler(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}
