package ledger

import (
	"encoding/binary"
	"fmt"
)

// logEntryVersion is the first byte of a stored request-log entry.
const logEntryVersion = 1

const logEstimated = 1 << 0

// appendBinary encodes e: the version, its strings (uvarint length and
// bytes), its numbers (varints) and a flags byte. About 90 bytes for a
// typical entry, against 330 in JSON: the request log is most of what a
// node writes per charge.
func (e *LogEntry) appendBinary(b []byte) []byte {
	b = append(b, logEntryVersion)
	for _, s := range [...]string{e.ID, e.AccountID, e.KeyID, e.Model, e.Billing, e.Status, e.Prev} {
		b = appendString(b, s)
	}
	for _, n := range [...]int64{e.At, e.AdmittedAt, e.InputTokens, e.OutputTokens, e.CacheReadTokens,
		e.CacheWriteTokens, e.Images, e.MicroFlows, e.MicroUSD} {
		b = binary.AppendVarint(b, n)
	}
	var flags byte
	if e.Estimated {
		flags |= logEstimated
	}
	return append(b, flags)
}

// DecodeLogEntry decodes a stored request-log entry; anything else is an
// error.
func DecodeLogEntry(v []byte) (LogEntry, error) {
	var e LogEntry
	if len(v) == 0 || v[0] != logEntryVersion {
		return e, fmt.Errorf("%w: request-log entry version", ErrBadCommand)
	}
	r := reader{b: v[1:]}
	for _, s := range [...]*string{&e.ID, &e.AccountID, &e.KeyID, &e.Model, &e.Billing, &e.Status, &e.Prev} {
		*s = r.str()
	}
	for _, n := range [...]*int64{&e.At, &e.AdmittedAt, &e.InputTokens, &e.OutputTokens, &e.CacheReadTokens,
		&e.CacheWriteTokens, &e.Images, &e.MicroFlows, &e.MicroUSD} {
		*n = r.varint()
	}
	e.Estimated = r.byte1()&logEstimated != 0
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrBadCommand, len(r.b))
	}
	e.suffix = logSuffix(e.AdmittedAt, e.ID)
	return e, r.err
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

// LogKey is the durable key (under the ledger's key space) of the
// request-log entry a listing cursor names. A cursor is an entry's key
// suffix: 16 hex digits of admission time, a slash and a request id.
func LogKey(cursor string) ([]byte, error) {
	ok := len(cursor) > 17 && cursor[16] == '/' && validID(cursor[17:])
	for i := 0; ok && i < 16; i++ {
		c := cursor[i]
		ok = c >= '0' && c <= '9' || c >= 'a' && c <= 'f'
	}
	if !ok {
		return nil, fmt.Errorf("%w: bad cursor", ErrInvalid)
	}
	return []byte(LogPrefix + cursor), nil
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
