package ledger

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func (f *fixture) openSession(acct, keyID, token string, ttl time.Duration) Session {
	f.t.Helper()
	r := f.do(&OpenSession{TokenHash: HashSecret(token), AccountID: acct, KeyID: keyID, CSRF: "csrf-" + token, ExpiresAt: f.now + int64(ttl)})
	if r.Err != nil {
		f.t.Fatalf("OpenSession: %v", r.Err)
	}
	return r.Value.(Session)
}

func (f *fixture) hasSession(token string, at int64) bool {
	_, ok := f.l.Session(HashSecret(token), at)
	return ok
}

// rule B2: a session opened with a key lives until its expiry, to the
// nanosecond, and is removed from the state then.
func TestB2_SessionExpiresToTheNanosecond(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	s := f.openSession(acct, f.keyID(key), "tok", time.Hour)
	want := Session{TokenHash: HashSecret("tok"), AccountID: acct, KeyID: f.keyID(key), CSRF: "csrf-tok", CreatedAt: f.now, ExpiresAt: f.now + int64(time.Hour)}
	if s != want {
		t.Fatalf("OpenSession answered %+v, want %+v", s, want)
	}
	if got, ok := f.l.Session(HashSecret("tok"), s.ExpiresAt-1); !ok || got != want {
		t.Fatalf("a nanosecond before expiry: %+v %v", got, ok)
	}
	if f.hasSession("tok", s.ExpiresAt) || f.hasSession("other", f.now) {
		t.Fatal("a session is valid at its expiry, or an unknown token is")
	}
	w := memWriter{}
	if err := f.l.Flush(w); err != nil {
		t.Fatal(err)
	}
	if len(w.keysWith("sess/")) != 1 {
		t.Fatalf("stored sessions: %v", w.keysWith("sess/"))
	}
	// Any command at the expiry removes it from the state.
	f.now = s.ExpiresAt - 1
	f.must(&Tick{})
	if len(f.l.sessions) != 1 {
		t.Fatal("removed before its expiry")
	}
	f.now = s.ExpiresAt
	f.must(&Tick{})
	if len(f.l.sessions) != 0 || len(f.l.sessByAcct) != 0 || len(f.l.expiries) != 0 {
		t.Fatalf("expired session kept: %d sessions, %d queued", len(f.l.sessions), len(f.l.expiries))
	}
	if err := f.l.Flush(w); err != nil {
		t.Fatal(err)
	}
	if len(w.keysWith("sess/")) != 0 {
		t.Fatalf("stored sessions after expiry: %v", w.keysWith("sess/"))
	}
}

// rule B2: a session is opened only with a key of the account, for at most
// 30 days; the same command again answers the same session.
func TestB2_OpenSessionRefusals(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	other, otherKey := f.account()
	kid := f.keyID(key)
	exp := f.now + int64(time.Hour)
	for _, c := range []struct {
		cmd  *OpenSession
		want error
	}{
		{&OpenSession{AccountID: "nobody", KeyID: kid, CSRF: "c", ExpiresAt: exp}, ErrNotFound},
		{&OpenSession{AccountID: acct, KeyID: f.keyID(otherKey), CSRF: "c", ExpiresAt: exp}, ErrNotFound},
		{&OpenSession{AccountID: acct, KeyID: "", CSRF: "c", ExpiresAt: exp}, ErrNotFound},
		{&OpenSession{AccountID: acct, KeyID: kid, CSRF: "", ExpiresAt: exp}, ErrInvalid},
		{&OpenSession{AccountID: acct, KeyID: kid, CSRF: "has space", ExpiresAt: exp}, ErrInvalid},
		{&OpenSession{AccountID: acct, KeyID: kid, CSRF: "c", ExpiresAt: f.now}, ErrInvalid},
		{&OpenSession{AccountID: acct, KeyID: kid, CSRF: "c", ExpiresAt: f.now + MaxSessionTTL + 1}, ErrInvalid},
	} {
		f.fails(c.cmd, c.want)
	}
	if len(f.l.sessions) != 0 {
		t.Fatal("a refused session was stored")
	}
	cmd := &OpenSession{TokenHash: HashSecret("t"), AccountID: acct, KeyID: kid, CSRF: "c", ExpiresAt: f.now + MaxSessionTTL}
	first := f.do(cmd).Value.(Session)
	f.advance(time.Second)
	if again := f.do(cmd); again.Err != nil || again.Value.(Session) != first {
		t.Fatalf("a retried OpenSession answered %+v, want %+v", again, first)
	}
	f.fails(&OpenSession{TokenHash: HashSecret("t"), AccountID: other, KeyID: f.keyID(otherKey), CSRF: "c", ExpiresAt: first.ExpiresAt}, ErrConflict)
	f.must(&RevokeKey{KeyID: kid})
	f.fails(&OpenSession{TokenHash: HashSecret("t2"), AccountID: acct, KeyID: kid, CSRF: "c", ExpiresAt: exp}, ErrNotFound)
}

// rule B2: revoking or rotating a key ends exactly the sessions opened
// with it; sign-out ends one, and ending an unknown one is no error.
func TestB2_KeyRevokeRotateAndSignOutEndSessions(t *testing.T) {
	f := newFixture(t)
	acct, k1 := f.account()
	k2 := f.key(acct, KindPayg)
	f.openSession(acct, f.keyID(k1), "a1", time.Hour)
	f.openSession(acct, f.keyID(k1), "a2", time.Hour)
	f.openSession(acct, f.keyID(k2), "b1", time.Hour)
	link := HashSecret("zsl_link")
	f.must(&CreateSignInLink{AccountID: acct, LinkHash: link, ExpiresAt: f.now + SignInLinkTTL})
	f.must(&RedeemSignInLink{LinkHash: link, TokenHash: HashSecret("l1"), CSRF: "c", ExpiresAt: f.now + int64(time.Hour)})

	f.must(&RevokeKey{KeyID: f.keyID(k1)})
	for tok, want := range map[string]bool{"a1": false, "a2": false, "b1": true, "l1": true} {
		if f.hasSession(tok, f.now) != want {
			t.Errorf("after revoking k1, session %s valid = %v, want %v", tok, !want, want)
		}
	}
	f.must(&RotateKey{KeyID: f.keyID(k2), Hash: HashSecret("rotated"), Last4: "beef"})
	if f.hasSession("b1", f.now) || !f.hasSession("l1", f.now) {
		t.Fatal("rotating k2 left its session, or ended the link's")
	}
	f.must(&EndSession{TokenHash: HashSecret("l1")})
	f.must(&EndSession{TokenHash: HashSecret("l1")})
	if f.hasSession("l1", f.now) || len(f.l.sessions) != 0 || len(f.l.sessByAcct) != 0 {
		t.Fatal("sign-out left a session")
	}
}

// rule B2: an account holds at most MaxSessionsPerAccount sessions;
// opening one more ends the oldest.
func TestB2_SessionsPerAccountBounded(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	for i := 0; i <= MaxSessionsPerAccount; i++ {
		f.openSession(acct, f.keyID(key), f.id("s"), time.Hour)
		f.advance(time.Millisecond)
	}
	if n := len(f.l.sessByAcct[acct]); n != MaxSessionsPerAccount || len(f.l.sessions) != n {
		t.Fatalf("%d sessions, want %d", n, MaxSessionsPerAccount)
	}
	if f.hasSession("s3", f.now) || !f.hasSession("s4", f.now) {
		t.Fatal("the oldest session was not the one ended")
	}
}

// rule B3: a sign-in link is made for at most 15 minutes, opens one
// session, once, before it expires (to the nanosecond), and then goes.
func TestB3_SignInLinkSingleUse(t *testing.T) {
	f := newFixture(t)
	acct, _ := f.account()
	link := HashSecret("zsl_1")
	f.fails(&CreateSignInLink{AccountID: acct, LinkHash: link, ExpiresAt: f.now + SignInLinkTTL + 1}, ErrInvalid)
	f.fails(&CreateSignInLink{AccountID: acct, LinkHash: link, ExpiresAt: f.now}, ErrInvalid)
	f.fails(&CreateSignInLink{AccountID: "nobody", LinkHash: link, ExpiresAt: f.now + SignInLinkTTL}, ErrNotFound)
	exp := f.now + SignInLinkTTL
	create := &CreateSignInLink{AccountID: acct, LinkHash: link, ExpiresAt: exp}
	f.must(create)
	f.must(create) // a retry
	f.fails(&CreateSignInLink{AccountID: acct, LinkHash: link, ExpiresAt: exp - 1}, ErrConflict)

	f.now = exp - 1
	redeem := &RedeemSignInLink{LinkHash: link, TokenHash: HashSecret("tok"), CSRF: "c", ExpiresAt: f.now + int64(time.Hour)}
	s := f.do(redeem).Value.(Session)
	want := Session{TokenHash: HashSecret("tok"), AccountID: acct, CSRF: "c", CreatedAt: f.now, ExpiresAt: f.now + int64(time.Hour)}
	if s != want {
		t.Fatalf("redeem answered %+v, want %+v", s, want)
	}
	if again := f.do(redeem); again.Err != nil || again.Value.(Session) != want {
		t.Fatalf("a retried redeem answered %+v", again)
	}
	for _, c := range []*RedeemSignInLink{
		{LinkHash: link, TokenHash: HashSecret("tok2"), CSRF: "c", ExpiresAt: f.now + int64(time.Hour)},
		{LinkHash: link, TokenHash: HashSecret("tok"), CSRF: "other", ExpiresAt: f.now + int64(time.Hour)},
		{LinkHash: HashSecret("zsl_unknown"), TokenHash: HashSecret("tok3"), CSRF: "c", ExpiresAt: f.now + int64(time.Hour)},
	} {
		if r := f.do(c); !errors.Is(r.Err, ErrNotFound) || r.Err.Error() != errBadLink.Error() {
			t.Errorf("redeem %+v: %v, want %v", c, r.Err, errBadLink)
		}
	}
	// Another link, redeemed at its expiry: refused, and the link is gone.
	late := HashSecret("zsl_2")
	f.must(&CreateSignInLink{AccountID: acct, LinkHash: late, ExpiresAt: f.now + SignInLinkTTL})
	f.now += SignInLinkTTL
	if r := f.do(&RedeemSignInLink{LinkHash: late, TokenHash: HashSecret("tok4"), CSRF: "c", ExpiresAt: f.now + int64(time.Hour)}); r.Err == nil || r.Err.Error() != errBadLink.Error() {
		t.Fatalf("redeem at expiry: %v", r.Err)
	}
	if len(f.l.links) != 0 || len(f.l.sessions) != 1 {
		t.Fatalf("%d links, %d sessions left, want 0 and 1", len(f.l.links), len(f.l.sessions))
	}
}

// rule B3: an account holds at most MaxSignInLinksPerAccount unused links.
func TestB3_SignInLinksBounded(t *testing.T) {
	f := newFixture(t)
	acct, _ := f.account()
	for i := 0; i < MaxSignInLinksPerAccount; i++ {
		f.must(&CreateSignInLink{AccountID: acct, LinkHash: HashSecret(f.id("l")), ExpiresAt: f.now + SignInLinkTTL})
	}
	f.fails(&CreateSignInLink{AccountID: acct, LinkHash: HashSecret("one more"), ExpiresAt: f.now + SignInLinkTTL}, ErrConflict)
	f.advance(time.Duration(SignInLinkTTL))
	f.must(&CreateSignInLink{AccountID: acct, LinkHash: HashSecret("one more"), ExpiresAt: f.now + SignInLinkTTL})
	if len(f.l.links) != 1 {
		t.Fatalf("%d links, want 1", len(f.l.links))
	}
}

// Sessions and links survive a checkpoint and a restart, and the reloaded
// ledger removes them at the same time as the one that wrote them.
func TestB2_SessionsReload(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	s := f.openSession(acct, f.keyID(key), "tok", time.Hour)
	f.must(&CreateSignInLink{AccountID: acct, LinkHash: HashSecret("zsl"), ExpiresAt: f.now + SignInLinkTTL})
	w := memWriter{}
	if err := f.l.Flush(w); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(w.scan, w)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := loaded.Session(HashSecret("tok"), f.now); !ok || got != s {
		t.Fatalf("reloaded session %+v %v, want %+v", got, ok, s)
	}
	if !reflect.DeepEqual(loaded.links, f.l.links) {
		t.Fatal("reloaded links differ")
	}
	w2 := memWriter{}
	for k, v := range w {
		w2[k] = v
	}
	for _, l := range []*Ledger{f.l, loaded} {
		l.Apply(&Tick{}, s.ExpiresAt)
	}
	_ = f.l.Flush(w)
	_ = loaded.Flush(w2)
	if stateHash(t, w) != stateHash(t, w2) || len(w.keysWith("sess/"))+len(w.keysWith("link/")) != 0 {
		t.Fatalf("after expiry: %v / %v", w.keysWith("sess/"), w2.keysWith("link/"))
	}
}

// rule B1: a Studio request billed to the subscription is admitted and
// charged exactly as one sent with a subscription key, and one billed to
// the balance exactly as one sent with a pay-as-you-go key — through the
// windows, Extra Usage and the balance alike.
func TestB1_AdmitAccountChargesAsAKey(t *testing.T) {
	f := newFixture(t)
	viaKey, subKey := f.account()
	viaAcct, _ := f.account()
	paygKey := f.key(viaKey, KindPayg)
	for _, acct := range []string{viaKey, viaAcct} {
		f.must(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "pro"})
		f.must(&TopUp{Idem: f.idem("t"), AccountID: acct, MicroUSD: 5_000000})
	}
	// Extra Usage needs a pay-as-you-go key of each account.
	extraKey := map[string]string{viaKey: f.keyID(paygKey), viaAcct: f.keyID(f.key(viaAcct, KindPayg))}
	for acct, k := range extraKey {
		f.must(&SetExtra{AccountID: acct, Enabled: true, KeyID: k})
	}
	plan := f.l.plans["pro"]
	steps := []struct {
		billing    string
		key        [32]byte
		flows      int64
		wantResult string
	}{
		{BillingSubscription, subKey, 10, BillingSubscription},
		{BillingPayg, paygKey, 7, BillingPayg},
		{BillingSubscription, subKey, plan.Window5hMicroFlows / micro, BillingSubscription}, // spends the 5 h window
		{BillingSubscription, subKey, 3, BillingPayg},                                       // Extra Usage (E2)
	}
	for i, st := range steps {
		byKey, err := f.l.Admit(st.key, EchoModelID, f.now)
		if err != nil || byKey.BillingErr != nil {
			t.Fatalf("step %d: Admit %v %v", i, err, byKey.BillingErr)
		}
		byAcct, err := f.l.AdmitAccount(viaAcct, st.billing, EchoModelID, f.now)
		if err != nil || byAcct.BillingErr != nil {
			t.Fatalf("step %d: AdmitAccount %v %v", i, err, byAcct.BillingErr)
		}
		if byAcct.KeyID != "" || byAcct.Billing != st.wantResult || byKey.Billing != st.wantResult {
			t.Fatalf("step %d: billing by key %q, by account %q (key %q), want %q", i, byKey.Billing, byAcct.Billing, byAcct.KeyID, st.wantResult)
		}
		norm := byKey
		norm.AccountID, norm.KeyID = viaAcct, ""
		if !reflect.DeepEqual(norm, byAcct) {
			t.Fatalf("step %d: admissions differ:\nkey     %+v\naccount %+v", i, byKey, byAcct)
		}
		var res [2]ChargeResult
		for j, ad := range []Admission{byKey, byAcct} {
			c := Charge{ReqID: f.id("req"), AccountID: ad.AccountID, KeyID: ad.KeyID, Model: EchoModelID, Billing: ad.Billing,
				ViaExtra: ad.ViaExtra, AdmittedAt: f.now, InputTokens: st.flows * oneFlowInput}
			res[j] = f.do(&ChargeBatch{Charges: []Charge{c}}).Value.([]ChargeResult)[0]
		}
		if res[0] != res[1] || res[0].Status != "charged" {
			t.Fatalf("step %d: charged %+v by key, %+v by account", i, res[0], res[1])
		}
		f.advance(time.Minute)
	}
	u1, u2 := f.usage(viaKey), f.usage(viaAcct)
	if !reflect.DeepEqual(u1, u2) {
		t.Fatalf("usage differs:\nkey     %v\naccount %v", u1, u2)
	}
	// 5 − 7 Flows − 3 Flows of API value at $0.03283 a Flow.
	for _, acct := range []string{viaKey, viaAcct} {
		expect(t, f.acct(acct), "balance_usd", "4.6717", "extra_usage.spent_usd", "0.09849")
	}
	if _, err := f.l.AdmitAccount(viaAcct, "free", EchoModelID, f.now); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a bad billing mode: %v", err)
	}
	if _, err := f.l.AdmitAccount("nobody", BillingPayg, EchoModelID, f.now); !errors.Is(err, ErrInvalidAPIKey) {
		t.Fatalf("an unknown account: %v", err)
	}
	if _, err := f.l.AdmitAccount(viaAcct, BillingPayg, "no/such-model", f.now); !errors.Is(err, ErrModelNotFound) {
		t.Fatalf("an unknown model: %v", err)
	}
}

// rule M3, P2: the public pricing carries the rate's whole history.
func TestP2_PricingHasRateHistory(t *testing.T) {
	f := newFixture(t)
	start := f.now
	f.advance(time.Hour)
	f.must(&SetRate{NanoUSDPerFlow: 40_000000})
	p := asMap(t, f.l.Pricing(nil))
	h, _ := p["rate_history"].([]any)
	if len(h) != 2 || get(h[0].(map[string]any), "at") != rfc3339(start) || get(h[1].(map[string]any), "usd_per_flow") != "0.04" ||
		get(p, "usd_per_flow") != "0.04" {
		t.Fatalf("pricing: %v", p)
	}
}

// keysWith lists the stored keys with a prefix.
func (w memWriter) keysWith(prefix string) []string {
	var out []string
	for k := range w {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			out = append(out, k)
		}
	}
	return out
}

// rules B2, B3, C4: the expiry queue removes exactly the sessions and links
// a scan finds expired, at each step, whatever ended early; entries left
// behind by early ends do not pile up.
func TestC4_ExpiriesMatchScan(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	kid := f.keyID(key)
	seed := uint64(7)
	next := func(n uint64) uint64 { seed = seed*6364136223846793005 + 1442695040888963407; return (seed >> 33) % n }
	for step := 0; step < 2000; step++ {
		switch next(4) {
		case 0, 1:
			f.openSession(acct, kid, f.id("s"), time.Duration(1+next(3600))*time.Second)
		case 2:
			if len(f.l.links) < MaxSignInLinksPerAccount {
				f.must(&CreateSignInLink{AccountID: acct, LinkHash: HashSecret(f.id("l")), ExpiresAt: f.now + 1 + int64(next(uint64(SignInLinkTTL)))})
			}
		default:
			f.must(&EndSession{TokenHash: HashSecret(f.id("s") + "x")}) // unknown: a no-op
			if s := oldestSession(f.l.sessByAcct[acct]); s != nil {
				f.must(&EndSession{TokenHash: s.TokenHash})
			}
		}
		f.advance(time.Duration(next(uint64(time.Minute))))
		f.must(&Tick{})
		for _, s := range f.l.sessions {
			if s.ExpiresAt <= f.now {
				t.Fatalf("step %d: session expired at %d kept at %d", step, s.ExpiresAt, f.now)
			}
		}
		for _, k := range f.l.links {
			if k.ExpiresAt <= f.now {
				t.Fatalf("step %d: link expired at %d kept at %d", step, k.ExpiresAt, f.now)
			}
		}
		if live := len(f.l.sessions) + len(f.l.links); len(f.l.expiries) > 2*live+64 {
			t.Fatalf("step %d: %d queued for %d live records", step, len(f.l.expiries), live)
		}
	}
}
