package ledger

import (
	"encoding/json"
	"testing"
	"time"
)

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rule B4: a plan request is recorded pending, checked but not applied;
// a retry answers it again, and an account holds at most
// MaxPendingPlanRequests pending.
func TestB4_RequestPlanChange(t *testing.T) {
	f := newFixture(t)
	acct, _ := f.account()
	req := &RequestPlanChange{ID: "pr1", AccountID: acct, Action: ActionSubscribe, Plan: "pro"}
	v := f.do(req).Value.(PlanRequestView)
	want := `{"id":"pr1","account_id":"` + acct + `","action":"subscribe","plan":"pro","status":"pending","requested_at":"2026-04-01T00:00:00Z","decided_at":null}`
	if got := jsonOf(t, v); got != want {
		t.Fatalf("request answered %s, want %s", got, want)
	}
	expect(t, f.acct(acct), "plan", "free")
	f.advance(time.Second)
	if again := f.do(req).Value.(PlanRequestView); jsonOf(t, again) != want {
		t.Fatalf("a retry answered %s", jsonOf(t, again))
	}
	for _, c := range []struct {
		cmd  *RequestPlanChange
		want error
	}{
		{&RequestPlanChange{ID: "pr1", AccountID: acct, Action: ActionSubscribe, Plan: "max"}, ErrConflict},
		{&RequestPlanChange{ID: "pr2", AccountID: acct, Action: "upgrade", Plan: "max"}, ErrInvalid},
		{&RequestPlanChange{ID: "pr2", AccountID: acct, Action: ActionChange, Plan: "gold"}, ErrNotFound},
		{&RequestPlanChange{ID: "pr2", AccountID: acct, Action: ActionCancel, Plan: "pro"}, ErrInvalid},
		{&RequestPlanChange{ID: "pr2", AccountID: "nobody", Action: ActionCancel}, ErrNotFound},
		{&RequestPlanChange{ID: "", AccountID: acct, Action: ActionCancel}, ErrInvalid},
	} {
		f.fails(c.cmd, c.want)
	}
	for i := 2; i <= MaxPendingPlanRequests; i++ {
		f.must(&RequestPlanChange{ID: f.id("pr-"), AccountID: acct, Action: ActionCancel})
	}
	f.fails(&RequestPlanChange{ID: "pr-last", AccountID: acct, Action: ActionCancel}, ErrConflict)
	list, err := f.l.PlanRequests(acct, PlanRequestPending)
	if err != nil || len(list) != MaxPendingPlanRequests || list[0].ID != "pr1" {
		t.Fatalf("pending: %+v %v", list, err)
	}
}

// rule B4: confirming applies the request through Subscribe, ChangePlan or
// Cancel in the same step, once: a retry with its idempotency key answers
// the first result and charges nothing more; a refused confirm leaves it
// pending, to be rejected.
func TestB4_DecidePlanRequest(t *testing.T) {
	f := newFixture(t)
	acct, _ := f.account()
	f.must(&RequestPlanChange{ID: "sub", AccountID: acct, Action: ActionSubscribe, Plan: "pro"})
	f.must(&RequestPlanChange{ID: "sub2", AccountID: acct, Action: ActionSubscribe, Plan: "max"})
	f.advance(time.Minute)
	confirm := &DecidePlanRequest{Idem: Idem{IdemKey: "planreq-sub-confirm", Fingerprint: "confirm"}, ID: "sub", Confirm: true}
	first := f.do(confirm)
	if first.Err != nil || first.Value.(PlanRequestView).Status != PlanRequestConfirmed || *first.Value.(PlanRequestView).DecidedAt != "2026-04-01T00:01:00Z" {
		t.Fatalf("confirm: %+v", first)
	}
	expect(t, f.acct(acct), "plan", "pro", "subscription.cycle_start", "2026-04-01T00:01:00Z", "subscription.paid_usd", "20")
	f.advance(time.Minute)
	if again := f.do(confirm); again.Err != nil || string(again.Value.(json.RawMessage)) != jsonOf(t, first.Value) {
		t.Fatalf("a retried confirm answered %+v", again)
	}
	f.fails(&DecidePlanRequest{Idem: Idem{IdemKey: "other", Fingerprint: "confirm"}, ID: "sub", Confirm: true}, ErrConflict)
	if n := len(f.l.payments[acct]); n != 1 {
		t.Fatalf("%d payments, want 1", n)
	}
	// Subscribing again is refused (S1): the request stays pending.
	f.fails(&DecidePlanRequest{Idem: Idem{IdemKey: "k2", Fingerprint: "confirm"}, ID: "sub2", Confirm: true}, ErrConflict)
	if l, _ := f.l.PlanRequests(acct, PlanRequestPending); len(l) != 1 || l[0].ID != "sub2" {
		t.Fatalf("pending after a refused confirm: %+v", l)
	}
	if v := f.do(&DecidePlanRequest{Idem: Idem{IdemKey: "k3", Fingerprint: "reject"}, ID: "sub2"}); v.Err != nil || v.Value.(PlanRequestView).Status != PlanRequestRejected {
		t.Fatalf("reject: %+v", v)
	}
	expect(t, f.acct(acct), "plan", "pro")
	// A change is an upgrade (S3) and a cancel ends the cycle (S5).
	f.must(&RequestPlanChange{ID: "up", AccountID: acct, Action: ActionChange, Plan: "max"})
	f.must(&DecidePlanRequest{Idem: Idem{IdemKey: "k4", Fingerprint: "confirm"}, ID: "up", Confirm: true})
	expect(t, f.acct(acct), "plan", "max")
	f.must(&RequestPlanChange{ID: "end", AccountID: acct, Action: ActionCancel})
	f.must(&DecidePlanRequest{Idem: Idem{IdemKey: "k5", Fingerprint: "confirm"}, ID: "end", Confirm: true})
	expect(t, f.acct(acct), "subscription.status", "canceled")
	f.fails(&DecidePlanRequest{Idem: Idem{IdemKey: "k6", Fingerprint: "confirm"}, ID: "nope", Confirm: true}, ErrNotFound)

	all, _ := f.l.PlanRequests("", "")
	confirmed, _ := f.l.PlanRequests("", PlanRequestConfirmed)
	if len(all) != 4 || len(confirmed) != 3 || all[0].ID != "sub" || all[1].ID != "sub2" {
		t.Fatalf("all %+v, confirmed %+v", all, confirmed)
	}
	if _, err := f.l.PlanRequests("", "done"); err == nil {
		t.Fatal("an unknown status was accepted")
	}
	if _, err := f.l.PlanRequests("nobody", ""); err == nil {
		t.Fatal("an unknown account was accepted")
	}
}

// rules B4, C4: a decided plan request is removed 90 days after its
// decision, to the nanosecond; a pending one stays.
func TestB4_DecidedPlanRequestsRemoved(t *testing.T) {
	f := newFixture(t)
	acct, _ := f.account()
	f.must(&RequestPlanChange{ID: "a", AccountID: acct, Action: ActionSubscribe, Plan: "pro"})
	f.must(&RequestPlanChange{ID: "b", AccountID: acct, Action: ActionSubscribe, Plan: "max"})
	decided := f.now
	f.must(&DecidePlanRequest{Idem: Idem{IdemKey: "k", Fingerprint: "reject"}, ID: "a"})
	w := memWriter{}
	_ = f.l.Flush(w)
	f.now = decided + planRequestKeep - 1
	f.must(&Tick{})
	if len(f.l.planReqs) != 2 {
		t.Fatal("removed early")
	}
	loaded, err := Load(w.scan, w)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []*Ledger{f.l, loaded} {
		l.Apply(&Tick{}, decided+planRequestKeep)
		if got, _ := l.PlanRequests("", ""); len(got) != 1 || got[0].ID != "b" {
			t.Fatalf("after 90 days: %+v", got)
		}
	}
	_ = f.l.Flush(w)
	if len(w.keysWith("preq/")) != 1 {
		t.Fatalf("stored: %v", w.keysWith("preq/"))
	}
}

// rule B5: the billing history lists payments, upgrades, renewals, top-ups
// and refunds in time order, each with its amount and status; a refund
// shows from its submit, its status following it.
func TestB5_Billing(t *testing.T) {
	f := newFixture(t)
	acct, _ := f.account()
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "pro"})
	f.advance(15 * 24 * time.Hour)
	f.must(&ChangePlan{Idem: f.idem("c"), AccountID: acct, Plan: "max"}) // $40 (S3)
	f.now = time.Date(2026, 5, 1, 0, 0, 1, 0, time.UTC).UnixNano()
	f.must(&TopUp{Idem: f.idem("t"), AccountID: acct, MicroUSD: 10_000000}) // before the renewal is settled
	f.must(&Tick{})
	b, err := f.l.Billing(acct)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"id":"pay_` + acct + `_0","type":"subscribe","plan":"pro","amount_usd":20,"status":"succeeded","at":"2026-04-01T00:00:00Z","refund_id":null},` +
		`{"id":"pay_` + acct + `_1","type":"upgrade","plan":"max","amount_usd":40,"status":"succeeded","at":"2026-04-16T00:00:00Z","refund_id":null},` +
		`{"id":"pay_` + acct + `_3","type":"renewal","plan":"max","amount_usd":100,"status":"succeeded","at":"2026-05-01T00:00:00Z","refund_id":null},` +
		`{"id":"pay_` + acct + `_2","type":"topup","plan":null,"amount_usd":10,"status":"succeeded","at":"2026-05-01T00:00:01Z","refund_id":null}]`
	if got := jsonOf(t, b); got != want {
		t.Fatalf("billing\n got %s\nwant %s", got, want)
	}

	g := newFixture(t)
	other, key := g.account()
	g.must(&Subscribe{Idem: g.idem("s"), AccountID: other, Plan: "pro"})
	g.advance(time.Hour)
	g.charge(other, key, 100, BillingSubscription) // $3.283 of usage (R2)
	g.must(&RefundSubmit{Idem: g.idem("r"), AccountID: other, RefundID: "rf1"})
	refund := func(status, amount string) {
		t.Helper()
		b, _ := g.l.Billing(other)
		want := `{"id":"pay_` + other + `_1","type":"refund","plan":"pro","amount_usd":` + amount + `,"status":"` + status + `","at":"2026-04-01T01:00:00Z","refund_id":"rf1"}`
		if len(b) != 2 || jsonOf(t, b[1]) != want {
			t.Fatalf("billing %s\nwant the refund %s", jsonOf(t, b), want)
		}
	}
	refund("processing", "-15.88")
	g.advance(time.Hour)
	g.must(&RefundStatus{Idem: g.idem("rs"), RefundID: "rf1", Status: RefundSucceeded})
	refund("succeeded", "-15.88")
	// A refund submitted before submits were recorded shows from the line
	// its success wrote.
	g.l.payments[other] = append(g.l.payments[other][:1], g.l.payments[other][2:]...)
	b, _ = g.l.Billing(other)
	if want := `{"id":"pay_` + other + `_2","type":"refund","plan":"pro","amount_usd":-15.88,"status":"succeeded","at":"2026-04-01T02:00:00Z","refund_id":"rf1"}`; len(b) != 2 || jsonOf(t, b[1]) != want {
		t.Fatalf("billing %s\nwant the refund %s", jsonOf(t, b), want)
	}
	if _, err := g.l.Billing("nobody"); err == nil {
		t.Fatal("an unknown account has a billing history")
	}
}
