package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// rule M1: decimals enter and leave exactly; rounding is half-up once.
func TestM1_Units(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"914.443", 914_443000, false}, {"0.1", 100000, false}, {"-0.03", -30000, false},
		{"1.0000001", 0, true}, {"1e3", 0, true}, {".5", 0, true}, {"5.", 0, true}, {"", 0, true},
		{"99999999999999999999", 0, true}, {"12a", 0, true},
	} {
		got, err := ParseDecimal(c.in, 6, maxMicroUSD)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseDecimal(%q) = %d, %v", c.in, got, err)
		}
	}
	for _, c := range []struct {
		v    int64
		want string
	}{{40_000000, "40"}, {5_440000, "5.44"}, {-1, "-0.000001"}, {0, "0"}, {914_443000, "914.443"}} {
		if got := Decimal(c.v, 6); got != c.want {
			t.Errorf("Decimal(%d) = %s, want %s", c.v, got, c.want)
		}
	}
	if got := roundToCent(5_435000); got != 5_440000 {
		t.Errorf("half-up to cent: %d", got)
	}
	if got := roundToCent(5_434999); got != 5_430000 {
		t.Errorf("below half: %d", got)
	}
}

// rule M2 and M4: API value and Flows for a request with every token kind.
func TestM2_APIValueAndFlows(t *testing.T) {
	m := DefaultModels()[0]
	c := &Charge{InputTokens: 1000, OutputTokens: 500, CacheReadTokens: 200, CacheWriteTokens: 100}
	// 1000×$1 + 500×$4 + 200×$0.10 + 100×$1.25 per million = $0.003145.
	p := PriceOf(&m, c, DefaultNanoUSDPerFlow, micro)
	if p.MicroUSD != 3145 || p.MicroFlows != 95797 {
		t.Fatalf("standard: %+v, want 3145 µUSD and 95797 µFlows (0.003145/0.03283 rounded half-up)", p)
	}
	m.ImageMicroUSD, m.RequestMicroUSD = 40000, 1000 // $0.04 per image, $0.001 per request
	c2 := &Charge{Images: 2}
	if p := PriceOf(&m, c2, DefaultNanoUSDPerFlow, micro); p.MicroUSD != 81000 {
		t.Fatalf("images + request overhead: %+v, want 81000 µUSD", p)
	}
}

// rule M4: Insider and abuse multipliers change the Flows a request costs.
func TestM4_FlowValueMultipliers(t *testing.T) {
	m := DefaultModels()[0]
	c := &Charge{InputTokens: 1000, OutputTokens: 500, CacheReadTokens: 200, CacheWriteTokens: 100}
	if p := PriceOf(&m, c, DefaultNanoUSDPerFlow, 1_500000); p.MicroFlows != 63864 {
		t.Errorf("insider 1.5x: %d µFlows, want 63864", p.MicroFlows)
	}
	if p := PriceOf(&m, c, DefaultNanoUSDPerFlow, 500000); p.MicroFlows != 191593 {
		t.Errorf("abuse 0.5x: %d µFlows, want 191593", p.MicroFlows)
	}

	f := newFixture(t)
	acct, key := f.account()
	f.must(&SetFlowValue{AccountID: acct, Tier: TierInsider, MultiplierPPM: 2_000000})
	if r := f.charge(acct, key, 3, BillingSubscription); r.MicroFlows != 1_500000 {
		t.Errorf("insider 2x charged %d µFlows for a 3-Flow request, want 1500000", r.MicroFlows)
	}
	f.fails(&SetFlowValue{AccountID: acct, Tier: TierInsider, MultiplierPPM: 900000}, ErrInvalid)
	f.fails(&SetFlowValue{AccountID: acct, Tier: TierAbuse, MultiplierPPM: 1_100000}, ErrInvalid)
	f.fails(&SetFlowValue{AccountID: acct, Tier: TierStandard, MultiplierPPM: 2_000000}, ErrInvalid)
	f.fails(&SetFlowValue{AccountID: acct, Tier: "gold", MultiplierPPM: micro}, ErrInvalid)

	// A break in the subscription resets an Insider to standard.
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "pro"})
	f.must(&Cancel{AccountID: acct})
	f.advance(31 * 24 * time.Hour)
	f.must(&Tick{})
	expect(t, f.acct(acct), "plan", "free", "flow_value.tier", "standard", "flow_value.multiplier", "1")
}

// rule M3: a request is priced at the rate in force when it was admitted.
func TestM3_RateHistory(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	admitted := f.now
	f.advance(time.Minute)
	v := f.must(&SetRate{NanoUSDPerFlow: 65_660000})
	expect(t, v, "usd_per_flow", "0.06566")
	if h := v["history"].([]any); len(h) != 2 {
		t.Fatalf("history has %d entries, want 2", len(h))
	}
	c := Charge{ReqID: "r-old", AccountID: acct, KeyID: f.keyID(key), Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: admitted, InputTokens: 2 * oneFlowInput}
	res := f.do(&ChargeBatch{Charges: []Charge{c}}).Value.([]ChargeResult)[0]
	if res.MicroFlows != 2_000000 {
		t.Errorf("admitted before the change: %d µFlows, want 2000000", res.MicroFlows)
	}
	c.ReqID, c.AdmittedAt = "r-new", f.now
	res = f.do(&ChargeBatch{Charges: []Charge{c}}).Value.([]ChargeResult)[0]
	if res.MicroFlows != 1_000000 {
		t.Errorf("admitted after the change: %d µFlows, want 1000000", res.MicroFlows)
	}
	f.fails(&SetRate{NanoUSDPerFlow: 0}, ErrInvalid)
	f.fails(&SetRate{NanoUSDPerFlow: MaxNanoUSDPerFlow + 1}, ErrInvalid)
}

// rule P1 and P2: the default plans and the figures derived from the rate.
func TestP1P2_PlansAndDerivedFigures(t *testing.T) {
	f := newFixture(t)
	want := map[string][2]string{"free": {"5.44", "null"}, "pro": {"30.02", "1.5"}, "max": {"180.13", "1.8"}, "ultra": {"480.34", "2.4"}}
	plans := f.l.Plans()
	if len(plans) != 4 {
		t.Fatalf("%d plans", len(plans))
	}
	for _, p := range plans {
		m := asMap(t, p)
		expect(t, m, "usd_equivalent", want[p.ID][0], "value_multiplier", want[p.ID][1], "rpm", "10", "burst", "15")
	}
	expect(t, asMap(t, plans[1]), "id", "pro", "price_usd", "20", "window_5h_flows", "50", "weekly_flows", "213.37", "monthly_flows", "914.443")
	if b, _ := Hundredths(150).MarshalJSON(); string(b) != "1.5" {
		t.Errorf("1.50x renders %s", b)
	}
}

// rule P3: a model outside the plan is refused; Doubao slugs alias.
func TestP3_ModelAccess(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	f.must(&PutModel{Model: Model{ID: "openai/gpt-5.4-pro", Provider: "openai", Upstream: "gpt-5.4-pro", InputMicroUSDPerMTok: 15_000000, Plans: []string{"max", "ultra"}}})
	f.must(&PutModel{Model: Model{ID: "volcengine/doubao-seed-1.8", Provider: "volc", Upstream: "doubao", Plans: []string{"free", "pro", "max", "ultra"}}})
	if _, err := f.l.Admit(key, "openai/gpt-5.4-pro", f.now); !errors.Is(err, ErrModelNotInPlan) {
		t.Errorf("free calling a Max model: %v", err)
	}
	if _, err := f.l.Admit(key, "nope/model", f.now); !errors.Is(err, ErrModelNotFound) {
		t.Errorf("unknown model: %v", err)
	}
	ad, err := f.l.Admit(key, "bytedance/doubao-seed-1.8", f.now)
	if err != nil || ad.Model.ID != "volcengine/doubao-seed-1.8" {
		t.Errorf("alias: %v %v", ad.Model.ID, err)
	}
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "max"})
	if _, err := f.l.Admit(key, "openai/gpt-5.4-pro", f.now); err != nil {
		t.Errorf("max calling a Max model: %v", err)
	}
	f.fails(&PutModel{Model: Model{ID: "x/y", Provider: "p", Upstream: "u", Plans: []string{"platinum"}}}, ErrNotFound)
	f.fails(&PutModel{Model: Model{ID: "noslash", Provider: "p", Upstream: "u", Plans: []string{"pro"}}}, ErrInvalid)
}

// rule M5: an unpriced model is never served free: admission refuses it
// on a subscription and a pay-as-you-go key alike (after the plan check),
// the key's model list and the public pricing leave it out, and it cannot
// carry a price while marked unpriced.
func TestM5_UnpricedNeverServedFree(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	payg := f.key(acct, KindPayg)
	f.must(&PutModel{Model: Model{ID: "acme/unpriced", Name: "Acme Unpriced", Modality: "text", Unpriced: true, Plans: []string{"free"}}})
	f.must(&PutModel{Model: Model{ID: "acme/max-only", Unpriced: true, Plans: []string{"max"}}})
	for _, k := range [][32]byte{key, payg} {
		_, err := f.l.Admit(k, "acme/unpriced", f.now)
		if !errors.Is(err, ErrModelUnpriced) || err.Error() != "model_unpriced: acme/unpriced" {
			t.Errorf("unpriced model admitted: %v", err)
		}
	}
	if _, err := f.l.Admit(key, "acme/max-only", f.now); !errors.Is(err, ErrModelNotInPlan) {
		t.Errorf("unpriced model outside the plan: %v, want model_not_in_plan", err)
	}
	for _, k := range [][32]byte{key, payg} {
		list, ok := f.l.ModelsFor(k, f.now)
		if !ok || len(list) != 1 || list[0] != (CatalogEntry{ID: EchoModelID, Name: EchoModelID, Provider: "echo"}) {
			t.Errorf("models for key: %v %v", list, ok)
		}
	}
	b, _ := json.Marshal(f.l.Pricing(nil))
	if strings.Contains(string(b), "acme/") || !strings.Contains(string(b), `"models":[{"id":"zenmux/echo","name":"zenmux/echo","input_usd_per_mtok":1,`) {
		t.Errorf("pricing %s", b)
	}
	f.fails(&PutModel{Model: Model{ID: "acme/half", Unpriced: true, OutputMicroUSDPerMTok: 1, Plans: []string{"free"}}}, ErrInvalid)
	f.must(&PutModel{Model: Model{ID: "acme/unpriced", Name: "Acme Unpriced", Plans: []string{"free"}}})
	if _, err := f.l.Admit(key, "acme/unpriced", f.now); err != nil {
		t.Errorf("priced at zero on purpose: %v", err)
	}
}

// rule Q1: the 5 h window starts at the first request and resets 5 h later.
func TestQ1_FiveHourWindow(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	expect(t, f.usage(acct), "window_5h.started_at", "null", "window_5h.used_flows", "0", "window_5h.limit_flows", "5")
	f.advance(10 * time.Minute)
	start := f.now
	f.charge(acct, key, 2, BillingSubscription)
	f.advance(4*time.Hour + 59*time.Minute)
	f.charge(acct, key, 1, BillingSubscription)
	u := f.usage(acct)
	expect(t, u, "window_5h.used_flows", "3", "window_5h.remaining_flows", "2",
		"window_5h.started_at", rfc3339(start), "window_5h.resets_at", rfc3339(start+window5h))
	f.now = start + window5h // [started_at, resets_at): over at resets_at
	expect(t, f.usage(acct), "window_5h.used_flows", "0", "window_5h.started_at", "null", "weekly.used_flows", "3")
	f.advance(time.Hour)
	second := f.now
	f.charge(acct, key, 1, BillingSubscription)
	expect(t, f.usage(acct), "window_5h.used_flows", "1", "window_5h.started_at", rfc3339(second), "weekly.used_flows", "4")
}

// rule Q2: the weekly window, the same with 7 days.
func TestQ2_WeeklyWindow(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	start := f.now
	f.charge(acct, key, 4, BillingSubscription)
	f.advance(6 * 24 * time.Hour)
	f.charge(acct, key, 4, BillingSubscription)
	expect(t, f.usage(acct), "weekly.used_flows", "8", "weekly.resets_at", rfc3339(start+windowWeekly), "weekly.limit_flows", "38.64")
	f.now = start + windowWeekly
	expect(t, f.usage(acct), "weekly.used_flows", "0", "weekly.started_at", "null", "monthly.used_flows", "8")
}

// rule Q3: the monthly max runs per billing cycle; on Free, monthly from
// the account's creation.
func TestQ3_Monthly(t *testing.T) {
	f := newFixtureAt(t, time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC).UnixNano())
	acct, key := f.account()
	f.charge(acct, key, 3, BillingSubscription)
	expect(t, f.usage(acct), "monthly.used_flows", "3", "monthly.limit_flows", "165.6",
		"monthly.started_at", "2026-01-31T12:00:00Z", "monthly.resets_at", "2026-02-28T12:00:00Z")
	f.now = time.Date(2026, 2, 28, 12, 0, 0, 0, time.UTC).UnixNano()
	expect(t, f.usage(acct), "monthly.used_flows", "0", "monthly.resets_at", "2026-03-31T12:00:00Z")
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "pro"})
	f.charge(acct, key, 2, BillingSubscription)
	expect(t, f.usage(acct), "monthly.used_flows", "2", "monthly.limit_flows", "914.443",
		"monthly.started_at", "2026-02-28T12:00:00Z", "monthly.resets_at", "2026-03-28T12:00:00Z")
}

// rule Q4: admitted while every window has remaining > 0; the request that
// crosses the limit is charged in full.
func TestQ4_AdmissionAndCrossing(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	f.charge(acct, key, 4, BillingSubscription)
	ad, err := f.l.Admit(key, EchoModelID, f.now)
	if err != nil || ad.BillingErr != nil || ad.Billing != BillingSubscription {
		t.Fatalf("1 Flow left: %+v %v", ad, err)
	}
	if r := f.charge(acct, key, 3, BillingSubscription); r.MicroFlows != 3_000000 {
		t.Fatalf("crossing request charged %d", r.MicroFlows)
	}
	expect(t, f.usage(acct), "window_5h.used_flows", "7", "window_5h.remaining_flows", "0")
	ad, _ = f.l.Admit(key, EchoModelID, f.now)
	if !errors.Is(ad.BillingErr, ErrQuotaExceeded) {
		t.Fatalf("exhausted: %v", ad.BillingErr)
	}
}

// rule Q5 and Q6: an exhausted window names itself and its reset; after
// the reset the subscription admits again with nothing to toggle.
func TestQ5Q6_ExhaustedAndSwitchBack(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	start := f.now
	f.charge(acct, key, 5, BillingSubscription)
	f.advance(2 * time.Hour)
	ad, _ := f.l.Admit(key, EchoModelID, f.now)
	var qe *QuotaError
	if !errors.As(ad.BillingErr, &qe) || qe.Window != "window_5h" || qe.ResetsAt != start+window5h || qe.RetryAfterSec != 3*3600 {
		t.Fatalf("quota error: %+v", ad.BillingErr)
	}
	f.now = start + window5h
	ad, _ = f.l.Admit(key, EchoModelID, f.now)
	if ad.BillingErr != nil || ad.Billing != BillingSubscription {
		t.Fatalf("after reset: %+v", ad)
	}
	// Weekly exhausted: 38.64 Flows.
	for i := 0; i < 8; i++ {
		f.now += window5h
		f.charge(acct, key, 5, BillingSubscription)
	}
	ad, _ = f.l.Admit(key, EchoModelID, f.now+window5h)
	if !errors.As(ad.BillingErr, &qe) || qe.Window != "weekly" {
		t.Fatalf("weekly: %+v", ad.BillingErr)
	}
}

// rules E1-E4: Extra Usage runs exhausted requests on pay-as-you-go, not in
// the windows; the balance may go below 0 by at most the last request.
func TestE_ExtraUsage(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	payg := f.key(acct, KindPayg)
	f.fails(&SetExtra{AccountID: acct, Enabled: true}, ErrInvalid)
	f.fails(&SetExtra{AccountID: acct, Enabled: true, KeyID: f.keyID(key)}, ErrInvalid)
	v := f.must(&SetExtra{AccountID: acct, Enabled: true, KeyID: f.keyID(payg)})
	expect(t, v, "enabled", "true", "payg_key.id", f.keyID(payg), "spent_usd", "0")

	f.charge(acct, key, 5, BillingSubscription)
	ad, _ := f.l.Admit(key, EchoModelID, f.now)
	var qe *QuotaError
	if !errors.As(ad.BillingErr, &qe) || !qe.BalanceEmpty {
		t.Fatalf("extra on, balance 0: %+v", ad.BillingErr)
	}
	f.must(&TopUp{Idem: f.idem("t"), AccountID: acct, MicroUSD: 50000}) // $0.05
	ad, _ = f.l.Admit(key, EchoModelID, f.now)
	if ad.BillingErr != nil || ad.Billing != BillingPayg || !ad.ViaExtra {
		t.Fatalf("extra usage: %+v", ad)
	}
	// A 1-Flow request costs $0.03283 in USD.
	c := Charge{ReqID: "x1", AccountID: acct, KeyID: f.keyID(key), Model: EchoModelID, Billing: BillingPayg, ViaExtra: true, AdmittedAt: f.now, InputTokens: oneFlowInput}
	f.do(&ChargeBatch{Charges: []Charge{c}})
	c.ReqID = "x2"
	f.do(&ChargeBatch{Charges: []Charge{c}})
	u := f.usage(acct)
	expect(t, u, "window_5h.used_flows", "5", "extra_usage.spent_usd", "0.06566")
	expect(t, f.acct(acct), "balance_usd", "-0.01566", "extra_usage.spent_usd", "0.06566")
	// The pay-as-you-go key Extra Usage billed shows its use (K4, E2).
	for _, k := range f.keysOf(acct) {
		if k["kind"] == KindPayg && k["last_used_at"] == nil {
			t.Errorf("the Extra Usage key has no last_used_at: %v", k)
		}
	}
	ad, _ = f.l.Admit(key, EchoModelID, f.now)
	if !errors.Is(ad.BillingErr, ErrQuotaExceeded) {
		t.Fatalf("balance below 0: %+v", ad.BillingErr)
	}
	ad, _ = f.l.Admit(payg, EchoModelID, f.now)
	if !errors.Is(ad.BillingErr, ErrInsufficientBalance) {
		t.Fatalf("payg key with balance ≤ 0: %+v", ad.BillingErr)
	}
	// Q6: after the reset the subscription takes over again.
	f.advance(5 * time.Hour)
	ad, _ = f.l.Admit(key, EchoModelID, f.now)
	if ad.Billing != BillingSubscription || ad.BillingErr != nil {
		t.Fatalf("switch back: %+v", ad)
	}
	f.must(&RevokeKey{KeyID: f.keyID(payg)})
	expect(t, f.acct(acct), "extra_usage.enabled", "false", "extra_usage.payg_key_id", "null")
}

// rule S2: a cycle ends one calendar month later, clamped to month end.
func TestS2_Subscribe(t *testing.T) {
	f := newFixtureAt(t, time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC).UnixNano())
	acct, _ := f.account()
	v := f.must(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "pro"})
	expect(t, v, "plan", "pro", "status", "active", "cycle_start", "2026-01-31T09:00:00Z", "cycle_end", "2026-02-28T09:00:00Z", "paid_usd", "20")
	f.fails(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "max"}, ErrConflict)
	f.fails(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "free"}, ErrInvalid)
	f.fails(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "gold"}, ErrNotFound)
	// Renewal keeps the anchor's day: Feb 28 → Mar 31.
	f.now = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	f.must(&Tick{})
	expect(t, f.acct(acct), "subscription.cycle_start", "2026-02-28T09:00:00Z", "subscription.cycle_end", "2026-03-31T09:00:00Z", "subscription.paid_usd", "20")
}

// rule S3: Pro → Max with 15 of 30 days left charges $40; the anchor stays.
func TestS3_Upgrade(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "pro"})
	f.charge(acct, key, 10, BillingSubscription)
	f.advance(15 * 24 * time.Hour)
	v := f.must(&ChangePlan{Idem: f.idem("c"), AccountID: acct, Plan: "max"})
	expect(t, v, "plan", "max", "charged_usd", "40", "subscription.cycle_end", "2026-05-01T00:00:00Z", "subscription.paid_usd", "60")
	expect(t, f.usage(acct), "weekly.used_flows", "0", "monthly.used_flows", "10", "monthly.limit_flows", "5486.659")
	if got := upgradeCharge(20_000000, 100_000000, 0, 30*86400e9, 10*86400e9); got != 53_330000 {
		t.Errorf("20 of 30 days left: %d, want $53.33", got)
	}
	if got := upgradeCharge(100_000000, 20_000000, 0, 30*86400e9, 10*86400e9); got != 0 {
		t.Errorf("not an upgrade: %d", got)
	}
}

// rule S4: a downgrade waits for the cycle end, charges nothing, and can be
// taken back.
func TestS4_Downgrade(t *testing.T) {
	f := newFixture(t)
	acct, _ := f.account()
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "max"})
	v := f.must(&ChangePlan{Idem: f.idem("c"), AccountID: acct, Plan: "pro"})
	expect(t, v, "plan", "max", "charged_usd", "0", "effective_at", "2026-05-01T00:00:00Z", "subscription.pending_plan", "pro")
	v = f.must(&ChangePlan{Idem: f.idem("c"), AccountID: acct, Plan: "max"})
	expect(t, v, "subscription.pending_plan", "null")
	f.must(&ChangePlan{Idem: f.idem("c"), AccountID: acct, Plan: "pro"})
	f.now = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	f.must(&Tick{})
	expect(t, f.acct(acct), "plan", "pro", "subscription.paid_usd", "20", "subscription.cycle_end", "2026-06-01T00:00:00Z")
}

// rule S5: the leader asks NextDue every second whether to propose a Tick.
// It must say yes whenever some paid cycle has ended — after a subscribe,
// a renewal, a refund that gave the plan back, and in a reloaded ledger —
// and may say yes once needlessly after an account left its paid plan.
func TestS5_NextDue(t *testing.T) {
	f := newFixture(t) // 2026-04-01
	dueByScan := func(l *Ledger, now int64) bool {
		for _, a := range l.accounts {
			if a.paid() && now >= a.Sub.CycleEnd {
				return true
			}
		}
		return false
	}
	check := func(when string, want bool) {
		t.Helper()
		if got := f.l.NextDue(f.now); got != want || dueByScan(f.l, f.now) != want {
			t.Fatalf("%s: NextDue %v, a scan says %v, want %v", when, got, dueByScan(f.l, f.now), want)
		}
	}
	check("no paid account", false)
	a, _ := f.account()
	b, _ := f.account()
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: a, Plan: "pro"}) // cycle ends 05-01
	f.advance(10 * 24 * time.Hour)
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: b, Plan: "pro"}) // 05-11
	check("both cycles running", false)
	f.now = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	check("a's cycle ended", true)
	f.must(&Tick{})
	check("a renewed to 06-01, b ends 05-11", false)
	f.now = time.Date(2026, 5, 11, 0, 0, 0, 0, time.UTC).UnixNano()
	check("b's cycle ended", true)
	f.must(&Tick{})
	check("both renewed", false)

	f.must(&Cancel{AccountID: a})
	f.now = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	check("a's canceled cycle ended", true)
	f.must(&Tick{}) // a falls to Free; b's cycle ends 06-11
	check("a on Free", false)

	// A refund drops x to Free before its cycle ends: NextDue still says
	// yes once, at x's old cycle end, and the Tick it proposes settles
	// nothing and makes it exact again.
	h := newFixture(t)
	x, _ := h.account()
	y, _ := h.account()
	h.must(&Subscribe{Idem: h.idem("s"), AccountID: x, Plan: "pro"}) // 05-01
	h.advance(time.Hour)
	h.must(&RefundSubmit{Idem: h.idem("r"), AccountID: x, RefundID: "rx"})
	h.advance(23 * time.Hour)
	h.must(&Subscribe{Idem: h.idem("s"), AccountID: y, Plan: "pro"}) // 05-02
	h.now = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	if !h.l.NextDue(h.now) || dueByScan(h.l, h.now) {
		t.Fatalf("after the refund: NextDue %v (want the one needless yes), scan %v", h.l.NextDue(h.now), dueByScan(h.l, h.now))
	}
	if v := h.must(&Tick{}); fmt.Sprint(v["settled"]) != "0" {
		t.Fatalf("the needless Tick settled %v", v["settled"])
	}
	if h.l.NextDue(h.now) {
		t.Fatal("after the Tick NextDue still says yes")
	}
	h.now = time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC).UnixNano()
	if !h.l.NextDue(h.now) || !dueByScan(h.l, h.now) {
		t.Fatal("y's cycle ended; NextDue says no")
	}

	// A failed refund gives c its plan back, with its cycle (to 05-01).
	g := newFixture(t)
	c, _ := g.account()
	g.must(&Subscribe{Idem: g.idem("s"), AccountID: c, Plan: "pro"})
	g.must(&RefundSubmit{Idem: g.idem("r"), AccountID: c, RefundID: "rc"})
	g.must(&Tick{}) // nothing due: the scan leaves nextDue at "none paid"
	g.must(&RefundStatus{Idem: g.idem("st"), RefundID: "rc", Status: RefundFailed})
	g.now = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	if !g.l.NextDue(g.now) {
		t.Fatal("the plan a failed refund gave back is due at its cycle end; NextDue says no")
	}

	// A reloaded ledger knows its earliest cycle end.
	w := memWriter{}
	if err := g.l.Flush(w); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(w.scan, w)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.NextDue(g.now) || loaded.NextDue(g.now-1) {
		t.Fatal("reloaded: NextDue is not exactly the earliest cycle end")
	}
}

// rule S5: renewal records a payment; a canceled subscription falls back
// to Free at cycle end.
func TestS5_RenewalAndCancel(t *testing.T) {
	f := newFixture(t)
	acct, _ := f.account()
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "pro"})
	f.now = time.Date(2026, 7, 2, 0, 0, 0, 0, time.UTC).UnixNano()
	f.must(&Tick{}) // three renewals: May, June, July
	pays := f.l.payments[acct]
	if len(pays) != 4 || pays[3].Kind != "renewal" || pays[3].MicroUSD != 20_000000 || pays[3].At != time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC).UnixNano() {
		t.Fatalf("payments: %+v", pays)
	}
	v := f.must(&Cancel{AccountID: acct})
	expect(t, v, "status", "canceled", "cycle_end", "2026-08-01T00:00:00Z")
	f.now = time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	expect(t, f.usage(acct), "plan", "free") // projected before the tick
	f.must(&Tick{})
	expect(t, f.acct(acct), "plan", "free", "subscription.status", "active")
	f.fails(&Cancel{AccountID: acct}, ErrConflict)
}

// rules R1, R2: the refund preview, its 5% fee and the 24-hour limit.
func TestR1R2_RefundPreview(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	v, _ := f.l.RefundPreview(acct, f.now)
	expect(t, asMap(t, v), "eligible", "false", "reason", "refunds are only for a paid plan")
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "pro"})
	f.charge(acct, key, 100, BillingSubscription) // 100 Flows = $3.283 of API value
	v, _ = f.l.RefundPreview(acct, f.now)
	// refundable = 20 − 3.283 = 16.717 → 16.72; fee = 5% = 0.836 → 0.84; final 15.88.
	expect(t, asMap(t, v), "eligible", "true", "total_paid_usd", "20", "usage_usd", "3.283", "already_refunded_usd", "0",
		"refundable_usd", "16.72", "fee_usd", "0.84", "final_usd", "15.88")
	f.advance(24 * time.Hour)
	v, _ = f.l.RefundPreview(acct, f.now)
	expect(t, asMap(t, v), "eligible", "false", "reason", "refunds are only possible within 24 hours of subscribing")
	f.fails(&RefundSubmit{Idem: f.idem("r"), AccountID: acct, RefundID: "rf1"}, ErrNotEligible)

	// Usage beyond the payment: nothing refundable.
	g := newFixture(t)
	acct2, key2 := g.account()
	g.must(&Subscribe{Idem: g.idem("s"), AccountID: acct2, Plan: "pro"})
	for i := 0; i < 13; i++ {
		g.charge(acct2, key2, 50, BillingSubscription)
		g.advance(5 * time.Minute)
	}
	v, _ = g.l.RefundPreview(acct2, g.now)
	expect(t, asMap(t, v), "eligible", "false", "refundable_usd", "0")
	if _, fee, final := refundFigures(20_000000, 0, 0); fee != 1_000000 || final != 19_000000 {
		t.Errorf("untouched $20: fee %d final %d", fee, final)
	}
}

// rule R3: statuses, the drop to Free, in-flight requests counted, and a
// canceled refund giving the plan back.
func TestR3_RefundStatuses(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "pro"})
	inflight := f.now + int64(time.Minute)
	f.advance(2 * time.Minute)
	v := f.must(&RefundSubmit{Idem: f.idem("r"), AccountID: acct, RefundID: "rf1"})
	expect(t, v, "status", "processing", "final_usd", "19")
	expect(t, f.acct(acct), "plan", "free")
	f.fails(&RefundSubmit{Idem: f.idem("r"), AccountID: acct, RefundID: "rf2"}, ErrNotEligible)
	// The in-flight request completes: 100 Flows = $3.283 counted.
	c := Charge{ReqID: "late", AccountID: acct, KeyID: f.keyID(key), Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: inflight, InputTokens: 100 * oneFlowInput}
	f.do(&ChargeBatch{Charges: []Charge{c}})
	v = f.must(&RefundStatus{Idem: f.idem("st"), RefundID: "rf1", Status: RefundSucceeded})
	expect(t, v, "status", "succeeded", "usage_usd", "3.283", "refundable_usd", "16.72", "fee_usd", "0.84", "final_usd", "15.88")
	f.fails(&RefundStatus{Idem: f.idem("st"), RefundID: "rf1", Status: RefundCanceled}, ErrConflict)
	f.fails(&RefundStatus{Idem: f.idem("st"), RefundID: "nope", Status: RefundCanceled}, ErrNotFound)

	g := newFixture(t)
	acct2, _ := g.account()
	g.must(&Subscribe{Idem: g.idem("s"), AccountID: acct2, Plan: "max"})
	g.must(&RefundSubmit{Idem: g.idem("r"), AccountID: acct2, RefundID: "rf"})
	g.fails(&Subscribe{Idem: g.idem("s"), AccountID: acct2, Plan: "pro"}, ErrConflict)
	g.must(&RefundStatus{Idem: g.idem("st"), RefundID: "rf", Status: RefundCanceled})
	expect(t, g.acct(acct2), "plan", "max", "subscription.cycle_end", "2026-05-01T00:00:00Z")
}

// rules K1, K2, K4: hashed secrets, rotation, revocation, last use.
func TestK_Keys(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	kid := f.keyID(key)
	f.advance(90 * time.Second)
	f.charge(acct, key, 1, BillingSubscription)
	keys, _ := f.l.Keys(acct)
	expect(t, asMap(t, keys[0]), "last_used_at", "2026-04-01T00:01:00Z", "last4", "abcd", "kind", "subscription")
	// A key used in the minute it was made shows its creation, never a
	// last use before it (K4).
	f.advance(15 * time.Second)
	fresh := f.key(acct, KindSubscription)
	f.charge(acct, fresh, 1, BillingSubscription)
	for _, k := range f.keysOf(acct) {
		if k["id"] == f.keyID(fresh) && (k["last_used_at"] != k["created_at"] || k["created_at"] != "2026-04-01T00:01:45Z") {
			t.Errorf("a key used in its first minute: %v", k)
		}
	}
	newHash := HashSecret("rotated")
	f.must(&RotateKey{KeyID: kid, Hash: newHash, Last4: "1234"})
	if _, err := f.l.Admit(key, EchoModelID, f.now); !errors.Is(err, ErrInvalidAPIKey) {
		t.Errorf("old secret after rotate: %v", err)
	}
	if _, err := f.l.Admit(newHash, EchoModelID, f.now); err != nil {
		t.Errorf("new secret: %v", err)
	}
	f.must(&RevokeKey{KeyID: kid})
	if _, err := f.l.Admit(newHash, EchoModelID, f.now); !errors.Is(err, ErrInvalidAPIKey) {
		t.Errorf("revoked: %v", err)
	}
	f.fails(&CreateKey{AccountID: acct, KeyID: "k", Kind: "gold", Hash: HashSecret("z"), Last4: "abcd"}, ErrInvalid)
	f.fails(&RevokeKey{KeyID: kid}, ErrNotFound)
}

// rule C2: a request id is charged once; a replay answers "exists".
func TestC2_ChargeOnce(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	c := Charge{ReqID: "same", AccountID: acct, KeyID: f.keyID(key), Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: f.now, InputTokens: oneFlowInput}
	res := f.do(&ChargeBatch{Charges: []Charge{c, c}}).Value.([]ChargeResult)
	if res[0].Status != "charged" || res[1].Status != "exists" {
		t.Fatalf("%+v", res)
	}
	f.advance(time.Hour)
	if r := f.do(&ChargeBatch{Charges: []Charge{c}, Retry: true}).Value.([]ChargeResult)[0]; r.Status != "exists" {
		t.Fatalf("replayed an hour later: %+v", r)
	}
	expect(t, f.usage(acct), "window_5h.used_flows", "1")
}

// rule C2: a forwarded batch's resend can overtake its first send on the
// way to the leader. The first send, applied after the resend, answers
// "exists" on every replica, whether or not the replica checkpointed in
// between, and a restarted replica (reloaded from its records) answers the
// same — also when a proposer's clock jumped ledger time an hour ahead in
// between; ten minutes of steady ledger time later the resend is forgotten.
func TestC2_ResendOvertakesFirstSend(t *testing.T) {
	for _, between := range []string{"nothing", "checkpoint", "reload", "clock jump", "clock jump, reload"} {
		f := newFixture(t)
		acct, key := f.account()
		w := memWriter{}
		f.l.SetDurable(w)
		c := Charge{ReqID: "fwd", AccountID: acct, KeyID: f.keyID(key), Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: f.now, InputTokens: oneFlowInput}
		if r := f.do(&ChargeBatch{Charges: []Charge{c}, Retry: true}).Value.([]ChargeResult)[0]; r.Status != "charged" {
			t.Fatalf("%s: resend: %+v", between, r)
		}
		if strings.HasPrefix(between, "clock jump") {
			f.advance(time.Hour)
			f.must(&Tick{})
		}
		switch between {
		case "checkpoint":
			_ = f.l.Flush(w)
		case "reload", "clock jump, reload":
			_ = f.l.Flush(w)
			l, err := Load(w.scan, w)
			if err != nil {
				t.Fatal(err)
			}
			f.l = l
		}
		f.advance(30 * time.Second)
		if r := f.do(&ChargeBatch{Charges: []Charge{c}}).Value.([]ChargeResult)[0]; r.Status != "exists" {
			t.Fatalf("%s: first send after its resend: %+v", between, r)
		}
		expect(t, f.usage(acct), "window_5h.used_flows", "1")
		// Ten minutes of commands a second apart, then the hourly prune.
		for range 600 {
			f.advance(time.Second)
			f.must(&Tick{})
		}
		f.advance(2 * time.Hour)
		f.must(&Tick{})
		_ = f.l.Flush(w)
		for k := range w {
			if strings.HasPrefix(k, retriedPrefix) {
				t.Fatalf("%s: %s outlived the window", between, k)
			}
		}
		if len(f.l.retried) != 0 {
			t.Fatalf("%s: %d retried ids in memory after the window", between, len(f.l.retried))
		}
	}
}

// rule C2 after an upgrade: state written before the retry clock existed
// has none, and each replica loads it from its own checkpoint, at its own
// index. Until a Tick starts the clock (at one index, for all), the window
// runs on ledger time; so two replicas that loaded an hour of commands
// apart end with the same retry clock and the same records.
func TestC2_RetryClockStartsAtOneIndex(t *testing.T) {
	f := newFixture(t)
	f.l.retryClock = 0 // as the old binary ran: the window on ledger time
	acct, key := f.account()
	old := func() memWriter { // a checkpoint as the old binary wrote it
		t.Helper()
		w := memWriter{}
		if err := f.l.Flush(w); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(w["meta"], &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "retry_clock")
		w["meta"], _ = json.Marshal(m)
		return w
	}
	load := func(w memWriter) *Ledger {
		t.Helper()
		l, err := Load(w.scan, w)
		if err != nil {
			t.Fatal(err)
		}
		if l.RetryClockStarted() {
			t.Fatal("the retry clock runs in state written before it existed")
		}
		return l
	}
	early := old()
	// An hour of commands, a minute apart: what the early replica replays.
	var log []Command
	var times []int64
	for i := range 60 {
		f.advance(time.Minute)
		c := Charge{ReqID: fmt.Sprint("r", i), AccountID: acct, KeyID: f.keyID(key), Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: f.now, InputTokens: 10}
		log, times = append(log, &ChargeBatch{Charges: []Charge{c}, Retry: true}), append(times, f.now)
		f.do(log[len(log)-1])
	}
	a, b := load(early), load(old())
	for i, cmd := range log {
		a.Apply(cmd, times[i])
	}
	// Then the same commands reach both: the Tick that starts the clock, a
	// clock jump and a retried charge.
	f.advance(time.Second)
	c := Charge{ReqID: "after", AccountID: acct, KeyID: f.keyID(key), Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: f.now, InputTokens: 10}
	for _, l := range []*Ledger{a, b} {
		l.Apply(&Tick{}, f.now)
		l.Apply(&Tick{}, f.now+int64(time.Hour))
		l.Apply(&ChargeBatch{Charges: []Charge{c}, Retry: true}, f.now+int64(time.Hour)+1)
	}
	if !a.RetryClockStarted() || a.retryClock != b.retryClock {
		t.Fatalf("retry clocks: %d (loaded an hour earlier) and %d", a.retryClock, b.retryClock)
	}
	wa, wb := memWriter{}, memWriter{}
	if err := a.Flush(wa); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(wb); err != nil {
		t.Fatal(err)
	}
	for k, v := range wb {
		if k != "meta" && !strings.HasPrefix(k, "rt/") {
			continue
		}
		if string(wa[k]) != string(v) {
			t.Errorf("%s differs between the replicas: %s against %s", k, wa[k], v)
		}
	}
}

// rule C4: ids are remembered for the dedupe horizon, then forgotten.
func TestC4_DedupeHorizon(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	f.charge(acct, key, 1, BillingSubscription)
	top := &TopUp{Idem: Idem{IdemKey: "k1", Fingerprint: "a"}, AccountID: acct, MicroUSD: 1_000000}
	f.must(top)
	w := memWriter{}
	f.l.SetDurable(w)
	c := Charge{ReqID: "r", AccountID: acct, KeyID: f.keyID(key), Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: f.now, InputTokens: 5}
	f.do(&ChargeBatch{Charges: []Charge{c}})
	_ = f.l.Flush(w)
	f.advance(6 * 24 * time.Hour)
	expect(t, f.must(top), "balance_usd", "1")
	if r := f.do(&ChargeBatch{Charges: []Charge{c}, Retry: true}).Value.([]ChargeResult)[0]; r.Status != "exists" {
		t.Fatalf("charge id forgotten within the horizon: %+v", r)
	}
	f.advance(2 * 24 * time.Hour)
	f.must(&Tick{})
	if len(f.l.idem) != 0 {
		t.Fatalf("after 8 days: %d idempotency keys", len(f.l.idem))
	}
	// Charge ids live as long as the request log (30 days here), then go.
	f.advance(23 * 24 * time.Hour)
	f.must(&Tick{})
	_ = f.l.Flush(w)
	if r := f.do(&ChargeBatch{Charges: []Charge{c}, Retry: true}).Value.([]ChargeResult)[0]; r.Status != "charged" {
		t.Fatalf("after the horizon the id is forgotten with its dedupe record: %+v", r)
	}
}

// Idempotency-Key: the same key returns the first result and changes
// nothing; reused for another request it is refused.
func TestIdempotentMoney(t *testing.T) {
	f := newFixture(t)
	acct, _ := f.account()
	top := &TopUp{Idem: Idem{IdemKey: "k", Fingerprint: "a"}, AccountID: acct, MicroUSD: 5_000000}
	first := f.must(top)
	second := f.must(top)
	expect(t, first, "balance_usd", "5")
	expect(t, second, "balance_usd", "5")
	expect(t, f.acct(acct), "balance_usd", "5")
	f.fails(&TopUp{Idem: Idem{IdemKey: "k", Fingerprint: "b"}, AccountID: acct, MicroUSD: 5_000000}, ErrIdempotencyConflict)
	f.fails(&TopUp{Idem: Idem{IdemKey: "k2", Fingerprint: "a"}, AccountID: acct, MicroUSD: 5_001}, ErrInvalid)
	f.fails(&TopUp{Idem: Idem{IdemKey: "k3", Fingerprint: "a"}, AccountID: acct, MicroUSD: -1_000000}, ErrInvalid)
	f.fails(&TopUp{Idem: Idem{IdemKey: "k4", Fingerprint: "a"}, AccountID: acct, MicroUSD: MaxTopUpMicroUSD + centMicroUSD}, ErrInvalid)
	f.fails(&TopUp{AccountID: acct, MicroUSD: 1_000000}, ErrInvalid)
}

// Idempotency-Key, C4: a refused money command's first result is its
// refusal. The same key answers the same refusal, word for word, even
// after the state changed so that the command would now succeed — also
// from a ledger reloaded from its durable records; a new key applies it.
func TestIdempotentMoneyRejection(t *testing.T) {
	f := newFixture(t)
	acct, _ := f.account()
	w := memWriter{}
	f.l.SetDurable(w)
	refund := &RefundSubmit{Idem: Idem{IdemKey: "rf-1", Fingerprint: "a"}, AccountID: acct, RefundID: "rf"}
	first := f.do(refund).Err
	if !errors.Is(first, ErrNotEligible) {
		t.Fatalf("refund on Free: %v", first)
	}
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "pro"})
	if err := f.l.Flush(w); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(w.scan, w)
	if err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]*Ledger{"live": f.l, "reloaded": loaded} {
		again := l.Apply(refund, f.now).Err
		if !errors.Is(again, ErrNotEligible) || again.Error() != first.Error() || ErrorCode(again) != "refund_not_eligible" {
			t.Errorf("%s: same key answered %v, want %v", name, again, first)
		}
		if r := l.Apply(&RefundSubmit{Idem: Idem{IdemKey: "rf-1", Fingerprint: "b"}, AccountID: acct, RefundID: "rf"}, f.now); !errors.Is(r.Err, ErrIdempotencyConflict) {
			t.Errorf("%s: same key, another request: %v", name, r.Err)
		}
	}
	expect(t, f.acct(acct), "plan", "pro")
	v := f.must(&RefundSubmit{Idem: Idem{IdemKey: "rf-2", Fingerprint: "a"}, AccountID: acct, RefundID: "rf"})
	expect(t, v, "status", "processing")
	expect(t, f.acct(acct), "plan", "free")
}

// rule U1: breakdowns by model and by day, and the Extra Usage spend.
func TestU1_UsageBreakdowns(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	// Only input is priced: 32,830 tokens at $2 per million = $0.06566 = 2 Flows.
	f.must(&PutModel{Model: Model{ID: "acme/big", Provider: "p", Upstream: "big", InputMicroUSDPerMTok: 2_000000, Plans: []string{"free"}}})
	f.charge(acct, key, 1, BillingSubscription)
	f.charge(acct, key, 2, BillingSubscription)
	c := Charge{ReqID: "big1", AccountID: acct, KeyID: f.keyID(key), Model: "acme/big", Billing: BillingSubscription, AdmittedAt: f.now,
		InputTokens: oneFlowInput, OutputTokens: 10, CacheReadTokens: 20, CacheWriteTokens: 30}
	f.do(&ChargeBatch{Charges: []Charge{c}})
	f.advance(24 * time.Hour)
	f.charge(acct, key, 1, BillingSubscription)
	u := f.usage(acct)
	expect(t, u,
		"by_model", "[map[cache_read_tokens:20 cache_write_tokens:30 flows:2 input_tokens:32830 model:acme/big output_tokens:10 requests:1 usd_value:0.06566] "+
			"map[cache_read_tokens:0 cache_write_tokens:0 flows:4 input_tokens:131320 model:zenmux/echo output_tokens:0 requests:3 usd_value:0.13132]]",
		"by_day", "[map[cache_read_tokens:20 cache_write_tokens:30 day:2026-04-01 flows:5 input_tokens:131320 output_tokens:10 requests:3 usd_value:0.16415] "+
			"map[cache_read_tokens:0 cache_write_tokens:0 day:2026-04-02 flows:1 input_tokens:32830 output_tokens:0 requests:1 usd_value:0.03283]]")
}

// rule R2, R3, Q3: a failed refund gives the plan back with the usage that
// landed while it was processing and with the cycle's monthly usage.
func TestR3_FailedRefundRestoresUsage(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	f.must(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "pro"})
	f.charge(acct, key, 40, BillingSubscription)
	inflight := f.now
	f.advance(time.Minute)
	f.must(&RefundSubmit{Idem: f.idem("r"), AccountID: acct, RefundID: "rf"})
	c := Charge{ReqID: "late", AccountID: acct, KeyID: f.keyID(key), Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: inflight, InputTokens: 100 * oneFlowInput}
	f.do(&ChargeBatch{Charges: []Charge{c}})
	f.must(&RefundStatus{Idem: f.idem("st"), RefundID: "rf", Status: RefundFailed})
	expect(t, f.acct(acct), "plan", "pro")
	v, _ := f.l.RefundPreview(acct, f.now)
	// Paid 20; usage 140 Flows = $4.5962; refundable 15.4038 → 15.40.
	expect(t, asMap(t, v), "usage_usd", "4.5962", "refundable_usd", "15.4")
	expect(t, f.usage(acct), "monthly.used_flows", "140", "monthly.limit_flows", "914.443")
}

// rules R3, M4: submitting a refund drops an Insider to standard with the
// plan; a failed or canceled refund leaves the subscription unbroken, so
// the tier and its multiplier come back with the plan — unless the
// operator set a tier (even standard) while the refund was processing.
func TestR3M4_FailedRefundRestoresInsider(t *testing.T) {
	for _, end := range []string{RefundFailed, RefundCanceled} {
		f := newFixture(t)
		acct, key := f.account()
		f.must(&SetFlowValue{AccountID: acct, Tier: TierInsider, MultiplierPPM: 1_500000})
		f.must(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "pro"})
		f.must(&RefundSubmit{Idem: f.idem("r"), AccountID: acct, RefundID: "rf"})
		expect(t, f.acct(acct), "plan", "free", "flow_value.tier", "standard", "flow_value.multiplier", "1")
		f.must(&RefundStatus{Idem: f.idem("st"), RefundID: "rf", Status: end})
		expect(t, f.acct(acct), "plan", "pro", "flow_value.tier", "insider", "flow_value.multiplier", "1.5")
		// 3 Flows of API value at 1.5× cost 2 Flows.
		if r := f.charge(acct, key, 3, BillingSubscription); r.MicroFlows != 2_000000 {
			t.Errorf("%s: charged %d µFlows after the tier came back, want 2000000", end, r.MicroFlows)
		}
	}

	for _, set := range []SetFlowValue{{Tier: TierAbuse, MultiplierPPM: 500000}, {Tier: TierStandard, MultiplierPPM: micro}} {
		f := newFixture(t)
		acct, _ := f.account()
		f.must(&SetFlowValue{AccountID: acct, Tier: TierInsider, MultiplierPPM: 1_500000})
		f.must(&Subscribe{Idem: f.idem("s"), AccountID: acct, Plan: "pro"})
		f.must(&RefundSubmit{Idem: f.idem("r"), AccountID: acct, RefundID: "rf"})
		set.AccountID = acct
		f.must(&set) // the operator decides the tier meanwhile
		f.must(&RefundStatus{Idem: f.idem("st"), RefundID: "rf", Status: RefundFailed})
		expect(t, f.acct(acct), "plan", "pro", "flow_value.tier", set.Tier, "flow_value.multiplier", fmt.Sprint(float64(set.MultiplierPPM)/1e6))
	}

	g := newFixture(t)
	acct2, _ := g.account()
	g.must(&SetFlowValue{AccountID: acct2, Tier: TierInsider, MultiplierPPM: 1_500000})
	g.must(&Subscribe{Idem: g.idem("s"), AccountID: acct2, Plan: "pro"})
	g.must(&RefundSubmit{Idem: g.idem("r"), AccountID: acct2, RefundID: "rf"})
	g.must(&RefundStatus{Idem: g.idem("st"), RefundID: "rf", Status: RefundSucceeded})
	expect(t, g.acct(acct2), "plan", "free", "flow_value.tier", "standard")
}

// rule C2, C4: a charge id is remembered through its durable dedupe record:
// after a flush, eight days and a reload, a retried batch still answers
// "exists" in the live and in the reloaded ledger alike.
func TestC4_DedupeSurvivesReload(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	w := memWriter{}
	f.l.SetDurable(w)
	c := Charge{ReqID: "X", AccountID: acct, KeyID: f.keyID(key), Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: f.now, InputTokens: 10}
	f.do(&ChargeBatch{Charges: []Charge{c}})
	if err := f.l.Flush(w); err != nil {
		t.Fatal(err)
	}
	f.advance(8 * 24 * time.Hour)
	loaded, err := Load(w.scan, w)
	if err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]*Ledger{"live": f.l, "reloaded": loaded} {
		if r := appliedOf(l.Apply(&ChargeBatch{Charges: []Charge{c}, Retry: true}, f.now)).Value.([]ChargeResult)[0]; r.Status != "exists" {
			t.Errorf("%s ledger: retry answered %+v", name, r)
		}
	}
}

// A charge whose price cannot be represented is rejected, not a panic
// that would stop every replica (M1).
func TestM1_OverflowRejected(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	f.must(&SetRate{NanoUSDPerFlow: MinNanoUSDPerFlow})
	f.must(&SetFlowValue{AccountID: acct, Tier: TierAbuse, MultiplierPPM: MinMultiplierPPM})
	f.must(&PutModel{Model: Model{ID: "x/dear", Provider: "p", Upstream: "u", InputMicroUSDPerMTok: MaxTokenMicroUSD, OutputMicroUSDPerMTok: MaxTokenMicroUSD,
		CacheReadMicroUSDPerM: MaxTokenMicroUSD, CacheWriteMicroUSDPerM: MaxTokenMicroUSD, Plans: []string{"free"}}})
	c := Charge{ReqID: "big", AccountID: acct, KeyID: f.keyID(key), Model: "x/dear", Billing: BillingSubscription,
		InputTokens: MaxTokensPerKind, OutputTokens: MaxTokensPerKind, CacheReadTokens: MaxTokensPerKind, CacheWriteTokens: MaxTokensPerKind}
	if r := f.do(&ChargeBatch{Charges: []Charge{c}}).Value.([]ChargeResult)[0]; r.Status != "rejected" {
		t.Fatalf("%+v", r)
	}
	expect(t, f.usage(acct), "window_5h.used_flows", "0")
}

// Reads on a ledger that is not seeded yet answer without panicking.
func TestUnseededReads(t *testing.T) {
	l := New()
	_ = l.Pricing(nil)
	_ = l.Rate()
	if len(l.Plans()) != 0 {
		t.Fatal("plans before seeding")
	}
}

// rule Q8 across nodes: leases from a replicated bucket never hand out more
// than one bucket, however the nodes ask; unspent requests can be returned.
func TestQ8_ReplicatedBucketLeases(t *testing.T) {
	f := newFixture(t)
	lease := func(want int64) LeaseResult {
		t.Helper()
		r := f.do(&LeaseTokens{Bucket: "acct", Want: want, RPM: 10, Burst: 15})
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		return r.Value.(LeaseResult)
	}
	total := int64(0)
	for i := 0; i < 12; i++ { // three nodes asking for 2 at a time, round robin
		total += lease(2).Granted
	}
	if total != 15 {
		t.Fatalf("granted %d in a burst, want exactly the bucket's 15", total)
	}
	if r := lease(1); r.Granted != 0 || r.RetryAfterNs != int64(6*time.Second) {
		t.Fatalf("empty bucket: %+v", r)
	}
	f.advance(6 * time.Second)
	if r := lease(5); r.Granted != 1 {
		t.Fatalf("after 6 s: %+v, want 1", r)
	}
	f.must(&ReturnTokens{Bucket: "acct", N: 3, RPM: 10})
	if r := lease(5); r.Granted != 3 {
		t.Fatalf("after returning 3: %+v", r)
	}
	f.advance(time.Hour)
	if r := lease(100); r.Granted != 15 {
		t.Fatalf("after an hour idle: %+v, want a full bucket", r)
	}
	f.fails(&LeaseTokens{Bucket: "acct", Want: 1, RPM: 0, Burst: 15}, ErrInvalid)
}

// rule Q4 across nodes: flow allowances leased to nodes never add up to
// more than the tightest window has left; charges spend their node's
// allowance; returns free it for others; an exhausted window is named.
func TestQ4_FlowAllowances(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account() // Free: 5 Flows in the 5 h window
	lease := func(node string, flows int64) FlowLease {
		t.Helper()
		r := f.do(&LeaseFlows{AccountID: acct, Node: node, MicroFlows: flows * micro})
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		return r.Value.(FlowLease)
	}
	if g := lease("a", 3).GrantedMicroFlows; g != 3*micro {
		t.Fatalf("a: %d", g)
	}
	if g := lease("b", 3).GrantedMicroFlows; g != 2*micro {
		t.Fatalf("b: %d, want the 2 left", g)
	}
	if r := lease("c", 1); r.GrantedMicroFlows != 0 || r.Window != "" {
		t.Fatalf("c while a and b hold it all: %+v", r)
	}
	c := Charge{ReqID: "r1", AccountID: acct, KeyID: f.keyID(key), Node: "a", Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: f.now, InputTokens: 2 * oneFlowInput}
	f.do(&ChargeBatch{Charges: []Charge{c}})
	if got := f.l.accounts[acct].Allowances; got["a"] != 1*micro || got["b"] != 2*micro {
		t.Fatalf("after a's 2-Flow charge: %v", got)
	}
	f.must(&ReturnFlows{AccountID: acct, Node: "b", MicroFlows: 2 * micro})
	if g := lease("c", 5).GrantedMicroFlows; g != 2*micro {
		t.Fatalf("c after b returned: %d", g)
	}
	c.ReqID, c.Node, c.InputTokens = "r2", "c", 4*oneFlowInput // crosses the limit: charged in full
	f.do(&ChargeBatch{Charges: []Charge{c}})
	if r := lease("a", 1); r.GrantedMicroFlows != 0 || r.Window != "window_5h" || r.ResetsAt != t0+window5h {
		t.Fatalf("exhausted: %+v", r)
	}
}

// rule Q4 across nodes: an allowance its node stopped renewing (the node
// died or left) stops holding the quota after five minutes; a node that
// starts again releases everything the ledger counted for it at once.
func TestQ4_StrandedAllowancesReleased(t *testing.T) {
	f := newFixture(t)
	acct, _ := f.account() // Free: 5 Flows
	f.must(&LeaseFlows{AccountID: acct, Node: "dead", MicroFlows: 5 * micro})
	if g := f.do(&LeaseFlows{AccountID: acct, Node: "live", MicroFlows: micro}).Value.(FlowLease); g.GrantedMicroFlows != 0 {
		t.Fatalf("while held: %+v", g)
	}
	f.advance(5*time.Minute + time.Second)
	if g := f.do(&LeaseFlows{AccountID: acct, Node: "live", MicroFlows: micro}).Value.(FlowLease); g.GrantedMicroFlows != micro {
		t.Fatalf("after the dead node's allowance went stale: %+v", g)
	}
	f.must(&ResetNode{Node: "live"})
	if a := f.l.accounts[acct]; len(a.Allowances) != 0 || len(a.AllowanceAt) != 0 {
		t.Fatalf("after reset: %v %v", a.Allowances, a.AllowanceAt)
	}
	if g := f.do(&LeaseFlows{AccountID: acct, Node: "live", MicroFlows: 9 * micro}).Value.(FlowLease); g.GrantedMicroFlows != 5*micro {
		t.Fatalf("after reset the whole window is free again: %+v", g)
	}
}

// rule C2, C4, U1: a request-log entry is the charge's dedupe record while
// the log is kept at least as long as the dedupe horizon (no second record
// per charge); kept for less, a dedupe record carries the id to the end of
// the horizon. Both go with one range delete each.
func TestC4_DedupeWhenTheLogIsShorter(t *testing.T) {
	for _, logDays := range []int{30, 2} {
		f := &fixture{t: t, l: New(), now: t0}
		f.must(&Seed{NanoUSDPerFlow: DefaultNanoUSDPerFlow, Plans: DefaultPlans(), Models: DefaultModels(), DedupeDays: 7, RequestLogDays: logDays})
		acct, key := f.account()
		w := memWriter{}
		f.l.SetDurable(w)
		c := Charge{ReqID: "X", AccountID: acct, KeyID: f.keyID(key), Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: f.now, InputTokens: 10}
		f.do(&ChargeBatch{Charges: []Charge{c}})
		if err := f.l.Flush(w); err != nil {
			t.Fatal(err)
		}
		count := func(prefix string) int {
			n := 0
			for k := range w {
				if strings.HasPrefix(k, prefix) {
					n++
				}
			}
			return n
		}
		wantDD := 0
		if logDays < 7 {
			wantDD = 1
		}
		if count(LogPrefix) != 1 || count(DedupePrefix) != wantDD {
			t.Fatalf("log %d days: %d log entries, %d dedupe records", logDays, count(LogPrefix), count(DedupePrefix))
		}
		retry := func() string {
			r := f.do(&ChargeBatch{Charges: []Charge{c}, Retry: true}).Value.([]ChargeResult)[0]
			return r.Status
		}
		f.advance(3 * 24 * time.Hour)
		f.must(&Tick{})
		_ = f.l.Flush(w)
		if s := retry(); s != "exists" {
			t.Fatalf("log %d days: a retry 3 days later: %s", logDays, s)
		}
		if logDays < 3 && count(LogPrefix) != 0 {
			t.Fatalf("log %d days: the entry outlived its retention", logDays)
		}
		f.advance(5 * 24 * time.Hour)
		f.must(&Tick{})
		_ = f.l.Flush(w)
		if count(DedupePrefix) != 0 {
			t.Fatalf("log %d days: dedupe records outlived the horizon", logDays)
		}
		want := "exists" // the 30-day log still holds the id
		if logDays < 7 {
			want = "charged"
		}
		if s := retry(); s != want {
			t.Fatalf("log %d days: a retry 8 days later: %s, want %s", logDays, s, want)
		}
	}
}

// rule U1: an account's request-log entries form a chain, newest first,
// that never links another account's entries, whatever the interleaving;
// alike whether charges are logged one record each or one block per batch.
func TestU1_RequestLogChain(t *testing.T) {
	for _, format := range []int{LogFormatEntries, LogFormatBlocks} {
		t.Run(fmt.Sprint("format", format), func(t *testing.T) {
			f := newFixtureLog(t, t0, format, 30)
			a, ka := f.account()
			b, kb := f.account()
			w := memWriter{}
			f.l.SetDurable(w)
			var cs []Charge
			for i := 0; i < 6; i++ {
				acct, key := a, ka
				if i%3 == 1 {
					acct, key = b, kb
				}
				cs = append(cs, Charge{ReqID: fmt.Sprint("r", i), AccountID: acct, KeyID: f.keyID(key), Model: EchoModelID, Billing: BillingSubscription,
					AdmittedAt: f.now - int64(i)*int64(time.Second), InputTokens: int64(i + 1), Status: "ok"})
			}
			f.do(&ChargeBatch{Charges: cs[:3]})
			_ = f.l.Flush(w)
			f.do(&ChargeBatch{Charges: cs[3:]})
			_ = f.l.Flush(w)
			walk := func(acct string) []string {
				var ids []string
				for next := f.l.LastLog(acct); next != "" && len(ids) < 10; {
					k, idx, err := ParseLogCursor(next)
					if err != nil {
						t.Fatal(err)
					}
					if (idx >= 0) != (format == LogFormatBlocks) {
						t.Fatalf("address %q in format %d", next, format)
					}
					e, err := DecodeLogAt(w[string(k)], idx)
					if err != nil || e.AccountID != acct {
						t.Fatalf("%s: entry %s: %+v %v", acct, next, e, err)
					}
					ids = append(ids, e.ID)
					next = e.Prev
				}
				return ids
			}
			if got := fmt.Sprint(walk(a), walk(b)); got != "[r5 r3 r2 r0] [r4 r1]" {
				t.Fatalf("chains: %s", got)
			}
			records := 0
			for k := range w {
				if strings.HasPrefix(k, LogPrefix) {
					records++
				}
			}
			if want := map[int]int{LogFormatEntries: 6, LogFormatBlocks: 2}[format]; records != want {
				t.Errorf("%d request-log records, want %d", records, want)
			}
			for _, bad := range []string{"", "x", "0000000000000000", "000000000000000g/r1", "0000000000000000/a/b",
				"0000000000000000/a/01", "0000000000000000/a/-1", "0000000000000000/a/", "0000000000000000//3"} {
				if _, _, err := ParseLogCursor(bad); !errors.Is(err, ErrInvalid) {
					t.Errorf("cursor %q: %v", bad, err)
				}
			}
			for cursor, want := range map[string]int{"0000000000000000/a": -1, "0000000000000000/a/0": 0, "0000000000000000/a#b/12": 12} {
				if _, idx, err := ParseLogCursor(cursor); err != nil || idx != want {
					t.Errorf("cursor %q: %d %v, want %d", cursor, idx, err, want)
				}
			}
			head, idx, _ := ParseLogCursor(f.l.LastLog(a))
			for _, v := range [][]byte{nil, {2}, {1}, {3}, {3, 1}, {3, 1, 200}, append(append([]byte(nil), w[string(head)]...), 0)} {
				if _, err := DecodeLogAt(v, idx); err == nil {
					t.Errorf("decoded %x at %d", v, idx)
				}
			}
			if format == LogFormatBlocks {
				if _, err := DecodeLogAt(w[string(head)], 7); err == nil {
					t.Error("decoded a block's entry 7 of 2")
				}
				if _, err := DecodeLogAt(w[string(head)], -1); err == nil {
					t.Error("decoded a block as one entry")
				}
			}
		})
	}
}

// rule C4: what a replica stores never depends on when it checkpoints. A
// charge admitted before the log's retention cutoff (a very long stream)
// and applied just before a prune is dropped by that prune whether or not
// a checkpoint came between, and a retry of it then answers the same.
func TestC4_PruneIndependentOfCheckpoints(t *testing.T) {
	run := func(checkpointBetween bool) (memWriter, string) {
		f, w, c := prunedCharge(t, LogFormatCurrent, checkpointBetween)
		_ = f.l.Flush(w)
		r := f.do(&ChargeBatch{Charges: []Charge{c}, Retry: true}).Value.([]ChargeResult)[0]
		return w, r.Status
	}
	a, ra := run(true)
	b, rb := run(false)
	if fmt.Sprint(keysOf(a)) != fmt.Sprint(keysOf(b)) || ra != rb {
		t.Fatalf("with a checkpoint between: %v, %s\nwithout: %v, %s", keysOf(a), ra, keysOf(b), rb)
	}
	for _, k := range keysOf(a) {
		if strings.HasPrefix(k, LogPrefix) {
			t.Fatalf("a pruned entry was stored: %s", k)
		}
	}
}

// prunedCharge applies a charge admitted 31 days before ledger time (past
// the 30-day log and the 7-day dedupe horizon) and then the hourly prune
// that drops it, checkpointing between the two when checkpointBetween; it
// returns the ledger, its durable records and the charge.
func prunedCharge(t *testing.T, format int, checkpointBetween bool) (*fixture, memWriter, Charge) {
	t.Helper()
	f := newFixtureLog(t, t0, format, 30)
	acct, key := f.account()
	w := memWriter{}
	f.l.SetDurable(w)
	f.advance(31 * 24 * time.Hour)
	f.must(&Tick{})
	c := Charge{ReqID: "old", AccountID: acct, KeyID: f.keyID(key), Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: t0, InputTokens: 10}
	f.do(&ChargeBatch{Charges: []Charge{c}})
	if checkpointBetween {
		_ = f.l.Flush(w)
	}
	f.advance(time.Hour)
	f.must(&Tick{})
	return f, w, c
}

func keysOf(w memWriter) []string {
	var ks []string
	for k := range w {
		if !strings.HasPrefix(k, "meta") {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

// rule C4: a charge admitted before the dedupe horizon that a prune dropped
// unwritten and a retry then applies again leaves two entries under one key
// in one checkpoint: the retry's record is stored, byte for byte as on a
// replica that checkpointed between (the pruned one was never written).
func TestC4_RechargeAfterPruneIndependentOfCheckpoints(t *testing.T) {
	for _, format := range []int{LogFormatEntries, LogFormatBlocks} {
		run := func(checkpointBetween bool) memWriter {
			f, w, old := prunedCharge(t, format, checkpointBetween) // no record, no unflushed id
			if checkpointBetween {
				_ = f.l.Flush(w)
			}
			if r := f.do(&ChargeBatch{Charges: []Charge{old}, Retry: true}).Value.([]ChargeResult)[0]; r.Status != "charged" {
				t.Fatalf("format %d: the retry past the horizon answered %+v", format, r)
			}
			_ = f.l.Flush(w)
			return w
		}
		a, b := run(true), run(false)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("format %d: with checkpoints between: %v\nwithout: %v", format, keysOf(a), keysOf(b))
		}
		if _, ok := a[LogPrefix+logSuffix(t0, "old")]; !ok {
			t.Errorf("format %d: the retry's entry was not stored: %v", format, keysOf(a))
		}
	}
}

// rule C2, C4: a retry of a charge that a prune has just dropped answers the
// same on a replica whose durable state still holds it (it checkpointed
// before the prune; the range delete waits for the next checkpoint) as on
// one that never wrote it.
func TestC4_RetryAfterPruneIndependentOfCheckpoints(t *testing.T) {
	var answers []string
	for _, checkpointBefore := range []bool{true, false} {
		f := newFixture(t)
		acct, key := f.account()
		w := memWriter{}
		f.l.SetDurable(w)
		c := Charge{ReqID: "aged", AccountID: acct, KeyID: f.keyID(key), Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: f.now, InputTokens: 10}
		f.do(&ChargeBatch{Charges: []Charge{c}})
		if checkpointBefore {
			_ = f.l.Flush(w)
		}
		f.advance(31 * 24 * time.Hour)
		f.must(&Tick{}) // prunes the entry; no checkpoint after it yet
		r := f.do(&ChargeBatch{Charges: []Charge{c}, Retry: true}).Value.([]ChargeResult)[0]
		answers = append(answers, r.Status)
	}
	if answers[0] != answers[1] {
		t.Fatalf("checkpointed before the prune: %s; not: %s", answers[0], answers[1])
	}
}

// rule C2 with LogFormatBlocks: a batch logs one record, keyed by its first
// logged charge. Its retry after a checkpoint (live, or on a replica
// reloaded from its records) still answers every charge it applied
// "exists" — also the ones the record is not keyed by, and also once the
// request log is pruned and the dedupe block answers (request_log_days <
// dedupe_days) — and applies the charges the first attempt did not.
func TestC2_RetryFindsItsBlock(t *testing.T) {
	for _, logDays := range []int{30, 2} {
		for _, reload := range []bool{false, true} {
			name := fmt.Sprintf("log %d days, reload %v", logDays, reload)
			f := newFixtureLog(t, t0, LogFormatBlocks, logDays)
			acct, key := f.account()
			w := memWriter{}
			f.l.SetDurable(w)
			charge := func(id string) Charge {
				return Charge{ReqID: id, AccountID: acct, KeyID: f.keyID(key), Model: EchoModelID, Billing: BillingSubscription,
					AdmittedAt: f.now, InputTokens: oneFlowInput}
			}
			ghost := charge("ghost")
			ghost.AccountID = "nobody"
			batch := []Charge{ghost, charge("a"), charge("b"), charge("c")}
			first := f.do(&ChargeBatch{Charges: batch}).Value.([]ChargeResult)
			if got := fmt.Sprint(first[0].Status, first[1].Status, first[2].Status, first[3].Status); got != "rejectedchargedchargedcharged" {
				t.Fatalf("%s: first attempt: %s", name, got)
			}
			if err := f.l.Flush(w); err != nil {
				t.Fatal(err)
			}
			records := map[string]int{}
			for k := range w {
				if p, _, ok := strings.Cut(k, "/"); ok && (p+"/" == LogPrefix || p+"/" == DedupePrefix) {
					records[p]++
				}
			}
			wantDD := 0
			if logDays < 7 {
				wantDD = 1
			}
			if records["rlog"] != 1 || records["dd"] != wantDD {
				t.Fatalf("%s: records %v, want one block (and %d dedupe block)", name, records, wantDD)
			}
			f.advance(3 * 24 * time.Hour) // past a 2-day log, within the 7-day dedupe
			f.must(&Tick{})
			if err := f.l.Flush(w); err != nil {
				t.Fatal(err)
			}
			if logDays < 7 {
				for k := range w {
					if strings.HasPrefix(k, LogPrefix) {
						t.Fatalf("%s: %s outlived its 2 days", name, k)
					}
				}
			}
			if reload {
				l, err := Load(w.scan, w)
				if err != nil {
					t.Fatal(err)
				}
				f.l = l
			}
			retry := append(append([]Charge(nil), batch...), charge("d"))
			got := f.do(&ChargeBatch{Charges: retry, Retry: true}).Value.([]ChargeResult)
			var statuses []string
			for _, r := range got {
				statuses = append(statuses, r.Status)
			}
			if s := strings.Join(statuses, " "); s != "rejected exists exists exists charged" {
				t.Fatalf("%s: retry: %s", name, s)
			}
			expect(t, f.usage(acct), "monthly.used_flows", "4")
		}
	}
}

// SetLogFormat raises the format once and refuses to lower it or to go
// past this build's; the format is state, kept across a reload.
func TestSetLogFormat(t *testing.T) {
	f := newFixtureLog(t, t0, LogFormatEntries, 30)
	f.fails(&SetLogFormat{Format: LogFormatCurrent + 1}, ErrInvalid)
	f.must(&SetLogFormat{Format: LogFormatBlocks})
	f.must(&SetLogFormat{Format: LogFormatBlocks})
	f.fails(&SetLogFormat{Format: LogFormatEntries}, ErrInvalid)
	w := memWriter{}
	if err := f.l.Flush(w); err != nil {
		t.Fatal(err)
	}
	l, err := Load(w.scan, w)
	if err != nil {
		t.Fatal(err)
	}
	if l.LogFormat() != LogFormatBlocks {
		t.Fatalf("reloaded format %d", l.LogFormat())
	}
	g := &fixture{t: t, l: New(), now: t0}
	g.fails(&Seed{NanoUSDPerFlow: DefaultNanoUSDPerFlow, Plans: DefaultPlans(), Models: DefaultModels(), DedupeDays: 7, RequestLogDays: 30,
		LogFormat: LogFormatCurrent + 1}, ErrInvalid)
}
