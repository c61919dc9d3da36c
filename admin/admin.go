// Package admin serves the operator's HTTP API (docs/api.md, "Admin API"). It
// depends on the pure ledger for reads and on a Store it declares itself
// for writes, so it never sees Raft or Pebble.
package admin

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"zenmux/internal/apierr"
	"zenmux/internal/mint"
	"zenmux/ledger"
)

// Store is what the admin API needs from its node.
type Store interface {
	// Ledger is the current replicated state, for reads.
	Ledger() *ledger.Ledger
	// Proposer commits a command stamped with the node's clock; callers
	// get its typed answer or rejection through ledger.Propose.
	ledger.Proposer
	// Now is the node's clock in Unix nanoseconds (test offset included).
	Now() int64
	// ReadBarrier makes the next reads reflect every acknowledged write.
	ReadBarrier() error
	RequestLog(accountID, cursor string, limit int) ([]ledger.LogEntryView, string, error)
	Cluster() (any, error)
	AddNode(id, raftAddr, adminAddr string) error
	RemoveNode(id string) error
	// NotReady says why the node cannot serve yet ("" when it can).
	NotReady() string
	// Metrics appends Prometheus text lines about the node.
	Metrics(b []byte) []byte
}

// Options configure the admin API.
type Options struct {
	Token     []byte
	TestClock bool
	// Reconcile lists the differences between the ledger's card payments
	// and refunds and the card provider's since a time, for GET
	// /admin/v1/payments/reconcile?since=<RFC 3339>; nil (no card
	// payments configured) leaves the route unserved.
	Reconcile func(since time.Time) (any, error)
	// Backup opens a consistent copy of the replicated state for GET
	// /admin/v1/backup, after a read barrier; nil leaves the route
	// unserved.
	Backup func() (Backup, error)
}

// Server is the admin HTTP handler.
type Server struct {
	store    Store
	opts     Options
	requests atomic.Uint64
	errors   atomic.Uint64
}

// New returns an admin API over store.
func New(store Store, opts Options) *Server { return &Server{store: store, opts: opts} }

// Handler is the fasthttp entry point.
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	defer recoverJSON(ctx)
	s.requests.Add(1)
	path := string(ctx.Path())
	switch path {
	case "/healthz":
		apierr.WriteJSON(ctx, 200, map[string]string{"status": "ok"})
		return
	case "/readyz":
		if why := s.store.NotReady(); why == "" {
			apierr.WriteJSON(ctx, 200, map[string]string{"status": "ready"})
		} else {
			apierr.WriteJSON(ctx, 503, map[string]string{"status": "not ready", "reason": why})
		}
		return
	}
	if !checkToken(ctx, s.opts.Token) {
		s.errors.Add(1)
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="zenmuxd admin"`)
		writeError(ctx, fmt.Errorf("%w: a valid admin token is required as Authorization: Bearer <token>", apierr.ErrUnauthorized))
		return
	}
	if path == "/metrics" {
		if !ctx.IsGet() {
			s.errors.Add(1)
			writeError(ctx, methodNotAllowed(ctx, []string{"GET"}))
			return
		}
		s.metrics(ctx)
		return
	}
	if path == "/admin/v1/backup" && s.opts.Backup != nil {
		s.backup(ctx)
		return
	}
	v, status, err := s.route(ctx, string(ctx.Method()), path)
	if err != nil {
		s.errors.Add(1)
		writeError(ctx, err)
		return
	}
	if status == fasthttp.StatusNoContent {
		ctx.SetStatusCode(status)
		return
	}
	apierr.WriteJSON(ctx, status, v)
}

func (s *Server) route(ctx *fasthttp.RequestCtx, method, path string) (any, int, error) {
	rest, ok := strings.CutPrefix(path, "/admin/v1/")
	if !ok {
		return nil, 0, apierr.ErrRoute
	}
	seg := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	for _, p := range seg {
		if p == "" {
			return nil, 0, apierr.ErrRoute
		}
	}
	type handler func() (any, int, error)
	var routes map[string]handler
	switch {
	case len(seg) == 1 && seg[0] == "cluster":
		routes = map[string]handler{"GET": s.getCluster}
	case len(seg) == 2 && seg[0] == "cluster" && seg[1] == "nodes":
		routes = map[string]handler{"POST": func() (any, int, error) { return s.addNode(ctx) }}
	case len(seg) == 3 && seg[0] == "cluster" && seg[1] == "nodes":
		routes = map[string]handler{"DELETE": func() (any, int, error) { return nil, 204, s.store.RemoveNode(seg[2]) }}
	case len(seg) == 1 && seg[0] == "rate":
		routes = map[string]handler{
			"GET": s.read(func(l *ledger.Ledger) (any, error) { return l.Rate(), nil }),
			"PUT": func() (any, int, error) { return s.putRate(ctx) },
		}
	case len(seg) == 1 && seg[0] == "plans":
		routes = map[string]handler{"GET": s.read(func(l *ledger.Ledger) (any, error) { return apierr.List{Data: l.Plans()}, nil })}
	case len(seg) == 2 && seg[0] == "plans":
		routes = map[string]handler{
			"GET": s.read(func(l *ledger.Ledger) (any, error) { return l.Plan(seg[1]) }),
			"PUT": func() (any, int, error) { return s.putPlan(ctx, seg[1]) },
		}
	case len(seg) == 1 && seg[0] == "models":
		routes = map[string]handler{
			"GET": s.read(func(l *ledger.Ledger) (any, error) { return apierr.List{Data: l.Models()}, nil }),
			"PUT": func() (any, int, error) { return s.putModel(ctx) },
		}
	case len(seg) == 1 && seg[0] == "accounts":
		routes = map[string]handler{
			"GET":  func() (any, int, error) { return s.listAccounts(ctx) },
			"POST": func() (any, int, error) { return s.createAccount(ctx) },
		}
	case len(seg) >= 2 && seg[0] == "accounts":
		return s.accountRoute(ctx, method, seg[1], seg[2:])
	case len(seg) == 3 && seg[0] == "keys" && seg[2] == "rotate":
		routes = map[string]handler{"POST": func() (any, int, error) { return s.rotateKey(ctx, seg[1]) }}
	case len(seg) == 2 && seg[0] == "keys":
		routes = map[string]handler{"DELETE": func() (any, int, error) { return s.revokeKey(ctx, seg[1]) }}
	case len(seg) == 1 && seg[0] == "plan-requests":
		routes = map[string]handler{"GET": s.read(func(l *ledger.Ledger) (any, error) {
			reqs, err := l.PlanRequests("", string(ctx.QueryArgs().Peek("status")))
			return apierr.List{Data: reqs}, err
		})}
	case len(seg) == 3 && seg[0] == "plan-requests" && (seg[2] == "confirm" || seg[2] == "reject"):
		routes = map[string]handler{"POST": func() (any, int, error) { return s.decidePlanRequest(ctx, seg[1], seg[2] == "confirm") }}
	case len(seg) == 2 && seg[0] == "payments" && seg[1] == "reconcile" && s.opts.Reconcile != nil:
		routes = map[string]handler{"GET": func() (any, int, error) {
			since, err := time.Parse(time.RFC3339, string(ctx.QueryArgs().Peek("since")))
			if err != nil {
				return nil, 0, fmt.Errorf("%w: since must be an RFC 3339 time", ledger.ErrInvalid)
			}
			v, err := s.opts.Reconcile(since)
			return v, 200, err
		}}
	case len(seg) == 2 && seg[0] == "payments" && seg[1] == "anomalies":
		routes = map[string]handler{"GET": s.read(func(l *ledger.Ledger) (any, error) { return apierr.List{Data: l.PaymentAnomalies()}, nil })}
	case len(seg) == 2 && seg[0] == "refunds":
		routes = map[string]handler{"GET": s.read(func(l *ledger.Ledger) (any, error) { return l.Refund(seg[1]) })}
	case len(seg) == 3 && seg[0] == "refunds" && seg[2] == "status":
		routes = map[string]handler{"POST": func() (any, int, error) { return s.refundStatus(ctx, seg[1]) }}
	case len(seg) == 1 && seg[0] == "clock" && s.opts.TestClock:
		routes = map[string]handler{
			"GET":  func() (any, int, error) { return s.clockView(), 200, nil },
			"POST": func() (any, int, error) { return s.advanceClock(ctx) },
		}
	}
	if routes == nil {
		return nil, 0, apierr.ErrRoute
	}
	h := routes[method]
	if h == nil {
		allow := make([]string, 0, len(routes))
		for m := range routes {
			allow = append(allow, m)
		}
		return nil, 0, methodNotAllowed(ctx, allow)
	}
	return h()
}

func (s *Server) accountRoute(ctx *fasthttp.RequestCtx, method, id string, rest []string) (any, int, error) {
	sub := strings.Join(rest, "/")
	type key struct{ method, sub string }
	h := map[key]func() (any, int, error){
		{"GET", ""}:           s.read(func(l *ledger.Ledger) (any, error) { return l.Account(id, s.store.Now()) }),
		{"PUT", "flow-value"}: func() (any, int, error) { return s.setFlowValue(ctx, id) },
		{"POST", "subscription"}: func() (any, int, error) {
			idem, plan, err := planRequest(ctx)
			if err != nil {
				return nil, 0, err
			}
			return apierr.Propose(s.store, &ledger.Subscribe{Idem: idem, AccountID: id, Plan: plan}, 200)
		},
		{"POST", "subscription/change"}: func() (any, int, error) {
			idem, plan, err := planRequest(ctx)
			if err != nil {
				return nil, 0, err
			}
			return apierr.Propose(s.store, &ledger.ChangePlan{Idem: idem, AccountID: id, Plan: plan}, 200)
		},
		{"POST", "subscription/cancel"}: func() (any, int, error) { return s.cancel(ctx, id) },
		{"POST", "keys"}:                func() (any, int, error) { return s.createKey(ctx, id) },
		{"GET", "keys"}: s.read(func(l *ledger.Ledger) (any, error) {
			keys, err := l.Keys(id)
			return apierr.List{Data: keys}, err
		}),
		{"POST", "balance"}:    func() (any, int, error) { return s.topUp(ctx, id) },
		{"GET", "extra-usage"}: s.read(func(l *ledger.Ledger) (any, error) { return l.ExtraUsage(id, s.store.Now()) }),
		{"PUT", "extra-usage"}: func() (any, int, error) { return s.setExtra(ctx, id) },
		{"GET", "usage"}:       s.read(func(l *ledger.Ledger) (any, error) { return l.Usage(id, s.store.Now()) }),
		{"GET", "requests"}:    func() (any, int, error) { return s.requestLog(ctx, id) },
		{"POST", "refunds/preview"}: func() (any, int, error) {
			if err := decodeBody(ctx, &struct{}{}); err != nil {
				return nil, 0, err
			}
			return s.read(func(l *ledger.Ledger) (any, error) { return l.RefundPreview(id, s.store.Now()) })()
		},
		{"POST", "refunds"}:       func() (any, int, error) { return s.submitRefund(ctx, id) },
		{"POST", "sign-in-links"}: func() (any, int, error) { return s.createSignInLink(ctx, id) },
		{"GET", "billing"}: s.read(func(l *ledger.Ledger) (any, error) {
			b, err := l.Billing(id)
			return apierr.List{Data: b}, err
		}),
		{"GET", "payment-intents"}: s.read(func(l *ledger.Ledger) (any, error) {
			p, err := l.PaymentIntents(id)
			return apierr.List{Data: p}, err
		}),
	}
	if f := h[key{method, sub}]; f != nil {
		return f()
	}
	var allow []string
	for k := range h {
		if k.sub == sub {
			allow = append(allow, k.method)
		}
	}
	if len(allow) > 0 {
		return nil, 0, methodNotAllowed(ctx, allow)
	}
	return nil, 0, apierr.ErrRoute
}

// read runs a read after the store's read barrier, so it sees every write
// acknowledged before it (docs/api.md, "Reads after writes").
func (s *Server) read(f func(*ledger.Ledger) (any, error)) func() (any, int, error) {
	return func() (any, int, error) {
		if err := s.store.ReadBarrier(); err != nil {
			return nil, 0, apierr.NotNow(err)
		}
		v, err := f(s.store.Ledger())
		return v, 200, err
	}
}

func (s *Server) getCluster() (any, int, error) {
	v, err := s.store.Cluster()
	return v, 200, err
}

func (s *Server) addNode(ctx *fasthttp.RequestCtx) (any, int, error) {
	var in struct {
		ID        string `json:"id"`
		RaftAddr  string `json:"raft_addr"`
		AdminAddr string `json:"admin_addr"`
	}
	if err := decodeBody(ctx, &in); err != nil {
		return nil, 0, err
	}
	for _, f := range [...]struct{ name, v string }{{"id", in.ID}, {"raft_addr", in.RaftAddr}, {"admin_addr", in.AdminAddr}} {
		if err := required(f.name, f.v); err != nil {
			return nil, 0, err
		}
	}
	if err := hostPort("raft_addr", in.RaftAddr); err != nil {
		return nil, 0, err
	}
	if err := hostPort("admin_addr", in.AdminAddr); err != nil {
		return nil, 0, err
	}
	if err := s.store.AddNode(in.ID, in.RaftAddr, in.AdminAddr); err != nil {
		return nil, 0, err
	}
	v, err := s.store.Cluster()
	return v, 200, err
}

func (s *Server) putRate(ctx *fasthttp.RequestCtx) (any, int, error) {
	var in struct {
		USDPerFlow *number `json:"usd_per_flow"`
	}
	if err := decodeBody(ctx, &in); err != nil {
		return nil, 0, err
	}
	n, err := scaled("usd_per_flow", in.USDPerFlow, 9, ledger.MaxNanoUSDPerFlow)
	if err != nil {
		return nil, 0, err
	}
	return apierr.Propose(s.store, &ledger.SetRate{NanoUSDPerFlow: n}, 200)
}

func (s *Server) putPlan(ctx *fasthttp.RequestCtx, id string) (any, int, error) {
	var in struct {
		ID            string  `json:"id"`
		Name          string  `json:"name"`
		PriceUSD      *number `json:"price_usd"`
		Window5hFlows *number `json:"window_5h_flows"`
		WeeklyFlows   *number `json:"weekly_flows"`
		MonthlyFlows  *number `json:"monthly_flows"`
		RPM           int64   `json:"rpm"`
		Burst         int64   `json:"burst"`
	}
	if err := decodeBody(ctx, &in); err != nil {
		return nil, 0, err
	}
	if in.ID != "" && in.ID != id {
		return nil, 0, fmt.Errorf("%w: body id %q differs from the path's %q", ledger.ErrInvalid, in.ID, id)
	}
	p := ledger.Plan{ID: id, Name: in.Name, RPM: in.RPM, Burst: in.Burst}
	var err error
	for _, f := range []struct {
		name string
		n    *number
		dst  *int64
	}{{"price_usd", in.PriceUSD, &p.PriceMicroUSD}, {"window_5h_flows", in.Window5hFlows, &p.Window5hMicroFlows},
		{"weekly_flows", in.WeeklyFlows, &p.WeeklyMicroFlows}, {"monthly_flows", in.MonthlyFlows, &p.MonthlyMicroFlows}} {
		if *f.dst, err = scaled(f.name, f.n, 6, ledger.MaxPlanMicroFlows); err != nil {
			return nil, 0, err
		}
	}
	// Checked here too, where the ledger would, so a bad plan costs no
	// Raft round trip.
	if err := ledger.ValidatePlan(&p); err != nil {
		return nil, 0, err
	}
	return apierr.Propose(s.store, &ledger.PutPlan{Plan: p}, 200)
}

func (s *Server) putModel(ctx *fasthttp.RequestCtx) (any, int, error) {
	var in struct {
		ID                   string   `json:"id"`
		Provider             string   `json:"provider"`
		Upstream             string   `json:"upstream"`
		InputUSDPerMTok      *number  `json:"input_usd_per_mtok"`
		OutputUSDPerMTok     *number  `json:"output_usd_per_mtok"`
		CacheReadUSDPerMTok  *number  `json:"cache_read_usd_per_mtok"`
		CacheWriteUSDPerMTok *number  `json:"cache_write_usd_per_mtok"`
		ImageUSD             *number  `json:"image_usd"`
		RequestUSD           *number  `json:"request_usd"`
		Plans                []string `json:"plans"`
	}
	if err := decodeBody(ctx, &in); err != nil {
		return nil, 0, err
	}
	m := ledger.Model{ID: in.ID, Provider: in.Provider, Upstream: in.Upstream, Plans: in.Plans}
	zero := number("0")
	for _, f := range []struct {
		name string
		n    *number
		dst  *int64
	}{{"input_usd_per_mtok", in.InputUSDPerMTok, &m.InputMicroUSDPerMTok}, {"output_usd_per_mtok", in.OutputUSDPerMTok, &m.OutputMicroUSDPerMTok},
		{"cache_read_usd_per_mtok", in.CacheReadUSDPerMTok, &m.CacheReadMicroUSDPerM}, {"cache_write_usd_per_mtok", in.CacheWriteUSDPerMTok, &m.CacheWriteMicroUSDPerM},
		{"image_usd", in.ImageUSD, &m.ImageMicroUSD}, {"request_usd", in.RequestUSD, &m.RequestMicroUSD}} {
		n := f.n
		if n == nil {
			n = &zero
		}
		var err error
		if *f.dst, err = scaled(f.name, n, 6, ledger.MaxTokenMicroUSD); err != nil {
			return nil, 0, err
		}
	}
	return apierr.Propose(s.store, &ledger.PutModel{Model: m}, 200)
}

func (s *Server) listAccounts(ctx *fasthttp.RequestCtx) (any, int, error) {
	limit, err := apierr.QueryInt(ctx, "limit", 100, 1, 1000)
	if err != nil {
		return nil, 0, err
	}
	if err := s.store.ReadBarrier(); err != nil {
		return nil, 0, apierr.NotNow(err)
	}
	data, next := s.store.Ledger().Accounts(string(ctx.QueryArgs().Peek("cursor")), limit, s.store.Now())
	return apierr.Page(data, next), 200, nil
}

func (s *Server) createAccount(ctx *fasthttp.RequestCtx) (any, int, error) {
	var in struct {
		Email string `json:"email"`
		Name  string `json:"name"`
	}
	if err := decodeBody(ctx, &in); err != nil {
		return nil, 0, err
	}
	if err := required("email", in.Email); err != nil {
		return nil, 0, err
	}
	return apierr.Propose(s.store, &ledger.CreateAccount{ID: "acct_" + mint.Hex(8), Email: in.Email, Name: in.Name}, 201)
}

func (s *Server) setFlowValue(ctx *fasthttp.RequestCtx, id string) (any, int, error) {
	var in struct {
		Tier       string  `json:"tier"`
		Multiplier *number `json:"multiplier"`
	}
	if err := decodeBody(ctx, &in); err != nil {
		return nil, 0, err
	}
	m := int64(1_000_000)
	if in.Multiplier != nil || in.Tier != ledger.TierStandard {
		var err error
		if m, err = scaled("multiplier", in.Multiplier, 6, ledger.MaxMultiplierPPM*10); err != nil {
			return nil, 0, err
		}
	}
	return apierr.Propose(s.store, &ledger.SetFlowValue{AccountID: id, Tier: in.Tier, MultiplierPPM: m}, 200)
}

// planRequest reads a subscribe or change request: its Idempotency-Key
// and plan.
func planRequest(ctx *fasthttp.RequestCtx) (ledger.Idem, string, error) {
	var in struct {
		Plan string `json:"plan"`
	}
	if err := decodeBody(ctx, &in); err != nil {
		return ledger.Idem{}, "", err
	}
	if err := required("plan", in.Plan); err != nil {
		return ledger.Idem{}, "", err
	}
	idem, err := idempotency(ctx)
	return idem, in.Plan, err
}

func (s *Server) cancel(ctx *fasthttp.RequestCtx, id string) (any, int, error) {
	if err := decodeBody(ctx, &struct{}{}); err != nil {
		return nil, 0, err
	}
	return apierr.Propose(s.store, &ledger.Cancel{AccountID: id}, 200)
}

func (s *Server) createKey(ctx *fasthttp.RequestCtx, acct string) (any, int, error) {
	var in struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
	}
	if err := decodeBody(ctx, &in); err != nil {
		return nil, 0, err
	}
	kv, err := mint.CreateKey(s.store, acct, in.Kind, in.Name)
	if err != nil {
		return nil, 0, err
	}
	return kv, 201, nil
}

func (s *Server) rotateKey(ctx *fasthttp.RequestCtx, keyID string) (any, int, error) {
	if err := decodeBody(ctx, &struct{}{}); err != nil {
		return nil, 0, err
	}
	if err := s.store.ReadBarrier(); err != nil {
		return nil, 0, apierr.NotNow(err)
	}
	acct, err := s.store.Ledger().KeyAccount(keyID)
	if err != nil {
		return nil, 0, err
	}
	keys, err := s.store.Ledger().Keys(acct)
	if err != nil {
		return nil, 0, err
	}
	kind := ledger.KindSubscription
	for _, k := range keys {
		if k.ID == keyID {
			kind = k.Kind
		}
	}
	kv, err := mint.RotateKey(s.store, keyID, kind)
	if err != nil {
		return nil, 0, err
	}
	return kv, 200, nil
}

func (s *Server) revokeKey(ctx *fasthttp.RequestCtx, keyID string) (any, int, error) {
	if _, err := ledger.Propose(s.store, &ledger.RevokeKey{KeyID: keyID}); err != nil {
		return nil, 0, err
	}
	return nil, 204, nil
}

func (s *Server) topUp(ctx *fasthttp.RequestCtx, acct string) (any, int, error) {
	var in struct {
		AddUSD *number `json:"add_usd"`
	}
	if err := decodeBody(ctx, &in); err != nil {
		return nil, 0, err
	}
	amount, err := scaled("add_usd", in.AddUSD, 6, ledger.MaxTopUpMicroUSD*10)
	if err != nil {
		return nil, 0, err
	}
	idem, err := idempotency(ctx)
	if err != nil {
		return nil, 0, err
	}
	return apierr.Propose(s.store, &ledger.TopUp{Idem: idem, AccountID: acct, MicroUSD: amount}, 200)
}

func (s *Server) setExtra(ctx *fasthttp.RequestCtx, acct string) (any, int, error) {
	var in struct {
		Enabled   *bool  `json:"enabled"`
		PaygKeyID string `json:"payg_key_id"`
	}
	if err := decodeBody(ctx, &in); err != nil {
		return nil, 0, err
	}
	if in.Enabled == nil {
		return nil, 0, fmt.Errorf("%w: enabled is required", ledger.ErrInvalid)
	}
	return apierr.Propose(s.store, &ledger.SetExtra{AccountID: acct, Enabled: *in.Enabled, KeyID: in.PaygKeyID}, 200)
}

func (s *Server) requestLog(ctx *fasthttp.RequestCtx, acct string) (any, int, error) {
	limit, err := apierr.QueryInt(ctx, "limit", 50, 1, 1000)
	if err != nil {
		return nil, 0, err
	}
	if err := s.store.ReadBarrier(); err != nil {
		return nil, 0, apierr.NotNow(err)
	}
	if _, err := s.store.Ledger().Account(acct, s.store.Now()); err != nil {
		return nil, 0, err
	}
	data, next, err := s.store.RequestLog(acct, string(ctx.QueryArgs().Peek("cursor")), limit)
	if err != nil {
		return nil, 0, err
	}
	return apierr.Page(data, next), 200, nil
}

func (s *Server) submitRefund(ctx *fasthttp.RequestCtx, acct string) (any, int, error) {
	if err := decodeBody(ctx, &struct{}{}); err != nil {
		return nil, 0, err
	}
	idem, err := idempotency(ctx)
	if err != nil {
		return nil, 0, err
	}
	return apierr.Propose(s.store, &ledger.RefundSubmit{Idem: idem, AccountID: acct, RefundID: "rf_" + mint.Hex(8)}, 201)
}

func (s *Server) refundStatus(ctx *fasthttp.RequestCtx, id string) (any, int, error) {
	var in struct {
		Status string `json:"status"`
	}
	if err := decodeBody(ctx, &in); err != nil {
		return nil, 0, err
	}
	idem, err := idempotency(ctx)
	if err != nil {
		return nil, 0, err
	}
	return apierr.Propose(s.store, &ledger.RefundStatus{Idem: idem, RefundID: id, Status: in.Status}, 200)
}

// SignInLinkPrefix starts a sign-in link's token (B3).
const SignInLinkPrefix = "zsl_"

// createSignInLink makes a one-time sign-in link (B3): the token is 32
// random bytes, shown once here; only its SHA-256 enters the ledger.
func (s *Server) createSignInLink(ctx *fasthttp.RequestCtx, acct string) (any, int, error) {
	if err := decodeBody(ctx, &struct{}{}); err != nil {
		return nil, 0, err
	}
	token := SignInLinkPrefix + mint.Hex(32)
	expires := s.store.Now() + ledger.SignInLinkTTL
	if _, err := ledger.Propose(s.store, &ledger.CreateSignInLink{AccountID: acct, LinkHash: ledger.HashSecret(token), ExpiresAt: expires}); err != nil {
		return nil, 0, err
	}
	return struct {
		Token     string `json:"token"`
		URL       string `json:"url"`
		ExpiresAt string `json:"expires_at"`
	}{token, "/sign-in#" + token, time.Unix(0, expires).UTC().Format(time.RFC3339)}, 201, nil
}

// decidePlanRequest confirms or rejects a plan request (B4). Its
// idempotency key is derived from the request and the decision, so a
// confirm sent again, by the operator or after a lost answer, answers the
// first result and never applies (charges) twice.
func (s *Server) decidePlanRequest(ctx *fasthttp.RequestCtx, id string, confirm bool) (any, int, error) {
	if err := decodeBody(ctx, &struct{}{}); err != nil {
		return nil, 0, err
	}
	if len(id) > 64 { // no such request; and no idempotency record for a key that long
		return nil, 0, fmt.Errorf("%w: plan request %q", ledger.ErrNotFound, id)
	}
	decision := "reject"
	if confirm {
		decision = "confirm"
	}
	idem := ledger.Idem{IdemKey: "planreq-" + decision + "-" + id, Fingerprint: decision}
	return apierr.Propose(s.store, &ledger.DecidePlanRequest{Idem: idem, ID: id, Confirm: confirm}, 200)
}

func (s *Server) clockView() any {
	return map[string]any{"now": time.Unix(0, s.store.Now()).UTC().Format(time.RFC3339Nano),
		"offset_seconds": s.store.Ledger().ClockOffset() / int64(time.Second)}
}

func (s *Server) advanceClock(ctx *fasthttp.RequestCtx) (any, int, error) {
	var in struct {
		AdvanceSeconds *int64 `json:"advance_seconds"`
	}
	if err := decodeBody(ctx, &in); err != nil {
		return nil, 0, err
	}
	if in.AdvanceSeconds == nil || *in.AdvanceSeconds <= 0 || *in.AdvanceSeconds > ledger.MaxAdvanceNanos/int64(time.Second) {
		return nil, 0, fmt.Errorf("%w: advance_seconds must be a whole number of seconds, above 0 and at most ten years", ledger.ErrInvalid)
	}
	if _, err := ledger.Propose(s.store, &ledger.AdvanceClock{Nanos: *in.AdvanceSeconds * int64(time.Second)}); err != nil {
		return nil, 0, err
	}
	return s.clockView(), 200, nil
}

func (s *Server) metrics(ctx *fasthttp.RequestCtx) {
	b := []byte("# TYPE zenmux_admin_requests_total counter\n")
	b = fmt.Appendf(b, "zenmux_admin_requests_total %d\n", s.requests.Load())
	b = append(b, "# TYPE zenmux_admin_errors_total counter\n"...)
	b = fmt.Appendf(b, "zenmux_admin_errors_total %d\n", s.errors.Load())
	b = s.store.Metrics(b)
	ctx.SetContentType("text/plain; version=0.0.4")
	ctx.SetBody(b)
}

// recoverJSON turns a handler panic into a JSON 500 so that one bad
// request cannot take the node down (fasthttp does not recover panics).
func recoverJSON(ctx *fasthttp.RequestCtx) {
	if p := recover(); p != nil {
		ctx.Response.Reset()
		writeError(ctx, fmt.Errorf("panic: %v", p))
	}
}

// methodNotAllowed sets the Allow header (RFC 9110) and returns apierr.ErrMethod.
func methodNotAllowed(ctx *fasthttp.RequestCtx, allow []string) error {
	sort.Strings(allow)
	ctx.Response.Header.Set("Allow", strings.Join(allow, ", "))
	return fmt.Errorf("%w: %s answers %s", apierr.ErrMethod, ctx.Path(), strings.Join(allow, ", "))
}

// TransportError answers errors fasthttp raises before a handler runs (a
// body over the size limit, an unparsable request) in the API's JSON shape.
func TransportError(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		apierr.Write(ctx, fasthttp.StatusRequestEntityTooLarge, "request_too_large", errors.New("the request body is over the size limit"))
		return
	}
	writeError(ctx, fmt.Errorf("%w: the request could not be parsed", ledger.ErrInvalid))
}
