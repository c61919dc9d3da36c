package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// The test gateway: a real proxy.Server on 127.0.0.1 over a real ledger,
// with charges applied in-process (no Raft) through the real Batcher, a
// movable clock, and fake upstreams whose handlers each test scripts.

// Test models. Prices make Flows easy to read: 32,830 input tokens of
// "test/gpt" or "test/claude" cost exactly $0.03283 = 1 Flow.
const (
	modelGPT    = "test/gpt"    // provider "oai" (openai kind)
	modelClaude = "test/claude" // provider "anth" (anthropic kind)
	modelMax    = "test/max-only"
)

var testPrices = ledger.Model{
	InputMicroUSDPerMTok: 1_000000, OutputMicroUSDPerMTok: 4_000000,
	CacheReadMicroUSDPerM: 100000, CacheWriteMicroUSDPerM: 1_250000,
}

type gateway struct {
	t       testing.TB
	L       *ledger.Ledger
	now     atomic.Int64
	URL     string // http://127.0.0.1:port of the proxy
	Server  *Server
	charges *Batcher
	OpenAI  *upstream
	Anth    *upstream
	serial  atomic.Int64

	mu      sync.Mutex
	batches int
	store   memStore
}

// gatewayOptions tune newGateway.
type gatewayOptions struct {
	async    bool              // accounting.ack = "async"
	problems map[string]string // Options.ProviderProblems
	// providers and models are added to the gateway's (conformance_test.go).
	providers map[string]Provider
	models    []ledger.Model
}

type upstream struct {
	URL     string
	mu      sync.Mutex
	handler fasthttp.RequestHandler
	// Requests records each request body the upstream received.
	Requests [][]byte
	Headers  []map[string]string
}

// Handle sets the upstream's behaviour for the next requests.
func (u *upstream) Handle(h fasthttp.RequestHandler) {
	u.mu.Lock()
	u.handler = h
	u.mu.Unlock()
}

func startUpstream(t testing.TB) *upstream {
	u := &upstream{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		u.mu.Lock()
		h := u.handler
		u.Requests = append(u.Requests, append([]byte(nil), ctx.PostBody()...))
		hdr := map[string]string{}
		ctx.Request.Header.VisitAll(func(k, v []byte) { hdr[string(k)] = string(v) })
		u.Headers = append(u.Headers, hdr)
		u.mu.Unlock()
		if h == nil {
			ctx.SetStatusCode(500)
			return
		}
		h(ctx)
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Shutdown() })
	u.URL = "http://" + ln.Addr().String()
	return u
}

// proposer applies charge batches straight to the ledger.
type proposer struct{ g *gateway }

func (p proposer) ProposeCharges(b *ledger.ChargeBatch) ([]ledger.ChargeResult, error) {
	p.g.mu.Lock()
	p.g.batches++
	p.g.mu.Unlock()
	return ledger.Answer(b, p.g.L.Apply(b, p.g.now.Load()))
}

var testT0 = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).UnixNano()

func newGateway(t testing.TB, o gatewayOptions) *gateway {
	t.Helper()
	g := &gateway{t: t, L: ledger.New(), store: memStore{}}
	g.L.SetDurable(g.store)
	g.now.Store(testT0)
	models := ledger.DefaultModels()
	for _, m := range []struct {
		id, provider string
		plans        []string
	}{{modelGPT, "oai", []string{"free", "pro", "max", "ultra"}}, {modelClaude, "anth", []string{"free", "pro", "max", "ultra"}}, {modelMax, "oai", []string{"max", "ultra"}}} {
		pm := testPrices
		pm.ID, pm.Provider, pm.Upstream, pm.Plans = m.id, m.provider, "up-"+m.id[5:], m.plans
		models = append(models, pm)
	}
	models = append(models, o.models...)
	if r := g.L.Apply(&ledger.Seed{NanoUSDPerFlow: ledger.DefaultNanoUSDPerFlow, Plans: ledger.DefaultPlans(), Models: models, DedupeDays: 7, RequestLogDays: 30, LogFormat: ledger.LogFormatCurrent}, testT0); r.Err != nil {
		t.Fatal(r.Err)
	}
	g.OpenAI, g.Anth = startUpstream(t), startUpstream(t)
	mk := func(kind, url string) Provider {
		p, err := NewHTTPProvider(HTTPOptions{Kind: kind, BaseURL: url + map[string]string{"openai": "/v1", "anthropic": ""}[kind], APIKey: "upstream-secret-" + kind,
			MaxConcurrent: 64, ConnectTimeout: 2 * time.Second, FirstByteTimeout: 5 * time.Second, IdleTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	providers := map[string]Provider{"echo": &Echo{}, "oai": mk("openai", g.OpenAI.URL), "anth": mk("anthropic", g.Anth.URL)}
	for name, p := range o.providers {
		providers[name] = p
	}
	g.charges = NewBatcher(proposer{g}, BatcherOptions{MaxCharges: 1000})
	var err error
	g.Server, err = New(Options{
		NodeID: "t1", Ledger: func() *ledger.Ledger { return g.L }, Now: g.now.Load, Charges: g.charges, AckQuorum: !o.async,
		Providers:        providers,
		ProviderProblems: o.problems,
		PaygRPM:          600, PaygBurst: 600, CountTokensRPM: 100, CountTokensBurst: 20, Ready: func() bool { return true }, Log: zerolog.New(io.Discard),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: g.Server.Handler, ErrorHandler: g.Server.TransportError, MaxRequestBodySize: 1 << 20}
	go srv.Serve(ln)
	t.Cleanup(func() {
		_ = srv.Shutdown()
		g.charges.Close()
	})
	g.URL = "http://" + ln.Addr().String()
	return g
}

// advance moves the gateway's clock.
func (g *gateway) advance(d time.Duration) { g.now.Add(int64(d)) }

func (g *gateway) apply(cmd ledger.Command) {
	g.t.Helper()
	if r := g.L.Apply(cmd, g.now.Load()); r.Err != nil {
		g.t.Fatalf("%T: %v", cmd, r.Err)
	}
}

// account creates an account on plan (free when ""), and returns its id
// with a subscription key's secret and a pay-as-you-go key's secret.
func (g *gateway) account(plan string) (id, subKey, paygKey string) {
	g.t.Helper()
	n := g.serial.Add(1)
	id = fmt.Sprintf("acct%d", n)
	g.apply(&ledger.CreateAccount{ID: id, Email: id + "@example.com"})
	if plan != "" && plan != "free" {
		g.apply(&ledger.Subscribe{Idem: ledger.Idem{IdemKey: "sub-" + id, Fingerprint: "t"}, AccountID: id, Plan: plan})
	}
	mkKey := func(kind, prefix string) string {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		secret := prefix + hex.EncodeToString(b)
		g.apply(&ledger.CreateKey{AccountID: id, KeyID: fmt.Sprintf("%s-%s", id, kind), Kind: kind, Name: kind, Hash: ledger.HashSecret(secret), Last4: secret[len(secret)-4:]})
		return secret
	}
	return id, mkKey(ledger.KindSubscription, ledger.PrefixSubscription), mkKey(ledger.KindPayg, ledger.PrefixPayg)
}

// requests returns the request log of an account, oldest first, read from
// the ledger's durable records (flushed into an in-memory store) along the
// account's chain, as raftfsm reads it.
func (g *gateway) requests(acct string) []ledger.LogEntryView {
	g.t.Helper()
	g.settle()
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.L.Flush(g.store); err != nil {
		g.t.Fatal(err)
	}
	var out []ledger.LogEntryView
	for next := g.L.LastLog(acct); next != ""; {
		if len(out) > 100_000 {
			g.t.Fatalf("request log of %s: a chain of over 100,000 entries", acct)
		}
		key, idx, err := ledger.ParseLogCursor(next)
		if err != nil {
			g.t.Fatal(err)
		}
		e, err := ledger.DecodeLogAt(g.store[string(key)], idx)
		if err != nil || e.AccountID != acct {
			g.t.Fatalf("request log of %s: entry %s: %+v %v", acct, next, e, err)
		}
		out = append(out, e.View())
		next = e.Prev
	}
	slices.Reverse(out)
	return append([]ledger.LogEntryView{}, out...)
}

type memStore map[string][]byte

func (m memStore) Set(k, v []byte) error { m[string(k)] = append([]byte(nil), v...); return nil }
func (m memStore) Delete(k []byte) error { delete(m, string(k)); return nil }
func (m memStore) Get(k []byte) ([]byte, bool, error) {
	v, ok := m[string(k)]
	return append([]byte(nil), v...), ok, nil
}
func (m memStore) DeleteRange(a, b []byte) error {
	for k := range m {
		if k >= string(a) && k < string(b) {
			delete(m, k)
		}
	}
	return nil
}

func toMap(t testing.TB, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (g *gateway) usage(acct string) map[string]any {
	g.t.Helper()
	v, err := g.L.Usage(acct, g.now.Load())
	if err != nil {
		g.t.Fatal(err)
	}
	return toMap(g.t, v)
}

func (g *gateway) accountView(acct string) map[string]any {
	g.t.Helper()
	v, err := g.L.Account(acct, g.now.Load())
	if err != nil {
		g.t.Fatal(err)
	}
	return toMap(g.t, v)
}

// waitCharges waits until the batcher has nothing queued (bounded).
func (g *gateway) settle() {
	for i := 0; i < 200; i++ {
		g.charges.mu.Lock()
		n := len(g.charges.pending)
		g.charges.mu.Unlock()
		if n == 0 {
			time.Sleep(5 * time.Millisecond)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	g.t.Fatal("charges still queued after 1s")
}
