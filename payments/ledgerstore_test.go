package payments

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"zenmux/ledger"
)

// memStore is one ledger in memory, every command applied at once at its
// clock.
type memStore struct {
	mu  sync.Mutex
	l   *ledger.Ledger
	now int64
}

func newMemStore(t *testing.T) *memStore {
	t.Helper()
	s := &memStore{l: ledger.New(), now: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
	if _, err := ledger.Propose(s, &ledger.Seed{NanoUSDPerFlow: ledger.DefaultNanoUSDPerFlow, Plans: ledger.DefaultPlans(), Models: ledger.DefaultModels(), DedupeDays: 7, RequestLogDays: 30}); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *memStore) Ledger() *ledger.Ledger { return s.l }
func (s *memStore) Now() int64             { s.mu.Lock(); defer s.mu.Unlock(); return s.now }
func (s *memStore) ReadBarrier() error     { return nil }
func (s *memStore) Propose(cmd ledger.Command) (ledger.Result, error) {
	return s.l.Apply(cmd, s.Now()), nil
}

// state is what a payment may change in the ledger: the account, its
// billing, its intents and every anomaly.
func state(t *testing.T, s *memStore, acct string) string {
	t.Helper()
	a, err := s.l.Account(acct, s.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.l.Billing(acct)
	in, _ := s.l.PaymentIntents(acct)
	out, err := json.Marshal([]any{a, b, in, s.l.PaymentAnomalies()})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestLedgerStoreEndToEnd runs the driver over the real ledger and
// stripe-mock: Checkout for the ledger's amount, then the signed webhook
// credits it once; a replay and a wrong amount credit nothing.
func TestLedgerStoreEndToEnd(t *testing.T) {
	m := startStripeMock(t)
	st := newMemStore(t)
	const acct = "acct_e2e"
	if _, err := ledger.Propose(st, &ledger.CreateAccount{ID: acct, Email: "e2e@example.com", Name: "E2E"}); err != nil {
		t.Fatal(err)
	}
	s := newDriver(t, LedgerStore{st}, m.URL)
	pro, err := st.l.Plan("pro")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := s.RequestPlanChange(acct, "subscribe", "pro")
	if err != nil {
		t.Fatal(err)
	}
	in, err := st.l.PaymentIntent(pc.IntentID)
	if err != nil || in.Status != ledger.IntentPending || in.AmountUSD != pro.PriceUSD || in.ProviderRef == nil {
		t.Fatalf("intent %+v %v", in, err)
	}
	if a, _ := st.l.Account(acct, st.Now()); a.Plan != "free" {
		t.Fatalf("plan %q before the webhook: the redirect must not credit", a.Plan)
	}
	session := func(id string, cents int64) string {
		return fmt.Sprintf(`{"id":%q,"object":"checkout.session","payment_status":"paid","amount_total":%d,"currency":"usd","payment_intent":"pi_e2e","customer":"cus_e2e","metadata":{"intent_id":%q}}`, *in.ProviderRef, cents, id)
	}
	body, sig := signedEvent("evt_sub", "checkout.session.completed", session(in.ID, int64(pro.PriceUSD)/10_000), testWebhookSecret, time.Now())
	if status, got := deliver(s, "POST", body, sig); status != 200 {
		t.Fatalf("webhook %d %s", status, got)
	}
	a, _ := st.l.Account(acct, st.Now())
	if a.Plan != "pro" || a.Subscription.PaidUSD != pro.PriceUSD {
		t.Fatalf("after the webhook: plan %q paid %v", a.Plan, a.Subscription.PaidUSD)
	}
	after := state(t, st, acct)
	for _, re := range []string{"evt_sub", "evt_sub"} {
		body, sig := signedEvent(re, "checkout.session.completed", session(in.ID, int64(pro.PriceUSD)/10_000), testWebhookSecret, time.Now())
		if status, got := deliver(s, "POST", body, sig); status != 200 || state(t, st, acct) != after {
			t.Fatalf("replay: %d %s; ledger changed: %v", status, got, state(t, st, acct) != after)
		}
	}

	// A refund of the card-paid cycle (R2's final amount, less what R2
	// keeps) goes back to its payment, and settles when Stripe's refund
	// succeeded (stripe-mock's reads back so).
	if _, err := ledger.Propose(st, &ledger.RefundSubmit{Idem: ledger.Idem{IdemKey: "rf-k", Fingerprint: "f"}, AccountID: acct, RefundID: "rf_e2e"}); err != nil {
		t.Fatal(err)
	}
	pre, err := st.l.Refund("rf_e2e")
	if err != nil {
		t.Fatal(err)
	}
	parts, err := st.l.RefundParts("rf_e2e")
	if err != nil || len(parts) != 1 || parts[0].IntentID != in.ID || parts[0].PaymentRef != "pi_e2e" || parts[0].AmountUSD != pre.FinalUSD || pre.FinalUSD <= 0 {
		t.Fatalf("refund parts %+v %v, final %v", parts, err, pre.FinalUSD)
	}
	before := len(m.Calls())
	if err := s.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	rv, _ := st.l.Refund("rf_e2e")
	if rv.Status != ledger.RefundSucceeded || len(rv.ProviderRefs) != 1 {
		t.Fatalf("refund after the sweep %+v", rv)
	}
	if c := m.Calls()[before]; c.Path != "/v1/refunds" || c.Form.Get("payment_intent") != "pi_e2e" || c.Form.Get("amount") != fmt.Sprint(int64(parts[0].AmountUSD)/10_000) {
		t.Fatalf("refund call %+v", c)
	}
	if a, _ := st.l.Account(acct, st.Now()); a.Plan != "free" {
		t.Fatalf("plan %q after the refund (R3: Free)", a.Plan)
	}

	url, err := s.TopUp(acct, 12_340000)
	if err != nil || url == "" {
		t.Fatalf("top-up %q %v", url, err)
	}
	ins, _ := st.l.PaymentIntents(acct)
	var top ledger.PaymentIntentView
	for _, in := range ins {
		if in.Kind == ledger.IntentTopUp {
			top = in
		}
	}
	body, sig = signedEvent("evt_top_wrong", "checkout.session.completed", session(top.ID, 1000), testWebhookSecret, time.Now())
	if status, _ := deliver(s, "POST", body, sig); status != 200 {
		t.Fatalf("mismatch status %d", status)
	}
	if an := st.l.PaymentAnomalies(); len(an) != 1 || an[0].Reason != ledger.AnomalyAmount || an[0].EventID != "evt_top_wrong" || st.l.Balance(acct) != 0 {
		t.Fatalf("amount mismatch: anomalies %+v balance %d", an, st.l.Balance(acct))
	}
}
