package selfservice

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

func TestOwns(t *testing.T) {
	for _, c := range []struct {
		method, path string
		want         bool
	}{
		{"GET", "/", true}, {"HEAD", "/", false}, {"POST", "/", true},
		{"POST", "/api/v1/sign-in", true}, {"POST", "/api/v1/sign-out", true},
		{"GET", "/api/v1/me", true}, {"GET", "/api/v1/me/keys", true}, {"POST", "/api/v1/me/studio/chat/completions", true},
		{"GET", "/pricing", true}, {"GET", "/console", true}, {"GET", "/studio", true}, {"GET", "/sign-in", true},
		{"GET", "/assets/app.css", true},
		{"GET", "/api/v1/pricing", false}, {"POST", "/api/v1/chat/completions", false}, {"GET", "/api/v1/models", false},
		{"GET", "/api/v1/meta", false}, {"GET", "/v1/models", false}, {"GET", "/healthz", false}, {"GET", "/assets", false},
		{"GET", "/pricing/", false}, {"GET", "/console.html", false},
	} {
		if got := Owns([]byte(c.method), []byte(c.path)); got != c.want {
			t.Errorf("Owns(%s %s) = %v, want %v", c.method, c.path, got, c.want)
		}
	}
}

func TestSignInWithKey(t *testing.T) {
	e := newEnv(t)
	r := e.do(req{method: "POST", uri: "/api/v1/sign-in", body: keyBody(secretA)})
	e.want(r, "sign-in", 200, "")
	var out signInAnswer
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatal(err)
	}
	if out.AccountID != acctA || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(out.CSRFToken) || out.ExpiresAt != "2026-04-08T00:00:00Z" {
		t.Errorf("sign-in answered %+v", out)
	}
	sess, csrf := r.cookie(sessionCookie), r.cookie(csrfCookie)
	if sess == nil || csrf == nil {
		t.Fatalf("cookies: %s", r.header)
	}
	if len(sess.Value()) != 43 || !sess.HTTPOnly() || sess.SameSite() != fasthttp.CookieSameSiteLaxMode || string(sess.Path()) != "/" ||
		sess.Secure() || sess.MaxAge() != 7*24*3600 {
		t.Errorf("session cookie: %s", sess)
	}
	if string(csrf.Value()) != out.CSRFToken || csrf.HTTPOnly() || csrf.SameSite() != fasthttp.CookieSameSiteLaxMode || csrf.MaxAge() != 7*24*3600 {
		t.Errorf("csrf cookie: %s", csrf)
	}
	h, _ := tokenHash(sess.Value())
	got, ok := e.store.l.Session(h, e.store.Now())
	if !ok || got.AccountID != acctA || got.KeyID != keyA || got.CSRF != out.CSRFToken || got.ExpiresAt != t0+int64(7*24*time.Hour) {
		t.Errorf("ledger session: %+v %v", got, ok)
	}

	me := e.do(req{method: "GET", uri: "/api/v1/me", session: string(sess.Value())})
	e.want(me, "GET /api/v1/me", 200, "")
	var view struct {
		ID        string `json:"id"`
		Plan      string `json:"plan"`
		CSRFToken string `json:"csrf_token"`
	}
	if err := json.Unmarshal([]byte(me.body), &view); err != nil || view.ID != acctA || view.Plan != "pro" || view.CSRFToken != out.CSRFToken {
		t.Errorf("me: %+v %v", view, err)
	}
	for name, want := range map[string]string{"Content-Security-Policy": wantCSP, "X-Content-Type-Options": "nosniff",
		"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "Content-Type": "application/json"} {
		if got := string(me.header.Peek(name)); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}

func TestSecureCookie(t *testing.T) {
	store := newStore(t)
	srv, err := New(Options{Store: store, SecureCookie: true})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: store, srv: srv}
	r := e.do(req{method: "POST", uri: "/api/v1/sign-in", body: keyBody(secretA)})
	if c := r.cookie(sessionCookie); c == nil || !c.Secure() {
		t.Errorf("session cookie not Secure: %s", r.header)
	}
}

func TestSignInWithLink(t *testing.T) {
	e := newEnv(t)
	s := e.signIn(`{"link":"` + fixtureLinkB + `"}`)
	me := e.do(req{method: "GET", uri: "/api/v1/me", session: s.token})
	if !strings.Contains(me.body, `"id":"acct_b"`) {
		t.Errorf("me after link sign-in: %s", me.body)
	}
	// Single use; a bad link and a bad key get the same answer.
	e.want(e.do(req{method: "POST", uri: "/api/v1/sign-in", body: `{"link":"` + fixtureLinkB + `"}`}), "link again", 401, badCredentials)
	e.want(e.do(req{method: "POST", uri: "/api/v1/sign-in", body: `{"link":"zsl_unknown"}`}), "unknown link", 401, badCredentials)
	e.want(e.do(req{method: "POST", uri: "/api/v1/sign-in", body: keyBody(secretA + "0")}), "unknown key", 401, badCredentials)
	e.want(e.do(req{method: "POST", uri: "/api/v1/sign-in", body: `{}`}), "neither", 400,
		`{"error":{"code":"invalid_request","message":"invalid_request: send either key or link"}}`+"\n")
	e.want(e.do(req{method: "POST", uri: "/api/v1/sign-in", body: `{"key":"x","link":"y"}`}), "both", 400, "")
	e.want(e.do(req{method: "GET", uri: "/api/v1/sign-in"}), "GET sign-in", 405, "")
}

func TestSignInLinkExpires(t *testing.T) {
	e := newEnv(t)
	e.store.advance(15 * time.Minute)
	e.want(e.do(req{method: "POST", uri: "/api/v1/sign-in", body: `{"link":"` + fixtureLinkB + `"}`}), "expired link", 401, badCredentials)
}

func TestSessionExpires(t *testing.T) {
	e := newEnv(t)
	s := e.signIn(keyBody(secretA))
	e.store.advance(7*24*time.Hour - time.Nanosecond)
	e.want(e.do(req{method: "GET", uri: "/api/v1/me/usage", session: s.token}), "just before expiry", 200, "")
	e.store.advance(time.Nanosecond)
	e.want(e.do(req{method: "GET", uri: "/api/v1/me/usage", session: s.token}), "at expiry", 401, sessionEnded)
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	s := e.signIn(keyBody(secretA))
	body := `{"enabled":true,"payg_key_id":"` + keyAPayg + `"}`
	for _, c := range []struct{ what, csrf string }{{"no token", ""}, {"wrong token", strings.Repeat("0", 32)},
		{"prefix", s.csrf[:31]}, {"longer", s.csrf + "0"}} {
		e.want(e.do(req{method: "PUT", uri: "/api/v1/me/extra-usage", body: body, session: s.token, csrf: c.csrf}), c.what, 403, csrfFailed)
	}
	// Every state-changing call is checked before its route runs.
	for _, c := range []struct{ method, uri string }{
		{"POST", "/api/v1/me/keys"}, {"POST", "/api/v1/me/keys/" + keyA2 + "/rotate"}, {"DELETE", "/api/v1/me/keys/" + keyA2},
		{"POST", "/api/v1/me/refunds/preview"}, {"POST", "/api/v1/me/refunds"}, {"POST", "/api/v1/me/plan-requests"},
		{"POST", "/api/v1/me/studio/chat/completions"}, {"POST", "/api/v1/sign-out"}, {"PUT", "/api/v1/me/nothing"},
	} {
		e.want(e.do(req{method: c.method, uri: c.uri, body: `{}`, session: s.token}), c.method+" "+c.uri, 403, csrfFailed)
	}
	if ks, _ := e.store.l.Keys(acctA); len(ks) != 3 {
		t.Errorf("a refused call changed the keys: %d", len(ks))
	}
	if _, ok := e.store.l.Session(hashOf(t, s.token), e.store.Now()); !ok {
		t.Error("a refused sign-out ended the session")
	}
	e.want(e.do(req{method: "PUT", uri: "/api/v1/me/extra-usage", body: body, session: s.token, csrf: s.csrf}), "right token", 200, "")
	// A bearer key needs none; a GET needs none.
	e.want(e.do(req{method: "PUT", uri: "/api/v1/me/extra-usage", body: `{"enabled":false}`, bearer: secretA}), "bearer", 200, "")
	e.want(e.do(req{method: "GET", uri: "/api/v1/me/extra-usage", session: s.token}), "GET", 200, "")
}

func hashOf(t *testing.T, token string) [32]byte {
	t.Helper()
	h, ok := tokenHash([]byte(token))
	if !ok {
		t.Fatalf("not a session token: %q", token)
	}
	return h
}

func TestSignOut(t *testing.T) {
	e := newEnv(t)
	s := e.signIn(keyBody(secretA))
	r := e.do(req{method: "POST", uri: "/api/v1/sign-out", session: s.token, csrf: s.csrf})
	e.want(r, "sign-out", 204, "")
	if c := r.cookie(sessionCookie); c == nil || len(c.Value()) != 0 || !c.Expire().Equal(fasthttp.CookieExpireDelete) {
		t.Errorf("sign-out does not delete the cookie: %s", r.header)
	}
	// The stolen cookie no longer works, for reads and writes.
	e.want(e.do(req{method: "GET", uri: "/api/v1/me", session: s.token}), "after sign-out", 401, sessionEnded)
	e.want(e.do(req{method: "POST", uri: "/api/v1/me/keys", body: `{"kind":"payg"}`, session: s.token, csrf: s.csrf}), "write after sign-out", 401, sessionEnded)
	if r := e.do(req{method: "GET", uri: "/api/v1/me", session: s.token}); string(r.header.Peek("WWW-Authenticate")) != `Bearer realm="zenmux"` {
		t.Errorf("401 without WWW-Authenticate: %s", r.header)
	}
	// Signing out again, or without a session, clears the cookies all the same.
	e.want(e.do(req{method: "POST", uri: "/api/v1/sign-out", session: s.token, csrf: s.csrf}), "again", 204, "")
	e.want(e.do(req{method: "POST", uri: "/api/v1/sign-out"}), "no session", 204, "")
}

func TestRevokedKeyEndsSession(t *testing.T) {
	e := newEnv(t)
	viaA2 := e.signIn(keyBody(secretA2))
	viaA := e.signIn(keyBody(secretA))
	e.want(e.do(req{method: "DELETE", uri: "/api/v1/me/keys/" + keyA2, session: viaA.token, csrf: viaA.csrf}), "revoke", 204, "")
	e.want(e.do(req{method: "GET", uri: "/api/v1/me", session: viaA2.token}), "revoked key's session", 401, sessionEnded)
	e.want(e.do(req{method: "GET", uri: "/api/v1/me", bearer: secretA2}), "revoked key as bearer", 401,
		`{"error":{"code":"unauthorized","message":"unauthorized: the key is not valid"}}`+"\n")
	e.want(e.do(req{method: "POST", uri: "/api/v1/sign-in", body: keyBody(secretA2)}), "sign in with it", 401, badCredentials)
	// Rotating the key a session was opened with ends it too.
	e.want(e.do(req{method: "POST", uri: "/api/v1/me/keys/" + keyA + "/rotate", session: viaA.token, csrf: viaA.csrf}), "rotate", 200, "")
	e.want(e.do(req{method: "GET", uri: "/api/v1/me", session: viaA.token}), "rotated key's session", 401, sessionEnded)
}

func TestBearer(t *testing.T) {
	e := newEnv(t)
	r := e.do(req{method: "GET", uri: "/api/v1/me", bearer: secretAPayg})
	e.want(r, "bearer payg key", 200, "")
	if !strings.Contains(r.body, `"id":"acct_a"`) || strings.Contains(r.body, "csrf_token") {
		t.Errorf("bearer me: %s", r.body)
	}
	e.want(e.do(req{method: "GET", uri: "/api/v1/me"}), "nothing", 401,
		`{"error":{"code":"unauthorized","message":"unauthorized: sign in, or send one of the account's keys as Authorization: Bearer \u003ckey\u003e"}}`+"\n")
	e.want(e.do(req{method: "GET", uri: "/api/v1/me", session: "not-a-token"}), "garbage cookie", 401, "")
}

// TestOtherAccountsIDs sends acct_b's ids in every /api/v1/me path and
// parameter as acct_a: each is not_found, worded as for an id that does
// not exist, and nothing of acct_b changes.
func TestOtherAccountsIDs(t *testing.T) {
	e := newEnv(t)
	s := e.signIn(keyBody(secretA))
	before := snapshot(t, e.store.l)
	notFound := func(what, id string) string {
		msg, _ := json.Marshal(fmt.Sprintf("not_found: %s %q", what, id))
		return `{"error":{"code":"not_found","message":` + string(msg) + "}}\n"
	}
	for _, c := range []struct{ method, uri, body, want string }{
		{"DELETE", "/api/v1/me/keys/" + keyB, "", notFound("key", keyB)},
		{"DELETE", "/api/v1/me/keys/" + keyBPayg, "", notFound("key", keyBPayg)},
		{"DELETE", "/api/v1/me/keys/key_nope", "", notFound("key", "key_nope")},
		{"POST", "/api/v1/me/keys/" + keyB + "/rotate", "", notFound("key", keyB)},
		{"POST", "/api/v1/me/keys/key_nope/rotate", "", notFound("key", "key_nope")},
		{"GET", "/api/v1/me/refunds/" + refundB, "", notFound("refund", refundB)},
		{"GET", "/api/v1/me/refunds/rf_nope", "", notFound("refund", "rf_nope")},
		{"PUT", "/api/v1/me/extra-usage", `{"enabled":true,"payg_key_id":"` + keyBPayg + `"}`, notFound("key", keyBPayg)},
		{"PUT", "/api/v1/me/extra-usage", `{"enabled":true,"payg_key_id":"key_nope"}`, notFound("key", "key_nope")},
		{"GET", "/api/v1/me/requests?cursor=" + cursorB, "", notFound("cursor", cursorB)},
		{"GET", "/api/v1/me/requests?cursor=00000000000000ff/req_nope", "", notFound("cursor", "00000000000000ff/req_nope")},
	} {
		e.want(e.do(req{method: c.method, uri: c.uri, body: c.body, session: s.token, csrf: s.csrf}), c.method+" "+c.uri+" "+c.body, 404, c.want)
	}
	// No body or query names an account: an account id given anyway is an
	// unknown field, or ignored in a query.
	for _, c := range []struct{ method, uri, body string }{
		{"POST", "/api/v1/me/keys", `{"kind":"payg","account_id":"acct_b"}`},
		{"PUT", "/api/v1/me/extra-usage", `{"enabled":false,"account_id":"acct_b"}`},
		{"POST", "/api/v1/me/refunds", `{"account_id":"acct_b"}`},
		{"POST", "/api/v1/me/refunds/preview", `{"account_id":"acct_b"}`},
		{"POST", "/api/v1/me/plan-requests", `{"action":"cancel","account_id":"acct_b"}`},
	} {
		e.want(e.do(req{method: c.method, uri: c.uri, body: c.body, session: s.token, csrf: s.csrf}), c.uri+" "+c.body, 400,
			`{"error":{"code":"invalid_request","message":"invalid_request: unknown field \"account_id\""}}`+"\n")
	}
	for _, uri := range []string{"/api/v1/me?account_id=acct_b", "/api/v1/me/usage?account_id=acct_b", "/api/v1/me/keys?account=acct_b",
		"/api/v1/me/billing?account_id=acct_b", "/api/v1/me/plan-requests?account_id=acct_b", "/api/v1/me/extra-usage?account_id=acct_b",
		"/api/v1/me/usage/breakdown?account_id=acct_b", "/api/v1/me/requests?account_id=acct_b"} {
		r := e.do(req{method: "GET", uri: uri, session: s.token})
		if r.status != 200 || strings.Contains(r.body, acctB) || strings.Contains(r.body, keyB) || strings.Contains(r.body, "req_b1") {
			t.Errorf("GET %s: %d %s", uri, r.status, r.body)
		}
	}
	if after := snapshot(t, e.store.l); after != before {
		t.Errorf("acct_b changed:\n%s\n%s", before, after)
	}
}

// snapshot is acct_b's state as the API shows it.
func snapshot(t *testing.T, l *ledger.Ledger) string {
	t.Helper()
	acct, err := l.Account(acctB, t0)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := l.Keys(acctB)
	refund, _ := l.Refund(refundB)
	b, _ := json.Marshal([]any{acct, keys, refund})
	return string(b)
}

func TestBruteForce(t *testing.T) {
	e := newEnv(t)
	bad := keyBody(secretA + "0")
	for i := range 10 {
		e.want(e.do(req{method: "POST", uri: "/api/v1/sign-in", body: bad, addr: "198.51.100.7"}), fmt.Sprintf("attempt %d", i+1), 401, badCredentials)
	}
	r := e.do(req{method: "POST", uri: "/api/v1/sign-in", body: bad, addr: "198.51.100.7"})
	e.want(r, "11th attempt", 429, `{"error":{"code":"too_many_attempts","message":"too_many_attempts: too many sign-in attempts; retry in 6 s"}}`+"\n")
	if got := string(r.header.Peek("Retry-After")); got != "6" {
		t.Errorf("Retry-After %q, want 6", got)
	}
	// Even the right key waits; another address does not.
	e.want(e.do(req{method: "POST", uri: "/api/v1/sign-in", body: keyBody(secretA), addr: "198.51.100.7"}), "good key, same address", 429, "")
	e.want(e.do(req{method: "POST", uri: "/api/v1/sign-in", body: bad, addr: "198.51.100.8"}), "another address", 401, badCredentials)
	e.store.advance(6*time.Second - 1)
	e.want(e.do(req{method: "POST", uri: "/api/v1/sign-in", body: bad, addr: "198.51.100.7"}), "a nanosecond early", 429, "")
	e.store.advance(1)
	e.want(e.do(req{method: "POST", uri: "/api/v1/sign-in", body: bad, addr: "198.51.100.7"}), "6 s later", 401, badCredentials)
	e.want(e.do(req{method: "POST", uri: "/api/v1/sign-in", body: bad, addr: "198.51.100.7"}), "only one more", 429, "")

	// Per account: 20 sign-ins a minute from any addresses, then 429.
	for i := range 20 {
		e.want(e.do(req{method: "POST", uri: "/api/v1/sign-in", body: keyBody(secretB), addr: fmt.Sprintf("203.0.113.%d", i+1)}), fmt.Sprintf("account sign-in %d", i+1), 200, "")
	}
	r = e.do(req{method: "POST", uri: "/api/v1/sign-in", body: keyBody(secretBPayg), addr: "203.0.113.99"})
	e.want(r, "21st sign-in of acct_b", 429, "")
	if got := string(r.header.Peek("Retry-After")); got != "3" {
		t.Errorf("account Retry-After %q, want 3", got)
	}
	e.want(e.do(req{method: "POST", uri: "/api/v1/sign-in", body: keyBody(secretA), addr: "203.0.113.98"}), "acct_a meanwhile", 200, "")
}

func TestLimiterBounded(t *testing.T) {
	l := newLimiter(10, 10)
	for i := range maxLimited {
		if w := l.take(fmt.Sprint(i), t0); w != 0 {
			t.Fatalf("name %d refused", i)
		}
	}
	if w := l.take("one more", t0); w != int64(6*time.Second) {
		t.Errorf("a name past the bound: wait %d", w)
	}
	if w := l.take("0", t0); w != 0 {
		t.Errorf("a known name refused: wait %d", w)
	}
	// Once they have refilled, the old buckets make room; "0", taken
	// twice, has not.
	if w := l.take("one more", t0+int64(6*time.Second)); w != 0 || len(l.tats) != 2 {
		t.Errorf("after refill: wait %d, %d buckets", w, len(l.tats))
	}
}

func TestStrictBodies(t *testing.T) {
	e := newEnv(t)
	s := e.signIn(keyBody(secretA))
	for _, body := range []string{`{"kind":"payg","nmae":"x"}`, `{"KIND":"payg"}`, `{"kind":"payg"}}`, `{"kind":"payg"} x`, `[]`, `null`, `{"kind":1}`} {
		e.want(e.do(req{method: "POST", uri: "/api/v1/me/keys", body: body, session: s.token, csrf: s.csrf}), body, 400, "")
	}
	big := `{"name":"` + strings.Repeat("x", maxBody) + `"}`
	e.want(e.do(req{method: "POST", uri: "/api/v1/me/keys", body: big, session: s.token, csrf: s.csrf}), "big body", 413,
		`{"error":{"code":"request_too_large","message":"request_too_large: the body is over 16384 bytes"}}`+"\n")
	e.want(e.do(req{method: "POST", uri: "/api/v1/sign-in", body: `{"key":"x","extra":1}`}), "sign-in unknown field", 400, "")
	if ks, _ := e.store.l.Keys(acctA); len(ks) != 3 {
		t.Errorf("a refused body created a key: %d keys", len(ks))
	}
}

func TestKeys(t *testing.T) {
	e := newEnv(t)
	s := e.signIn(keyBody(secretA))
	r := e.do(req{method: "POST", uri: "/api/v1/me/keys", body: `{"kind":"payg","name":"<script>x</script>"}`, session: s.token, csrf: s.csrf})
	e.want(r, "create", 201, "")
	var k ledger.KeyView
	if err := json.Unmarshal([]byte(r.body), &k); err != nil || !regexp.MustCompile(`^sk-ai-v1-[0-9a-f]{64}$`).MatchString(k.Key) ||
		k.Name != "<script>x</script>" || k.Last4 != k.Key[len(k.Key)-4:] {
		t.Fatalf("created %+v %v", k, err)
	}
	if strings.Contains(r.body, "<script>") {
		t.Errorf("the name is not escaped in JSON: %s", r.body)
	}
	e.want(e.do(req{method: "GET", uri: "/api/v1/me", bearer: k.Key}), "the new key works", 200, "")
	list := e.do(req{method: "GET", uri: "/api/v1/me/keys", session: s.token})
	if strings.Count(list.body, `"id":`) != 4 || strings.Contains(list.body, k.Key) {
		t.Errorf("list: %s", list.body)
	}
	rot := e.do(req{method: "POST", uri: "/api/v1/me/keys/" + k.ID + "/rotate", session: s.token, csrf: s.csrf})
	var k2 ledger.KeyView
	if err := json.Unmarshal([]byte(rot.body), &k2); err != nil || rot.status != 200 || k2.ID != k.ID || k2.Key == k.Key || !strings.HasPrefix(k2.Key, ledger.PrefixPayg) {
		t.Fatalf("rotate: %d %s", rot.status, rot.body)
	}
	e.want(e.do(req{method: "GET", uri: "/api/v1/me", bearer: k.Key}), "the old secret", 401, "")
	e.want(e.do(req{method: "DELETE", uri: "/api/v1/me/keys/" + k.ID, session: s.token, csrf: s.csrf}), "revoke", 204, "")
	e.want(e.do(req{method: "GET", uri: "/api/v1/me", bearer: k2.Key}), "the revoked key", 401, "")
	e.want(e.do(req{method: "GET", uri: "/api/v1/me/keys/" + keyA, session: s.token}), "GET one key", 405, "")
	e.want(e.do(req{method: "GET", uri: "/api/v1/me/nothing", session: s.token}), "unknown route", 404, "")
	e.want(e.do(req{method: "GET", uri: "/api/v1/me/nothing"}), "unknown route without a session", 401, "")
	e.want(e.do(req{method: "GET", uri: "/api/v1/me/keys/", session: s.token}), "trailing slash", 404, "")
}

func TestRefunds(t *testing.T) {
	e := newEnv(t)
	s := e.signIn(keyBody(secretA))
	e.want(e.do(req{method: "POST", uri: "/api/v1/me/refunds/preview", session: s.token, csrf: s.csrf}), "preview", 200, "")
	r := e.do(req{method: "POST", uri: "/api/v1/me/refunds", session: s.token, csrf: s.csrf, header: map[string]string{"Idempotency-Key": "k1"}})
	e.want(r, "submit", 201, "")
	var rf ledger.RefundView
	if err := json.Unmarshal([]byte(r.body), &rf); err != nil || rf.AccountID != acctA || rf.Status != "processing" {
		t.Fatalf("refund %+v %v", rf, err)
	}
	again := e.do(req{method: "POST", uri: "/api/v1/me/refunds", session: s.token, csrf: s.csrf, header: map[string]string{"Idempotency-Key": "k1"}})
	if again.status != 201 || again.body != r.body {
		t.Errorf("replay: %d %s", again.status, again.body)
	}
	got := e.do(req{method: "GET", uri: "/api/v1/me/refunds/" + rf.ID, session: s.token})
	if got.status != 200 || !strings.Contains(got.body, `"id":"`+rf.ID+`"`) {
		t.Errorf("GET own refund: %d %s", got.status, got.body)
	}
	// Idempotency keys are the account's own: acct_b's same key, path and
	// body is its own request, not a replay of acct_a's.
	if r := e.store.apply(&ledger.RefundStatus{Idem: ledger.Idem{IdemKey: "setup-st", Fingerprint: "st"}, RefundID: refundB, Status: ledger.RefundFailed}); r.Err != nil {
		t.Fatal(r.Err)
	}
	b := e.do(req{method: "POST", uri: "/api/v1/me/refunds", bearer: secretB, header: map[string]string{"Idempotency-Key": "k1"}})
	if b.status != 201 || !strings.Contains(b.body, `"account_id":"acct_b"`) || strings.Contains(b.body, rf.ID) {
		t.Errorf("acct_b with acct_a's Idempotency-Key: %d %s", b.status, b.body)
	}
}

func TestUsageAndBreakdown(t *testing.T) {
	e := newEnv(t)
	cb := &ledger.ChargeBatch{Charges: []ledger.Charge{{ReqID: "req_1", AccountID: acctA, KeyID: keyA, Model: "zenmux/echo",
		Billing: ledger.BillingSubscription, Status: "ok", AdmittedAt: e.store.Now(), InputTokens: 32_830}}}
	if r := e.store.apply(cb); r.Err != nil {
		t.Fatal(r.Err)
	}
	r := e.do(req{method: "GET", uri: "/api/v1/me/usage/breakdown", bearer: secretA})
	want := `{"by_model":[{"model":"zenmux/echo","requests":1,"input_tokens":32830,"output_tokens":0,"cache_read_tokens":0,"cache_write_tokens":0,"flows":1,"usd_value":0.03283}],` +
		`"by_day":[{"day":"2026-04-01","requests":1,"input_tokens":32830,"output_tokens":0,"cache_read_tokens":0,"cache_write_tokens":0,"flows":1,"usd_value":0.03283}]}` + "\n"
	e.want(r, "breakdown", 200, want)
	u := e.do(req{method: "GET", uri: "/api/v1/me/usage", bearer: secretA})
	if u.status != 200 || !strings.Contains(u.body, `"window_5h":{"used_flows":1,`) {
		t.Errorf("usage: %d %s", u.status, u.body)
	}
	e.want(e.do(req{method: "GET", uri: "/api/v1/me/requests", bearer: secretA}), "requests", 200, `{"data":[{"id":"`+"00000000000000a1/req_a1"+`","at":"","model":"","key_id":"","input_tokens":0,"output_tokens":0,"cache_read_tokens":0,"cache_write_tokens":0,"images":0,"flows":0,"usd_value":0,"billing":"","status":"","estimated":false}]}`+"\n")
	e.want(e.do(req{method: "GET", uri: "/api/v1/me/requests?limit=0", bearer: secretA}), "limit 0", 400, "")
	e.want(e.do(req{method: "GET", uri: "/api/v1/me/requests?cursor=bad", bearer: secretA}), "bad cursor", 400, "")
}

func TestStudio(t *testing.T) {
	e := newEnv(t)
	s := e.signIn(keyBody(secretA))
	body := `{"model":"zenmux/echo","billing":"payg","stream":true,"messages":[{"role":"user","content":"<script>hi</script>"}]}`
	r := e.do(req{method: "POST", uri: "/api/v1/me/studio/chat/completions", body: body, session: s.token, csrf: s.csrf})
	e.want(r, "studio", 200, "data: [DONE]\n\n")
	if len(e.studio.calls) != 1 {
		t.Fatalf("studio calls: %+v", e.studio.calls)
	}
	c := e.studio.calls[0]
	var sent map[string]any
	if err := json.Unmarshal([]byte(c.body), &sent); err != nil || c.account != acctA || c.billing != "payg" || sent["billing"] != nil ||
		sent["model"] != "zenmux/echo" || sent["stream"] != true || len(sent) != 3 {
		t.Errorf("studio got %+v (%v)", c, err)
	}
	for _, bad := range []string{`{"model":"m"}`, `{"billing":"free"}`, `{"billing":1}`, `[]`, `nope`} {
		e.want(e.do(req{method: "POST", uri: "/api/v1/me/studio/chat/completions", body: bad, session: s.token, csrf: s.csrf}), bad, 400, "")
	}
	e.want(e.do(req{method: "GET", uri: "/api/v1/me/studio/chat/completions", session: s.token}), "GET studio", 405, "")
	if len(e.studio.calls) != 1 {
		t.Errorf("refused calls reached Studio: %d", len(e.studio.calls))
	}
}

// A session opened on another node a moment ago works after one read
// barrier; an unknown one is refused after exactly one.
func TestSessionFromAnotherNode(t *testing.T) {
	e := newEnv(t)
	raw := make([]byte, 32)
	raw[0] = 7
	token := base64.RawURLEncoding.EncodeToString(raw)
	h := hashOf(t, token)
	e.store.remote = []ledger.Command{&ledger.OpenSession{TokenHash: h, AccountID: acctA, KeyID: keyA, CSRF: "c", ExpiresAt: t0 + int64(time.Hour)}}
	e.want(e.do(req{method: "GET", uri: "/console", session: token}), "page with a remote session", 200, pageBody)
	if e.store.barriers != 1 {
		t.Errorf("barriers: %d, want 1", e.store.barriers)
	}
	e.store.barriers = 0
	e.want(e.do(req{method: "GET", uri: "/console", session: token}), "page with a known session", 200, pageBody)
	if e.store.barriers != 0 {
		t.Errorf("a known session took %d barriers", e.store.barriers)
	}
	e.want(e.do(req{method: "GET", uri: "/api/v1/me", session: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}), "unknown session", 401, sessionEnded)
	if e.store.barriers != 1 {
		t.Errorf("an unknown session took %d barriers, want 1", e.store.barriers)
	}
}

func TestPages(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/pricing", "/sign-in"} {
		r := e.do(req{method: "GET", uri: p})
		e.want(r, p, 200, pageBody)
		if string(r.header.ContentType()) != "text/html; charset=utf-8" || string(r.header.Peek("Content-Security-Policy")) != wantCSP ||
			string(r.header.Peek("X-Content-Type-Options")) != "nosniff" || string(r.header.Peek("Referrer-Policy")) != "no-referrer" {
			t.Errorf("%s headers: %s", p, r.header)
		}
	}
	r := e.do(req{method: "GET", uri: "/assets/app.css"})
	e.want(r, "asset", 200, assetBody)
	if string(r.header.ContentType()) != assetContentTyp {
		t.Errorf("asset type %q", r.header.ContentType())
	}
	for _, p := range []string{"/console", "/studio"} {
		r := e.do(req{method: "GET", uri: p})
		if r.status != 302 || string(r.header.Peek("Location")) != "/sign-in?next="+p {
			t.Errorf("%s without a session: %d %s", p, r.status, r.header)
		}
	}
	s := e.signIn(keyBody(secretA))
	e.want(e.do(req{method: "GET", uri: "/studio", session: s.token}), "studio signed in", 200, pageBody)
	root := e.do(req{method: "GET", uri: "/"})
	if root.status != 302 || string(root.header.Peek("Location")) != "/pricing" {
		t.Errorf("GET /: %d %s", root.status, root.header)
	}
	for _, p := range []string{"/assets/nope.css", "/assets/", "/assets/vendor"} {
		e.want(e.do(req{method: "GET", uri: p}), p, 404, "")
	}
	e.want(e.do(req{method: "POST", uri: "/pricing"}), "POST page", 405, "")
}

func TestPlanRequests(t *testing.T) {
	e := newEnv(t)
	s := e.signIn(keyBody(secretA))
	r := e.do(req{method: "POST", uri: "/api/v1/me/plan-requests", body: `{"action":"change","plan":"max"}`, session: s.token, csrf: s.csrf})
	e.want(r, "request", 201, "")
	var pr struct {
		ledger.PlanRequestView
		Driver  string `json:"driver"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(r.body), &pr); err != nil || !strings.HasPrefix(pr.ID, "pr_") || pr.AccountID != acctA ||
		pr.Action != "change" || pr.Plan == nil || *pr.Plan != "max" || pr.Status != "pending" || pr.RequestedAt != "2026-04-01T00:00:00Z" ||
		pr.DecidedAt != nil || pr.Driver != "manual" || pr.Message != (recordPayments{}).Message() {
		t.Fatalf("plan request: %s (%v)", r.body, err)
	}
	e.want(e.do(req{method: "POST", uri: "/api/v1/me/plan-requests", body: `{"action":"cancel"}`, bearer: secretA}), "cancel", 201, "")
	for _, body := range []string{`{"action":"upgrade","plan":"max"}`, `{"action":"subscribe"}`, `{"action":"change","plan":"nope"}`, `{}`} {
		r := e.do(req{method: "POST", uri: "/api/v1/me/plan-requests", body: body, bearer: secretA})
		if r.status != 400 && r.status != 404 {
			t.Errorf("%s: %d %s", body, r.status, r.body)
		}
	}
	list := e.do(req{method: "GET", uri: "/api/v1/me/plan-requests?status=pending", session: s.token})
	if list.status != 200 || strings.Count(list.body, `"id":"pr_`) != 2 || !strings.Contains(list.body, pr.ID) {
		t.Errorf("list: %d %s", list.status, list.body)
	}
	e.want(e.do(req{method: "GET", uri: "/api/v1/me/plan-requests?status=confirmed", session: s.token}), "confirmed", 200, `{"data":[]}`+"\n")
	e.want(e.do(req{method: "GET", uri: "/api/v1/me/plan-requests?status=maybe", session: s.token}), "bad status", 400, "")
	e.want(e.do(req{method: "GET", uri: "/api/v1/me/plan-requests", bearer: secretB}), "acct_b's list", 200, `{"data":[]}`+"\n")
}

func TestBilling(t *testing.T) {
	e := newEnv(t)
	r := e.do(req{method: "GET", uri: "/api/v1/me/billing", bearer: secretB})
	var out struct {
		Data []ledger.BillingEntryView `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.body), &out); err != nil || r.status != 200 || len(out.Data) != 2 ||
		out.Data[0].Type != "subscribe" || out.Data[0].AmountUSD != 20_000000 || out.Data[1].Type != "refund" ||
		out.Data[1].RefundID == nil || *out.Data[1].RefundID != refundB || out.Data[1].Status != "processing" {
		t.Errorf("billing: %d %s", r.status, r.body)
	}
}
