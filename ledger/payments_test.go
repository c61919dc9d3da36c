package ledger

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"
)

// payEvent is a success event for an intent, paying amount in USD.
func payEvent(eventID, intentID string, microUSD int64) *ApplyPaymentEvent {
	return &ApplyPaymentEvent{EventID: eventID, IntentID: intentID, ProviderRef: "pi_" + eventID, MicroUSD: microUSD,
		Currency: PaymentCurrency, Outcome: OutcomeSucceeded, Customer: "cus_1", PaymentMethod: "pm_1"}
}

// billingOf renders an account's billing history as JSON, for exact
// comparisons.
func (f *fixture) billingOf(acct string) string {
	f.t.Helper()
	b, err := f.l.Billing(acct)
	if err != nil {
		f.t.Fatal(err)
	}
	out, _ := json.Marshal(b)
	return string(out)
}

// rule PAY2: the ledger computes the amount, and refuses a payment for an
// action not allowed now, as Subscribe and ChangePlan refuse it.
func TestPAY2_Amounts(t *testing.T) {
	f := newFixture(t)
	acct, _ := f.account()
	v := f.must(&CreatePaymentIntent{ID: "pay_1", AccountID: acct, Kind: IntentSubscribe, Plan: "max", MicroUSD: 5})
	expect(t, v, "id", "pay_1", "account_id", acct, "kind", "subscribe", "plan", "max", "amount_usd", "100", "currency", "usd",
		"status", "pending", "provider_ref", "null", "created_at", "2026-04-01T00:00:00Z", "settled_at", "null")
	// A retried command answers the same intent; the id with another
	// request is a conflict.
	if again := f.must(&CreatePaymentIntent{ID: "pay_1", AccountID: acct, Kind: IntentSubscribe, Plan: "max"}); !reflect.DeepEqual(again, v) {
		t.Errorf("retried: %v, want %v", again, v)
	}
	f.fails(&CreatePaymentIntent{ID: "pay_1", AccountID: acct, Kind: IntentSubscribe, Plan: "pro"}, ErrConflict)

	for _, c := range []struct {
		cmd  *CreatePaymentIntent
		want error
	}{
		{&CreatePaymentIntent{ID: "x1", AccountID: acct, Kind: IntentSubscribe, Plan: "free"}, ErrInvalid},
		{&CreatePaymentIntent{ID: "x2", AccountID: acct, Kind: IntentSubscribe, Plan: "gold"}, ErrNotFound},
		{&CreatePaymentIntent{ID: "x3", AccountID: acct, Kind: IntentUpgrade, Plan: "max"}, ErrConflict}, // on Free
		{&CreatePaymentIntent{ID: "x4", AccountID: acct, Kind: IntentRenewal, Plan: "max"}, ErrInvalid},
		{&CreatePaymentIntent{ID: "x5", AccountID: acct, Kind: "gift"}, ErrInvalid},
		{&CreatePaymentIntent{ID: "x6", AccountID: acct, Kind: IntentTopUp, MicroUSD: 999_999}, ErrInvalid},
		{&CreatePaymentIntent{ID: "x7", AccountID: acct, Kind: IntentTopUp, MicroUSD: 10_000_010_000}, ErrInvalid},
		{&CreatePaymentIntent{ID: "x8", AccountID: acct, Kind: IntentTopUp, MicroUSD: 1_000_001}, ErrInvalid}, // not whole cents
		{&CreatePaymentIntent{ID: "x9", AccountID: acct, Kind: IntentTopUp, Plan: "pro", MicroUSD: 1_000_000}, ErrInvalid},
		{&CreatePaymentIntent{ID: "a/b", AccountID: acct, Kind: IntentTopUp, MicroUSD: 1_000_000}, ErrInvalid},
		{&CreatePaymentIntent{ID: "x10", AccountID: "nobody", Kind: IntentTopUp, MicroUSD: 1_000_000}, ErrNotFound},
	} {
		f.fails(c.cmd, c.want)
	}
	expect(t, f.must(&CreatePaymentIntent{ID: "t1", AccountID: acct, Kind: IntentTopUp, MicroUSD: 1_000_000}), "amount_usd", "1", "plan", "null")
	expect(t, f.must(&CreatePaymentIntent{ID: "t2", AccountID: acct, Kind: IntentTopUp, MicroUSD: 10_000_000_000}), "amount_usd", "10000")

	// Subscribed: no second subscribe (S1); no change to the same, an
	// equal-price or a cheaper plan through a payment (S3, S4).
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "max"})
	f.fails(&CreatePaymentIntent{ID: "y1", AccountID: acct, Kind: IntentSubscribe, Plan: "pro"}, ErrConflict)
	f.fails(&CreatePaymentIntent{ID: "y2", AccountID: acct, Kind: IntentUpgrade, Plan: "max"}, ErrConflict)
	f.fails(&CreatePaymentIntent{ID: "y3", AccountID: acct, Kind: IntentUpgrade, Plan: "pro"}, ErrConflict)
	f.must(&PutPlan{Plan: Plan{ID: "max2", Name: "Max 2", PriceMicroUSD: 100_000000, Window5hMicroFlows: 1, WeeklyMicroFlows: 1, MonthlyMicroFlows: 1, RPM: 1, Burst: 1}})
	f.fails(&CreatePaymentIntent{ID: "y4", AccountID: acct, Kind: IntentUpgrade, Plan: "max2"}, ErrConflict)

	// At most 10 unpaid payments a day per account: 3 made so far.
	for i := range 7 {
		f.must(&CreatePaymentIntent{ID: f.id("z"), AccountID: acct, Kind: IntentTopUp, MicroUSD: int64(i+1) * 1_000_000})
	}
	f.fails(&CreatePaymentIntent{ID: "z_over", AccountID: acct, Kind: IntentTopUp, MicroUSD: 1_000_000}, ErrConflict)
	f.advance(24 * time.Hour)
	f.must(&CreatePaymentIntent{ID: "z_next_day", AccountID: acct, Kind: IntentTopUp, MicroUSD: 1_000_000})
}

// rule PAY3: a success event subscribes exactly as Subscribe does; the
// same event again — as the ledger's idempotency answers it, with the
// first answer's JSON — changes nothing, and a second payment of the same
// intent is an anomaly, not a second credit (PAY4).
func TestPAY3_SubscribeOnce(t *testing.T) {
	f := newFixture(t)
	card, _ := f.account()
	manual, _ := f.account()
	f.must(&CreatePaymentIntent{ID: "pay_1", AccountID: card, Kind: IntentSubscribe, Plan: "pro"})
	f.must(&SetPaymentRef{ID: "pay_1", ProviderRef: "cs_1"})
	f.advance(90 * time.Second)

	ev := payEvent("evt_1", "pay_1", 20_000000)
	first := f.do(ev)
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	v := asMap(t, first.Value)
	expect(t, v, "event_id", "evt_1", "result", "applied", "anomaly", "null", "intent.status", "succeeded",
		"intent.provider_ref", "cs_1", "intent.payment_ref", "pi_evt_1", "intent.event_id", "evt_1",
		"intent.settled_at", "2026-04-01T00:01:30Z", "intent.customer", "cus_1")
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: manual, Plan: "pro"})

	// Billing history, cycle and windows as with the manual command.
	cardAcct, manualAcct := f.acct(card), f.acct(manual)
	if !reflect.DeepEqual(cardAcct["subscription"], manualAcct["subscription"]) {
		t.Errorf("card subscription %v, manual %v", cardAcct["subscription"], manualAcct["subscription"])
	}
	expect(t, cardAcct, "plan", "pro", "subscription.cycle_start", "2026-04-01T00:01:30Z", "subscription.paid_usd", "20")
	wantBilling := `[{"id":"pay_` + card + `_0","type":"subscribe","plan":"pro","amount_usd":20,"status":"succeeded","at":"2026-04-01T00:01:30Z","refund_id":null}]`
	if got := f.billingOf(card); got != wantBilling {
		t.Errorf("billing %s\nwant    %s", got, wantBilling)
	}
	if a := f.l.accounts[card]; a.Sub.Billing != BilledByStripe || a.Sub.Customer != "cus_1" || a.Sub.PaymentMethod != "pm_1" {
		t.Errorf("sub %+v", a.Sub)
	}
	if a := f.l.accounts[manual]; a.Sub.Billing != "" {
		t.Errorf("manual billing %q", a.Sub.Billing)
	}

	// The same event, delivered again later: the first answer byte for
	// byte, nothing changed.
	f.advance(time.Hour)
	wantJSON, _ := json.Marshal(first.Value)
	again := f.do(ev)
	if raw, ok := again.Value.(json.RawMessage); !ok || string(raw) != string(wantJSON) || again.Err != nil {
		t.Fatalf("replay answered %v (%T), %v; want %s", again.Value, again.Value, again.Err, wantJSON)
	}
	if got := f.billingOf(card); got != wantBilling {
		t.Errorf("after replay: %s", got)
	}
	// The same event id with other content is a conflict, never applied.
	other := *ev
	other.MicroUSD = 21_000000
	f.fails(&other, ErrIdempotencyConflict)

	// A second payment of the paid intent (another event): an anomaly.
	v = f.must(payEvent("evt_2", "pay_1", 20_000000))
	expect(t, v, "result", "anomaly", "anomaly.reason", "already_paid", "anomaly.event_id", "evt_2", "anomaly.intent_id", "pay_1",
		"anomaly.account_id", card, "anomaly.amount_usd", "20", "intent.status", "succeeded", "intent.event_id", "evt_1")
	if got := f.billingOf(card); got != wantBilling {
		t.Errorf("after a second payment: %s", got)
	}
	// A failure after the success changes nothing.
	expect(t, f.must(&ApplyPaymentEvent{EventID: "evt_3", IntentID: "pay_1", Outcome: OutcomeFailed}), "result", "ignored", "intent.status", "succeeded")

	// Past the idempotency horizon (dedupe_days = 7), the intent still
	// knows the event that paid it.
	f.advance(8 * 24 * time.Hour)
	f.must(&Tick{})
	if f.l.idem[EventIdemKey("evt_1")] != nil {
		t.Fatal("the event's key outlived dedupe_days")
	}
	expect(t, f.must(ev), "result", "duplicate", "anomaly", "null", "intent.status", "succeeded")
	if n := len(f.l.PaymentAnomalies()); n != 1 {
		t.Errorf("%d anomalies, want 1", n)
	}
	if got := f.billingOf(card); got != wantBilling {
		t.Errorf("after a late replay: %s", got)
	}
}

// rule PAY4: an amount a cent off, another currency or an unknown intent
// is an anomaly that credits nothing; the intent stays payable.
func TestPAY4_Mismatch(t *testing.T) {
	f := newFixture(t)
	acct, _ := f.account()
	f.must(&CreatePaymentIntent{ID: "pay_1", AccountID: acct, Kind: IntentSubscribe, Plan: "pro"})
	for _, c := range []struct {
		ev     *ApplyPaymentEvent
		reason string
	}{
		{payEvent("evt_low", "pay_1", 19_990000), AnomalyAmount},
		{payEvent("evt_high", "pay_1", 20_010000), AnomalyAmount},
		{&ApplyPaymentEvent{EventID: "evt_eur", IntentID: "pay_1", MicroUSD: 20_000000, Currency: "eur", Outcome: OutcomeSucceeded}, AnomalyCurrency},
		{&ApplyPaymentEvent{EventID: "evt_USD", IntentID: "pay_1", MicroUSD: 20_000000, Currency: "USD", Outcome: OutcomeSucceeded}, AnomalyCurrency},
		{payEvent("evt_nobody", "pay_x", 20_000000), AnomalyUnknownIntent},
	} {
		v := f.must(c.ev)
		expect(t, v, "result", "anomaly", "anomaly.reason", c.reason, "anomaly.event_id", c.ev.EventID)
		if c.reason != AnomalyUnknownIntent {
			expect(t, v, "intent.status", "pending", "anomaly.account_id", acct)
		}
		expect(t, f.acct(acct), "plan", "free", "balance_usd", "0")
	}
	an := f.l.PaymentAnomalies()
	if len(an) != 5 || an[0].ID != "pan_0" || an[0].Detail != "paid 19.99 USD, asked for 20 USD" || an[4].ID != "pan_4" {
		t.Errorf("anomalies %+v", an)
	}
	// A driver's own anomaly, recorded once per event and reason.
	rec := &RecordPaymentAnomaly{EventID: "evt_odd", Reason: "unexpected_refund", Detail: "a refund nobody asked for"}
	v := f.must(rec)
	expect(t, v, "id", "pan_5", "reason", "unexpected_refund", "intent_id", "null")
	if again := f.must(rec); !reflect.DeepEqual(again, v) {
		t.Errorf("again: %v", again)
	}
	f.fails(&RecordPaymentAnomaly{EventID: "evt_odd", Reason: ""}, ErrInvalid)
	// A declined card, then the right payment: applied.
	expect(t, f.must(&ApplyPaymentEvent{EventID: "evt_f", IntentID: "pay_1", ProviderRef: "pi_f", Outcome: OutcomeFailed}), "result", "failed", "intent.status", "failed")
	expect(t, f.must(payEvent("evt_ok", "pay_1", 20_000000)), "result", "applied", "intent.status", "succeeded")
	expect(t, f.acct(acct), "plan", "pro")
	f.fails(&ApplyPaymentEvent{EventID: "evt_bad", IntentID: "pay_1", Outcome: "refunded"}, ErrInvalid)
	f.fails(&ApplyPaymentEvent{IntentID: "pay_1", Outcome: OutcomeSucceeded}, ErrInvalid)
}

// rule PAY2, S3: an upgrade's amount is ChangePlan's proration to the
// cent, and paying it changes the plan as ChangePlan does; paid after the
// cycle rolled, it is an anomaly (PAY4).
func TestPAY2_UpgradeProration(t *testing.T) {
	f := newFixture(t)
	card, _ := f.account()
	manual, _ := f.account()
	f.must(&CreatePaymentIntent{ID: "pay_s", AccountID: card, Kind: IntentSubscribe, Plan: "pro"})
	f.must(payEvent("evt_s", "pay_s", 20_000000))
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: manual, Plan: "pro"})
	// 17 days, 3 h, 7 min and 11 s later: an amount that rounds.
	f.advance(17*24*time.Hour + 3*time.Hour + 7*time.Minute + 11*time.Second)
	pi := f.must(&CreatePaymentIntent{ID: "pay_u", AccountID: card, Kind: IntentUpgrade, Plan: "ultra"})
	ch := f.must(&ChangePlan{Idem: f.idem("c"), AccountID: manual, Plan: "ultra"})
	expect(t, pi, "amount_usd", get(ch, "charged_usd"), "plan", "ultra")
	// $180 × 1,111,969 s left / 2,592,000 s = $77.220069… → $77.22.
	expect(t, ch, "charged_usd", "77.22")
	f.must(payEvent("evt_u", "pay_u", 77_220000))
	if a, b := f.acct(card), f.acct(manual); !reflect.DeepEqual(a["subscription"], b["subscription"]) {
		t.Errorf("card %v, manual %v", a["subscription"], b["subscription"])
	}
	expect(t, f.acct(card), "plan", "ultra", "subscription.paid_usd", "97.22")

	// An upgrade paid once the cycle rolled was priced for a cycle gone:
	// the money is an anomaly, the plan unchanged.
	late, _ := f.account()
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: late, Plan: "pro"})
	f.must(&CreatePaymentIntent{ID: "pay_late", AccountID: late, Kind: IntentUpgrade, Plan: "max"})
	f.now = time.Date(2026, 5, 19, 0, 0, 0, 0, time.UTC).UnixNano()
	v := f.must(payEvent("evt_late", "pay_late", 80_000000))
	expect(t, v, "result", "anomaly", "anomaly.reason", "not_applicable", "intent.status", "anomaly", "intent.anomaly", "not_applicable")
	expect(t, f.acct(late), "plan", "pro", "subscription.cycle_start", "2026-05-18T03:07:11Z")
	// A second payment of it is still an anomaly, not an upgrade.
	expect(t, f.must(payEvent("evt_late2", "pay_late", 80_000000)), "result", "anomaly", "anomaly.reason", "already_paid")
}

// rule PAY6: a card-paid cycle's refund is split over its card payments;
// the provider's refunds are recorded once each, and its refund events
// move the refund through R3's statuses once per event id.
func TestPAY6_CardRefund(t *testing.T) {
	f := newFixture(t)
	for _, status := range []string{RefundSucceeded, RefundFailed, RefundCanceled} {
		acct, key := f.account()
		s, u := f.id("pay_s"), f.id("pay_u")
		f.must(&CreatePaymentIntent{ID: s, AccountID: acct, Kind: IntentSubscribe, Plan: "pro"})
		f.must(payEvent(f.id("evt"), s, 20_000000))
		f.advance(12 * time.Hour)
		f.charge(acct, key, 100, BillingSubscription) // 100 Flows: $3.283
		f.must(&CreatePaymentIntent{ID: u, AccountID: acct, Kind: IntentUpgrade, Plan: "max"})
		// $80 × (30 d − 12 h) / 30 d = $78.666… → $78.67.
		f.must(payEvent(f.id("evt"), u, 78_670000))
		rid := f.id("rf")
		f.must(&RefundSubmit{Idem: f.idem("r"), AccountID: acct, RefundID: rid})
		parts, err := f.l.RefundParts(rid)
		// refundable = 98.67 − 3.283 = 95.387 → 95.39; fee 4.77; final 90.62:
		// all of the subscribe's 20, then 70.62 of the upgrade.
		if err != nil || len(parts) != 2 || parts[0].IntentID != s || parts[0].AmountUSD != 20_000000 ||
			parts[1].IntentID != u || parts[1].AmountUSD != 70_620000 || parts[0].PaymentRef == "" {
			t.Fatalf("parts %+v %v", parts, err)
		}
		for _, ref := range []string{"re_1", "re_2", "re_1"} {
			f.must(&SetRefundRef{RefundID: rid, ProviderRef: ref})
		}
		v, _ := f.l.Refund(rid)
		if !reflect.DeepEqual(v.ProviderRefs, []string{"re_1", "re_2"}) || v.FinalUSD != 90_620000 {
			t.Fatalf("refund %+v", v)
		}
		ev := &RefundStatus{Idem: Idem{IdemKey: EventIdemKey(f.id("evt")), Fingerprint: status}, RefundID: rid, Status: status}
		first := f.do(ev)
		expect(t, asMap(t, first.Value), "status", status, "provider_refs", "[re_1 re_2]")
		f.advance(time.Minute)
		if again := f.do(ev); again.Err != nil || string(again.Value.(json.RawMessage)) != mustJSONString(t, first.Value) {
			t.Fatalf("replay: %v %v", again.Value, again.Err)
		}
		// Another event for the settled refund is refused, under its own key.
		f.fails(&RefundStatus{Idem: Idem{IdemKey: EventIdemKey(f.id("evt")), Fingerprint: "x"}, RefundID: rid, Status: RefundSucceeded}, ErrConflict)
		want := "free"
		if status != RefundSucceeded {
			want = "max"
		}
		expect(t, f.acct(acct), "plan", want)
	}
	f.fails(&SetRefundRef{RefundID: "rf_none", ProviderRef: "re_1"}, ErrNotFound)
	if _, err := f.l.RefundParts("rf_none"); err == nil {
		t.Fatal("parts of no refund")
	}
}

func mustJSONString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// at is a time in May 2026, UTC.
func may(day, hour int) int64 { return time.Date(2026, 5, day, hour, 0, 0, 0, time.UTC).UnixNano() }

// cardSubscriber subscribes a new account to pro by card at f.now.
func (f *fixture) cardSubscriber() string {
	f.t.Helper()
	acct, _ := f.account()
	id := f.id("pay_s")
	f.must(&CreatePaymentIntent{ID: id, AccountID: acct, Kind: IntentSubscribe, Plan: "pro"})
	f.must(payEvent(f.id("evt"), id, 20_000000))
	return acct
}

func (f *fixture) renewalsDue() []string {
	var ids []string
	for _, v := range f.l.RenewalsDue(f.now) {
		ids = append(ids, v.AccountID+"@"+*v.NextAttemptAt)
	}
	return ids
}

// rule PAY5: at a card subscription's cycle end the due queue asks for
// the renewal; paid, it renews exactly as S5 renews a manual one.
func TestPAY5_RenewalPaid(t *testing.T) {
	f := newFixture(t)
	card := f.cardSubscriber()
	manual, _ := f.account()
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: manual, Plan: "pro"})
	f.now = may(1, 0) - 1
	if f.l.NextDue(f.now) {
		t.Fatal("due before the cycle end")
	}
	f.now = may(1, 0)
	if !f.l.NextDue(f.now) {
		t.Fatal("not due at the cycle end")
	}
	expect(t, f.must(&Tick{}), "settled", "2")
	due := f.l.RenewalsDue(f.now)
	if len(due) != 1 {
		t.Fatalf("due %+v", due)
	}
	r := asMap(t, due[0])
	expect(t, r, "account_id", card, "kind", "renewal", "plan", "pro", "amount_usd", "20", "status", "pending", "customer", "cus_1",
		"payment_method", "pm_1", "created_at", "2026-05-01T00:00:00Z", "next_attempt_at", "2026-05-01T00:00:00Z", "attempts", "0")
	// Unpaid so far: the plan is kept, the cycle has started, nothing paid.
	expect(t, f.acct(card), "plan", "pro", "subscription.status", "active", "subscription.cycle_start", "2026-05-01T00:00:00Z",
		"subscription.paid_usd", "0")
	f.now = may(1, 0) + int64(40*time.Second)
	ev := payEvent("evt_ren", due[0].ID, 20_000000)
	expect(t, f.must(ev), "result", "applied", "intent.status", "succeeded")
	if a, b := f.acct(card), f.acct(manual); !reflect.DeepEqual(a["subscription"], b["subscription"]) {
		t.Errorf("card %v, manual %v", a["subscription"], b["subscription"])
	}
	bill := f.billingOf(card)
	want := `[{"id":"pay_` + card + `_0","type":"subscribe","plan":"pro","amount_usd":20,"status":"succeeded","at":"2026-04-01T00:00:00Z","refund_id":null},` +
		`{"id":"pay_` + card + `_1","type":"renewal","plan":"pro","amount_usd":20,"status":"succeeded","at":"2026-05-01T00:00:00Z","refund_id":null}]`
	if bill != want {
		t.Errorf("billing %s\nwant    %s", bill, want)
	}
	if len(f.renewalsDue()) != 0 {
		t.Errorf("still due: %v", f.renewalsDue())
	}
	// Paid twice: an anomaly, not a second renewal.
	expect(t, f.must(payEvent("evt_ren2", due[0].ID, 20_000000)), "result", "anomaly", "anomaly.reason", "already_paid")
	if f.billingOf(card) != want {
		t.Errorf("billing after a second payment: %s", f.billingOf(card))
	}
	// An upgrade may be paid again once the renewal is.
	f.must(&CreatePaymentIntent{ID: "pay_up", AccountID: card, Kind: IntentUpgrade, Plan: "max"})
}

// rule PAY5: a failed renewal is past due and retried 1, 3 and 5 days
// after the cycle end; the fourth failure drops it to Free, and so does
// the deadline, 7 days after the cycle end, when no outcome came; a retry
// that pays renews it.
func TestPAY5_RenewalFailed(t *testing.T) {
	f := newFixture(t)
	failing, silent, late := f.cardSubscriber(), f.cardSubscriber(), f.cardSubscriber()
	f.now = may(1, 0)
	f.must(&Tick{})
	ren := map[string]string{}
	for _, v := range f.l.RenewalsDue(f.now) {
		ren[v.AccountID] = v.ID
	}
	if len(ren) != 3 {
		t.Fatalf("renewals %v", ren)
	}
	fail := func(acct string) map[string]any {
		return f.must(&ApplyPaymentEvent{EventID: f.id("evt"), IntentID: ren[acct], ProviderRef: f.id("pi"), Outcome: OutcomeFailed})
	}
	f.now = may(1, 0) + int64(time.Minute)
	for _, acct := range []string{failing, silent, late} {
		expect(t, fail(acct), "result", "failed", "intent.attempts", "1", "intent.next_attempt_at", "2026-05-02T00:00:00Z", "intent.status", "failed")
		expect(t, f.acct(acct), "plan", "pro", "subscription.status", "past_due", "subscription.past_due_until", "2026-05-08T00:00:00Z")
	}
	// A failure before the retry is due repeats the one counted.
	f.now = may(1, 12)
	expect(t, fail(failing), "result", "ignored", "intent.attempts", "1")
	if got := f.renewalsDue(); len(got) != 0 {
		t.Fatalf("due before the retry: %v", got)
	}
	for i, next := range []string{"2026-05-04T00:00:00Z", "2026-05-06T00:00:00Z"} {
		f.now = may([]int{2, 4}[i], 0)
		// Every renewal without a newer outcome is due: the other two
		// since May 2.
		if got := f.renewalsDue(); len(got) != 3 || !slices.Contains(got, failing+"@"+rfc3339(f.now)) {
			t.Fatalf("due at %s: %v", rfc3339(f.now), got)
		}
		f.now += int64(time.Minute)
		expect(t, fail(failing), "result", "failed", "intent.next_attempt_at", next)
	}
	// late's retry on May 4 pays: renewed, dated at the cycle end.
	expect(t, f.must(payEvent("evt_late", ren[late], 20_000000)), "result", "applied")
	expect(t, f.acct(late), "plan", "pro", "subscription.status", "active", "subscription.paid_usd", "20", "subscription.cycle_end", "2026-06-01T00:00:00Z")
	// The fourth failure, on May 6: Free.
	f.now = may(6, 0) + int64(time.Minute)
	expect(t, fail(failing), "result", "failed", "intent.status", "failed", "intent.settled_at", "2026-05-06T00:01:00Z")
	expect(t, f.acct(failing), "plan", "free", "subscription.status", "active")
	// silent had no outcome since May 1: Free at the deadline, by the due
	// queue.
	f.now = may(8, 0) - 1
	if f.l.NextDue(f.now) {
		t.Fatal("due before the deadline")
	}
	expect(t, f.acct(silent), "plan", "pro")
	f.now = may(8, 0)
	if !f.l.NextDue(f.now) {
		t.Fatal("the deadline is not due")
	}
	expect(t, f.must(&Tick{}), "settled", "1")
	expect(t, f.acct(silent), "plan", "free")
	// Paid after the lapse: an anomaly, for the operator to refund.
	expect(t, f.must(payEvent("evt_silent", ren[silent], 20_000000)), "result", "anomaly", "anomaly.reason", "not_applicable")
	expect(t, f.acct(silent), "plan", "free")
	if got := f.renewalsDue(); len(got) != 0 {
		t.Fatalf("due after all: %v", got)
	}
}
