package admin

import (
	"testing"

	"zenmux/ledger"
)

// rules PAY3, PAY4: the operator reads an account's payment intents and
// every anomaly, exactly as the ledger recorded them.
func TestPAY4_PaymentReads(t *testing.T) {
	store, _ := newFuzzStore(t)
	srv := New(store, Options{Token: []byte(fuzzToken)})
	if _, err := ledger.Propose(store, &ledger.CreatePaymentIntent{ID: "pay_t", AccountID: fuzzAcctA, Kind: ledger.IntentTopUp, MicroUSD: 12_340000}); err != nil {
		t.Fatal(err)
	}
	ev := &ledger.ApplyPaymentEvent{EventID: "evt_1", IntentID: "pay_t", ProviderRef: "pi_1", MicroUSD: 12_330000, Currency: "usd", Outcome: ledger.OutcomeSucceeded}
	if v, err := ledger.Propose(store, ev); err != nil || v.Result != ledger.EventAnomaly {
		t.Fatalf("event: %+v %v", v, err)
	}
	intents := call(t, srv, "GET", "/admin/v1/accounts/"+fuzzAcctA+"/payment-intents", "")
	want := `{"data":[{"id":"pay_t","account_id":"acct_a","kind":"topup","plan":null,"amount_usd":12.34,"currency":"usd","status":"pending",` +
		`"provider_ref":null,"payment_ref":null,"customer":null,"payment_method":null,"created_at":"2026-04-01T00:00:00Z","settled_at":null,` +
		`"event_id":null,"anomaly":null,"attempts":0,"next_attempt_at":null}]}` + "\n"
	if intents.status != 200 || string(intents.body) != want {
		t.Fatalf("intents: %d %s\nwant %s", intents.status, intents.body, want)
	}
	anomalies := call(t, srv, "GET", "/admin/v1/payments/anomalies", "")
	want = `{"data":[{"id":"pan_0","event_id":"evt_1","intent_id":"pay_t","account_id":"acct_a","reason":"amount_mismatch",` +
		`"detail":"paid 12.33 USD, asked for 12.34 USD","amount_usd":12.33,"currency":"usd","at":"2026-04-01T00:00:00Z"}]}` + "\n"
	if anomalies.status != 200 || string(anomalies.body) != want {
		t.Fatalf("anomalies: %d %s\nwant %s", anomalies.status, anomalies.body, want)
	}
	for _, c := range []struct {
		method, uri string
		status      int
	}{
		{"GET", "/admin/v1/accounts/acct_zz/payment-intents", 404},
		{"POST", "/admin/v1/payments/anomalies", 405},
		{"POST", "/admin/v1/accounts/" + fuzzAcctA + "/payment-intents", 405},
	} {
		if r := call(t, srv, c.method, c.uri, ""); r.status != c.status {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.uri, r.status, r.body, c.status)
		}
	}
}
