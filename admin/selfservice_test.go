package admin

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"zenmux/ledger"
)

// call sends one admin request to a server over the fuzz fixture.
func call(t *testing.T, srv *Server, method, uri, body string) fuzzResponse {
	t.Helper()
	return fuzzRequest{method: method, uri: uri, body: []byte(body)}.do(srv)
}

// rule B3: a sign-in link's token is zsl_ and 32 random bytes in hex, shown
// once; the ledger holds only its SHA-256, which redeems it within 15
// minutes.
func TestB3_SignInLinkEndpoint(t *testing.T) {
	store, state := newFuzzStore(t)
	srv := New(store, Options{Token: []byte(fuzzToken)})
	resp := call(t, srv, "POST", "/admin/v1/accounts/acct_a/sign-in-links", "")
	if resp.status != 201 {
		t.Fatalf("create: %d %s", resp.status, resp.body)
	}
	var out map[string]string
	if err := json.Unmarshal(resp.body, &out); err != nil || len(out) != 3 {
		t.Fatalf("answer %s: %v", resp.body, err)
	}
	token := out["token"]
	if !regexp.MustCompile(`^zsl_[0-9a-f]{64}$`).MatchString(token) || out["url"] != "/sign-in#"+token || out["expires_at"] != "2026-04-01T00:15:00Z" {
		t.Fatalf("answer %s", resp.body)
	}
	if err := store.l.Flush(state); err != nil {
		t.Fatal(err)
	}
	for k, v := range state {
		if strings.Contains(k+v, token[4:]) {
			t.Fatalf("the token is stored in %q", k)
		}
	}
	s, err := ledger.Propose(store, &ledger.RedeemSignInLink{LinkHash: ledger.HashSecret(token), TokenHash: ledger.HashSecret("session"),
		CSRF: "c", ExpiresAt: store.Now() + int64(time.Hour)})
	if err != nil || s.AccountID != fuzzAcctA {
		t.Fatalf("redeem: %+v %v", s, err)
	}
	again := call(t, srv, "POST", "/admin/v1/accounts/acct_a/sign-in-links", "")
	if again.status != 201 || strings.Contains(string(again.body), token) {
		t.Fatalf("a second link: %d %s", again.status, again.body)
	}
	for _, c := range []struct {
		uri, body string
		status    int
	}{
		{"/admin/v1/accounts/acct_zz/sign-in-links", "", 404},
		{"/admin/v1/accounts/acct_a/sign-in-links", `{"ttl":60}`, 400},
	} {
		if r := call(t, srv, "POST", c.uri, c.body); r.status != c.status {
			t.Errorf("POST %s %s: %d %s, want %d", c.uri, c.body, r.status, r.body, c.status)
		}
	}
}

// rule B4: the operator lists plan requests by status and confirms one,
// which applies it once: a confirm sent again answers the same bytes and
// charges nothing more; a reject of a decided request is a conflict.
func TestB4_PlanRequestEndpoints(t *testing.T) {
	store, _ := newFuzzStore(t)
	srv := New(store, Options{Token: []byte(fuzzToken)})
	pending := call(t, srv, "GET", "/admin/v1/plan-requests?status=pending", "")
	want := `{"data":[{"id":"pr_c","account_id":"acct_c","action":"subscribe","plan":"pro","status":"pending","requested_at":"2026-04-01T00:00:00Z","decided_at":null}]}` + "\n"
	if pending.status != 200 || string(pending.body) != want {
		t.Fatalf("pending: %d %s", pending.status, pending.body)
	}
	first := call(t, srv, "POST", "/admin/v1/plan-requests/pr_c/confirm", "")
	again := call(t, srv, "POST", "/admin/v1/plan-requests/pr_c/confirm", "{}")
	if first.status != 200 || again.status != 200 || string(first.body) != string(again.body) ||
		!strings.Contains(string(first.body), `"status":"confirmed"`) {
		t.Fatalf("confirm: %d %s; again %d %s", first.status, first.body, again.status, again.body)
	}
	billing := call(t, srv, "GET", "/admin/v1/accounts/acct_c/billing", "")
	want = `{"data":[{"id":"pay_acct_c_0","type":"subscribe","plan":"pro","amount_usd":20,"status":"succeeded","at":"2026-04-01T00:00:00Z","refund_id":null}]}` + "\n"
	if billing.status != 200 || string(billing.body) != want {
		t.Fatalf("billing: %d %s", billing.status, billing.body)
	}
	for _, c := range []struct {
		method, uri string
		status      int
	}{
		{"POST", "/admin/v1/plan-requests/pr_c/reject", 409},
		{"POST", "/admin/v1/plan-requests/pr_zz/confirm", 404},
		{"POST", "/admin/v1/plan-requests/" + strings.Repeat("x", 65) + "/confirm", 404},
		{"GET", "/admin/v1/plan-requests/pr_c/confirm", 405},
		{"GET", "/admin/v1/plan-requests?status=done", 400},
		{"GET", "/admin/v1/accounts/acct_zz/billing", 404},
	} {
		if r := call(t, srv, c.method, c.uri, ""); r.status != c.status {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.uri, r.status, r.body, c.status)
		}
	}
	confirmed := call(t, srv, "GET", "/admin/v1/plan-requests?status=confirmed", "")
	all := call(t, srv, "GET", "/admin/v1/plan-requests", "")
	if string(confirmed.body) != string(all.body) || !strings.Contains(string(all.body), `"decided_at":"2026-04-01T00:00:00Z"`) {
		t.Fatalf("confirmed %s, all %s", confirmed.body, all.body)
	}
}
