package selfservice

import (
	"maps"
	"testing"
)

// countedSignIns is a SignInCounter that keeps the counts.
type countedSignIns map[string]int

func (c countedSignIns) SignIn(result string) { c[result]++ }

// Every sign-in attempt is counted once by its result: ok, a key that is
// not valid, a malformed body, and attempts over the client address's
// limit; sign-out and other routes count nothing.
func TestSignInsCounted(t *testing.T) {
	e := newEnv(t)
	counts := countedSignIns{}
	srv, err := New(Options{Store: e.store, Studio: e.studio, Pages: fakePages, SignIns: counts, SignInPerAddress: 2})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	for _, c := range []struct {
		body   string
		status int
	}{
		{keyBody(secretA), 200},
		{keyBody("sk-zm-not-a-key"), 401},
		{`{"key":`, 400},
		{`{"key":"a","link":"b"}`, 400},
		{keyBody(secretA), 429}, // the address's 2 a minute are spent (a malformed body spends none)
	} {
		if r := e.do(req{method: "POST", uri: "/api/v1/sign-in", body: c.body}); r.status != c.status {
			t.Fatalf("sign-in %s: %d %s, want %d", c.body, r.status, r.body, c.status)
		}
	}
	e.do(req{method: "POST", uri: "/api/v1/sign-out", body: "{}"})
	want := countedSignIns{"ok": 1, "bad_credentials": 1, "invalid": 2, "rate_limited": 1}
	if !maps.Equal(counts, want) {
		t.Fatalf("counted %v, want %v", counts, want)
	}
}
