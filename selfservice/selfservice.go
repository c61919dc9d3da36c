// Package selfservice serves the subscriber's side on the proxy listener
// (docs/api.md, "Self-service API"): sign-in and sessions, the
// /api/v1/me API limited to the caller's own account, Studio's chat entry,
// and the pages (/pricing, /console, /studio, /sign-in, /assets/…). Like
// the admin API it reads the pure ledger and writes through a Store it
// declares, so it never sees Raft or Pebble; Studio's chat goes to a Studio
// (the proxy) and plan changes to Payments.
package selfservice

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// Store is what the self-service API needs from its node.
type Store interface {
	// Ledger is the current replicated state, for reads.
	Ledger() *ledger.Ledger
	// Proposer commits a command stamped with the node's clock.
	ledger.Proposer
	// Now is the node's clock in Unix nanoseconds (test offset included).
	Now() int64
	// ReadBarrier makes the next reads reflect every acknowledged write.
	ReadBarrier() error
	// RequestLog pages through an account's request log, newest first.
	RequestLog(accountID, cursor string, limit int) ([]ledger.LogEntryView, string, error)
}

// Studio serves a Studio chat completion for an account, billed as
// billing ("subscription" or "payg") exactly as a request with that kind
// of key (B1). The request body is an OpenAI chat completion request; the
// answer (SSE when streamed) is written to ctx.
type Studio interface {
	ServeStudio(ctx *fasthttp.RequestCtx, accountID, billing string)
}

// Payments takes a subscriber's plan change (subscribe, change or cancel)
// and pay-as-you-go top-ups. The manual driver records a plan change for
// the operator to confirm (recordPayments) and takes no top-up; the card
// driver (package payments) answers a Checkout page to pay on, and the
// ledger applies the change when the payment's signed webhook arrives.
type Payments interface {
	// RequestPlanChange starts a plan change.
	RequestPlanChange(accountID, action, plan string) (PlanChange, error)
	// TopUp starts a top-up of microUSD (whole cents) and answers the page
	// the subscriber pays on; ErrNoCardPayments when the driver takes none.
	TopUp(accountID string, microUSD int64) (checkoutURL string, err error)
	// Driver names the driver in answers ("manual", "stripe").
	Driver() string
	// Message tells the subscriber what happens next.
	Message() string
}

// PlanChange is a driver's answer to a plan change: the plan request it
// recorded for the operator, or the Checkout page to pay on (with the
// ledger's payment intent), or, for a change that costs nothing (a
// downgrade or a cancel at cycle end, S4 S5), the ledger's answer to it.
type PlanChange struct {
	Request     *ledger.PlanRequestView `json:"-"`
	CheckoutURL string                  `json:"checkout_url,omitempty"`
	IntentID    string                  `json:"intent_id,omitempty"`
	Applied     any                     `json:"applied,omitempty"`
}

// ErrNoCardPayments is a top-up asked of a driver that takes no payment.
var ErrNoCardPayments = errors.New("payments_not_configured")

// Options configure the self-service API.
type Options struct {
	Store Store
	// Studio serves /api/v1/me/studio/chat/completions; nil answers 503.
	Studio Studio
	// Payments takes plan changes; nil records them for the operator.
	Payments Payments
	// Pages answers a page's ("/console") or an asset's ("/assets/app.css")
	// body and content type (package web's Asset); nil serves none.
	Pages func(path string) (body []byte, contentType string, ok bool)
	// SessionTTL is how long a session lasts from sign-in (default 7 days).
	SessionTTL time.Duration
	// SignInPerAddress and SignInPerAccount are the sign-in attempts a
	// minute (and burst) allowed per client address and per account
	// (defaults 10 and 20).
	SignInPerAddress, SignInPerAccount int
	// SecureCookie marks cookies Secure on plain connections too: the
	// listener sits behind a proxy that terminates TLS. A TLS connection
	// always gets Secure cookies.
	SecureCookie bool
	// SignIns counts sign-in attempts by result; nil counts none.
	SignIns SignInCounter
	Log     zerolog.Logger
}

// SignInCounter counts sign-in attempts by result: ok, bad_credentials
// (a key or link that is not valid), rate_limited, invalid (a malformed
// body) or error (the store could not answer). The node's metrics are one.
type SignInCounter interface{ SignIn(result string) }

// Defaults of Options.
const (
	DefaultSessionTTL       = 7 * 24 * time.Hour
	DefaultSignInPerAddress = 10
	DefaultSignInPerAccount = 20
	// maxBody bounds an API body (not Studio's, which the proxy's limit
	// bounds): every field the API takes fits in far less.
	maxBody = 16 << 10
)

// errOptions is a configuration New refuses.
var errOptions = errors.New("selfservice: bad options")

// Server is the self-service HTTP handler.
type Server struct {
	store     Store
	studio    Studio
	payments  Payments
	pages     func(string) ([]byte, string, bool)
	ttl       time.Duration
	secure    bool
	byAddress *limiter
	byAccount *limiter
	signIns   SignInCounter
	log       zerolog.Logger
}

// New returns the self-service API over opts.Store.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, fmt.Errorf("%w: no store", errOptions)
	}
	if opts.SessionTTL == 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.SignInPerAddress == 0 {
		opts.SignInPerAddress = DefaultSignInPerAddress
	}
	if opts.SignInPerAccount == 0 {
		opts.SignInPerAccount = DefaultSignInPerAccount
	}
	if opts.SessionTTL < time.Minute || opts.SignInPerAddress < 0 || opts.SignInPerAccount < 0 {
		return nil, fmt.Errorf("%w: session_ttl under a minute or a negative sign-in limit", errOptions)
	}
	if opts.Payments == nil {
		opts.Payments = recordPayments{opts.Store}
	}
	return &Server{
		store: opts.Store, studio: opts.Studio, payments: opts.Payments, pages: opts.Pages,
		ttl: opts.SessionTTL, secure: opts.SecureCookie, signIns: opts.SignIns, log: opts.Log,
		byAddress: newLimiter(opts.SignInPerAddress, opts.SignInPerAddress),
		byAccount: newLimiter(opts.SignInPerAccount, opts.SignInPerAccount),
	}, nil
}

// Owns reports whether a request is the self-service API's: sign-in and
// sign-out, /api/v1/me and below, the pages and their assets, and GET /
// (a redirect to /pricing). HEAD / stays the proxy's: it is Claude Code's
// preflight (W3.8).
func Owns(method, path []byte) bool {
	p := string(path)
	switch p {
	case "/":
		return string(method) != fasthttp.MethodHead
	case "/api/v1/sign-in", "/api/v1/sign-out", "/api/v1/me", "/pricing", "/console", "/studio", "/sign-in":
		return true
	}
	return hasPrefix(p, "/api/v1/me/") || hasPrefix(p, "/assets/")
}

func hasPrefix(s, prefix string) bool { return len(s) >= len(prefix) && s[:len(prefix)] == prefix }

// Handler is the fasthttp entry point for the requests Owns.
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	defer s.recoverJSON(ctx)
	securityHeaders(ctx)
	path := string(ctx.Path())
	switch {
	case path == "/":
		redirect(ctx, "/pricing")
	case hasPrefix(path, "/api/"):
		ctx.Response.Header.Set("Cache-Control", "no-store")
		s.api(ctx, path)
	default:
		s.page(ctx, path)
	}
}

// csp is the pages' Content-Security-Policy: nothing inline, nothing from
// another origin.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// securityHeaders go on every answer, API ones included.
func securityHeaders(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// recoverJSON turns a handler panic into a JSON 500 so that one bad
// request cannot take the node down (fasthttp does not recover panics).
func (s *Server) recoverJSON(ctx *fasthttp.RequestCtx) {
	if p := recover(); p != nil {
		s.log.Error().Interface("panic", p).Bytes("path", ctx.Path()).Msg("self-service handler panic")
		ctx.Response.Reset()
		securityHeaders(ctx)
		writeError(ctx, fmt.Errorf("panic: %v", p))
	}
}
