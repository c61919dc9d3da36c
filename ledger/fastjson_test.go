package ledger

import (
	"encoding/json"
	"testing"
)

// The hand-written encoders write exactly what encoding/json writes, so
// records are the same bytes whichever wrote them (replicas must agree).
func TestFastJSONMatchesEncodingJSON(t *testing.T) {
	accounts := []Account{{}, {ID: "a\u2028", Email: "x<y>@z&\"q\"", Name: "Zoë \\ \n", CreatedAt: -1, Plan: "pro",
		Sub: Subscription{CycleAnchor: 1, CycleIndex: 2, CycleStart: 3, CycleEnd: 4, PendingPlan: "free", Canceled: true, SubscribedAt: 5,
			PaidMicroUSD: 6, UsageMicroUSD: 7, RefundedMicroUSD: 8,
			Billing: BilledByStripe, Customer: "cus_\"1", PaymentMethod: "pm_<1>", RenewalIntent: "ren_1", RenewalDeadline: 13},
		Tier: "insider", MultiplierPPM: 9, BalanceMicroUSD: -10, ExtraEnabled: true, ExtraKeyID: "k", ExtraSpentMicroUSD: 11, ExtraPeriodStart: 12,
		W5h: Window{1, 2, 3}, Weekly: Window{4, 5, 6}, Monthly: Window{7, 8, 1 << 62}, KeyIDs: []string{"k1", "k\"2"}, PendingRefund: "rf",
		LastLog: "0000000000000001/r", Allowances: map[string]int64{"n3": 1, "n1": -2, "n\u00e92": 3}, AllowanceAt: map[string]int64{"n1": 4}},
		{KeyIDs: []string{}, Allowances: map[string]int64{}}}
	for i := range accounts {
		want, _ := json.Marshal(&accounts[i])
		if got := accounts[i].appendJSON(nil); string(got) != string(want) {
			t.Errorf("account %d\n got  %s\n want %s", i, got, want)
		}
	}
	tot := Totals{Requests: 3, InputTokens: 1 << 40, OutputTokens: -1, CacheReadTokens: 0, CacheWriteTokens: 7, MicroFlows: 123456789, MicroUSD: -42}
	for _, c := range []struct {
		got  []byte
		want any
	}{{tot.appendJSON(nil), &tot}} {
		want, _ := json.Marshal(c.want)
		if string(c.got) != string(want) {
			t.Errorf("\n got  %s\n want %s", c.got, want)
		}
	}
}
