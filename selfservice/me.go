package selfservice

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/valyala/fasthttp"

	"zenmux/internal/apierr"
	"zenmux/internal/mint"
	"zenmux/ledger"
)

// list is a list answer in the admin API's shape.

// handler answers a value and its status, or an error.
type handler func() (any, int, error)

// api serves /api/v1/sign-in, /api/v1/sign-out and /api/v1/me/….
func (s *Server) api(ctx *fasthttp.RequestCtx, path string) {
	var v any
	var status int
	var err error
	switch path {
	case "/api/v1/sign-in":
		v, status, err = dispatch(ctx, map[string]handler{"POST": func() (any, int, error) { return s.countSignIn(s.signIn(ctx)) }})
	case "/api/v1/sign-out":
		v, status, err = dispatch(ctx, map[string]handler{"POST": func() (any, int, error) { return s.signOut(ctx) }})
	default:
		var c caller
		if c, err = s.authenticate(ctx); err == nil {
			if path == "/api/v1/me/studio/chat/completions" {
				s.studioChat(ctx, c)
				return
			}
			v, status, err = s.me(ctx, c, strings.TrimPrefix(path, "/api/v1/me"))
		}
	}
	if err != nil {
		if errors.Is(err, apierr.ErrUnauthorized) {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="zenmux"`)
		}
		writeError(ctx, err)
		return
	}
	if status == fasthttp.StatusNoContent {
		ctx.SetStatusCode(status)
		return
	}
	apierr.WriteJSON(ctx, status, v)
}

// dispatch runs the handler of the request's method, or refuses it with
// the Allow header (RFC 9110).
func dispatch(ctx *fasthttp.RequestCtx, routes map[string]handler) (any, int, error) {
	if h := routes[string(ctx.Method())]; h != nil {
		return h()
	}
	allow := make([]string, 0, len(routes))
	for m := range routes {
		allow = append(allow, m)
	}
	sort.Strings(allow)
	ctx.Response.Header.Set("Allow", strings.Join(allow, ", "))
	return nil, 0, fmt.Errorf("%w: %s answers %s", apierr.ErrMethod, ctx.Path(), strings.Join(allow, ", "))
}

// me routes /api/v1/me/…: every handler is given the caller's account and
// nothing else, so no path, id or parameter reaches another account's data
// (an id of another account's key or refund is not_found, as an unknown
// one).
func (s *Server) me(ctx *fasthttp.RequestCtx, c caller, rest string) (any, int, error) {
	acct := c.accountID
	l := s.store.Ledger()
	now := s.store.Now()
	var seg []string
	if rest != "" {
		seg = strings.Split(strings.TrimPrefix(rest, "/"), "/")
	}
	for _, p := range seg {
		if p == "" {
			return nil, 0, apierr.ErrRoute
		}
	}
	var routes map[string]handler
	switch {
	case len(seg) == 0:
		routes = map[string]handler{"GET": func() (any, int, error) { return s.account(c) }}
	case len(seg) == 1 && seg[0] == "usage":
		routes = map[string]handler{"GET": func() (any, int, error) { return answer(l.Usage(acct, now)) }}
	case len(seg) == 2 && seg[0] == "usage" && seg[1] == "breakdown":
		routes = map[string]handler{"GET": func() (any, int, error) { return s.breakdown(acct) }}
	case len(seg) == 1 && seg[0] == "requests":
		routes = map[string]handler{"GET": func() (any, int, error) { return s.requestLog(ctx, acct) }}
	case len(seg) == 1 && seg[0] == "extra-usage":
		routes = map[string]handler{
			"GET": func() (any, int, error) { return answer(l.ExtraUsage(acct, now)) },
			"PUT": func() (any, int, error) { return s.setExtra(ctx, acct) },
		}
	case len(seg) == 1 && seg[0] == "keys":
		routes = map[string]handler{
			"GET": func() (any, int, error) {
				keys, err := l.Keys(acct)
				return apierr.List{Data: keys}, 200, err
			},
			"POST": func() (any, int, error) { return s.createKey(ctx, acct) },
		}
	case len(seg) == 2 && seg[0] == "keys":
		routes = map[string]handler{"DELETE": func() (any, int, error) { return s.revokeKey(acct, seg[1]) }}
	case len(seg) == 3 && seg[0] == "keys" && seg[2] == "rotate":
		routes = map[string]handler{"POST": func() (any, int, error) { return s.rotateKey(ctx, acct, seg[1]) }}
	case len(seg) == 1 && seg[0] == "billing":
		routes = map[string]handler{"GET": func() (any, int, error) {
			entries, err := l.Billing(acct)
			return apierr.List{Data: entries}, 200, err
		}}
	case len(seg) == 2 && seg[0] == "refunds" && seg[1] == "preview":
		routes = map[string]handler{"POST": func() (any, int, error) {
			if err := decodeBody(ctx, &struct{}{}); err != nil {
				return nil, 0, err
			}
			return answer(l.RefundPreview(acct, now))
		}}
	case len(seg) == 1 && seg[0] == "refunds":
		routes = map[string]handler{"POST": func() (any, int, error) { return s.submitRefund(ctx, acct) }}
	case len(seg) == 2 && seg[0] == "refunds":
		routes = map[string]handler{"GET": func() (any, int, error) { return s.refund(acct, seg[1]) }}
	case len(seg) == 1 && seg[0] == "top-ups":
		routes = map[string]handler{"POST": func() (any, int, error) { return s.topUp(ctx, acct) }}
	case len(seg) == 1 && seg[0] == "plan-requests":
		routes = map[string]handler{
			"GET":  func() (any, int, error) { return s.planRequests(ctx, acct) },
			"POST": func() (any, int, error) { return s.requestPlan(ctx, acct) },
		}
	}
	if routes == nil {
		return nil, 0, apierr.ErrRoute
	}
	return dispatch(ctx, routes)
}

// answer is a ledger read's value with status 200.
func answer(v any, err error) (any, int, error) { return v, 200, err }

// meView is the account view with the session's CSRF token for a cookie
// session (the pages read it from here after a reload).
type meView struct {
	ledger.AccountView
	CSRFToken string `json:"csrf_token,omitempty"`
	// Payments says how this gateway takes plan changes and top-ups, so
	// the console can say it plainly.
	Payments paymentsView `json:"payments"`
}

// paymentsView names the payments driver and what happens on a change.
type paymentsView struct {
	Driver  string `json:"driver"`
	Message string `json:"message"`
}

func (s *Server) account(c caller) (any, int, error) {
	v, err := s.store.Ledger().Account(c.accountID, s.store.Now())
	if err != nil {
		return nil, 0, err
	}
	out := meView{AccountView: v, Payments: paymentsView{Driver: s.payments.Driver(), Message: s.payments.Message()}}
	if c.session != nil {
		out.CSRFToken = c.session.CSRF
	}
	return out, 200, nil
}

// breakdownView is the usage view's Flow totals by model and by day (U1).
type breakdownView struct {
	ByModel []ledger.TotalsView `json:"by_model"`
	ByDay   []ledger.TotalsView `json:"by_day"`
}

func (s *Server) breakdown(acct string) (any, int, error) {
	v, err := s.store.Ledger().Usage(acct, s.store.Now())
	if err != nil {
		return nil, 0, err
	}
	return breakdownView{ByModel: v.ByModel, ByDay: v.ByDay}, 200, nil
}

// requestLog pages through the account's request log. A cursor that is
// not a page of this account's log — another account's, or none at all —
// is not_found alike.
func (s *Server) requestLog(ctx *fasthttp.RequestCtx, acct string) (any, int, error) {
	limit, err := apierr.QueryInt(ctx, "limit", 50, 1, 1000)
	if err != nil {
		return nil, 0, err
	}
	cursor := string(ctx.QueryArgs().Peek("cursor"))
	if cursor != "" {
		if _, _, err := ledger.ParseLogCursor(cursor); err != nil {
			return nil, 0, err
		}
	}
	data, next, err := s.store.RequestLog(acct, cursor, limit)
	if cursor != "" && (errors.Is(err, ledger.ErrInvalid) || err == nil && len(data) == 0) {
		return nil, 0, fmt.Errorf("%w: cursor %q", ledger.ErrNotFound, cursor)
	}
	if err != nil {
		return nil, 0, err
	}
	return apierr.Page(data, next), 200, nil
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
	// The ledger refuses a key of another account as not_found.
	return apierr.Propose(s.store, &ledger.SetExtra{AccountID: acct, Enabled: *in.Enabled, KeyID: in.PaygKeyID}, 200)
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

// ownKey returns the account's key keyID; another account's key is
// not_found, as an unknown one.
func (s *Server) ownKey(acct, keyID string) (ledger.KeyView, error) {
	keys, err := s.store.Ledger().Keys(acct)
	if err != nil {
		return ledger.KeyView{}, err
	}
	for _, k := range keys {
		if k.ID == keyID {
			return k, nil
		}
	}
	return ledger.KeyView{}, fmt.Errorf("%w: key %q", ledger.ErrNotFound, keyID)
}

func (s *Server) rotateKey(ctx *fasthttp.RequestCtx, acct, keyID string) (any, int, error) {
	if err := decodeBody(ctx, &struct{}{}); err != nil {
		return nil, 0, err
	}
	k, err := s.ownKey(acct, keyID)
	if err != nil {
		return nil, 0, err
	}
	kv, err := mint.RotateKey(s.store, keyID, k.Kind)
	if err != nil {
		return nil, 0, err
	}
	return kv, 200, nil
}

func (s *Server) revokeKey(acct, keyID string) (any, int, error) {
	if _, err := s.ownKey(acct, keyID); err != nil {
		return nil, 0, err
	}
	if _, err := ledger.Propose(s.store, &ledger.RevokeKey{KeyID: keyID}); err != nil {
		return nil, 0, err
	}
	return nil, fasthttp.StatusNoContent, nil
}

// idempotency returns a money call's idempotency key, scoped to the
// account: ledger keys are global, and two accounts sending the same
// Idempotency-Key for the same path and body must not share an answer.
func idempotency(ctx *fasthttp.RequestCtx, acct string) (ledger.Idem, error) {
	key, err := apierr.IdempotencyKey(ctx)
	if err != nil {
		return ledger.Idem{}, err
	}
	if key == "" {
		key = "auto-" + mint.Hex(16)
	}
	return ledger.Idem{IdemKey: "me-" + acct + "-" + key, Fingerprint: apierr.Fingerprint(ctx)}, nil
}

func (s *Server) submitRefund(ctx *fasthttp.RequestCtx, acct string) (any, int, error) {
	if err := decodeBody(ctx, &struct{}{}); err != nil {
		return nil, 0, err
	}
	idem, err := idempotency(ctx, acct)
	if err != nil {
		return nil, 0, err
	}
	return apierr.Propose(s.store, &ledger.RefundSubmit{Idem: idem, AccountID: acct, RefundID: "rf_" + mint.Hex(8)}, 201)
}

// refund answers one of the account's refunds; another account's is
// not_found, as an unknown one.
func (s *Server) refund(acct, id string) (any, int, error) {
	missing := fmt.Errorf("%w: refund %q", ledger.ErrNotFound, id)
	v, err := s.store.Ledger().Refund(id)
	if errors.Is(err, ledger.ErrNotFound) || err == nil && v.AccountID != acct {
		return nil, 0, missing
	}
	return v, 200, err
}

// Plan request actions (docs/api.md, "Self-service API").
var planActions = map[string]bool{"subscribe": true, "change": true, "cancel": true}

// planRequestAnswer is a plan request with what happens next: the
// recorded request's fields (manual driver) or the Checkout page to
// redirect to (card driver), and the driver and its message.
type planRequestAnswer struct {
	*ledger.PlanRequestView
	PlanChange
	Driver  string `json:"driver"`
	Message string `json:"message"`
}

func (s *Server) requestPlan(ctx *fasthttp.RequestCtx, acct string) (any, int, error) {
	var in struct {
		Action string `json:"action"`
		Plan   string `json:"plan"`
	}
	if err := decodeBody(ctx, &in); err != nil {
		return nil, 0, err
	}
	if !planActions[in.Action] {
		return nil, 0, fmt.Errorf("%w: action must be subscribe, change or cancel", ledger.ErrInvalid)
	}
	if in.Action != "cancel" && in.Plan == "" {
		return nil, 0, fmt.Errorf("%w: plan is required to %s", ledger.ErrInvalid, in.Action)
	}
	v, err := s.payments.RequestPlanChange(acct, in.Action, in.Plan)
	if err != nil {
		return nil, 0, err
	}
	return planRequestAnswer{PlanRequestView: v.Request, PlanChange: v, Driver: s.payments.Driver(), Message: s.payments.Message()}, 201, nil
}

// topUp starts a pay-as-you-go top-up (E3) of amount_usd, whole cents,
// through the payments driver: the answer's checkout_url is the page to
// pay on, and the balance grows when the payment's webhook is applied.
func (s *Server) topUp(ctx *fasthttp.RequestCtx, acct string) (any, int, error) {
	var in struct {
		AmountUSD json.Number `json:"amount_usd"`
	}
	if err := decodeBody(ctx, &in); err != nil {
		return nil, 0, err
	}
	amount, err := ledger.ParseDecimal(string(in.AmountUSD), 2, ledger.MaxTopUpMicroUSD/10_000)
	if err != nil || amount <= 0 {
		return nil, 0, fmt.Errorf("%w: amount_usd must be a positive amount in dollars and cents, at most %d", ledger.ErrInvalid, ledger.MaxTopUpMicroUSD/1_000_000)
	}
	url, err := s.payments.TopUp(acct, amount*10_000)
	if err != nil {
		return nil, 0, err
	}
	return struct {
		CheckoutURL string `json:"checkout_url"`
		Driver      string `json:"driver"`
	}{url, s.payments.Driver()}, 201, nil
}

// Plan request statuses a list may be filtered by.
var planStatuses = map[string]bool{"": true, "pending": true, "confirmed": true, "rejected": true}

func (s *Server) planRequests(ctx *fasthttp.RequestCtx, acct string) (any, int, error) {
	status := string(ctx.QueryArgs().Peek("status"))
	if !planStatuses[status] {
		return nil, 0, fmt.Errorf("%w: status must be pending, confirmed or rejected", ledger.ErrInvalid)
	}
	v, err := s.store.Ledger().PlanRequests(acct, status)
	return apierr.List{Data: v}, 200, err
}

// studioChat hands a Studio chat completion to the proxy, billed as the
// body's top-level "billing" member says; that member is removed first,
// the rest of the body is the client's OpenAI request as it came.
func (s *Server) studioChat(ctx *fasthttp.RequestCtx, c caller) {
	if !ctx.IsPost() {
		_, _, err := dispatch(ctx, map[string]handler{"POST": nil})
		writeError(ctx, err)
		return
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(ctx.PostBody(), &body); err != nil || body == nil {
		writeError(ctx, fmt.Errorf("%w: the body must be a JSON object", ledger.ErrInvalid))
		return
	}
	var billing string
	if raw, ok := body["billing"]; !ok || json.Unmarshal(raw, &billing) != nil ||
		billing != ledger.BillingSubscription && billing != ledger.BillingPayg {
		writeError(ctx, fmt.Errorf("%w: billing must be %q or %q", ledger.ErrInvalid, ledger.BillingSubscription, ledger.BillingPayg))
		return
	}
	if s.studio == nil {
		writeError(ctx, fmt.Errorf("%w: Studio is not served on this node", apierr.ErrUnavailable))
		return
	}
	delete(body, "billing")
	b, err := json.Marshal(body)
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.Request.SetBody(b)
	s.studio.ServeStudio(ctx, c.accountID, billing)
}
