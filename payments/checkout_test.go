package payments

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckout opens a Checkout Session for exactly the ledger's amount,
// in cents, naming the intent, and links the session to the intent.
func TestCheckout(t *testing.T) {
	m := startStripeMock(t)
	for _, tc := range []struct {
		name, action, plan, kind string
		ledgerAmount             int64 // the ledger's amount for a plan kind
		topUp                    int64 // a top-up's amount
		cents, product           string
		savesCard                bool
	}{
		{name: "subscribe", action: "subscribe", plan: "pro", kind: KindSubscribe, ledgerAmount: 20_000000, cents: "2000", product: "Subscription: pro plan, first month", savesCard: true},
		{name: "upgrade prorated to the cent", action: "change", plan: "max", kind: KindUpgrade, ledgerAmount: 53_330000, cents: "5333", product: "Upgrade to the max plan, rest of this cycle", savesCard: true},
		{name: "top-up", kind: KindTopUp, topUp: 10_500000, cents: "1050", product: "Pay-as-you-go balance top-up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeLedger()
			f.kind, f.amount = tc.kind, tc.ledgerAmount
			s := newDriver(t, f, m.URL)
			before := len(m.Calls())
			var url, intentID string
			if tc.kind == KindTopUp {
				u, err := s.TopUp("acct_1", tc.topUp)
				if err != nil {
					t.Fatal(err)
				}
				url = u
			} else {
				pc, err := s.RequestPlanChange("acct_1", tc.action, tc.plan)
				if err != nil {
					t.Fatal(err)
				}
				url, intentID = pc.CheckoutURL, pc.IntentID
				if pc.Request != nil || pc.Applied != nil {
					t.Fatalf("a paid change answered %+v", pc)
				}
			}
			if len(f.intents) != 1 {
				t.Fatalf("intents %+v", f.intents)
			}
			in := f.intents[0]
			if !strings.HasPrefix(in.ID, "pay_") || in.AccountID != "acct_1" || in.Kind != tc.kind || in.Plan != tc.plan || in.MicroUSD != tc.topUp {
				t.Fatalf("intent %+v", in)
			}
			if intentID != "" && intentID != in.ID {
				t.Fatalf("answered intent %q, created %q", intentID, in.ID)
			}
			if !strings.HasPrefix(url, "https://checkout.stripe.com/") {
				t.Fatalf("checkout url %q", url)
			}
			calls := m.Calls()[before:]
			if len(calls) != 1 || calls[0].Method != "POST" || calls[0].Path != "/v1/checkout/sessions" {
				t.Fatalf("stripe calls %+v", calls)
			}
			c := calls[0]
			want := map[string]string{
				"mode": "payment", "client_reference_id": "acct_1",
				"line_items[0][quantity]":                       "1",
				"line_items[0][price_data][currency]":           "usd",
				"line_items[0][price_data][unit_amount]":        tc.cents,
				"line_items[0][price_data][product_data][name]": tc.product,
				"metadata[intent_id]":                           in.ID,
				"metadata[account_id]":                          "acct_1",
				"metadata[kind]":                                tc.kind,
				"success_url":                                   "https://zen.example/console?checkout=success",
				"cancel_url":                                    "https://zen.example/console?checkout=canceled",
				"customer_creation":                             "",
				"payment_intent_data[setup_future_usage]":       "",
			}
			if tc.savesCard {
				want["customer_creation"] = "always"
				want["payment_intent_data[setup_future_usage]"] = "off_session"
			}
			for k, v := range want {
				if got := c.Form.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if c.Idem != "checkout-"+in.ID {
				t.Errorf("Idempotency-Key %q", c.Idem)
			}
			if ref := f.refs[in.ID]; !strings.HasPrefix(ref, "cs_") {
				t.Errorf("intent ref %q", ref)
			}
		})
	}
}

// TestPlanChangeWithoutPayment: a downgrade or a cancel costs nothing, so
// it is applied now (effective at cycle end) and Stripe is not called; a
// ledger refusal or an amount that is not whole cents reaches no Stripe
// either.
func TestPlanChangeWithoutPayment(t *testing.T) {
	f := newFakeLedger()
	s := newDriver(t, f, "")
	pc, err := s.RequestPlanChange("acct_1", "change", "pro")
	if err != nil || pc.CheckoutURL != "" || pc.Applied == nil || len(f.free) != 1 || f.free[0] != "change pro" || len(f.intents) != 0 {
		t.Fatalf("downgrade: %+v %v free %v intents %v", pc, err, f.free, f.intents)
	}
	f.kind, f.refuse = KindSubscribe, errRefused
	if _, err := s.RequestPlanChange("acct_1", "subscribe", "pro"); !errors.Is(err, errRefused) {
		t.Fatalf("refused subscribe: %v", err)
	}
	f.refuse = nil
	f.amount = 20_001000
	if _, err := s.RequestPlanChange("acct_1", "subscribe", "pro"); !errors.Is(err, ErrAmount) {
		t.Fatalf("amount with a tenth of a cent: %v", err)
	}
	if _, err := s.TopUp("acct_1", 0); !errors.Is(err, ErrAmount) {
		t.Fatalf("zero top-up: %v", err)
	}
}
