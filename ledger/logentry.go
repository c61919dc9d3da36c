package ledger

import (
	"encoding/binary"
	"fmt"
)

// Stored request-log entries start with their version: 1 was written by
// earlier builds and is still read; 2 is written.
const (
	logEntryV1      = 1
	logEntryVersion = 2
)

// The version-2 codes byte: how Billing, Status and Prev are stored, and
// the Estimated flag.
const (
	logBillingMask   = 3 << 0 // 0: a string follows; else logBillings[code]
	logStatusOK      = 1 << 2 // Status is "ok"; else a string follows
	logEstimated2    = 1 << 3
	logPrevMask      = 3 << 4
	logPrevNone      = 0 << 4
	logPrevCompact   = 1 << 4 // admission time delta, then the id against this one's
	logPrevString    = 2 << 4
	logV1Estimated   = 1 << 0 // version 1's flags byte
	logBillingString = 0
)

var logBillings = [...]string{1: BillingSubscription, 2: BillingPayg}

// appendBinary encodes e as version 2: its id, account, key and model
// (uvarint length and bytes), a codes byte, Billing and Status only when
// they are not the usual values, the admission time, the completion time
// as a delta from it, the counts (varints), and Prev — the previous
// entry's key suffix — as its admission time's delta and the length of
// the prefix its id shares with this id. About 60 bytes for a typical
// entry, against 100 in version 1 and 330 in JSON: the request log is
// most of what a node writes per charge.
func (e *LogEntry) appendBinary(b []byte) []byte {
	b = append(b, logEntryVersion)
	for _, s := range [...]string{e.ID, e.AccountID, e.KeyID, e.Model} {
		b = appendString(b, s)
	}
	var codes byte
	for i, name := range logBillings {
		if i > 0 && e.Billing == name {
			codes |= byte(i)
		}
	}
	if e.Status == "ok" {
		codes |= logStatusOK
	}
	if e.Estimated {
		codes |= logEstimated2
	}
	prevAt, prevID, compact := splitSuffix(e.Prev)
	switch {
	case e.Prev == "":
	case compact:
		codes |= logPrevCompact
	default:
		codes |= logPrevString
	}
	b = append(b, codes)
	if codes&logBillingMask == logBillingString {
		b = appendString(b, e.Billing)
	}
	if codes&logStatusOK == 0 {
		b = appendString(b, e.Status)
	}
	b = binary.AppendVarint(b, e.AdmittedAt)
	b = binary.AppendVarint(b, e.At-e.AdmittedAt) // wraps both ways: exact
	for _, n := range [...]int64{e.InputTokens, e.OutputTokens, e.CacheReadTokens, e.CacheWriteTokens, e.Images, e.MicroFlows, e.MicroUSD} {
		b = binary.AppendVarint(b, n)
	}
	switch codes & logPrevMask {
	case logPrevCompact:
		b = binary.AppendVarint(b, e.AdmittedAt-prevAt)
		shared := 0
		for shared < len(prevID) && shared < len(e.ID) && prevID[shared] == e.ID[shared] {
			shared++
		}
		b = binary.AppendUvarint(b, uint64(shared))
		b = appendString(b, prevID[shared:])
	case logPrevString:
		b = appendString(b, e.Prev)
	}
	return b
}

// splitSuffix splits a request-log key suffix into its admission time and
// request id; ok only when logSuffix rebuilds it byte for byte.
func splitSuffix(s string) (at int64, id string, ok bool) {
	if len(s) < 17 || s[16] != '/' {
		return 0, "", false
	}
	var u uint64
	for i := 0; i < 16; i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			u = u<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			u = u<<4 | uint64(c-'a'+10)
		default:
			return 0, "", false
		}
	}
	return int64(u), s[17:], true
}

// DecodeLogEntry decodes a stored request-log entry of either version;
// anything else is an error.
func DecodeLogEntry(v []byte) (LogEntry, error) {
	var e LogEntry
	if len(v) == 0 || v[0] != logEntryV1 && v[0] != logEntryVersion {
		return e, fmt.Errorf("%w: request-log entry version", ErrBadCommand)
	}
	r := reader{b: v[1:]}
	if v[0] == logEntryV1 {
		for _, s := range [...]*string{&e.ID, &e.AccountID, &e.KeyID, &e.Model, &e.Billing, &e.Status, &e.Prev} {
			*s = r.str()
		}
		for _, n := range [...]*int64{&e.At, &e.AdmittedAt, &e.InputTokens, &e.OutputTokens, &e.CacheReadTokens,
			&e.CacheWriteTokens, &e.Images, &e.MicroFlows, &e.MicroUSD} {
			*n = r.varint()
		}
		e.Estimated = r.byte1()&logV1Estimated != 0
	} else {
		e.decodeV2(&r)
	}
	if err := r.done("request-log entry"); err != nil {
		return e, err
	}
	e.suffix = logSuffix(e.AdmittedAt, e.ID)
	return e, nil
}

func (e *LogEntry) decodeV2(r *reader) {
	for _, s := range [...]*string{&e.ID, &e.AccountID, &e.KeyID, &e.Model} {
		*s = r.str()
	}
	codes := r.byte1()
	if code := codes & logBillingMask; code == logBillingString {
		e.Billing = r.str()
	} else if int(code) < len(logBillings) {
		e.Billing = logBillings[code]
	} else if r.err == nil {
		r.err = fmt.Errorf("%w: request-log billing code %d", ErrBadCommand, code)
	}
	e.Status = "ok"
	if codes&logStatusOK == 0 {
		e.Status = r.str()
	}
	e.Estimated = codes&logEstimated2 != 0
	e.AdmittedAt = r.varint()
	e.At = e.AdmittedAt + r.varint()
	for _, n := range [...]*int64{&e.InputTokens, &e.OutputTokens, &e.CacheReadTokens, &e.CacheWriteTokens, &e.Images, &e.MicroFlows, &e.MicroUSD} {
		*n = r.varint()
	}
	switch codes & logPrevMask {
	case logPrevNone:
	case logPrevCompact:
		prevAt := e.AdmittedAt - r.varint()
		shared := r.uvarint()
		rest := r.str()
		if r.err == nil && shared > uint64(len(e.ID)) {
			r.err = fmt.Errorf("%w: request-log prev shares %d bytes", ErrBadCommand, shared)
		}
		if r.err == nil {
			e.Prev = logSuffix(prevAt, e.ID[:shared]+rest)
		}
	case logPrevString:
		e.Prev = r.str()
	default:
		if r.err == nil {
			r.err = fmt.Errorf("%w: request-log prev code", ErrBadCommand)
		}
	}
	if codes&^(logBillingMask|logStatusOK|logEstimated2|logPrevMask) != 0 && r.err == nil {
		r.err = fmt.Errorf("%w: request-log codes %#x", ErrBadCommand, codes)
	}
}

// View renders the entry for the API (U1).
func (e *LogEntry) View() LogEntryView {
	return LogEntryView{
		ID: e.ID, At: rfc3339(e.At), Model: e.Model, KeyID: e.KeyID,
		InputTokens: e.InputTokens, OutputTokens: e.OutputTokens, CacheReadTokens: e.CacheReadTokens,
		CacheWriteTokens: e.CacheWriteTokens, Images: e.Images, Flows: Micro(e.MicroFlows), USDValue: Micro(e.MicroUSD),
		Billing: e.Billing, Status: e.Status, Estimated: e.Estimated,
	}
}

// LastLog is the head of an account's request-log chain ("" when it has
// none).
func (l *Ledger) LastLog(accountID string) string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if a := l.accounts[accountID]; a != nil {
		return a.LastLog
	}
	return ""
}
