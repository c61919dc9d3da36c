package selfservice

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// t0 is the fake store's clock (2026-04-01T00:00:00Z); tests move it with
// advance.
var t0 = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// memStore is a Store over an in-memory ledger, the way a node runs one
// without Raft: Propose encodes the command, decodes it as a replica
// would, and applies it. Commands in remote are "committed on another
// node": this node applies them only at its next read barrier.
type memStore struct {
	l        *ledger.Ledger
	now      int64
	barriers int
	remote   []ledger.Command
	// logs is the request log: cursor → the account whose entry it is,
	// newest last per account.
	logs map[string][]string
}

func (s *memStore) Ledger() *ledger.Ledger { return s.l }
func (s *memStore) Now() int64             { return s.now + s.l.ClockOffset() }

func (s *memStore) ReadBarrier() error {
	s.barriers++
	for _, cmd := range s.remote {
		s.apply(cmd)
	}
	s.remote = nil
	return nil
}

func (s *memStore) Propose(cmd ledger.Command) (ledger.Result, error) { return s.apply(cmd), nil }

func (s *memStore) apply(cmd ledger.Command) ledger.Result {
	data, err := ledger.Encode(cmd, s.Now())
	if err != nil {
		panic(err)
	}
	dec, ts, err := ledger.Decode(data)
	if err != nil {
		panic(fmt.Sprintf("%T encoded but does not decode: %v", cmd, err))
	}
	return s.l.Apply(dec, ts)
}

// RequestLog pages like raftfsm's: a cursor names an entry (inclusive), a
// cursor of another account's entry is invalid_request, an unknown one an
// empty page.
func (s *memStore) RequestLog(accountID, cursor string, limit int) ([]ledger.LogEntryView, string, error) {
	ids := s.logs[accountID]
	start := len(ids) - 1
	if cursor != "" {
		start = -1
		for i, id := range ids {
			if id == cursor {
				start = i
			}
		}
		if start < 0 {
			for acct, others := range s.logs {
				for _, id := range others {
					if id == cursor && acct != accountID {
						return nil, "", fmt.Errorf("%w: the cursor is not from this account's log", ledger.ErrInvalid)
					}
				}
			}
			return []ledger.LogEntryView{}, "", nil
		}
	}
	out := []ledger.LogEntryView{}
	for i := start; i >= 0 && len(out) < limit; i-- {
		out = append(out, ledger.LogEntryView{ID: ids[i]})
		start = i - 1
	}
	next := ""
	if start >= 0 {
		next = ids[start]
	}
	return out, next, nil
}

func (s *memStore) advance(d time.Duration) { s.now += int64(d) }

// The fixture: acct_a on Pro with a subscription key, a second one and a
// pay-as-you-go key; acct_b on Pro with a key of each kind and a refund.
const (
	acctA, acctB    = "acct_a", "acct_b"
	keyA, keyA2     = "key_a1", "key_a2"
	keyAPayg        = "key_ap"
	keyB, keyBPayg  = "key_b1", "key_bp"
	refundB         = "rf_b"
	cursorA         = "00000000000000a1/req_a1"
	cursorB         = "00000000000000b1/req_b1"
	secretA         = ledger.PrefixSubscription + "aaaa0000000000000000000000000000000000000000000000000000000000a1"
	secretA2        = ledger.PrefixSubscription + "aaaa0000000000000000000000000000000000000000000000000000000000a2"
	secretAPayg     = ledger.PrefixPayg + "aaaa0000000000000000000000000000000000000000000000000000000000a3"
	secretB         = ledger.PrefixSubscription + "bbbb0000000000000000000000000000000000000000000000000000000000b1"
	secretBPayg     = ledger.PrefixPayg + "bbbb0000000000000000000000000000000000000000000000000000000000b2"
	fixtureLinkB    = "zsl_linkforaccountb"
	wantCSP         = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	badCredentials  = `{"error":{"code":"invalid_credentials","message":"invalid_credentials: the key or sign-in link is not valid"}}` + "\n"
	csrfFailed      = `{"error":{"code":"csrf_failed","message":"csrf_failed: a state-changing call needs the session's X-CSRF-Token header"}}` + "\n"
	sessionEnded    = `{"error":{"code":"unauthorized","message":"unauthorized: the session has ended; sign in again"}}` + "\n"
	defaultAddress  = "192.0.2.1"
	pageBody        = "<!doctype html><title>page</title>"
	assetBody       = "body{color:black}"
	assetContentTyp = "text/css; charset=utf-8"
)

func newStore(t *testing.T) *memStore {
	t.Helper()
	s := &memStore{l: ledger.New(), now: t0, logs: map[string][]string{acctA: {cursorA}, acctB: {cursorB}}}
	idem := func(k string) ledger.Idem { return ledger.Idem{IdemKey: "setup-" + k, Fingerprint: k} }
	key := func(acct, id, kind, secret string) ledger.Command {
		return &ledger.CreateKey{AccountID: acct, KeyID: id, Kind: kind, Name: id, Hash: ledger.HashSecret(secret), Last4: secret[len(secret)-4:]}
	}
	for _, cmd := range []ledger.Command{
		&ledger.Seed{NanoUSDPerFlow: ledger.DefaultNanoUSDPerFlow, Plans: ledger.DefaultPlans(), Models: ledger.DefaultModels(), DedupeDays: 7, RequestLogDays: 30, LogFormat: ledger.LogFormatCurrent},
		&ledger.CreateAccount{ID: acctA, Email: "a@example.com", Name: "A"},
		&ledger.CreateAccount{ID: acctB, Email: "b@example.com", Name: "B"},
		key(acctA, keyA, ledger.KindSubscription, secretA),
		key(acctA, keyA2, ledger.KindSubscription, secretA2),
		key(acctA, keyAPayg, ledger.KindPayg, secretAPayg),
		key(acctB, keyB, ledger.KindSubscription, secretB),
		key(acctB, keyBPayg, ledger.KindPayg, secretBPayg),
		&ledger.Subscribe{Idem: idem("sub-a"), AccountID: acctA, Plan: "pro"},
		&ledger.Subscribe{Idem: idem("sub-b"), AccountID: acctB, Plan: "pro"},
		&ledger.RefundSubmit{Idem: idem("rf-b"), AccountID: acctB, RefundID: refundB},
		&ledger.CreateSignInLink{AccountID: acctB, LinkHash: ledger.HashSecret(fixtureLinkB), ExpiresAt: t0 + ledger.SignInLinkTTL},
	} {
		if r := s.apply(cmd); r.Err != nil {
			t.Fatalf("fixture %T: %v", cmd, r.Err)
		}
	}
	return s
}

// fakeStudio records the Studio calls it gets and answers a fixed body.
type fakeStudio struct {
	calls []studioCall
}

type studioCall struct{ account, billing, body string }

func (f *fakeStudio) ServeStudio(ctx *fasthttp.RequestCtx, accountID, billing string) {
	f.calls = append(f.calls, studioCall{accountID, billing, string(ctx.PostBody())})
	ctx.SetContentType("text/event-stream")
	ctx.SetBodyString("data: [DONE]\n\n")
}

// fakePages serves one page and one asset.
func fakePages(p string) ([]byte, string, bool) {
	switch p {
	case "/pricing", "/console", "/studio", "/sign-in":
		return []byte(pageBody), "text/html; charset=utf-8", true
	case "/assets/app.css":
		return []byte(assetBody), assetContentTyp, true
	}
	return nil, "", false
}

type env struct {
	t      *testing.T
	store  *memStore
	srv    *Server
	studio *fakeStudio
}

func newEnv(t *testing.T) *env {
	t.Helper()
	store := newStore(t)
	studio := &fakeStudio{}
	srv, err := New(Options{Store: store, Studio: studio, Pages: fakePages})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, store: store, srv: srv, studio: studio}
}

// req is one request to the server.
type req struct {
	method, uri, body string
	addr              string // client address (defaultAddress when empty)
	session, csrf     string // the zx_session cookie and X-CSRF-Token header
	bearer            string
	header            map[string]string
}

// resp is an answer, copied out of the request context.
type resp struct {
	status int
	body   string
	header *fasthttp.ResponseHeader
}

func (e *env) do(r req) resp {
	e.t.Helper()
	var fr fasthttp.Request
	fr.Header.SetMethod(r.method)
	fr.SetRequestURI(r.uri)
	if r.body != "" {
		fr.SetBodyString(r.body)
	}
	if r.session != "" {
		fr.Header.SetCookie(sessionCookie, r.session)
	}
	if r.csrf != "" {
		fr.Header.Set(csrfHeader, r.csrf)
	}
	if r.bearer != "" {
		fr.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	for k, v := range r.header {
		fr.Header.Set(k, v)
	}
	addr := r.addr
	if addr == "" {
		addr = defaultAddress
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&fr, &net.TCPAddr{IP: net.ParseIP(addr), Port: 40000}, nil)
	if !Owns(ctx.Method(), ctx.Path()) {
		e.t.Fatalf("%s %s: not Owned", r.method, r.uri)
	}
	e.srv.Handler(&ctx)
	h := &fasthttp.ResponseHeader{}
	ctx.Response.Header.CopyTo(h)
	return resp{status: ctx.Response.StatusCode(), body: string(ctx.Response.Body()), header: h}
}

// cookie returns a Set-Cookie of the answer.
func (r resp) cookie(name string) *fasthttp.Cookie {
	c := fasthttp.AcquireCookie()
	c.SetKey(name)
	if !r.header.Cookie(c) {
		return nil
	}
	return c
}

// signedIn is a cookie session.
type signedIn struct{ token, csrf string }

// signIn signs in with a body and fails the test unless it answers 200.
func (e *env) signIn(body string) signedIn {
	e.t.Helper()
	r := e.do(req{method: "POST", uri: "/api/v1/sign-in", body: body})
	if r.status != 200 {
		e.t.Fatalf("sign-in %s: %d %s", body, r.status, r.body)
	}
	var out signInAnswer
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		e.t.Fatal(err)
	}
	c := r.cookie(sessionCookie)
	if c == nil {
		e.t.Fatalf("sign-in: no %s cookie", sessionCookie)
	}
	return signedIn{token: string(c.Value()), csrf: out.CSRFToken}
}

func keyBody(secret string) string { return `{"key":"` + secret + `"}` }

// want checks an answer's status and, when body is not "", its exact body.
func (e *env) want(r resp, what string, status int, body string) {
	e.t.Helper()
	if r.status != status || body != "" && r.body != body {
		e.t.Errorf("%s: %d %s\nwant %d %s", what, r.status, strings.TrimSpace(r.body), status, strings.TrimSpace(body))
	}
}
