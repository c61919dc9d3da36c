package payments

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"zenmux/ledger"
)

// TestReconcile lists the differences between the ledger's intents and
// what stripe-mock lists (fixtures naming no zenmux intent or refund): a
// credited intent Stripe shows no payment for, and a refund zenmux did not
// make; a pending intent is no difference.
func TestReconcile(t *testing.T) {
	m := startStripeMock(t)
	f := newFakeLedger()
	f.listed = []Intent{
		{ID: "pay_ok", Kind: KindSubscribe, MicroUSD: 20_000000, Status: ledger.IntentSucceeded, ProviderRef: "cs_ok"},
		{ID: "pay_open", Kind: KindTopUp, MicroUSD: 5_000000, Status: ledger.IntentPending},
	}
	s := newDriver(t, f, m.URL)
	since := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	before := len(m.Calls())
	r, err := s.Reconcile(context.Background(), since)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	if r.Since != "2026-04-01T00:00:00Z" || r.Intents != 2 || r.StripePaid != 0 || r.Refunds != 1 || len(r.Differences) != 2 {
		t.Fatalf("reconciliation %s", b)
	}
	d0, d1 := r.Differences[0], r.Differences[1]
	if d0.Kind != DiffCreditedNotPaid || d0.IntentID != "pay_ok" || d0.StripeID != "cs_ok" || *d0.LedgerUSD != 20_000000 || d0.StripeUSD != nil {
		t.Fatalf("first difference %+v", d0)
	}
	if d1.Kind != DiffRefundUnknown || d1.StripeID == "" || d1.StripeUSD == nil {
		t.Fatalf("second difference %+v", d1)
	}
	for _, c := range m.Calls()[before:] {
		if c.Method != "GET" || c.Form.Get("created[gte]") != "1775001600" {
			t.Fatalf("a reconciliation only lists since its start: %+v", c)
		}
	}
}
