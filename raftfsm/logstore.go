package raftfsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
)

// Key layout inside the log's Pebble DB: "l/" (raft log) and "k/" (raft
// stable store); this file never touches any other key.
const (
	logPrefix    = "l/"
	stablePrefix = "k/"

	// logKeyLen is len("l/") + 8-byte big-endian index.
	logKeyLen = len(logPrefix) + 8

	// logEncodingV1 is the first byte of every encoded raft.Log.
	logEncodingV1 byte = 1
)

var (
	// logLower and logUpper bound every log key: "l/" <= key < "l0"
	// ('0' is the byte after '/'), so iterators never leave our prefix.
	logLower = []byte(logPrefix)
	logUpper = []byte("l0")

	// errKeyNotFound must have exactly this message: hashicorp/raft detects a
	// missing stable key by comparing err.Error() to "not found" (see
	// raft.NewRaft, raft.HasExistingState), the same convention raft-boltdb
	// and raft.InmemStore use.
	errKeyNotFound = errors.New("not found")
)

// LogStore implements raft.LogStore and raft.StableStore on a Pebble DB of
// their own (the state is in another: DESIGN.md). Every write is a single
// batch committed with pebble.Sync, so anything it has acknowledged
// survives kill -9.
//
// All methods are safe for concurrent use: Pebble itself is concurrent-safe,
// and log writes are serialised by a mutex so the cached first/last indexes
// always match what is on disk.
type LogStore struct {
	db *pebble.DB

	// mu serialises log mutations (StoreLogs, DeleteRange) together with
	// the updates of first/last so that the cache cannot diverge from disk.
	mu sync.Mutex

	// first and last cache the lowest and highest stored log index (0 when
	// the log is empty) so FirstIndex/LastIndex are O(1) atomic loads.
	first atomic.Uint64
	last  atomic.Uint64
}

// Compile-time checks that LogStore satisfies both raft storage interfaces.
var (
	_ raft.LogStore    = (*LogStore)(nil)
	_ raft.StableStore = (*LogStore)(nil)
)

// NewLogStore wraps db as a raft log and stable store; it reads the current
// first and last log index from disk once so that later index queries never
// touch the DB. The caller keeps ownership of db and closes it after raft has
// shut down.
func NewLogStore(db *pebble.DB) (*LogStore, error) {
	if db == nil {
		return nil, errors.New("raftfsm: NewLogStore: nil pebble DB")
	}
	s := &LogStore{db: db}
	first, last, err := s.scanBounds()
	if err != nil {
		return nil, err
	}
	s.first.Store(first)
	s.last.Store(last)
	return s, nil
}

// FirstIndex returns the lowest stored log index (0 if empty) from the cache,
// because raft calls it on hot paths and it must not cost a DB seek.
func (s *LogStore) FirstIndex() (uint64, error) {
	return s.first.Load(), nil
}

// LastIndex returns the highest stored log index (0 if empty) from the cache,
// because raft calls it on every append and it must not cost a DB seek.
func (s *LogStore) LastIndex() (uint64, error) {
	return s.last.Load(), nil
}

// GetLog loads the entry at index into log, returning raft.ErrLogNotFound
// when it is absent because raft relies on that exact error to detect gaps.
func (s *LogStore) GetLog(index uint64, log *raft.Log) error {
	val, closer, err := s.db.Get(logKey(index))
	if err != nil {
		if errors.Is(err, pebble.ErrNotFound) {
			return raft.ErrLogNotFound
		}
		return fmt.Errorf("raftfsm: get log %d: %w", index, err)
	}
	// decodeLog copies Data/Extensions, so val may be released right after.
	derr := decodeLog(val, log)
	if cerr := closer.Close(); cerr != nil && derr == nil {
		return fmt.Errorf("raftfsm: get log %d: %w", index, cerr)
	}
	if derr != nil {
		return fmt.Errorf("raftfsm: get log %d: %w", index, derr)
	}
	if log.Index != index {
		return fmt.Errorf("raftfsm: get log %d: stored entry has index %d", index, log.Index)
	}
	return nil
}

// StoreLog stores a single entry durably; it is StoreLogs with one element so
// both paths share the same sync and cache-update logic.
func (s *LogStore) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs writes all entries in one synced batch so that raft's append is
// atomic and durable: after it returns, either every entry survives a crash
// or (on error) raft knows the append failed.
func (s *LogStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	lo, hi := uint64(math.MaxUint64), uint64(0)
	size := 0
	for i, l := range logs {
		if l == nil {
			return fmt.Errorf("raftfsm: store logs: entry %d is nil", i)
		}
		if l.Index == 0 {
			// 0 means "empty" for FirstIndex/LastIndex; raft starts at 1.
			return fmt.Errorf("raftfsm: store logs: entry %d has index 0", i)
		}
		lo, hi = min(lo, l.Index), max(hi, l.Index)
		size += logKeyLen + maxEncodedLogLen(l)
	}

	b := s.db.NewBatchWithSize(size + 16*len(logs))
	defer b.Close()
	key := make([]byte, logKeyLen)
	var buf []byte
	for _, l := range logs {
		putLogKey(key, l.Index)
		buf = appendLog(buf[:0], l)
		// Batch.Set copies key and value into the batch, so reuse is safe.
		if err := b.Set(key, buf, nil); err != nil {
			return fmt.Errorf("raftfsm: store logs: %w", err)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("raftfsm: store logs [%d, %d]: %w", lo, hi, err)
	}
	// The stored key set is the old set plus [lo..hi] members, so its
	// bounds are exactly the min/max of old and new bounds.
	if first := s.first.Load(); first == 0 || lo < first {
		s.first.Store(lo)
	}
	if hi > s.last.Load() {
		s.last.Store(hi)
	}
	return nil
}

// DeleteRange removes entries lo..hi inclusive with a single synced range
// tombstone, because raft uses it for log compaction and conflict truncation
// and a half-applied truncation must never be visible after a crash.
func (s *LogStore) DeleteRange(lo, hi uint64) error {
	if lo > hi {
		return nil
	}
	end := logUpper // hi == MaxUint64: hi+1 would wrap, so cut at the prefix end.
	if hi < math.MaxUint64 {
		end = logKey(hi + 1)
	}

	b := s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(logKey(lo), end, nil); err != nil {
		return fmt.Errorf("raftfsm: delete range [%d, %d]: %w", lo, hi, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("raftfsm: delete range [%d, %d]: %w", lo, hi, err)
	}
	first, last := s.first.Load(), s.last.Load()
	if first == 0 || hi < first || lo > last {
		return nil // nothing stored in the range: bounds unchanged
	}
	// A hole strictly inside (first, last) leaves the bounds alone; otherwise
	// a single bounded seek finds the new edge (logs need not be contiguous).
	switch {
	case lo <= first && hi >= last:
		first, last = 0, 0
	case lo <= first:
		idx, ok, err := s.seek(hi+1, true)
		if err != nil {
			return err
		}
		if !ok {
			first, last = 0, 0
		} else {
			first = idx
		}
	case hi >= last:
		idx, ok, err := s.seek(lo, false)
		if err != nil {
			return err
		}
		if !ok {
			first, last = 0, 0
		} else {
			last = idx
		}
	}
	s.first.Store(first)
	s.last.Store(last)
	return nil
}

// Set durably stores a raft stable value (current term, vote, ...) in one
// synced batch, because raft's election safety depends on these surviving a
// crash.
func (s *LogStore) Set(key []byte, val []byte) error {
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(stableKey(key), val, nil); err != nil {
		return fmt.Errorf("raftfsm: set %q: %w", key, err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("raftfsm: set %q: %w", key, err)
	}
	return nil
}

// Get returns a copy of a raft stable value; a missing key yields an error
// whose message is exactly "not found", which is how raft (like raft-boltdb)
// distinguishes "never written" from a real I/O failure.
func (s *LogStore) Get(key []byte) ([]byte, error) {
	val, closer, err := s.db.Get(stableKey(key))
	if err != nil {
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, errKeyNotFound
		}
		return nil, fmt.Errorf("raftfsm: get %q: %w", key, err)
	}
	out := bytes.Clone(val) // val is only valid until closer.Close
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("raftfsm: get %q: %w", key, err)
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

// SetUint64 durably stores a uint64 as 8 big-endian bytes, because raft keeps
// its current term and last vote term this way.
func (s *LogStore) SetUint64(key []byte, val uint64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], val)
	return s.Set(key, buf[:])
}

// GetUint64 reads a value written by SetUint64; a missing key returns 0 and
// the "not found" error, exactly like raft-boltdb, so raft bootstraps cleanly.
func (s *LogStore) GetUint64(key []byte) (uint64, error) {
	val, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(val) != 8 {
		return 0, fmt.Errorf("raftfsm: get uint64 %q: value has %d bytes, want 8", key, len(val))
	}
	return binary.BigEndian.Uint64(val), nil
}

// scanBounds reads the lowest and highest stored log index from disk.
func (s *LogStore) scanBounds() (first, last uint64, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logLower, UpperBound: logUpper})
	if err != nil {
		return 0, 0, fmt.Errorf("raftfsm: open log iterator: %w", err)
	}
	defer it.Close()
	if it.First() {
		if first, err = parseLogKey(it.Key()); err != nil {
			return 0, 0, err
		}
		if !it.Last() {
			return 0, 0, firstErr(it.Error(), errors.New("raftfsm: log iterator lost its last key"))
		}
		if last, err = parseLogKey(it.Key()); err != nil {
			return 0, 0, err
		}
	}
	if err := it.Error(); err != nil {
		return 0, 0, fmt.Errorf("raftfsm: scan log bounds: %w", err)
	}
	return first, last, nil
}

// seek returns the first stored index >= idx (forward) or the last stored
// index < idx (backward); ok is false when there is none.
func (s *LogStore) seek(idx uint64, forward bool) (uint64, bool, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logLower, UpperBound: logUpper})
	if err != nil {
		return 0, false, fmt.Errorf("raftfsm: open log iterator: %w", err)
	}
	defer it.Close()
	var valid bool
	if forward {
		valid = it.SeekGE(logKey(idx))
	} else {
		valid = it.SeekLT(logKey(idx))
	}
	if !valid {
		if err := it.Error(); err != nil {
			return 0, false, fmt.Errorf("raftfsm: seek log %d: %w", idx, err)
		}
		return 0, false, nil
	}
	found, err := parseLogKey(it.Key())
	if err != nil {
		return 0, false, err
	}
	return found, true, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func logKey(index uint64) []byte {
	k := make([]byte, logKeyLen)
	putLogKey(k, index)
	return k
}

func putLogKey(dst []byte, index uint64) {
	copy(dst, logPrefix)
	binary.BigEndian.PutUint64(dst[len(logPrefix):], index)
}

func parseLogKey(k []byte) (uint64, error) {
	if len(k) != logKeyLen || string(k[:len(logPrefix)]) != logPrefix {
		return 0, fmt.Errorf("raftfsm: malformed log key %q", k)
	}
	return binary.BigEndian.Uint64(k[len(logPrefix):]), nil
}

func stableKey(key []byte) []byte {
	k := make([]byte, 0, len(stablePrefix)+len(key))
	k = append(k, stablePrefix...)
	return append(k, key...)
}

// Log encoding, version 1:
//
//	byte    version (= 1)
//	uvarint Index
//	uvarint Term
//	byte    Type
//	uvarint len(Data)       , Data bytes
//	uvarint len(Extensions) , Extensions bytes
//	varint  AppendedAt as Unix nanoseconds (0 means the zero time.Time)
//
// Trailing bytes are rejected.

func maxEncodedLogLen(l *raft.Log) int {
	return 1 + 3*binary.MaxVarintLen64 + 1 + len(l.Data) + binary.MaxVarintLen64 + len(l.Extensions) + binary.MaxVarintLen64
}

func appendLog(dst []byte, l *raft.Log) []byte {
	dst = append(dst, logEncodingV1)
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = append(dst, byte(l.Type))
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	var nanos int64
	if !l.AppendedAt.IsZero() {
		nanos = l.AppendedAt.UnixNano()
	}
	return binary.AppendVarint(dst, nanos)
}

var errCorruptLog = errors.New("corrupt log entry")

// decodeLog parses buf into out. It never retains buf: Data and Extensions
// are copied. Any truncation, bad length, unknown version or trailing garbage
// yields an error wrapping errCorruptLog.
func decodeLog(buf []byte, out *raft.Log) error {
	if len(buf) == 0 {
		return fmt.Errorf("%w: empty", errCorruptLog)
	}
	if buf[0] != logEncodingV1 {
		return fmt.Errorf("%w: unknown version %d", errCorruptLog, buf[0])
	}
	d := decoder{buf: buf[1:]}
	index := d.uvarint("index")
	term := d.uvarint("term")
	typ := d.byte("type")
	data := d.bytes("data")
	ext := d.bytes("extensions")
	nanos := d.varint("appended_at")
	if d.err != nil {
		return d.err
	}
	if len(d.buf) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errCorruptLog, len(d.buf))
	}
	*out = raft.Log{
		Index:      index,
		Term:       term,
		Type:       raft.LogType(typ),
		Data:       data,
		Extensions: ext,
	}
	if nanos != 0 {
		out.AppendedAt = time.Unix(0, nanos)
	}
	return nil
}

// decoder is a sticky-error cursor: after the first failure every read
// returns zero values, so decodeLog checks err once at the end.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(field, why string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", errCorruptLog, field, why)
	}
	d.buf = nil
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail(field, "bad or truncated uvarint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail(field, "bad or truncated varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.buf) < 1 {
		d.fail(field, "truncated")
		return 0
	}
	v := d.buf[0]
	d.buf = d.buf[1:]
	return v
}

func (d *decoder) bytes(field string) []byte {
	n := d.uvarint(field + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)) {
		d.fail(field, fmt.Sprintf("length %d exceeds remaining %d bytes", n, len(d.buf)))
		return nil
	}
	if n == 0 {
		return nil
	}
	v := make([]byte, n)
	copy(v, d.buf[:n])
	d.buf = d.buf[n:]
	return v
}
