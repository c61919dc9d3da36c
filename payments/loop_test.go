package payments

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSweepRenewal charges a due renewal off-session to the saved card,
// keyed by the intent and its attempt; without a saved payment method,
// the customer's card.
func TestSweepRenewal(t *testing.T) {
	m := startStripeMock(t)
	for _, tc := range []struct {
		name, pm string
		attempts int
		listed   bool
	}{
		{name: "saved card", pm: "pm_saved", attempts: 0},
		{name: "second attempt", pm: "pm_saved", attempts: 1},
		{name: "customer's card", listed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeLedger()
			f.due = []Intent{{ID: "ren_1", AccountID: "acct_1", Kind: KindRenewal, Plan: "max", MicroUSD: 100_000000, Customer: "cus_1", PaymentMethod: tc.pm, Attempts: tc.attempts}}
			s := newDriver(t, f, m.URL)
			before := len(m.Calls())
			if err := s.Sweep(context.Background()); err != nil {
				t.Fatal(err)
			}
			calls := m.Calls()[before:]
			if tc.listed {
				if len(calls) != 2 || calls[0].Method != "GET" || calls[0].Path != "/v1/payment_methods" ||
					calls[0].Form.Get("customer") != "cus_1" || calls[0].Form.Get("type") != "card" {
					t.Fatalf("calls %+v", calls)
				}
				calls = calls[1:]
			}
			if len(calls) != 1 || calls[0].Method != "POST" || calls[0].Path != "/v1/payment_intents" {
				t.Fatalf("calls %+v", calls)
			}
			c := calls[0]
			want := map[string]string{"amount": "10000", "currency": "usd", "customer": "cus_1", "off_session": "true", "confirm": "true",
				"metadata[intent_id]": "ren_1", "metadata[kind]": KindRenewal, "metadata[account_id]": "acct_1", "metadata[attempt]": strconv.Itoa(tc.attempts)}
			for k, v := range want {
				if got := c.Form.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if pm := c.Form.Get("payment_method"); tc.pm != "" && pm != tc.pm || tc.pm == "" && !strings.HasPrefix(pm, "pm_") {
				t.Errorf("payment_method %q", pm)
			}
			if wantKey := "renewal-ren_1-" + strconv.Itoa(tc.attempts); c.Idem != wantKey {
				t.Errorf("Idempotency-Key %q, want %q", c.Idem, wantKey)
			}
			if len(f.events) != 0 {
				t.Fatalf("the sweep applied %+v: only the webhook applies an outcome", f.events)
			}
			if ref := f.refs["ren_1"]; !strings.HasPrefix(ref, "pi_") {
				t.Fatalf("renewal ref %q", ref)
			}
		})
	}
}

// TestSweepRenewalCharged: an attempt whose charge is recorded is not
// charged again (stripe-mock's PaymentIntent names no intent, so a
// recorded charge of another attempt is charged anew).
func TestSweepRenewalCharged(t *testing.T) {
	m := startStripeMock(t)
	f := newFakeLedger()
	f.due = []Intent{{ID: "ren_1", AccountID: "acct_1", Kind: KindRenewal, Plan: "max", MicroUSD: 100_000000, Customer: "cus_1", PaymentMethod: "pm_1", ProviderRef: "pi_old", Attempts: 1}}
	s := newDriver(t, f, m.URL)
	before := len(m.Calls())
	if err := s.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls := m.Calls()[before:]
	if len(calls) != 2 || calls[0].Method != "GET" || calls[0].Path != "/v1/payment_intents/pi_old" || calls[1].Path != "/v1/payment_intents" {
		t.Fatalf("calls %+v", calls)
	}
}

// TestSweepRefund returns a refund to each card payment it covers, one
// Stripe refund per part not yet sent, records them in order, and settles
// the refund once Stripe says every part succeeded.
func TestSweepRefund(t *testing.T) {
	m := startStripeMock(t)
	f := newFakeLedger()
	parts := []RefundPart{{IntentID: "pay_sub", PaymentRef: "pi_sub", MicroUSD: 20_000000}, {IntentID: "pay_up", PaymentRef: "pi_up", MicroUSD: 15_880000}}
	f.processing = []*Refund{
		{ID: "rf_new", Parts: parts},
		{ID: "rf_half", Refs: []string{"re_before"}, Parts: parts},
		{ID: "rf_manual"}, // a cycle not paid by card: the operator settles it
	}
	s := newDriver(t, f, m.URL)
	before := len(m.Calls())
	if err := s.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	var creates []string
	for _, c := range m.Calls()[before:] {
		if c.Method == "POST" && c.Path == "/v1/refunds" {
			creates = append(creates, strings.Join([]string{c.Form.Get("payment_intent"), c.Form.Get("amount"), c.Form.Get("metadata[refund_id]"), c.Form.Get("metadata[intent_id]"), c.Idem}, " "))
		}
	}
	wantCreates := []string{
		"pi_sub 2000 rf_new pay_sub refund-rf_new-pay_sub",
		"pi_up 1588 rf_new pay_up refund-rf_new-pay_up",
		"pi_up 1588 rf_half pay_up refund-rf_half-pay_up",
	}
	if !reflect.DeepEqual(creates, wantCreates) {
		t.Fatalf("refunds created\n%q\nwant\n%q", creates, wantCreates)
	}
	if n := len(f.processing[0].Refs); n != 2 || len(f.processing[1].Refs) != 2 || f.processing[1].Refs[0] != "re_before" || len(f.processing[2].Refs) != 0 {
		t.Fatalf("refs %v %v %v", f.processing[0].Refs, f.processing[1].Refs, f.processing[2].Refs)
	}
	// stripe-mock's refunds read back succeeded.
	if want := []string{"rf_new succeeded", "rf_half succeeded"}; !reflect.DeepEqual(f.refunds, want) {
		t.Fatalf("status moves %v, want %v", f.refunds, want)
	}
}

// TestRunOnlyOnLeader: a follower's loop calls nothing.
func TestRunOnlyOnLeader(t *testing.T) {
	m := startStripeMock(t)
	f := newFakeLedger()
	f.due = []Intent{{ID: "ren_1", AccountID: "acct_1", Kind: KindRenewal, Plan: "max", MicroUSD: 100_000000, Customer: "cus_1", PaymentMethod: "pm_1"}}
	s := newDriver(t, f, m.URL)
	s.sweepEvery = 10 * time.Millisecond
	before := len(m.Calls())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	s.Run(ctx, func() bool { return false })
	if n := len(m.Calls()) - before; n != 0 {
		t.Fatalf("a follower called Stripe %d times", n)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	done := make(chan struct{})
	go func() { s.Run(ctx2, func() bool { return true }); close(done) }()
	for len(m.Calls()) == before && ctx2.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	cancel2()
	<-done
	if len(m.Calls()) == before {
		t.Fatal("the leader's loop did not charge the due renewal within 5 s")
	}
}
