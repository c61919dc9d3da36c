package ledger

import (
	"encoding/json"
	"slices"
	"strconv"
)

// The records a charge changes — its account and the per-day and
// per-model totals — are encoded by hand: byte for byte what encoding/json
// writes (TestFastJSONMatchesEncodingJSON), at a fraction of its cost at
// every checkpoint.

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

// appendInt64Map writes a map with sorted keys, as encoding/json does.
func appendInt64Map(b []byte, name string, m map[string]int64) []byte {
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
		b = appendInt64Map(b, "allowances", a.Allowances)
	}
	if len(a.AllowanceAt) > 0 {
		b = appendInt64Map(b, "allowance_at", a.AllowanceAt)
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
