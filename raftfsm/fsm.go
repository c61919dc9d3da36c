package raftfsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"

	"zenmux/ledger"
)

// The FSM's state lives under "s/" in the state database: the ledger's
// records under "s/" + ledger key, and the applied index under "s\x00".
// Keeping the index outside the ledger's key space lets Load scan "s/"
// without special cases.
var (
	statePrefix = []byte("s/")
	stateUpper  = []byte("s0")
	appliedKey  = []byte("s\x00applied")
	// formatKey holds recordFormat once every record is in this build's
	// encoding (migrate). Outside "s/", it is in no state hash or snapshot
	// stream: it describes this database, not the replicated state.
	formatKey = []byte("s\x00format")
)

// recordFormat is the encoding of the ledger's records this build writes:
// 2 has binary account and totals records and version-2 request-log
// entries (ledger.Recode); 1, in a database without formatKey, is the
// earlier builds' JSON records and version-1 entries.
const recordFormat = 2

// migrateBatchBytes bounds one batch of recoded records: a long request
// log is recoded in several.
const migrateBatchBytes = 32 << 20

// FSM is a thin adapter from hashicorp/raft to the ledger. It decodes each
// entry and applies it to the ledger in memory; the ledger's changed
// records and the applied index are written to Pebble together, in one
// batch, at checkpoints: at most every CheckpointEvery, before a snapshot,
// before a state hash or a request-log read, and at Close. A record
// changed by many entries between checkpoints (an account's windows, its
// daily totals) is encoded and written once, not once per entry.
//
// The state database has no WAL: every entry a checkpoint reflects is
// already in the synced raft log, and on restart raft replays entries after
// the last snapshot while ApplyBatch skips those at or below the stored
// index, so entries applied after the last checkpoint that reached disk are
// applied again from the log, exactly once. Snapshot checkpoints and flushes
// before Persist writes, so the durable index is never behind a snapshot
// that lets raft compact its log.
type FSM struct {
	db      *pebble.DB
	ledger  atomic.Pointer[ledger.Ledger]
	applied atomic.Uint64 // last index applied to the ledger in memory

	// mu orders applies and checkpoints, so a checkpoint's records and the
	// index written with them always agree.
	mu      sync.Mutex
	saved   uint64 // last index whose state is written or being written
	savedAt time.Time
	every   time.Duration
	// inflight, when not nil, is the last checkpoint's encode and commit,
	// which run beside the applies that follow it.
	inflight *checkpointRun
	// batchBuf is the last checkpoint's batch buffer, for the next.
	batchBuf []byte
	// skipCharges: Options.SkipCharges (the benchmark floor only).
	skipCharges bool
}

// CheckpointEvery is how long applied state may go untaken by a checkpoint
// while entries are being applied (an idle FSM takes none until it is asked
// to); a taken checkpoint reaches disk with the next memtable flush.
const CheckpointEvery = 100 * time.Millisecond

// NewFSM loads the ledger and applied index from db.
func NewFSM(db *pebble.DB) (*FSM, error) {
	f := &FSM{db: db, every: CheckpointEvery}
	if err := migrate(db); err != nil {
		return nil, err
	}
	l, err := loadLedger(db, durable{db})
	if err != nil {
		return nil, err
	}
	f.ledger.Store(l)
	idx, err := readApplied(db)
	if err != nil {
		return nil, err
	}
	f.applied.Store(idx)
	f.saved = idx
	return f, nil
}

// Ledger returns the current ledger; Restore may swap it.
func (f *FSM) Ledger() *ledger.Ledger { return f.ledger.Load() }

// AppliedIndex is the last raft index reflected in state.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// migrate recodes every record an earlier build wrote into this build's
// encoding (ledger.Recode), the applied index unchanged, before the
// ledger is loaded: StateHash hashes stored bytes, so a replica holding
// the same state in another encoding would disagree with its peers. It
// runs once per database: the last batch sets formatKey. The state has no
// WAL, so a crash before the next flush may lose recoded records; the
// flush order keeps formatKey from reaching disk before them, and the next
// open recodes what is left (a recoded record reads as the same state).
func migrate(db *pebble.DB) error {
	v, closer, err := db.Get(formatKey)
	if err == nil {
		var format uint64
		if len(v) == 8 {
			format = binary.BigEndian.Uint64(v)
		}
		closer.Close()
		if format == 0 {
			return errors.New("raftfsm: the record format key is not 8 bytes")
		}
		if format == recordFormat {
			return nil
		}
		if format > recordFormat {
			return fmt.Errorf("raftfsm: state records in format %d, this build reads up to %d: %w", format, recordFormat, ErrNewerFormat)
		}
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: statePrefix, UpperBound: stateUpper})
	if err != nil {
		return err
	}
	defer it.Close()
	b := db.NewBatch()
	defer func() { b.Close() }()
	for it.First(); it.Valid(); it.Next() {
		nv, changed, err := ledger.Recode(it.Key()[len(statePrefix):], it.Value())
		if err != nil {
			return fmt.Errorf("raftfsm: migrate: %w", err)
		}
		if !changed {
			continue
		}
		if err := b.Set(it.Key(), nv, nil); err != nil {
			return err
		}
		if b.Len() >= migrateBatchBytes {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b.Close()
			b = db.NewBatch()
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	var format [8]byte
	binary.BigEndian.PutUint64(format[:], recordFormat)
	if err := b.Set(formatKey, format[:], nil); err != nil {
		return err
	}
	return b.Commit(pebble.NoSync)
}

// ErrNewerFormat refuses a database a later build wrote in a record
// format this one cannot read.
var ErrNewerFormat = errors.New("state written by a newer build")

// loadLedger reads every state record except the request log and the
// charge dedupe records, which the ledger consults through durable lookups
// instead of holding in memory.
func loadLedger(db pebble.Reader, d ledger.Durable) (*ledger.Ledger, error) {
	skip := func(prefix string) ([]byte, []byte) {
		start := append(append([]byte(nil), statePrefix...), prefix...)
		return start, append(start[:len(start)-1:len(start)-1], '/'+1)
	}
	ddStart, ddEnd := skip(ledger.DedupePrefix) // "dd/" sorts before "rlog/"
	logStart, logEnd := skip(ledger.LogPrefix)
	return ledger.Load(func(fn func(k, v []byte) error) error {
		for _, r := range [][2][]byte{{statePrefix, ddStart}, {ddEnd, logStart}, {logEnd, stateUpper}} {
			it, err := db.NewIter(&pebble.IterOptions{LowerBound: r[0], UpperBound: r[1]})
			if err != nil {
				return err
			}
			for it.First(); it.Valid(); it.Next() {
				if err := fn(it.Key()[len(statePrefix):], it.Value()); err != nil {
					it.Close()
					return err
				}
			}
			if err := errors.Join(it.Error(), it.Close()); err != nil {
				return err
			}
		}
		return nil
	}, d)
}

// durable answers the ledger's point lookups from Pebble; with a bloom
// filter per table, the common answer (a new request id: absent) rarely
// touches a data block.
type durable struct{ db *pebble.DB }

func (d durable) Get(key []byte) ([]byte, bool, error) {
	k := make([]byte, 0, len(statePrefix)+len(key))
	k = append(append(k, statePrefix...), key...)
	v, closer, err := d.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	v = append([]byte(nil), v...)
	return v, true, closer.Close()
}

func readApplied(db pebble.Reader) (uint64, error) {
	v, closer, err := db.Get(appliedKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("raftfsm: applied index has %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// batchWriter adapts a Pebble batch to ledger.Writer, adding the prefix.
type batchWriter struct {
	b   *pebble.Batch
	buf []byte
}

func (w *batchWriter) key(k []byte) []byte {
	w.buf = append(append(w.buf[:0], statePrefix...), k...)
	return w.buf
}

func (w *batchWriter) Set(k, v []byte) error { return w.b.Set(w.key(k), v, nil) }
func (w *batchWriter) Delete(k []byte) error { return w.b.Delete(w.key(k), nil) }
func (w *batchWriter) DeleteRange(a, b []byte) error {
	start := append(append([]byte(nil), statePrefix...), a...)
	return w.b.DeleteRange(start, w.key(b), nil)
}

// Apply implements raft.FSM for a single entry.
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM. An entry that cannot be decoded
// panics: skipping it would make this replica diverge from the others.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	f.mu.Lock()
	defer f.mu.Unlock()
	led := f.ledger.Load()
	applied := f.applied.Load()
	last := applied
	for i, lg := range logs {
		if lg.Index <= applied {
			continue // replayed after a restart: already in state
		}
		last = lg.Index
		if lg.Type != raft.LogCommand {
			continue
		}
		cmd, ts, err := ledger.Decode(lg.Data)
		if err != nil {
			panic(fmt.Sprintf("raftfsm: entry %d: %v", lg.Index, err))
		}
		cb, isCharges := cmd.(*ledger.ChargeBatch)
		if isCharges && f.skipCharges {
			continue
		}
		if isCharges && cb.Retry {
			// A retried batch looks its ids up in Pebble; the ledger has
			// already forgotten the ones a checkpoint in flight carries.
			f.awaitCommit()
		}
		out[i] = led.Apply(cmd, ts)
	}
	f.applied.Store(last)
	if time.Since(f.savedAt) >= f.every {
		f.checkpointLocked(false)
	}
	return out
}

// Checkpoint writes the state applied so far to Pebble.
func (f *FSM) Checkpoint() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checkpointLocked(true)
}

// logHead checkpoints and returns the head of an account's request-log
// chain: every entry it links to is then in Pebble.
func (f *FSM) logHead(accountID string) string {
	f.mu.Lock()
	f.checkpointLocked(false)
	run, head := f.inflight, f.ledger.Load().LastLog(accountID)
	f.mu.Unlock()
	if run != nil {
		run.wait() // without mu: applies go on meanwhile
	}
	return head
}

// checkpointLocked takes the ledger's changes since the last checkpoint,
// under mu, and encodes and commits them with the applied index in one
// batch on its own goroutine, so the applies that follow wait neither for
// the encoding nor for Pebble; with wait it returns once the batch is
// committed. One checkpoint is in flight at most.
func (f *FSM) checkpointLocked(wait bool) {
	f.awaitCommit()
	f.savedAt = time.Now()
	applied := f.applied.Load()
	if applied == f.saved {
		return
	}
	changes := f.ledger.Load().TakeChanges()
	f.saved = applied
	run := &checkpointRun{done: make(chan struct{}), buf: f.batchBuf}
	f.batchBuf = nil
	go func() {
		defer close(run.done)
		b, err := f.reusedBatch(run.buf, changes.SizeHint())
		if err == nil {
			err = changes.Write(&batchWriter{b: b})
		}
		if err == nil {
			var idx [8]byte
			binary.BigEndian.PutUint64(idx[:], applied)
			err = b.Set(appliedKey, idx[:], nil)
		}
		if err == nil {
			err = b.Commit(pebble.NoSync)
		}
		// The batch is not closed: Close would pool it with the buffer the
		// next checkpoint writes into. After a commit Pebble keeps no
		// reference to it, except a batch too large for the memtable,
		// which Pebble keeps as is and detaches (Repr then allocates).
		run.buf, run.err = b.Repr(), err
	}()
	f.inflight = run
	if wait {
		f.awaitCommit()
	}
}

// checkpointRun is a checkpoint being encoded and committed.
type checkpointRun struct {
	done chan struct{}
	buf  []byte // the batch's buffer, handed back once done
	err  error  // set before done is closed
}

// batchHeader is the length of a Pebble batch's header: sequence number
// and count, zero in a new batch.
const batchHeader = 12

// maxReusedBatch bounds the batch buffer kept for the next checkpoint: one
// that replaying a long log made large is let go.
const maxReusedBatch = 4 << 20

// reusedBatch returns a batch writing into buf, the last checkpoint's
// batch buffer, or into a new one when buf cannot hold size bytes. A
// checkpoint at load is about a megabyte; allocating it anew each time
// was an eighth of the bytes a node allocated, and so of its collections.
func (f *FSM) reusedBatch(buf []byte, size int) (*pebble.Batch, error) {
	if cap(buf) < size+batchHeader {
		buf = make([]byte, batchHeader, size+batchHeader)
	}
	buf = buf[:batchHeader]
	clear(buf)
	b := f.db.NewBatch()
	return b, b.SetRepr(buf)
}

// wait returns once the checkpoint is in Pebble. One that failed panics:
// the ledger has already handed its changes over, so carrying on would
// write a later index without them.
func (r *checkpointRun) wait() {
	<-r.done
	if r.err != nil {
		panic(fmt.Sprintf("raftfsm: checkpoint: %v", r.err))
	}
}

// awaitCommit waits for the checkpoint in flight, if any (mu held).
func (f *FSM) awaitCommit() {
	if f.inflight != nil {
		f.inflight.wait()
		if cap(f.inflight.buf) <= maxReusedBatch {
			f.batchBuf = f.inflight.buf
		}
		f.inflight = nil
	}
}

// Snapshot captures state at the current applied index. raft calls it on
// the FSM goroutine, so no Apply runs concurrently with taking it; Persist
// then streams from the Pebble snapshot while Apply goes on. The state
// database has no WAL: Snapshot starts a memtable flush and Persist waits
// for it, so state at the snapshot's index is on disk before raft, seeing
// the snapshot persisted, compacts its log.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checkpointLocked(true)
	flushed, err := f.db.AsyncFlush()
	if err != nil {
		return nil, err
	}
	return &snapshot{db: f.db, snap: f.db.NewSnapshot(), flushed: flushed}, nil
}

// markApplied records that state reflects the log up to idx (entries
// between the stored index and idx carried no commands).
func (f *FSM) markApplied(idx uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.awaitCommit()
	if idx <= f.applied.Load() {
		return nil
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], idx)
	if err := f.db.Set(appliedKey, b[:], pebble.NoSync); err != nil {
		return err
	}
	if err := f.db.Flush(); err != nil {
		return err
	}
	f.applied.Store(idx)
	f.saved = idx
	return nil
}

// Restore replaces all state with a snapshot's: it deletes the old state,
// writes the new in one batch flushed to disk, and swaps in a freshly
// loaded ledger. The ledger and the applied index are loaded from the
// batch before it is committed, so a snapshot whose records the ledger
// cannot load is refused with the old state intact, not committed and
// then found unloadable.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.awaitCommit()
	b := f.db.NewIndexedBatch()
	defer b.Close()
	if err := b.DeleteRange(statePrefix, stateUpper, nil); err != nil {
		return err
	}
	if err := b.Delete(appliedKey, nil); err != nil {
		return err
	}
	r := bufio.NewReader(rc)
	if _, err := readStreamHeader(r); err != nil {
		return fmt.Errorf("raftfsm: restore: %w", err)
	}
	for {
		k, v, err := readFrame(r)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("raftfsm: restore: %w", err)
		}
		if string(k[:min(len(k), len(statePrefix))]) == string(statePrefix) {
			// A stream from an earlier build's leader holds records in
			// its encoding: store them in this build's (migrate).
			if v, _, err = ledger.Recode(k[len(statePrefix):], v); err != nil {
				return fmt.Errorf("raftfsm: restore: %w", err)
			}
		}
		if err := b.Set(k, v, nil); err != nil {
			return err
		}
	}
	l, err := loadLedger(b, durable{f.db})
	if err != nil {
		return fmt.Errorf("raftfsm: restore: %w", err)
	}
	idx, err := readApplied(b)
	if err != nil {
		return fmt.Errorf("raftfsm: restore: %w", err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	// The old state is gone: from here a failure cannot be undone, and
	// carrying on with the old ledger in memory would diverge.
	if err := f.db.Flush(); err != nil {
		panic(fmt.Sprintf("raftfsm: restore: %v", err))
	}
	f.ledger.Store(l)
	f.applied.Store(idx)
	f.saved = idx
	return nil
}

type snapshot struct {
	db      *pebble.DB
	snap    *pebble.Snapshot
	flushed <-chan struct{} // closed once the state at snap is on disk
}

// Persist fills the sink once the state at the snapshot is on disk: a
// snapStore's sink with a checkpoint of the state database, any other with
// the state as frames (writeState).
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	<-s.flushed
	var err error
	if local, ok := sink.(*snapSink); ok {
		// A checkpoint holds the state on disk now: at the snapshot's
		// index or later, which is safe, as ApplyBatch skips entries at
		// or below the applied index it carries.
		err = local.checkpoint(s.db)
	} else {
		w := bufio.NewWriterSize(sink, 256<<10)
		if err = writeState(w, s.snap); err == nil {
			err = w.Flush()
		}
	}
	if err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// writeState writes the stream header (snapstore.go), then the applied
// index and every state record of r as frames: uvarint key length, key,
// uvarint value length, value.
func writeState(w *bufio.Writer, r pebble.Reader) error {
	if err := writeStreamHeader(w); err != nil {
		return err
	}
	if v, closer, err := r.Get(appliedKey); err == nil {
		werr := writeFrame(w, appliedKey, v)
		closer.Close()
		if werr != nil {
			return werr
		}
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: statePrefix, UpperBound: stateUpper})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := writeFrame(w, it.Key(), it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

// Release frees the Pebble snapshot.
func (s *snapshot) Release() { s.snap.Close() }

const maxFrame = 64 << 20

func writeFrame(w *bufio.Writer, k, v []byte) error {
	var hdr [binary.MaxVarintLen64]byte
	for _, part := range [][]byte{k, v} {
		n := binary.PutUvarint(hdr[:], uint64(len(part)))
		if _, err := w.Write(hdr[:n]); err != nil {
			return err
		}
		if _, err := w.Write(part); err != nil {
			return err
		}
	}
	return nil
}

func readFrame(r *bufio.Reader) ([]byte, []byte, error) {
	var parts [2][]byte
	for i := range parts {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			if i == 0 && err == io.EOF {
				return nil, nil, io.EOF
			}
			return nil, nil, fmt.Errorf("frame length: %w", err)
		}
		if n > maxFrame {
			return nil, nil, fmt.Errorf("frame of %d bytes", n)
		}
		parts[i] = make([]byte, n)
		if _, err := io.ReadFull(r, parts[i]); err != nil {
			return nil, nil, fmt.Errorf("frame body: %w", err)
		}
	}
	k := parts[0]
	if !(string(k) == string(appliedKey) || (len(k) >= len(statePrefix) && string(k[:len(statePrefix)]) == string(statePrefix))) {
		return nil, nil, fmt.Errorf("snapshot key %q outside the state", k)
	}
	return k, parts[1], nil
}

// StateHash is a SHA-256 over every state record (keys and values, in key
// order) and the applied index: two replicas at the same index must agree.
func (f *FSM) StateHash() ([32]byte, uint64, error) {
	f.mu.Lock()
	f.checkpointLocked(true)
	snap := f.db.NewSnapshot()
	f.mu.Unlock()
	defer snap.Close()
	idx, err := readApplied(snap)
	if err != nil {
		return [32]byte{}, 0, err
	}
	h, err := hashState(snap)
	return h, idx, err
}
