package ledger

import (
	"encoding/binary"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The JSON encoders of the account and totals records that builds before
// the binary records (record_codec.go) wrote at every checkpoint, byte for
// byte what encoding/json writes (TestFastJSONMatchesEncodingJSON). Kept
// here to write state as an earlier build did, so tests can check that a
// replica opening it recodes it to the bytes it would write itself.

func appendField(b []byte, name string, v int64) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

func appendStringField(b []byte, name, v string) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendJSONString(b, v)
}

func appendJSONString(b []byte, v string) []byte {
	if plainJSON(v) {
		b = append(b, '"')
		b = append(b, v...)
		return append(b, '"')
	}
	q, _ := json.Marshal(v) // escaping exactly as encoding/json does
	return append(b, q...)
}

// plainJSON reports a string encoding/json writes unchanged between quotes:
// printable ASCII other than the quote, the backslash and its HTML escapes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func appendBoolField(b []byte, name string, v bool) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendBool(b, v)
}

func (w *Window) appendJSON(b []byte) []byte {
	b = appendField(append(b, '{'), "started_at", w.StartedAt)
	b = appendField(append(b, ','), "resets_at", w.ResetsAt)
	b = appendField(append(b, ','), "used_micro_flows", w.UsedMicroFlows)
	return append(b, '}')
}

// appendJSONInt64Map writes a map with sorted keys, as encoding/json does.
func appendJSONInt64Map(b []byte, name string, m map[string]int64) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':', '{')
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(append(appendJSONString(b, k), ':'), m[k], 10)
	}
	return append(b, '}')
}

// appendJSON encodes a as encoding/json would.
func (a *Account) appendJSON(b []byte) []byte {
	b = appendStringField(append(b, '{'), "id", a.ID)
	b = appendStringField(append(b, ','), "email", a.Email)
	b = appendStringField(append(b, ','), "name", a.Name)
	b = appendField(append(b, ','), "created_at", a.CreatedAt)
	b = appendStringField(append(b, ','), "plan", a.Plan)
	s := &a.Sub
	b = append(b, `,"Sub":{`...)
	b = appendField(b, "cycle_anchor", s.CycleAnchor)
	b = appendField(append(b, ','), "cycle_index", int64(s.CycleIndex))
	b = appendField(append(b, ','), "cycle_start", s.CycleStart)
	b = appendField(append(b, ','), "cycle_end", s.CycleEnd)
	b = appendStringField(append(b, ','), "pending_plan", s.PendingPlan)
	b = appendBoolField(append(b, ','), "canceled", s.Canceled)
	b = appendField(append(b, ','), "subscribed_at", s.SubscribedAt)
	b = appendField(append(b, ','), "paid_micro_usd", s.PaidMicroUSD)
	b = appendField(append(b, ','), "usage_micro_usd", s.UsageMicroUSD)
	b = appendField(append(b, ','), "refunded_micro_usd", s.RefundedMicroUSD)
	if s.Billing != "" {
		b = appendStringField(append(b, ','), "billing", s.Billing)
	}
	if s.Customer != "" {
		b = appendStringField(append(b, ','), "customer", s.Customer)
	}
	if s.PaymentMethod != "" {
		b = appendStringField(append(b, ','), "payment_method", s.PaymentMethod)
	}
	if s.RenewalIntent != "" {
		b = appendStringField(append(b, ','), "renewal_intent", s.RenewalIntent)
	}
	if s.RenewalDeadline != 0 {
		b = appendField(append(b, ','), "renewal_deadline", s.RenewalDeadline)
	}
	b = append(b, '}')
	b = appendStringField(append(b, ','), "tier", a.Tier)
	b = appendField(append(b, ','), "multiplier_ppm", a.MultiplierPPM)
	b = appendField(append(b, ','), "balance_micro_usd", a.BalanceMicroUSD)
	b = appendBoolField(append(b, ','), "extra_enabled", a.ExtraEnabled)
	b = appendStringField(append(b, ','), "extra_key_id", a.ExtraKeyID)
	b = appendField(append(b, ','), "extra_spent_micro_usd", a.ExtraSpentMicroUSD)
	b = appendField(append(b, ','), "extra_period_start", a.ExtraPeriodStart)
	b = a.W5h.appendJSON(append(b, `,"w5h":`...))
	b = a.Weekly.appendJSON(append(b, `,"weekly":`...))
	b = a.Monthly.appendJSON(append(b, `,"monthly":`...))
	b = append(b, `,"key_ids":`...)
	if a.KeyIDs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, k := range a.KeyIDs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
		}
		b = append(b, ']')
	}
	b = appendStringField(append(b, ','), "pending_refund", a.PendingRefund)
	if a.LastLog != "" {
		b = appendStringField(append(b, ','), "last_log", a.LastLog)
	}
	if len(a.Allowances) > 0 {
		b = appendJSONInt64Map(b, "allowances", a.Allowances)
	}
	if len(a.AllowanceAt) > 0 {
		b = appendJSONInt64Map(b, "allowance_at", a.AllowanceAt)
	}
	return append(b, '}')
}

// appendJSON encodes t as encoding/json would.
func (t *Totals) appendJSON(b []byte) []byte {
	b = append(b, '{')
	b = appendField(b, "requests", t.Requests)
	b = appendField(append(b, ','), "input_tokens", t.InputTokens)
	b = appendField(append(b, ','), "output_tokens", t.OutputTokens)
	b = appendField(append(b, ','), "cache_read_tokens", t.CacheReadTokens)
	b = appendField(append(b, ','), "cache_write_tokens", t.CacheWriteTokens)
	b = appendField(append(b, ','), "micro_flows", t.MicroFlows)
	b = appendField(append(b, ','), "micro_usd", t.MicroUSD)
	return append(b, '}')
}

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

// appendBinaryV1 encodes e as earlier builds did (request-log version 1).
func (e *LogEntry) appendBinaryV1(b []byte) []byte {
	b = append(b, logEntryV1)
	for _, s := range [...]string{e.ID, e.AccountID, e.KeyID, e.Model, e.Billing, e.Status, e.Prev} {
		b = appendString(b, s)
	}
	for _, n := range [...]int64{e.At, e.AdmittedAt, e.InputTokens, e.OutputTokens, e.CacheReadTokens,
		e.CacheWriteTokens, e.Images, e.MicroFlows, e.MicroUSD} {
		b = binary.AppendVarint(b, n)
	}
	var flags byte
	if e.Estimated {
		flags |= logV1Estimated
	}
	return append(b, flags)
}

// legacyRecords re-encodes native records as an earlier build wrote them:
// JSON accounts and totals, version-1 request-log entries.
func legacyRecords(t testing.TB, native memWriter) memWriter {
	t.Helper()
	old := memWriter{}
	for k, v := range native {
		kind, _, _ := strings.Cut(k, "/")
		switch kind {
		case "acct":
			a, err := decodeAccount(v)
			if err != nil {
				t.Fatal(err)
			}
			v = a.appendJSON(nil)
		case "day", "bymodel":
			var tot Totals
			if err := decodeTotals(v, &tot); err != nil {
				t.Fatal(err)
			}
			v = tot.appendJSON(nil)
		case "rlog":
			e, err := DecodeLogEntry(v)
			if err != nil {
				t.Fatal(err)
			}
			v = e.appendBinaryV1(nil)
		}
		old[k] = v
	}
	return old
}
