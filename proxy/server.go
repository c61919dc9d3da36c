// Package proxy is the gateway a developer touches: the OpenAI and
// Anthropic surfaces on fasthttp, admission (key, model, plan, rate bucket,
// quota windows, Extra Usage) in memory, the upstream call, streaming
// relay, metering and the charge. See DESIGN.md.
package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"zenmux/internal/metrics"
	"zenmux/ledger"
	"zenmux/translate"
)

// Options wire the gateway to its node.
type Options struct {
	NodeID string
	// Ledger returns the current replicated state (it may be swapped by a
	// snapshot restore, so it is a function).
	Ledger func() *ledger.Ledger
	// Now is the node's clock in Unix nanoseconds.
	Now func() int64
	// Charges receives completed requests' charges.
	Charges *Batcher
	// AckQuorum holds a response's last bytes until its charge is
	// committed (C2); false releases them at once ("async").
	AckQuorum bool
	// Providers by name, as the catalog's models and Routes name them.
	Providers map[string]Provider
	// Routes lists, in order, the providers that may serve a catalog model
	// (the first configured one serves; a failure before the first byte
	// moves to the next). A model that names its Provider is served by it
	// alone, without asking; nil Routes means every model does.
	Routes func(modelID string) []Route
	// ProviderProblems says, by provider name, why a configured provider
	// cannot serve on this node (for example "has no API key on this
	// node"); the node reports it at start, and its models are refused
	// with 503 model_unavailable.
	ProviderProblems map[string]string
	// PaygRPM and PaygBurst are pay-as-you-go keys' own bucket (Q8),
	// each 1..ledger.MaxRateLimit.
	PaygRPM, PaygBurst int64
	// CountTokensRPM and CountTokensBurst are an account's bucket for
	// count_tokens, which is free but limited (W3.5), each
	// 1..ledger.MaxRateLimit.
	CountTokensRPM, CountTokensBurst int64
	// Ready reports whether the node can serve (for /readyz).
	Ready func() bool
	// Allowances keep quota windows across a cluster (nil on one node,
	// where the local ledger is the whole truth).
	Allowances *Allowances
	// Limiter is the rate bucket (Q8); nil means an in-memory Limiter,
	// exact for a single node. A cluster passes a LeaseLimiter.
	Limiter RateLimiter
	// Refresh, when set, brings this node's state up to the leader's (a
	// follower's read barrier). Admission calls it before refusing an
	// unknown key, so a key created a moment ago on another node works —
	// at most once a second (refreshEvery): a flood of bad keys costs the
	// leader one round trip a second, not one a request.
	Refresh func() error
	Log     zerolog.Logger
	// MaxUpstreamBody bounds a non-streamed upstream answer (default 64 MiB).
	MaxUpstreamBody int64
	// CommitTimeout bounds the wait for a charge's commit (default 30 s).
	CommitTimeout time.Duration
	// Metrics receives the request, upstream and refusal series (nil
	// records nothing).
	Metrics *metrics.Metrics
}

// Server is the proxy's fasthttp handler.
type Server struct {
	o        Options
	limiter  RateLimiter
	reserved reservations
	prefix   string
	seq      atomic.Uint64
	// refreshedAt is when an unknown key last made this node refresh
	// (wall clock, Unix ns): a bound on leader traffic, not ledger time.
	refreshedAt atomic.Int64
	// streams counts the streams being relayed: fasthttp runs a stream's
	// writer on a goroutine of its own, which outlives the connection
	// when the client goes away (Streams).
	streams atomic.Int64
}

// Streams is how many streams are being relayed (or were handed to
// fasthttp, which has not started writing them yet). A stream is charged
// when its relay ends, so a drain that cut the connections waits for this
// to reach 0 before it commits the last charges.
func (s *Server) Streams() int64 { return s.streams.Load() }

// ErrInvalidOptions refuses Options that cannot make a gateway.
var ErrInvalidOptions = errors.New("invalid proxy options")

// New returns a gateway. The buckets' rates are the node's (validated
// configuration): the proxy has no defaults of its own for them, and a
// rate out of 1..ledger.MaxRateLimit is ErrInvalidOptions.
func New(o Options) (*Server, error) {
	for _, r := range [...]struct {
		name string
		v    int64
	}{{"PaygRPM", o.PaygRPM}, {"PaygBurst", o.PaygBurst}, {"CountTokensRPM", o.CountTokensRPM}, {"CountTokensBurst", o.CountTokensBurst}} {
		if r.v < 1 || r.v > ledger.MaxRateLimit {
			return nil, fmt.Errorf("%w: %s is %d, want 1..%d", ErrInvalidOptions, r.name, r.v, ledger.MaxRateLimit)
		}
	}
	if o.MaxUpstreamBody <= 0 {
		o.MaxUpstreamBody = 64 << 20
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = 30 * time.Second
	}
	h := fnv.New32a()
	h.Write([]byte(o.NodeID))
	if o.Limiter == nil {
		o.Limiter = NewLimiter()
	}
	return &Server{
		o:        o,
		limiter:  o.Limiter,
		reserved: reservations{m: map[string]int64{}},
		// The start time tells this run's ids from an earlier run's: a
		// nonce, so it is the wall clock even when Now is frozen.
		prefix: fmt.Sprintf("req_%08x_%x_", h.Sum32(), time.Now().UnixNano()),
	}, nil
}

// requestID is unique across nodes (node hash), restarts (start time) and
// requests (sequence), without a random read per request.
func (s *Server) requestID() string {
	var buf [64]byte
	b := append(buf[:0], s.prefix...)
	return string(strconv.AppendUint(b, s.seq.Add(1), 36))
}

var (
	pathV1           = []byte("/v1/")
	pathAPIV1        = []byte("/api/v1/")
	pathAPIAnthropic = []byte("/api/anthropic/v1/")
)

// route normalises the aliases of docs/api.md ("Proxy") and W3.2: /api/v1/… and
// /api/anthropic/v1/… serve /v1/…, and /messages (AI-SDK clients without
// /v1 in their base URL) serves /v1/messages.
func route(path []byte) string {
	switch {
	case bytes.HasPrefix(path, pathAPIAnthropic):
		return "/v1/" + string(path[len(pathAPIAnthropic):])
	case bytes.HasPrefix(path, pathAPIV1):
		return "/v1/" + string(path[len(pathAPIV1):])
	case bytes.HasPrefix(path, pathV1):
		return string(path)
	case string(path) == "/messages" || string(path) == "/messages/count_tokens":
		return "/v1" + string(path)
	}
	return string(path)
}

var formats = map[string]Format{
	"/v1/chat/completions":      FormatChat,
	"/v1/responses":             FormatResponses,
	"/v1/embeddings":            FormatEmbeddings,
	"/v1/images/generations":    FormatImages,
	"/v1/messages":              FormatMessages,
	"/v1/messages/count_tokens": FormatCountTokens,
}

// surfaces name the formats in the metrics (the surface label).
var surfaces = [...]string{FormatChat: "chat", FormatResponses: "responses", FormatEmbeddings: "embeddings", FormatImages: "images",
	FormatMessages: "messages", FormatCountTokens: "count_tokens", FormatGemini: "gemini", FormatGeminiCount: "gemini_count"}

// Handler serves the proxy listener.
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	defer func() {
		if p := recover(); p != nil {
			s.o.Log.Error().Interface("panic", p).Bytes("path", ctx.Path()).Msg("handler panic")
			ctx.Response.Reset()
			writeAPIError(ctx, len(ctx.Request.Header.Peek("anthropic-version")) > 0, newAPIError(500, "internal_error", "internal error"))
		}
	}()
	path := ctx.Path()
	if ctx.IsHead() && (string(path) == "/" || string(path) == "/api/hello") {
		return // Claude Code's preflight: 200, no auth (W3.8)
	}
	switch string(path) {
	case "/healthz":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ok"}`)
		return
	case "/readyz":
		ctx.SetContentType("application/json")
		if s.o.Ready() {
			ctx.SetBodyString(`{"status":"ready"}`)
		} else {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString(`{"status":"not ready"}`)
		}
		return
	case "/api/v1/pricing":
		s.pricing(ctx)
		return
	}
	f, ok := formats[string(path)]
	r := ""
	if !ok {
		r = route(path)
		f, ok = formats[r]
	}
	id := s.requestID()
	ctx.Response.Header.Set("x-zenmux-request-id", id)
	anthropic := len(ctx.Request.Header.Peek("anthropic-version")) > 0
	if ok {
		if !ctx.IsPost() {
			ctx.Response.Header.Set("Allow", "POST")
			writeAPIError(ctx, f.Anthropic(), newAPIError(405, "method_not_allowed", string(path)+" answers POST"))
			return
		}
		s.generate(ctx, f, id, "", false, nil)
		return
	}
	if model, gf, stream, ok := geminiPath(string(path)); ok {
		if !ctx.IsPost() {
			ctx.Response.Header.Set("Allow", "POST")
			writeError(ctx, shapeGemini, newAPIError(405, "method_not_allowed", string(path)+" answers POST"))
			return
		}
		s.generate(ctx, gf, id, model, stream, nil)
		return
	}
	if id, ok := modelsPath(r); ok {
		if !ctx.IsGet() {
			ctx.Response.Header.Set("Allow", "GET")
			writeAPIError(ctx, anthropic, newAPIError(405, "method_not_allowed", "/v1/models answers GET"))
			return
		}
		s.models(ctx, anthropic, id)
		return
	}
	writeAPIError(ctx, anthropic, newAPIError(404, "not_found", "no such endpoint: "+string(path)))
}

// apiKey reads the key from Authorization: Bearer, x-api-key,
// x-goog-api-key or, as Gemini clients may send it, the key query
// parameter (K3, W4).
func apiKey(ctx *fasthttp.RequestCtx) []byte {
	if h := ctx.Request.Header.Peek("Authorization"); len(h) > 7 && (string(h[:7]) == "Bearer " || string(h[:7]) == "bearer ") {
		return bytes.TrimSpace(h[7:])
	}
	if h := ctx.Request.Header.Peek("x-api-key"); len(h) > 0 {
		return h
	}
	if h := ctx.Request.Header.Peek("x-goog-api-key"); len(h) > 0 {
		return h
	}
	return ctx.QueryArgs().Peek("key")
}

// inflight is one admitted request on its way to a charge.
type inflight struct {
	s            *Server
	id           string
	ad           ledger.Admission
	format       Format
	admittedAt   int64
	requestBytes int64
	reservation  int64 // pay-as-you-go reservation (E3), released at commit
	flowEstimate int64 // µFlows reserved from this node's allowance (cluster Q4)
	// model is the model as the client's body wrote it (a JSON string
	// literal), which the answer carries instead of the upstream's name;
	// modelBuf holds it without an allocation of its own when it is short.
	model    []byte
	modelBuf [48]byte
	// upFormat is the format of the upstream's answer (the client's when
	// it passes through); usage is metered from it.
	upFormat Format
	// x carries the answer into the client's format; nil when it passes
	// through.
	x *translation
}

// refreshEvery bounds how often unknown keys make a node refresh.
const refreshEvery = time.Second

// refreshForUnknownKey refreshes the node's state before an unknown key
// is refused, unless it did so less than refreshEvery ago; it reports
// whether the state is now fresh. Requests that arrive together share one
// read barrier (the cluster's), so the leader sees at most one round trip
// a second from a node however many bad keys it gets. The price: within a
// second of a refresh, a key created on another node after it is refused
// until this node applies its creation (normally within a heartbeat).
func (s *Server) refreshForUnknownKey() bool {
	if s.o.Refresh == nil {
		return false
	}
	now := time.Now().UnixNano()
	last := s.refreshedAt.Load()
	if last != 0 && now-last < int64(refreshEvery) {
		return false
	}
	s.refreshedAt.Store(now)
	return s.o.Refresh() == nil
}

// studioCaller is a Studio Chat call (B1): the signed-in account and the
// billing mode its conversation chose, in place of a key.
type studioCaller struct{ account, billing string }

// ServeStudio serves a Studio Chat completion (an OpenAI chat completion
// body, streamed or not) for an account the self-service API signed in,
// admitted, limited and charged exactly as a request sent with a key of
// the billing's kind: "subscription" or "payg" (B1).
func (s *Server) ServeStudio(ctx *fasthttp.RequestCtx, accountID, billing string) {
	id := s.requestID()
	ctx.Response.Header.Set("x-zenmux-request-id", id)
	s.generate(ctx, FormatChat, id, "", false, &studioCaller{account: accountID, billing: billing})
}

func (s *Server) generate(ctx *fasthttp.RequestCtx, f Format, id string, pathModel string, pathStream bool, studio *studioCaller) {
	sh := f.shape()
	fail := func(e *apiError) {
		s.o.Metrics.Refusal(e.code)
		writeError(ctx, sh, e)
	}
	// Every exit is counted with the admitted billing and model; a stream's
	// duration is recorded when its relay ends, not here. upstream is the
	// time providers took to answer, which zenmuxd did not add.
	start, streaming := time.Now(), false
	var upstream time.Duration
	var ad ledger.Admission
	defer func() {
		s.o.Metrics.Request(surfaces[f], ctx.Response.StatusCode(), ad.Billing, ad.Model.ID)
		if !streaming {
			s.o.Metrics.Duration(surfaces[f], time.Since(start), upstream)
		}
	}()

	body := ctx.PostBody()
	top, err := scanTopLevel(body)
	if err != nil {
		fail(newAPIError(400, "invalid_request", "the body must be one valid JSON object"))
		return
	}
	if top.repeated != "" {
		fail(newAPIError(400, "invalid_request", "the body has more than one "+strconv.Quote(top.repeated)+" member"))
		return
	}
	if top.caseTwin != "" {
		fail(newAPIError(400, "invalid_request", "the body has a member "+strconv.Quote(top.caseTwin)+": member names are lower case"))
		return
	}
	gemini := f == FormatGemini || f == FormatGeminiCount
	model, stream := pathModel, pathStream
	if !gemini {
		if top.model.ok() {
			model, _ = stringValue(body[top.model.start:top.model.end])
		}
		stream = top.stream.ok() && string(body[top.stream.start:top.stream.end]) == "true"
	}
	if model == "" {
		fail(newAPIError(400, "invalid_request", "model is required"))
		return
	}
	counting := f == FormatCountTokens || f == FormatGeminiCount
	if stream && (f == FormatEmbeddings || f == FormatImages || counting) {
		fail(newAPIError(400, "invalid_request", "this endpoint does not stream through zenmuxd"))
		return
	}
	now := s.o.Now()
	if studio != nil {
		ad, err = s.o.Ledger().AdmitAccount(studio.account, studio.billing, model, now)
	} else {
		secret := apiKey(ctx)
		if len(secret) == 0 {
			fail(newAPIError(401, "invalid_api_key", "an API key is required: Authorization: Bearer, x-api-key, x-goog-api-key or ?key="))
			return
		}
		hash := sha256.Sum256(secret)
		ad, err = s.o.Ledger().Admit(hash, model, now)
		if errors.Is(err, ledger.ErrInvalidAPIKey) && s.refreshForUnknownKey() {
			ad, err = s.o.Ledger().Admit(hash, model, now)
		}
	}
	if err != nil {
		fail(fromLedger(err))
		return
	}
	// The providers that can serve, in route order; refused before the
	// request spends a token or reserves anything when there is none.
	var candBuf [4]candidate
	cands, e := s.candidates(candBuf[:0], f, &ad.Model)
	if e != nil {
		fail(e)
		return
	}
	in := &inflight{s: s, id: id, ad: ad, format: f, admittedAt: now, requestBytes: int64(len(body))}
	if counting { // counting tokens is free: its own bucket, no quota, no charge
		ctx.Response.Header.Set("x-zenmux-billing", ad.Billing)
		if e := s.takeRate(ctx, "count:"+ad.AccountID, s.o.CountTokensRPM, s.o.CountTokensBurst, now, f == FormatCountTokens); e != nil {
			fail(e)
			return
		}
		if cands[0].up == 0 {
			countEstimate(ctx, f, body)
			return
		}
	} else if e := s.admitBilling(ctx, in, body, top); e != nil {
		fail(e)
		return
	}
	if gemini {
		in.model = appendJSONString(in.modelBuf[:0], model)
	} else {
		in.model = append(in.modelBuf[:0], body[top.model.start:top.model.end]...)
	}
	clientWantsUsage := true
	var req *translate.Request // the client's request, decoded once if a route needs it
	var resp *Response
	for i, c := range cands {
		call := &Call{Format: c.up, Stream: stream, RequestID: id, Model: c.route.Upstream}
		in.upFormat, in.x = c.up, nil
		if c.up == f {
			call.AnthropicVersion, call.AnthropicBeta = ctx.Request.Header.Peek("anthropic-version"), ctx.Request.Header.Peek("anthropic-beta")
			call.Body, clientWantsUsage = body, true
			if !gemini {
				call.Body, clientWantsUsage = upstreamBody(body, top, c.route.Upstream, f == FormatChat && stream)
			}
		} else {
			x, te := s.translation(f, c.up, body, &req, model, stream, c.route.Upstream, id, now)
			if te != nil {
				s.release(in)
				writeTranslateError(ctx, f, te)
				return
			}
			in.x, call.Body = x, x.body
		}
		var err error
		sent := time.Now()
		resp, err = c.p.Do(call)
		upstream += time.Since(sent)
		in.x.sent()
		last := i == len(cands)-1
		if err != nil {
			s.o.Metrics.UpstreamError(c.route.Provider, 0)
			if !last {
				s.o.Metrics.Fallback(c.route.Provider)
				s.o.Log.Warn().Err(err).Str("request", id).Str("provider", c.route.Provider).Msg("provider failed before answering; trying the next on the model's route")
				continue
			}
			s.release(in)
			fail(upstreamError(err, ad.Model))
			return
		}
		s.o.Metrics.UpstreamFirstByte(c.route.Provider, time.Since(sent))
		if resp.Status >= 400 {
			s.o.Metrics.UpstreamError(c.route.Provider, resp.Status)
		}
		if !last && (resp.Status == fasthttp.StatusTooManyRequests || resp.Status >= 500) {
			s.o.Metrics.Fallback(c.route.Provider)
			s.o.Log.Warn().Int("status", resp.Status).Str("request", id).Str("provider", c.route.Provider).Msg("provider refused; trying the next on the model's route")
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			continue
		}
		break
	}
	if resp.Status != fasthttp.StatusOK {
		s.release(in)
		s.relayError(ctx, in, resp)
		return
	}
	if counting {
		data, err := readAllLimited(resp.Body, s.o.MaxUpstreamBody)
		resp.Body.Close()
		if err != nil {
			fail(newAPIError(502, "upstream_error", "the upstream answer was cut off"))
			return
		}
		ctx.SetContentType(resp.ContentType)
		ctx.SetBody(data)
		return
	}
	if !stream {
		s.unary(ctx, in, resp)
		return
	}
	ctx.SetContentType("text/event-stream")
	if in.x == nil {
		ctx.SetContentType(orDefault(resp.ContentType, "text/event-stream"))
	}
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.Response.Header.Set("X-Accel-Buffering", "no")
	streaming = true
	s.streams.Add(1)
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer s.streams.Add(-1)
		relay := time.Now()
		s.relayStream(w, in, resp, clientWantsUsage)
		end := time.Now()
		s.o.Metrics.Duration(surfaces[f], end.Sub(start), upstream+end.Sub(relay))
	})
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// takeRate spends one request from a token bucket (Q8) and sets the
// rate-limit headers: OpenAI's x-ratelimit-*, and on the Anthropic surface
// also anthropic-ratelimit-requests-* (W3.7: the reset an RFC 3339
// time). Over the bucket: 429 with Retry-After. Every reset shown is
// rounded up to its resolution, so that it is never early.
func (s *Server) takeRate(ctx *fasthttp.RequestCtx, bucket string, rpm, burst, now int64, anthropic bool) *apiError {
	d := s.limiter.Take(bucket, rpm, burst, now)
	if d.Unavailable {
		return newAPIError(503, "unavailable", "the cluster is electing a leader; retry in a moment")
	}
	h := &ctx.Response.Header
	var num [40]byte
	h.SetBytesV("x-ratelimit-limit-requests", strconv.AppendInt(num[:0], d.Limit, 10))
	h.SetBytesV("x-ratelimit-remaining-requests", strconv.AppendInt(num[:0], d.Remaining, 10))
	h.SetBytesV("x-ratelimit-reset-requests", append(strconv.AppendInt(num[:0], int64((d.Reset+time.Millisecond-1)/time.Millisecond), 10), "ms"...))
	if anthropic {
		h.SetBytesV("anthropic-ratelimit-requests-limit", strconv.AppendInt(num[:0], d.Limit, 10))
		h.SetBytesV("anthropic-ratelimit-requests-remaining", strconv.AppendInt(num[:0], d.Remaining, 10))
		reset := time.Unix(0, now).Add(d.Reset + time.Second - 1).UTC().Truncate(time.Second)
		h.SetBytesV("anthropic-ratelimit-requests-reset", reset.AppendFormat(num[:0], time.RFC3339))
	}
	if !d.Allowed {
		h.Set("Retry-After", strconv.FormatInt(int64((d.Reset+time.Second-1)/time.Second), 10))
		return newAPIError(429, "rate_limit_exceeded", fmt.Sprintf("rate limit of %d requests a minute (burst %d) reached; retry in %s", rpm, burst, (d.Reset+time.Second-1).Truncate(time.Second)))
	}
	return nil
}

// admitBilling runs the rate bucket (Q8), then the quota/balance decision
// (Q5, E2, E3), and reserves pay-as-you-go spend, setting the headers.
func (s *Server) admitBilling(ctx *fasthttp.RequestCtx, in *inflight, body []byte, top topLevel) *apiError {
	ad := &in.ad
	bucket, rpm, burst := ad.AccountID, ad.RPM, ad.Burst
	if ad.KeyKind == ledger.KindPayg {
		bucket, rpm, burst = "payg:"+ad.AccountID, s.o.PaygRPM, s.o.PaygBurst
	}
	if e := s.takeRate(ctx, bucket, rpm, burst, in.admittedAt, in.format.Anthropic()); e != nil {
		return e
	}
	h := &ctx.Response.Header
	if ad.BillingErr != nil {
		var qe *ledger.QuotaError
		if errors.As(ad.BillingErr, &qe) {
			h.Set("Retry-After", strconv.FormatInt(qe.RetryAfterSec, 10))
		}
		return fromLedger(ad.BillingErr)
	}
	if ad.Billing == ledger.BillingSubscription && s.o.Allowances != nil {
		est := estimate(&ad.Model, body, top, ad.NanoUSDPerFlow, ad.MultiplierPPM).MicroFlows
		ok, lease, err := s.o.Allowances.Reserve(ad.AccountID, est)
		if err != nil {
			return newAPIError(503, "unavailable", "the cluster is electing a leader; retry in a moment")
		}
		if !ok {
			if lease.Window != "" {
				qe := &ledger.QuotaError{Window: lease.Window, ResetsAt: lease.ResetsAt, RetryAfterSec: max(1, (lease.ResetsAt-in.admittedAt+999_999_999)/1_000_000_000)}
				h.Set("Retry-After", strconv.FormatInt(qe.RetryAfterSec, 10))
				return fromLedger(qe)
			}
			h.Set("Retry-After", "2")
			return newAPIError(429, "quota_exceeded", "the rest of the quota is held by requests on other nodes; retry in a moment")
		}
		in.flowEstimate = est
	}
	if ad.Billing == ledger.BillingPayg {
		est := paygEstimate(&ad.Model, body, top)
		if !s.reserved.take(ad.AccountID, s.o.Ledger().Balance, est) {
			if qe := ad.Exhausted; ad.ViaExtra && qe != nil {
				h.Set("Retry-After", strconv.FormatInt(qe.RetryAfterSec, 10))
				return newAPIError(429, "quota_exceeded", qe.Error()+"; Extra Usage is on but the pay-as-you-go balance is taken by requests in flight")
			}
			return fromLedger(ledger.ErrInsufficientBalance)
		}
		in.reservation = est
	}
	h.Set("x-zenmux-billing", ad.Billing)
	return nil
}

// paygEstimate is a conservative cost of a request before it runs, in USD.
func paygEstimate(m *ledger.Model, body []byte, top topLevel) int64 {
	return estimate(m, body, top, ledger.DefaultNanoUSDPerFlow, 1_000_000).MicroUSD
}

// estimate prices a request before it runs: its input at four bytes a
// token, and its output at max_tokens (4,096 when the client sets none).
func estimate(m *ledger.Model, body []byte, top topLevel, nanoUSDPerFlow, multiplierPPM int64) ledger.Price {
	out := int64(4096)
	for _, sp := range []span{top.maxTokens, top.maxOutputTokens} {
		if sp.ok() {
			if n, err := strconv.ParseInt(string(body[sp.start:sp.end]), 10, 64); err == nil && n > 0 {
				out = min(n, ledger.MaxTokensPerKind)
			}
		}
	}
	c := ledger.Charge{InputTokens: min(estimateTokens(int64(len(body))), ledger.MaxTokensPerKind), OutputTokens: out}
	return ledger.PriceOf(m, &c, nanoUSDPerFlow, multiplierPPM)
}

// reservations hold the estimated cost of pay-as-you-go requests in flight
// per account, so that concurrent requests cannot overdraw the balance by
// more than the last one's own cost (E3).
type reservations struct {
	mu sync.Mutex
	m  map[string]int64
}

// take reserves amount if the account's balance, read under the lock,
// exceeds what requests in flight have reserved. A charge is applied to the
// ledger before its reservation is released, so a balance read here never
// misses a charge whose reservation is already gone.
func (r *reservations) take(acct string, balance func(string) int64, amount int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if balance(acct)-r.m[acct] <= 0 {
		return false
	}
	r.m[acct] += amount
	return true
}

func (r *reservations) release(acct string, amount int64) {
	if amount == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m[acct] -= amount; r.m[acct] <= 0 {
		delete(r.m, acct)
	}
}

func (s *Server) release(in *inflight) {
	s.reserved.release(in.ad.AccountID, in.reservation)
	in.reservation = 0
	if in.flowEstimate != 0 {
		s.o.Allowances.Settle(in.ad.AccountID, in.flowEstimate, 0)
		in.flowEstimate = 0
	}
}

var (
	includeUsage = []byte(`"stream_options":{"include_usage":true},`)
	// usageAsked is stream_options as most clients that want the usage
	// chunk write it: the body goes as it is but for the model.
	usageAsked = []byte(`{"include_usage":true}`)
)

// upstreamBody rewrites the model to the provider's name and, for a
// streamed chat completion, forces stream_options.include_usage so the
// stream reports usage (W2.3). It reports whether the client had
// asked for the usage chunk itself.
func upstreamBody(body []byte, top topLevel, upstream string, chatStream bool) ([]byte, bool) {
	if !chatStream { // the body with the name written in place: one allocation
		out := make([]byte, 0, len(body)-(top.model.end-top.model.start)+len(upstream)+2)
		out = appendModelName(append(out, body[:top.model.start]...), upstream)
		return append(out, body[top.model.end:]...), true
	}
	name := appendModelName(make([]byte, 0, len(upstream)+2), upstream)
	if !top.streamOptions.ok() {
		out := splice(body, top.model, name)
		i := bytes.IndexByte(out, '{')
		return append(append(append(make([]byte, 0, len(out)+len(includeUsage)), out[:i+1]...), includeUsage...), out[i+1:]...), false
	}
	if bytes.Equal(body[top.streamOptions.start:top.streamOptions.end], usageAsked) {
		return splice(body, top.model, name), true
	}
	var opts map[string]any
	if json.Unmarshal(body[top.streamOptions.start:top.streamOptions.end], &opts) != nil || opts == nil {
		opts = map[string]any{}
	}
	asked, _ := opts["include_usage"].(bool)
	opts["include_usage"] = true
	repl, _ := json.Marshal(opts)
	// Splice the later span first so the earlier one's offsets hold.
	first, second := top.model, top.streamOptions
	firstRepl, secondRepl := name, repl
	if first.start > second.start {
		first, second, firstRepl, secondRepl = second, first, secondRepl, firstRepl
	}
	return splice(splice(body, second, secondRepl), first, firstRepl), asked
}

// appendModelName appends a provider's model name as a JSON string,
// byte for byte as appendJSONString writes it; a name that needs no
// escaping (every catalog name) is copied between quotes, without
// encoding/json's reflection and buffers on every request.
func appendModelName(b []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return appendJSONString(b, name)
		}
	}
	return append(append(append(b, '"'), name...), '"')
}

// upstreamError maps a failed call (no answer at all) to 502/504.
func upstreamError(err error, m ledger.Model) *apiError {
	switch {
	case errors.Is(err, ErrFormatUnsupported):
		return newAPIError(400, "invalid_request", fmt.Sprintf("model %s is served by provider %q, which does not speak this endpoint's format", m.ID, m.Provider))
	case errors.Is(err, ErrUpstreamTimeout):
		return newAPIError(504, "upstream_timeout", "the provider did not answer in time")
	case errors.Is(err, ErrUpstreamBusy):
		return newAPIError(502, "upstream_error", "the provider's concurrency limit is reached")
	}
	return newAPIError(502, "upstream_error", "the provider could not be reached")
}

// submit hands the charge to the batcher. The returned wait blocks until
// it is committed (quorum) or returns at once (async).
func (in *inflight) submit(u Usage, status string, estimated bool) func() error {
	s := in.s
	c := ledger.Charge{
		ReqID: in.id, AccountID: in.ad.AccountID, KeyID: in.ad.KeyID, Model: in.ad.Model.ID, Node: s.o.NodeID,
		Billing: in.ad.Billing, ViaExtra: in.ad.ViaExtra, Status: status, Estimated: estimated,
		AdmittedAt: in.admittedAt, InputTokens: u.Input, OutputTokens: u.Output,
		CacheReadTokens: u.CacheRead, CacheWriteTokens: u.CacheWrite, Images: u.Images,
	}
	reservation, flows, acct := in.reservation, in.flowEstimate, in.ad.AccountID
	in.reservation, in.flowEstimate = 0, 0
	// A callback only where there is something to wait for or to settle:
	// an async charge without reservations (a subscription on one node)
	// hands the batcher its charge and nothing else.
	var done chan error
	var callback func(ChargeOutcome)
	switch {
	case s.o.AckQuorum:
		done = make(chan error, 1)
		callback = func(o ChargeOutcome) {
			s.settle(acct, reservation, flows, o)
			done <- o.Err
		}
	case reservation != 0 || flows != 0:
		callback = func(o ChargeOutcome) { s.settle(acct, reservation, flows, o) }
	}
	err := s.o.Charges.Submit(c, callback)
	if err != nil {
		s.settle(acct, reservation, flows, ChargeOutcome{})
		s.o.Log.Error().Err(err).Str("request", in.id).Msg("charge not queued")
		return func() error { return err }
	}
	if !s.o.AckQuorum {
		return func() error { return nil }
	}
	return func() error {
		t := time.NewTimer(s.o.CommitTimeout)
		defer t.Stop()
		select {
		case err := <-done:
			return err
		case <-t.C:
			return errors.New("charge commit timed out")
		}
	}
}

// settle releases a charge's pay-as-you-go reservation and replaces its
// Flow estimate in this node's allowance with what the charge cost.
func (s *Server) settle(acct string, reservation, flows int64, o ChargeOutcome) {
	s.reserved.release(acct, reservation)
	if flows != 0 {
		s.o.Allowances.Settle(acct, flows, o.Result.MicroFlows)
	}
}

// unary finishes a non-streamed answer: meter it, charge it, and release
// the body only once the charge is committed (C2).
func (s *Server) unary(ctx *fasthttp.RequestCtx, in *inflight, resp *Response) {
	buf := bodyPool.Get()
	defer bodyPool.Put(buf)
	data, err := readInto(buf, resp.Body, s.o.MaxUpstreamBody)
	resp.Body.Close()
	if err != nil {
		s.release(in)
		writeError(ctx, in.format.shape(), newAPIError(502, "upstream_error", "the upstream answer was cut off"))
		return
	}
	var answer *translate.Response
	if in.x != nil {
		if answer, err = in.x.up.DecodeResponse(data); err != nil {
			s.release(in)
			writeError(ctx, in.format.shape(), newAPIError(502, "upstream_error", "the upstream answer could not be read: "+err.Error()))
			return
		}
	}
	m := newMeter(in.upFormat)
	defer m.release()
	m.nonStream(data)
	if u, status, est, ok := m.charge(in.requestBytes, "ok"); ok {
		if err := in.submit(u, status, est)(); err != nil {
			writeError(ctx, in.format.shape(), newAPIError(503, "unavailable", "usage could not be recorded; the answer is withheld, retry the request"))
			return
		}
	} else {
		s.release(in)
	}
	if answer != nil {
		ctx.SetContentType("application/json")
		ctx.SetBody(in.x.client.EncodeResponse(ctx.Response.Body()[:0], answer, in.x.opts))
		return
	}
	ctx.SetContentType(orDefault(resp.ContentType, "application/json"))
	if sp, ok := modelSpan(data, in.model, answerModelPath(in.format)); ok {
		ctx.SetBody(data[:sp.start])
		ctx.Response.AppendBody(in.model)
		ctx.Response.AppendBody(data[sp.end:])
		return
	}
	ctx.SetBody(data)
}

// sseReader reads whole SSE events, keeping their raw bytes for relay.
type sseReader struct {
	br   *bufio.Reader
	line []byte
	raw  []byte
	data []byte
	name []byte
	// dataAt is where the event's data starts in raw when it is one line,
	// as every upstream sends it; -1 otherwise.
	dataAt int
}

// maxEventBytes bounds one SSE event from an upstream.
const maxEventBytes = 16 << 20

var errEventTooLong = errors.New("upstream SSE event over 16 MiB")

func (r *sseReader) readLine() ([]byte, error) {
	r.line = r.line[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		r.line = append(r.line, chunk...)
		if err == bufio.ErrBufferFull {
			if len(r.line) > maxEventBytes {
				return r.line, errEventTooLong
			}
			continue
		}
		return r.line, err
	}
}

// next returns the next event: its raw bytes (through the blank line that
// ends it), its name and its joined data lines. At the end of the stream
// it returns what it has with the error.
func (r *sseReader) next() (raw []byte, name string, data []byte, err error) {
	r.raw, r.data, r.name = r.raw[:0], r.data[:0], r.name[:0]
	r.dataAt = -1
	dataLines := 0
	for {
		line, err := r.readLine()
		l := bytes.TrimRight(line, "\r\n")
		if len(l) == 0 && len(line) > 0 { // a blank line ends the event
			if len(r.raw) == 0 {
				continue // stray blank line between events
			}
			r.raw = append(r.raw, line...)
			return r.raw, eventName(r.name), r.data, nil
		}
		r.raw = append(r.raw, line...)
		if len(r.raw) > maxEventBytes {
			return r.raw, string(r.name), r.data, errEventTooLong
		}
		switch {
		case bytes.HasPrefix(l, []byte("data:")):
			payload := bytes.TrimPrefix(l[5:], []byte(" "))
			if dataLines > 0 {
				r.data = append(r.data, '\n')
				r.dataAt = -1
			} else {
				r.dataAt = len(r.raw) - len(line) + len(l) - len(payload)
			}
			r.data = append(r.data, payload...)
			dataLines++
		case bytes.HasPrefix(l, []byte("event:")):
			r.name = append(r.name[:0], bytes.TrimSpace(l[6:])...)
		}
		if err != nil {
			return r.raw, string(r.name), r.data, err
		}
	}
}

// eventName is an event's name as a string: the names upstreams send on
// every event of a stream are constants, so a stream of hundreds of
// events does not allocate one each; others are copied.
func eventName(b []byte) string {
	switch string(b) {
	case "":
		return ""
	case "content_block_delta":
		return "content_block_delta"
	case "content_block_start":
		return "content_block_start"
	case "content_block_stop":
		return "content_block_stop"
	case "message_start":
		return "message_start"
	case "message_delta":
		return "message_delta"
	case "message_stop":
		return "message_stop"
	case "ping":
		return "ping"
	case "response.output_text.delta":
		return "response.output_text.delta"
	case "response.function_call_arguments.delta":
		return "response.function_call_arguments.delta"
	case "response.reasoning_summary_text.delta":
		return "response.reasoning_summary_text.delta"
	}
	return string(b)
}

// flushReader is the upstream's body as the SSE reader reads it: before
// every read of the upstream it flushes what was written to the client, so
// the client gets the events of one upstream read in one write, as soon as
// they were relayed, and never waits on the upstream for an event already
// read. err is the client's write error, which ends the stream.
type flushReader struct {
	r   io.Reader
	w   *bufio.Writer
	err error
}

// errClientWrite stops the SSE reader when the client cannot be written.
var errClientWrite = errors.New("client write failed")

func (f *flushReader) Read(p []byte) (int, error) {
	if f.w.Buffered() > 0 {
		if f.err = f.w.Flush(); f.err != nil {
			return 0, errClientWrite
		}
	}
	return f.r.Read(p)
}

// streamState is a stream relay's buffers, pooled: the upstream reader's
// 32 KiB buffer and the SSE reader's line, event and data buffers.
type streamState struct {
	fr flushReader
	r  sseReader
}

var streamStates = sync.Pool{New: func() any {
	st := &streamState{}
	st.r.br = bufio.NewReaderSize(&st.fr, 32<<10)
	return st
}}

// maxPooledEvent bounds the SSE buffers a pooled streamState keeps.
const maxPooledEvent = 64 << 10

func (st *streamState) release() {
	st.fr = flushReader{}
	if cap(st.r.line) > maxPooledEvent || cap(st.r.raw) > maxPooledEvent || cap(st.r.data) > maxPooledEvent {
		st.r.line, st.r.raw, st.r.data = nil, nil, nil
	}
	streamStates.Put(st)
}

// relayStream relays an SSE answer event by event, written as read and
// flushed before each read of the upstream (flushReader), meters it,
// holds the final event until the charge is committed (C2), and charges
// what was produced if either side stops early (Q7).
func (s *Server) relayStream(w *bufio.Writer, in *inflight, resp *Response, clientWantsUsage bool) {
	ended := false // the upstream sent its final event: its body is drained, not cut
	defer func() {
		if ended {
			go drainUpstream(resp.Body)
			return
		}
		resp.Body.Close()
	}()
	m := newMeter(in.upFormat)
	defer m.release()
	st := streamStates.Get().(*streamState)
	defer st.release()
	st.fr = flushReader{r: resp.Body, w: w}
	st.r.br.Reset(&st.fr)
	r := &st.r
	outcome := "upstream_cut"
	var held []byte
	var x *streamTranslation
	if in.x != nil {
		x = &streamTranslation{dec: in.x.up.NewDecoder(), enc: in.x.client.NewEncoder(in.x.opts)}
	}
	for {
		raw, name, data, err := r.next()
		if len(raw) > 0 {
			var action eventAction
			var werr error
			if x != nil {
				action = m.onEvent(name, data, true)
				out, end := x.event(name, data)
				if end || action == terminal {
					held, action = append(held, out...), terminal
				} else if len(out) > 0 {
					_, werr = w.Write(out)
				}
			} else {
				action = m.onEvent(name, data, clientWantsUsage)
				werr = s.passEvent(w, in, r, action, name, data, raw, &held)
			}
			if werr != nil {
				outcome = "client_closed"
			}
		}
		if st.fr.err != nil {
			outcome = "client_closed"
		}
		if held != nil || outcome == "client_closed" || err != nil {
			ended = held != nil && err == nil
			break
		}
	}
	if held == nil && outcome != "client_closed" {
		// The upstream ended without its final event: tell the client in
		// its own format rather than end the stream as if it were whole.
		_, _ = w.Write(cutEvent(in.format))
		_ = w.Flush()
	}
	u, status, est, ok := m.charge(in.requestBytes, outcome)
	if !ok {
		s.release(in)
		_ = w.Flush()
		return
	}
	wait := in.submit(u, status, est)
	if held == nil {
		return
	}
	if s.o.AckQuorum {
		_ = w.Flush() // the events before the final one go out while the charge commits
	}
	if err := wait(); err != nil {
		_ = w.Flush()
		s.o.Log.Error().Err(err).Str("request", in.id).Msg("charge not committed; final event withheld")
		return
	}
	_, _ = w.Write(held)
	_ = w.Flush()
}

// maxDrain bounds what drainUpstream reads after a stream's final event.
const maxDrain = 64 << 10

// drainUpstream reads an upstream stream past its final event to its end
// (normally just the end of its chunked body) and closes it: a stream
// read to its end gives its connection back to the provider's pool, one
// closed early costs the next call a new connection. It runs after the
// client has its last bytes, so an upstream that keeps the stream open
// holds only itself, until its idle timeout or maxDrain bytes.
func drainUpstream(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	body.Close()
}

// passEvent relays one event of a stream that passes through: the event
// as the client gets it is head, the client's model where the upstream
// named its own, tail; flushReader flushes it. A terminal event goes to
// held instead.
func (s *Server) passEvent(w *bufio.Writer, in *inflight, r *sseReader, action eventAction, name string, data, raw []byte, held *[]byte) error {
	head, model, tail := raw, []byte(nil), []byte(nil)
	if action != drop && r.dataAt >= 0 {
		if sp, ok := modelSpan(data, in.model, eventModelPath(in.format, name)); ok {
			head, model, tail = raw[:r.dataAt+sp.start], in.model, raw[r.dataAt+sp.end:]
		}
	}
	switch action {
	case relay:
		_, werr := w.Write(head)
		if werr == nil && model != nil {
			_, _ = w.Write(model)
			_, werr = w.Write(tail)
		}
		return werr
	case terminal:
		*held = append(append(append(*held, head...), model...), tail...)
	}
	return nil
}

// streamTranslation carries a stream from the upstream's format to the
// client's, event by event: each upstream event is decoded into neutral
// events and written at once in the client's format.
type streamTranslation struct {
	dec translate.StreamDecoder
	enc translate.StreamEncoder
	evs []translate.Event
	out []byte
}

// event translates one upstream event; end reports that it completed the
// answer (its bytes are the client's final events, held until the charge
// commits). An event the decoder cannot read becomes the client's error
// event, so a client is never left with half a translation.
func (x *streamTranslation) event(name string, data []byte) (out []byte, end bool) {
	evs, err := x.dec.Decode(x.evs[:0], name, data)
	x.evs = evs
	if err != nil {
		evs = append(evs, translate.Event{Type: translate.EvError, Err: &translate.Error{Status: 502, Kind: translate.ErrServer, Message: "the upstream sent an event the gateway could not read: " + err.Error()}})
	}
	x.out = x.out[:0]
	for i := range evs {
		x.out = x.enc.Encode(x.out, &evs[i])
		end = end || evs[i].Type == translate.EvEnd
	}
	return x.out, end
}

// cutEvent is the error event a client gets when the upstream stream
// breaks before its end.
func cutEvent(f Format) []byte {
	const msg = "the upstream stream ended before the answer was complete"
	switch f {
	case FormatMessages:
		return []byte(`event: error` + "\n" + `data: {"type":"error","error":{"type":"api_error","message":"` + msg + `"}}` + "\n\n")
	case FormatResponses:
		return []byte(`event: error` + "\n" + `data: {"type":"error","code":"upstream_error","message":"` + msg + `","param":null}` + "\n\n")
	}
	if f == FormatGemini {
		return []byte(`data: {"error":{"code":502,"message":"` + msg + `","status":"UNAVAILABLE"}}` + "\n\n")
	}
	return []byte(`data: {"error":{"message":"` + msg + `","type":"server_error","code":"upstream_error","param":null}}` + "\n\n")
}
