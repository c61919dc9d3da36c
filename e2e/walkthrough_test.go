package e2e

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The README's "Walk-through: an operator with curl", run over HTTP against
// a real node in the README's order, with every figure it shows checked
// exactly; then the money rules it leads to (S3, R1, R3, E1, E3).

// wtCurlForm is the Content-Type `curl -d` sends. The walk-through's calls
// carry it, as they would from the README.
const wtCurlForm = "Content-Type: application/x-www-form-urlencoded"

var (
	wtAcctRE   = regexp.MustCompile(`^acct_[0-9a-f]+$`)
	wtKeyIDRE  = regexp.MustCompile(`^key_[0-9a-f]+$`)
	wtRefundRE = regexp.MustCompile(`^rf_[0-9a-f]+$`)
	wtSubKeyRE = regexp.MustCompile(`^sk-ss-v1-[0-9a-f]{64}$`)
	wtPaygRE   = regexp.MustCompile(`^sk-ai-v1-[0-9a-f]{64}$`)
)

// wtWant checks the status and decodes the JSON object answer.
func wtWant(t *testing.T, r *Response, status int) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	return r.JSON(t)
}

// wtErr checks an error answer: status, and exactly
// {"error":{"code":…,"message":…}} with the given code.
func wtErr(t *testing.T, r *Response, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if err := biErrorShape(r.Body, code); err != nil {
		t.Fatalf("%v: %s", err, r.Body)
	}
}

// wtTime parses an RFC 3339 UTC timestamp field.
func wtTime(t *testing.T, m map[string]any, path string) time.Time {
	t.Helper()
	s := Get(m, path)
	if !strings.HasSuffix(s, "Z") {
		t.Fatalf("%s = %q, want an RFC 3339 time in UTC", path, s)
	}
	ts, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("%s = %q: %v", path, s, err)
	}
	return ts
}

// wtAddMonth is "one calendar month later" (S2), written independently of
// the ledger: same day of month in UTC, clamped to the month's last day.
func wtAddMonth(ts time.Time) time.Time {
	ts = ts.UTC()
	y, m, d := ts.Date()
	m++
	if m > time.December {
		m, y = time.January, y+1
	}
	last := time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
	if d > last {
		d = last
	}
	return time.Date(y, m, d, ts.Hour(), ts.Minute(), ts.Second(), ts.Nanosecond(), time.UTC)
}

func wtKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// wtExactKeys checks that an object has exactly the given fields.
func wtExactKeys(t *testing.T, what string, m map[string]any, want ...string) {
	t.Helper()
	if len(m) != len(want) {
		t.Errorf("%s has fields %v, want exactly %v", what, wtKeys(m), want)
		return
	}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("%s has fields %v, want exactly %v", what, wtKeys(m), want)
			return
		}
	}
}

// wtAccount creates an account and returns its id.
func wtAccount(t *testing.T, n *Node, email string) string {
	t.Helper()
	m := wtWant(t, n.AdminDo("POST", "/admin/v1/accounts", fmt.Sprintf(`{"email":%q,"name":"T"}`, email)), 201)
	id := Get(m, "id")
	if !wtAcctRE.MatchString(id) {
		t.Fatalf("account id %q", id)
	}
	return id
}

func TestWalkthroughCalendarMonth(t *testing.T) {
	for _, c := range [][2]string{
		{"2025-01-31T10:00:00Z", "2025-02-28T10:00:00Z"},
		{"2024-01-31T10:00:00Z", "2024-02-29T10:00:00Z"},
		{"2025-03-31T23:59:59Z", "2025-04-30T23:59:59Z"},
		{"2025-12-15T00:00:01Z", "2026-01-15T00:00:01Z"},
		{"2025-12-31T12:00:00Z", "2026-01-31T12:00:00Z"},
		{"2025-02-28T08:00:00Z", "2025-03-28T08:00:00Z"},
	} {
		in, _ := time.Parse(time.RFC3339, c[0])
		if got := wtAddMonth(in).Format(time.RFC3339); got != c[1] {
			t.Errorf("addMonth(%s) = %s, want %s", c[0], got, c[1])
		}
	}
}

func TestREADMEWalkthrough(t *testing.T) {
	n := StartNode(t, NodeOptions{})

	// 1. Create an account (it starts on Free).
	t0 := time.Now().UTC().Truncate(time.Second)
	acct := wtWant(t, n.AdminDo("POST", "/admin/v1/accounts", `{"email":"ada@example.com","name":"Ada"}`, wtCurlForm), 201)
	wtExactKeys(t, "account", acct, "id", "email", "name", "plan", "subscription", "flow_value", "extra_usage", "balance_usd", "created_at")
	Expect(t, acct,
		"email", "ada@example.com", "name", "Ada",
		"plan", "free", "subscription.plan", "free", "subscription.status", "active",
		"subscription.cycle_start", "null", "subscription.cycle_end", "null",
		"subscription.pending_plan", "null", "subscription.paid_usd", "0",
		"flow_value.tier", "standard", "flow_value.multiplier", "1",
		"extra_usage.enabled", "false", "extra_usage.payg_key_id", "null", "extra_usage.spent_usd", "0",
		"balance_usd", "0")
	if created := wtTime(t, acct, "created_at"); created.Before(t0) || created.After(time.Now().Add(time.Second)) {
		t.Errorf("created_at %s is not the time of the call (%s)", created, t0)
	}
	id := Get(acct, "id")
	if !wtAcctRE.MatchString(id) {
		t.Fatalf("account id %q", id)
	}
	base := "/admin/v1/accounts/" + id

	// 2. Subscribe to Pro: a $20 payment starts a one-month billing cycle.
	const subBody = `{"plan":"pro"}`
	t1 := time.Now().UTC().Truncate(time.Second)
	subResp := n.AdminDo("POST", base+"/subscription", subBody, wtCurlForm, "Idempotency-Key: sub-ada-1")
	t2 := time.Now().UTC()
	sub := wtWant(t, subResp, 200)
	wtExactKeys(t, "subscription", sub, "plan", "status", "cycle_start", "cycle_end", "pending_plan", "paid_usd")
	Expect(t, sub, "plan", "pro", "status", "active", "pending_plan", "null", "paid_usd", "20")
	start, end := wtTime(t, sub, "cycle_start"), wtTime(t, sub, "cycle_end")
	if start.Before(t1) || start.After(t2) {
		t.Errorf("cycle_start %s is not the payment time (%s .. %s)", start, t1, t2)
	}
	if want := wtAddMonth(start); !end.Equal(want) {
		t.Errorf("cycle_end %s, want one calendar month after %s: %s", end, start, want)
	}

	// The same key and body: the first answer, byte for byte, and no
	// second payment.
	replay := n.AdminDo("POST", base+"/subscription", subBody, wtCurlForm, "Idempotency-Key: sub-ada-1")
	if replay.Status != 200 || !bytes.Equal(replay.Body, subResp.Body) {
		t.Errorf("replay: %d %s, want 200 and the first body %s", replay.Status, replay.Body, subResp.Body)
	}
	// The same key with another body is refused.
	wtErr(t, n.AdminDo("POST", base+"/subscription", `{"plan":"max"}`, wtCurlForm, "Idempotency-Key: sub-ada-1"), 409, "idempotency_key_reused")
	after := wtWant(t, n.AdminDo("GET", base, ""), 200)
	Expect(t, after, "plan", "pro", "subscription.paid_usd", "20",
		"subscription.cycle_start", Get(sub, "cycle_start"), "subscription.cycle_end", Get(sub, "cycle_end"))

	// 3. Create a subscription key: the secret is shown once.
	key := wtWant(t, n.AdminDo("POST", base+"/keys", `{"kind":"subscription","name":"laptop"}`, wtCurlForm), 201)
	wtExactKeys(t, "key", key, "id", "key", "kind", "name", "last4", "created_at", "last_used_at")
	Expect(t, key, "kind", "subscription", "name", "laptop", "last_used_at", "null")
	secret, keyID := Get(key, "key"), Get(key, "id")
	if !wtSubKeyRE.MatchString(secret) {
		t.Errorf("key %q does not match %s", secret, wtSubKeyRE)
	}
	if !wtKeyIDRE.MatchString(keyID) {
		t.Errorf("key id %q", keyID)
	}
	if got := Get(key, "last4"); len(secret) < 4 || got != secret[len(secret)-4:] {
		t.Errorf("last4 = %q, key ends in %q", got, secret[max(0, len(secret)-4):])
	}
	wtTime(t, key, "created_at")
	keysResp := n.AdminDo("GET", base+"/keys", "")
	keys := wtWant(t, keysResp, 200)
	Expect(t, keys, "data.0.id", keyID, "data.0.kind", "subscription", "data.0.name", "laptop",
		"data.0.last4", Get(key, "last4"), "data.0.created_at", Get(key, "created_at"), "data.0.last_used_at", "null",
		"data.1", "<missing>")
	if k0, ok := keys["data"].([]any)[0].(map[string]any); !ok {
		t.Fatalf("keys: %s", keysResp.Body)
	} else if _, has := k0["key"]; has {
		t.Errorf("the key list shows the secret field: %s", keysResp.Body)
	}
	if bytes.Contains(keysResp.Body, []byte(secret[len("sk-ss-v1-"):])) {
		t.Errorf("the key list contains the secret: %s", keysResp.Body)
	}

	// 4. Read usage: each window's used, limit and remaining Flows.
	usage := wtWant(t, n.AdminDo("GET", base+"/usage", ""), 200)
	wtExactKeys(t, "usage", usage, "plan", "window_5h", "weekly", "monthly", "extra_usage", "by_model", "by_day")
	Expect(t, usage, "plan", "pro",
		"window_5h.used_flows", "0", "window_5h.limit_flows", "50", "window_5h.remaining_flows", "50",
		"window_5h.started_at", "null", "window_5h.resets_at", "null",
		"weekly.used_flows", "0", "weekly.limit_flows", "213.37", "weekly.remaining_flows", "213.37",
		"weekly.started_at", "null", "weekly.resets_at", "null",
		"monthly.used_flows", "0", "monthly.limit_flows", "914.443", "monthly.remaining_flows", "914.443",
		// Q3: the monthly max runs per billing cycle, so its window is
		// the cycle itself and is active from the payment on.
		"monthly.started_at", Get(sub, "cycle_start"),
		"extra_usage.spent_usd", "0", "by_model", "[]", "by_day", "[]")
	// It resets at the cycle's end, shown rounded up to the second (never
	// early); cycle_end, like cycle_start, is the truncated second.
	if d := wtTime(t, usage, "monthly.resets_at").Sub(end); d != 0 && d != time.Second {
		t.Errorf("monthly.resets_at %s, want cycle_end %s rounded up to the second", Get(usage, "monthly.resets_at"), Get(sub, "cycle_end"))
	}

	// 5. Upgrade to Max right after subscribing: the whole difference.
	const upBody = `{"plan":"max"}`
	t3 := time.Now().UTC().Truncate(time.Second)
	upResp := n.AdminDo("POST", base+"/subscription/change", upBody, wtCurlForm, "Idempotency-Key: up-ada-1")
	t4 := time.Now().UTC()
	up := wtWant(t, upResp, 200)
	wtExactKeys(t, "change", up, "plan", "charged_usd", "effective_at", "subscription")
	Expect(t, up, "plan", "max", "charged_usd", "80",
		"subscription.plan", "max", "subscription.status", "active", "subscription.paid_usd", "100",
		"subscription.pending_plan", "null",
		// S3: the cycle anchor does not move.
		"subscription.cycle_start", Get(sub, "cycle_start"), "subscription.cycle_end", Get(sub, "cycle_end"))
	if eff := wtTime(t, up, "effective_at"); eff.Before(t3) || eff.After(t4) {
		t.Errorf("effective_at %s is not now (%s .. %s)", eff, t3, t4)
	}
	if r := n.AdminDo("POST", base+"/subscription/change", upBody, wtCurlForm, "Idempotency-Key: up-ada-1"); r.Status != 200 || !bytes.Equal(r.Body, upResp.Body) {
		t.Errorf("upgrade replay: %d %s, want 200 and %s", r.Status, r.Body, upResp.Body)
	}
	// S3: the new limits apply at once.
	usage = wtWant(t, n.AdminDo("GET", base+"/usage", ""), 200)
	Expect(t, usage, "plan", "max", "window_5h.limit_flows", "300", "weekly.limit_flows", "1280.22", "monthly.limit_flows", "5486.659")

	// 6. Preview a refund: paid 100 (20 + 80, each once), no usage, 5% fee.
	prev := wtWant(t, n.AdminDo("POST", base+"/refunds/preview", ""), 200)
	wtExactKeys(t, "preview", prev, "eligible", "reason", "total_paid_usd", "usage_usd", "already_refunded_usd", "refundable_usd", "fee_usd", "final_usd")
	Expect(t, prev, "eligible", "true", "reason", "", "total_paid_usd", "100", "usage_usd", "0",
		"already_refunded_usd", "0", "refundable_usd", "100", "fee_usd", "5", "final_usd", "95")
}

// S3: Pro → Max half-way through the cycle charges half the difference.
func TestUpgradeProration_S3(t *testing.T) {
	n := StartNode(t, NodeOptions{TestClock: true})
	id := wtAccount(t, n, "half@example.com")
	base := "/admin/v1/accounts/" + id
	sub := wtWant(t, n.AdminDo("POST", base+"/subscription", `{"plan":"pro"}`, "Idempotency-Key: s3-sub"), 200)
	Expect(t, sub, "plan", "pro", "paid_usd", "20")
	start, end := wtTime(t, sub, "cycle_start"), wtTime(t, sub, "cycle_end")
	cycle := end.Sub(start)
	if cycle%(2*time.Second) != 0 {
		t.Fatalf("cycle of %s has no whole-second half", cycle)
	}
	half := int64(cycle / 2 / time.Second)

	clock := wtWant(t, n.AdminDo("POST", "/admin/v1/clock", fmt.Sprintf(`{"advance_seconds":%d}`, half)), 200)
	if now := wtTime(t, clock, "now"); now.Before(start.Add(time.Duration(half) * time.Second)) {
		t.Fatalf("clock now %s, want at least %s", now, start.Add(time.Duration(half)*time.Second))
	}

	up := wtWant(t, n.AdminDo("POST", base+"/subscription/change", `{"plan":"max"}`, "Idempotency-Key: s3-up"), 200)
	Expect(t, up, "plan", "max", "charged_usd", "40", "subscription.plan", "max", "subscription.paid_usd", "60",
		"subscription.cycle_start", Get(sub, "cycle_start"), "subscription.cycle_end", Get(sub, "cycle_end"))
	mid := start.Add(time.Duration(half) * time.Second)
	if eff := wtTime(t, up, "effective_at"); eff.Before(mid) || eff.After(mid.Add(time.Minute)) {
		t.Errorf("effective_at %s, want the advanced clock ≈ %s", eff, mid)
	}

	// R1: half a month after the payment, no refund.
	prev := wtWant(t, n.AdminDo("POST", base+"/refunds/preview", ""), 200)
	Expect(t, prev, "eligible", "false", "total_paid_usd", "60")
	if reason := Get(prev, "reason"); !strings.Contains(reason, "24 hours") {
		t.Errorf("reason %q, want the 24-hour rule", reason)
	}
	wtErr(t, n.AdminDo("POST", base+"/refunds", "", "Idempotency-Key: s3-rf"), 409, "refund_not_eligible")
	Expect(t, wtWant(t, n.AdminDo("GET", base, ""), 200), "plan", "max", "subscription.paid_usd", "60")
}

// R3: processing → succeeded, the account on Free from the submit on; a
// resolved refund cannot change again. A canceled one gives the plan back.
func TestRefundFlow_R3(t *testing.T) {
	n := StartNode(t, NodeOptions{})
	id := wtAccount(t, n, "refund@example.com")
	base := "/admin/v1/accounts/" + id
	sub := wtWant(t, n.AdminDo("POST", base+"/subscription", `{"plan":"max"}`, "Idempotency-Key: r3-sub"), 200)
	Expect(t, sub, "plan", "max", "paid_usd", "100")

	subResp := n.AdminDo("POST", base+"/refunds", "", "Idempotency-Key: r3-rf")
	rf := wtWant(t, subResp, 201)
	rid := Get(rf, "id")
	if !wtRefundRE.MatchString(rid) {
		t.Fatalf("refund id %q", rid)
	}
	Expect(t, rf, "status", "processing", "account_id", id, "plan", "max", "resolved_at", "null",
		"total_paid_usd", "100", "usage_usd", "0", "already_refunded_usd", "0",
		"refundable_usd", "100", "fee_usd", "5", "final_usd", "95")
	wtTime(t, rf, "submitted_at")
	if r := n.AdminDo("POST", base+"/refunds", "", "Idempotency-Key: r3-rf"); r.Status != 201 || !bytes.Equal(r.Body, subResp.Body) {
		t.Errorf("refund replay: %d %s, want 201 and %s", r.Status, r.Body, subResp.Body)
	}

	// On submit the account drops to Free at once.
	acct := wtWant(t, n.AdminDo("GET", base, ""), 200)
	Expect(t, acct, "plan", "free", "subscription.plan", "free", "subscription.cycle_start", "null", "subscription.paid_usd", "0")
	Expect(t, wtWant(t, n.AdminDo("GET", base+"/usage", ""), 200), "plan", "free", "window_5h.limit_flows", "5")
	Expect(t, wtWant(t, n.AdminDo("GET", "/admin/v1/refunds/"+rid, ""), 200), "status", "processing")
	Expect(t, wtWant(t, n.AdminDo("POST", base+"/refunds/preview", ""), 200), "eligible", "false")
	wtErr(t, n.AdminDo("POST", base+"/refunds", ""), 409, "refund_not_eligible")

	done := wtWant(t, n.AdminDo("POST", "/admin/v1/refunds/"+rid+"/status", `{"status":"succeeded"}`), 200)
	Expect(t, done, "id", rid, "status", "succeeded", "final_usd", "95", "refundable_usd", "100", "fee_usd", "5")
	wtTime(t, done, "resolved_at")

	// A second status change is refused, whatever it asks.
	wtErr(t, n.AdminDo("POST", "/admin/v1/refunds/"+rid+"/status", `{"status":"failed"}`), 409, "conflict")
	wtErr(t, n.AdminDo("POST", "/admin/v1/refunds/"+rid+"/status", `{"status":"canceled"}`), 409, "conflict")
	wtErr(t, n.AdminDo("POST", "/admin/v1/refunds/"+rid+"/status", `{"status":"succeeded"}`), 409, "conflict")
	Expect(t, wtWant(t, n.AdminDo("GET", "/admin/v1/refunds/"+rid, ""), 200), "status", "succeeded", "final_usd", "95",
		"resolved_at", Get(done, "resolved_at"))
	Expect(t, wtWant(t, n.AdminDo("GET", base, ""), 200), "plan", "free", "subscription.paid_usd", "0")

	// processing → canceled gives the plan and its cycle back.
	id2 := wtAccount(t, n, "refund2@example.com")
	base2 := "/admin/v1/accounts/" + id2
	sub2 := wtWant(t, n.AdminDo("POST", base2+"/subscription", `{"plan":"pro"}`), 200)
	rf2 := wtWant(t, n.AdminDo("POST", base2+"/refunds", ""), 201)
	Expect(t, wtWant(t, n.AdminDo("GET", base2, ""), 200), "plan", "free")
	Expect(t, wtWant(t, n.AdminDo("POST", "/admin/v1/refunds/"+Get(rf2, "id")+"/status", `{"status":"canceled"}`), 200), "status", "canceled")
	Expect(t, wtWant(t, n.AdminDo("GET", base2, ""), 200), "plan", "pro", "subscription.paid_usd", "20",
		"subscription.cycle_start", Get(sub2, "cycle_start"), "subscription.cycle_end", Get(sub2, "cycle_end"))
}

// E3 top-up and E1 Extra Usage: a round trip through the admin API.
func TestWalkthroughBalanceAndExtraUsage(t *testing.T) {
	n := StartNode(t, NodeOptions{})
	id := wtAccount(t, n, "payg@example.com")
	base := "/admin/v1/accounts/" + id

	topResp := n.AdminDo("POST", base+"/balance", `{"add_usd":10}`, "Idempotency-Key: bal-1")
	top := wtWant(t, topResp, 200)
	wtExactKeys(t, "balance", top, "balance_usd")
	Expect(t, top, "balance_usd", "10")
	if r := n.AdminDo("POST", base+"/balance", `{"add_usd":10}`, "Idempotency-Key: bal-1"); r.Status != 200 || !bytes.Equal(r.Body, topResp.Body) {
		t.Errorf("top-up replay: %d %s, want 200 and %s", r.Status, r.Body, topResp.Body)
	}
	Expect(t, wtWant(t, n.AdminDo("POST", base+"/balance", `{"add_usd":2.5}`, "Idempotency-Key: bal-2"), 200), "balance_usd", "12.5")
	Expect(t, wtWant(t, n.AdminDo("GET", base, ""), 200), "balance_usd", "12.5", "extra_usage.balance_usd", "12.5")

	// E1: off by default.
	Expect(t, wtWant(t, n.AdminDo("GET", base+"/extra-usage", ""), 200), "enabled", "false", "payg_key_id", "null", "payg_key", "null", "spent_usd", "0")

	payg := wtWant(t, n.AdminDo("POST", base+"/keys", `{"kind":"payg","name":"overage"}`), 201)
	if !wtPaygRE.MatchString(Get(payg, "key")) {
		t.Errorf("payg key %q does not match %s", Get(payg, "key"), wtPaygRE)
	}
	sk := wtWant(t, n.AdminDo("POST", base+"/keys", `{"kind":"subscription","name":"laptop"}`), 201)
	pid := Get(payg, "id")

	on := wtWant(t, n.AdminDo("PUT", base+"/extra-usage", fmt.Sprintf(`{"enabled":true,"payg_key_id":%q}`, pid)), 200)
	Expect(t, on, "enabled", "true", "payg_key_id", pid, "payg_key.id", pid, "payg_key.name", "overage",
		"payg_key.kind", "payg", "payg_key.last4", Get(payg, "last4"), "payg_key.created_at", Get(payg, "created_at"),
		"payg_key.last_used_at", "null", "spent_usd", "0", "balance_usd", "12.5")
	if pk, _ := on["payg_key"].(map[string]any); pk == nil {
		t.Errorf("payg_key is not an object: %v", on["payg_key"])
	} else if _, has := pk["key"]; has {
		t.Errorf("payg_key shows the secret field: %v", pk)
	}
	got := n.AdminDo("GET", base+"/extra-usage", "")
	Expect(t, wtWant(t, got, 200), "enabled", "true", "payg_key_id", pid, "payg_key.id", pid)
	if strings.Contains(string(got.Body), Get(payg, "key")) {
		t.Errorf("extra-usage shows the payg secret: %s", got.Body)
	}

	// E1: only a pay-as-you-go key will do; the refusal changes nothing.
	wtErr(t, n.AdminDo("PUT", base+"/extra-usage", fmt.Sprintf(`{"enabled":true,"payg_key_id":%q}`, Get(sk, "id"))), 400, "invalid_request")
	Expect(t, wtWant(t, n.AdminDo("GET", base+"/extra-usage", ""), 200), "enabled", "true", "payg_key_id", pid)
	Expect(t, wtWant(t, n.AdminDo("GET", base, ""), 200), "extra_usage.enabled", "true", "extra_usage.payg_key.id", pid)

	off := wtWant(t, n.AdminDo("PUT", base+"/extra-usage", `{"enabled":false}`), 200)
	Expect(t, off, "enabled", "false", "balance_usd", "12.5")
}
