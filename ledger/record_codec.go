package ledger

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The records every charge changes — its account and its per-day and
// per-model totals, rewritten at each checkpoint — are stored in a compact
// binary form: a version byte, then uvarint-prefixed strings and varint
// numbers in a fixed order. An account takes about 200 bytes against 800
// in JSON, a totals record about 20 against 150, which is what a node
// flushes and compacts per checkpoint. Earlier builds wrote these records
// as JSON; a JSON record starts with '{', which no binary version byte
// equals, so decoding goes by the first byte and both forms load.

// recordV1 is the first byte of a binary account or totals record.
const recordV1 = 1

// Account flag bits.
const (
	acctCanceled = 1 << iota
	acctExtraEnabled
)

// appendBinary encodes a as a binary record (recordV1).
func (a *Account) appendBinary(b []byte) []byte {
	s := &a.Sub
	b = append(b, recordV1)
	for _, v := range [...]string{a.ID, a.Email, a.Name, a.Plan, s.PendingPlan, s.Billing, s.Customer, s.PaymentMethod,
		s.RenewalIntent, a.Tier, a.ExtraKeyID, a.PendingRefund, a.LastLog} {
		b = appendString(b, v)
	}
	for _, v := range [...]int64{a.CreatedAt, s.CycleAnchor, int64(s.CycleIndex), s.CycleStart, s.CycleEnd, s.SubscribedAt,
		s.PaidMicroUSD, s.UsageMicroUSD, s.RefundedMicroUSD, s.RenewalDeadline, a.MultiplierPPM, a.BalanceMicroUSD,
		a.ExtraSpentMicroUSD, a.ExtraPeriodStart,
		a.W5h.StartedAt, a.W5h.ResetsAt, a.W5h.UsedMicroFlows, a.Weekly.StartedAt, a.Weekly.ResetsAt, a.Weekly.UsedMicroFlows,
		a.Monthly.StartedAt, a.Monthly.ResetsAt, a.Monthly.UsedMicroFlows} {
		b = binary.AppendVarint(b, v)
	}
	var flags byte
	if s.Canceled {
		flags |= acctCanceled
	}
	if a.ExtraEnabled {
		flags |= acctExtraEnabled
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(a.KeyIDs)))
	for _, k := range a.KeyIDs {
		b = appendString(b, k)
	}
	b = appendInt64Map(b, a.Allowances)
	return appendInt64Map(b, a.AllowanceAt)
}

// appendInt64Map writes a map's size and its entries in key order, so
// replicas write the same bytes.
func appendInt64Map(b []byte, m map[string]int64) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	if len(m) == 0 {
		return b
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = binary.AppendVarint(appendString(b, k), m[k])
	}
	return b
}

// decodeAccount reads an account record in either form. An empty key list
// or map reads as nil, as it would from JSON written by omitempty.
func decodeAccount(v []byte) (*Account, error) {
	a := new(Account)
	if len(v) > 0 && v[0] == '{' {
		if err := json.Unmarshal(v, a); err != nil {
			return nil, err
		}
		return a, nil
	}
	if len(v) == 0 || v[0] != recordV1 {
		return nil, fmt.Errorf("%w: account record version", ErrBadCommand)
	}
	s := &a.Sub
	r := reader{b: v[1:]}
	for _, p := range [...]*string{&a.ID, &a.Email, &a.Name, &a.Plan, &s.PendingPlan, &s.Billing, &s.Customer, &s.PaymentMethod,
		&s.RenewalIntent, &a.Tier, &a.ExtraKeyID, &a.PendingRefund, &a.LastLog} {
		*p = r.str()
	}
	var cycleIndex int64
	for _, p := range [...]*int64{&a.CreatedAt, &s.CycleAnchor, &cycleIndex, &s.CycleStart, &s.CycleEnd, &s.SubscribedAt,
		&s.PaidMicroUSD, &s.UsageMicroUSD, &s.RefundedMicroUSD, &s.RenewalDeadline, &a.MultiplierPPM, &a.BalanceMicroUSD,
		&a.ExtraSpentMicroUSD, &a.ExtraPeriodStart,
		&a.W5h.StartedAt, &a.W5h.ResetsAt, &a.W5h.UsedMicroFlows, &a.Weekly.StartedAt, &a.Weekly.ResetsAt, &a.Weekly.UsedMicroFlows,
		&a.Monthly.StartedAt, &a.Monthly.ResetsAt, &a.Monthly.UsedMicroFlows} {
		*p = r.varint()
	}
	s.CycleIndex = int(cycleIndex)
	flags := r.byte1()
	s.Canceled = flags&acctCanceled != 0
	a.ExtraEnabled = flags&acctExtraEnabled != 0
	if n := r.count(MaxKeysPerAccount); n > 0 {
		a.KeyIDs = make([]string, n)
		for i := range a.KeyIDs {
			a.KeyIDs[i] = r.str()
		}
	}
	a.Allowances = r.int64Map()
	a.AllowanceAt = r.int64Map()
	return a, r.done("account record")
}

// count reads a collection's size, refusing one over limit or longer than
// what is left (every element takes at least a byte).
func (r *reader) count(limit int) int {
	n := r.uvarint()
	if r.err == nil && (n > uint64(limit) || n > uint64(len(r.b))) {
		r.err = fmt.Errorf("%w: %d elements", ErrBadCommand, n)
	}
	if r.err != nil {
		return 0
	}
	return int(n)
}

func (r *reader) int64Map() map[string]int64 {
	n := r.count(len(r.b))
	if n == 0 {
		return nil
	}
	m := make(map[string]int64, n)
	for i := 0; i < n && r.err == nil; i++ {
		k := r.str()
		m[k] = r.varint()
	}
	return m
}

// done reports a decode error, or bytes left over.
func (r *reader) done(what string) error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %s: %d trailing bytes", ErrBadCommand, what, len(r.b))
	}
	return r.err
}

// appendBinary encodes t as a binary record (recordV1).
func (t *Totals) appendBinary(b []byte) []byte {
	b = append(b, recordV1)
	for _, v := range [...]int64{t.Requests, t.InputTokens, t.OutputTokens, t.CacheReadTokens, t.CacheWriteTokens, t.MicroFlows, t.MicroUSD} {
		b = binary.AppendVarint(b, v)
	}
	return b
}

// decodeTotals reads a totals record in either form into t.
func decodeTotals(v []byte, t *Totals) error {
	if len(v) > 0 && v[0] == '{' {
		return json.Unmarshal(v, t)
	}
	if len(v) == 0 || v[0] != recordV1 {
		return fmt.Errorf("%w: totals record version", ErrBadCommand)
	}
	r := reader{b: v[1:]}
	for _, p := range [...]*int64{&t.Requests, &t.InputTokens, &t.OutputTokens, &t.CacheReadTokens, &t.CacheWriteTokens, &t.MicroFlows, &t.MicroUSD} {
		*p = r.varint()
	}
	return r.done("totals record")
}

// Recode returns a stored record in the encoding this build writes, and
// whether that differs from value: a record an earlier build wrote (a JSON
// account or totals record, a version-1 request-log entry) is re-encoded,
// any other is returned as is. key is relative to the ledger's key space.
// A replica that opens state or restores a snapshot from an earlier build
// recodes every record before it serves, so its stored bytes — and its
// state hash — equal those of a replica that wrote the same state itself.
func Recode(key, value []byte) ([]byte, bool, error) {
	kind, _, _ := strings.Cut(string(key), "/")
	switch {
	case (kind == "acct") && len(value) > 0 && value[0] == '{':
		a, err := decodeAccount(value)
		if err != nil {
			return nil, false, fmt.Errorf("ledger: recode %q: %w", key, err)
		}
		return a.appendBinary(nil), true, nil
	case (kind == "day" || kind == "bymodel") && len(value) > 0 && value[0] == '{':
		var t Totals
		if err := decodeTotals(value, &t); err != nil {
			return nil, false, fmt.Errorf("ledger: recode %q: %w", key, err)
		}
		return t.appendBinary(nil), true, nil
	case kind+"/" == LogPrefix && len(value) > 0 && value[0] != logEntryVersion && value[0] != logBlockVersion:
		e, err := DecodeLogEntry(value)
		if err != nil {
			return nil, false, fmt.Errorf("ledger: recode %q: %w", key, err)
		}
		return e.appendBinary(nil), true, nil
	}
	return value, false, nil
}
