package ledger

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// How charges are logged (the replicated log_format setting):
//
//   - LogFormatEntries: one request-log record (and, while request_log_days
//     < dedupe_days, one dedupe record) per charge, at rlog/<suffix>;
//   - LogFormatBlocks: one record per charge batch, at rlog/<suffix of its
//     first logged charge>, holding every entry that batch logged. At 30
//     charges a batch that is 30 times fewer Pebble keys to insert, flush
//     and compact: the most of what a checkpoint costs (bench/NOTES.md).
//
// The format is state, not build: every replica logs a batch alike, so
// replicas on different builds hash alike. A cluster bootstrapped by this
// build seeds LogFormatBlocks; one an earlier build seeded stays on
// entries until the leader sees every voter run a build that reads blocks
// and proposes SetLogFormat (cluster.Replica.TickLoop). Records of either
// format are read.
const (
	LogFormatEntries = 0
	LogFormatBlocks  = 1
	// LogFormatCurrent is the newest format this build writes and reads.
	LogFormatCurrent = LogFormatBlocks
)

// SetLogFormat raises how charges are logged. Proposed only once every
// voter runs a build that reads the format (an earlier build cannot decode
// this command, and would stop at it); lowering is refused.
type SetLogFormat struct {
	Format int `json:"format"`
}

func (*SetLogFormat) Type() CmdType { return 38 }

var _ = define((*SetLogFormat).apply, traits{gated: true})

func (c *SetLogFormat) apply(l *Ledger, _ int64) (None, error) {
	switch {
	case c.Format < l.logFormat:
		return None{}, invalid("log format %d is older than the cluster's %d", c.Format, l.logFormat)
	case c.Format > LogFormatCurrent:
		return None{}, invalid("log format %d is newer than this build's %d", c.Format, LogFormatCurrent)
	}
	if c.Format != l.logFormat {
		l.logFormat = c.Format
		l.markMeta()
	}
	return None{}, nil
}

// LogFormat is how this ledger logs charges now.
func (l *Ledger) LogFormat() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.logFormat
}

// blockRun is the block the charge batch being applied logs into, and, for
// a retried batch, the charges a block found in durable state says its
// first attempt applied.
type blockRun struct {
	head string // the block's key suffix: its first entry's own suffix
	n    int    // entries so far
	seen map[string]struct{}
}

// startBlock begins a charge batch's block.
func (l *Ledger) startBlock() {
	l.block.head, l.block.n = "", 0
	clear(l.block.seen)
}

// logAddress gives a new entry its place: its own suffix with entries, the
// next slot of the batch's block with blocks. It returns the address the
// account's chain and cursors use.
func (l *Ledger) logAddress(e *LogEntry) string {
	if l.logFormat < LogFormatBlocks {
		return e.suffix
	}
	if l.block.n == 0 {
		l.block.head = e.suffix
	}
	e.block, e.idx = l.block.head, l.block.n
	l.block.n++
	// One allocation: the suffix (17 + at most 64 bytes), a slash and the
	// place are put together on the stack.
	var buf [96]byte
	b := strconv.AppendInt(append(append(buf[:0], e.block...), '/'), int64(e.idx), 10)
	return string(b)
}

// rememberBlock notes the charges a durable block record lists: the lookup
// that found it was a retried batch's, for the charge that headed its first
// attempt's block, so its other charges were applied too (a batch applies
// whole, and a retry resends the same charges).
func (l *Ledger) rememberBlock(log bool, v []byte) {
	suffixes, err := blockSuffixes(log, v)
	if err != nil {
		panic("ledger: durable block: " + err.Error())
	}
	if l.block.seen == nil {
		l.block.seen = map[string]struct{}{}
	}
	for _, s := range suffixes {
		l.block.seen[s] = struct{}{}
	}
}

// logBlockVersion starts a block value: a request-log block (rlog/) is a
// uvarint count and, per entry, a uvarint length and the entry (version 2,
// LogEntry.appendBinary); a dedupe block (dd/) is a count and the
// entries' key suffixes. A stand-alone entry starts with its own version
// (1 or 2) and a stand-alone dedupe record is empty.
const logBlockVersion = 3

// appendLogBlock encodes entries as one request-log block.
func appendLogBlock(b []byte, entries []*LogEntry) []byte {
	b = append(b, logBlockVersion)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	var one []byte
	for _, e := range entries {
		one = e.appendBinary(one[:0])
		b = binary.AppendUvarint(b, uint64(len(one)))
		b = append(b, one...)
	}
	return b
}

// appendDedupeBlock encodes the entries' suffixes as one dedupe block.
func appendDedupeBlock(b []byte, entries []*LogEntry) []byte {
	b = append(b, logBlockVersion)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = appendString(b, e.suffix)
	}
	return b
}

// blockEntries calls fn with each encoded entry of a request-log block
// until it returns false; the rest is still checked for its framing, so a
// damaged record is refused whichever entry is read.
func blockEntries(v []byte, fn func(i int, entry []byte) bool) error {
	if len(v) == 0 || v[0] != logBlockVersion {
		return fmt.Errorf("%w: not a request-log block", ErrBadCommand)
	}
	r := reader{b: v[1:]}
	n := r.uvarint()
	more := true
	for i := uint64(0); i < n && r.err == nil; i++ {
		size := r.uvarint()
		if r.err == nil && size > uint64(len(r.b)) {
			return fmt.Errorf("%w: request-log block entry of %d bytes", ErrBadCommand, size)
		}
		if r.err != nil {
			break
		}
		entry := r.b[:size]
		r.b = r.b[size:]
		more = more && fn(int(i), entry)
	}
	return r.done("request-log block")
}

// blockSuffixes lists the charges a block record holds: a request-log
// block (rlog/) when log, else a dedupe block (dd/); none for a
// stand-alone record, whose key names its one charge.
func blockSuffixes(log bool, v []byte) ([]string, error) {
	if len(v) == 0 || v[0] != logBlockVersion {
		return nil, nil
	}
	var out []string
	if !log {
		r := reader{b: v[1:]}
		n := r.uvarint()
		for i := uint64(0); i < n && r.err == nil; i++ {
			out = append(out, r.str())
		}
		return out, r.done("dedupe block")
	}
	var derr error
	err := blockEntries(v, func(_ int, entry []byte) bool {
		var e LogEntry
		if e, derr = DecodeLogEntry(entry); derr != nil {
			return false
		}
		out = append(out, e.suffix)
		return true
	})
	if err == nil {
		err = derr
	}
	return out, err
}

// DecodeLogAt decodes the entry at idx of a stored request-log record: a
// stand-alone entry when idx < 0, else the idx-th of a block.
func DecodeLogAt(v []byte, idx int) (LogEntry, error) {
	if idx < 0 {
		return DecodeLogEntry(v)
	}
	var e LogEntry
	found := false
	var derr error
	err := blockEntries(v, func(i int, entry []byte) bool {
		if i < idx {
			return true
		}
		e, derr = DecodeLogEntry(entry)
		found = true
		return false
	})
	switch {
	case err != nil:
		return e, err
	case derr != nil:
		return e, derr
	case !found:
		return e, fmt.Errorf("%w: request-log block has no entry %d", ErrBadCommand, idx)
	}
	return e, nil
}

// ParseLogCursor reads a request-log address, as the API's cursors and the
// account chain carry it: a stand-alone entry's key suffix (16 hex digits
// of admission time, a slash and a request id), or a block's key suffix, a
// slash and the entry's place in it. It returns the durable key of the
// record to read and the place (-1 for a stand-alone entry).
func ParseLogCursor(cursor string) ([]byte, int, error) {
	bad := fmt.Errorf("%w: bad cursor", ErrInvalid)
	if len(cursor) < 18 || cursor[16] != '/' {
		return nil, 0, bad
	}
	for i := 0; i < 16; i++ {
		if c := cursor[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return nil, 0, bad
		}
	}
	key, idx := cursor, -1
	for i := len(cursor) - 1; i > 17; i-- {
		if cursor[i] == '/' {
			n, err := strconv.Atoi(cursor[i+1:])
			if err != nil || n < 0 || strconv.Itoa(n) != cursor[i+1:] {
				return nil, 0, bad
			}
			key, idx = cursor[:i], n
			break
		}
	}
	if !validID(key[17:]) {
		return nil, 0, bad
	}
	return []byte(LogPrefix + key), idx, nil
}
