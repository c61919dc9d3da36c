package raftfsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
)

// quietPebbleLogger keeps Pebble's informational messages out of test output.
type quietPebbleLogger struct{}

func (quietPebbleLogger) Infof(string, ...interface{}) {}
func (quietPebbleLogger) Fatalf(format string, args ...interface{}) {
	panic(fmt.Sprintf(format, args...))
}

func openTestDB(tb testing.TB, dir string) *pebble.DB {
	tb.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietPebbleLogger{}})
	if err != nil {
		tb.Fatalf("pebble.Open(%s): %v", dir, err)
	}
	return db
}

func newTestStore(tb testing.TB, db *pebble.DB) *LogStore {
	tb.Helper()
	s, err := NewLogStore(db)
	if err != nil {
		tb.Fatalf("NewLogStore: %v", err)
	}
	return s
}

func testLog(i uint64) *raft.Log {
	l := &raft.Log{
		Index: i,
		Term:  i/10 + 1,
		Type:  raft.LogType(i % 6),
		Data:  []byte(fmt.Sprintf("data-%d", i)),
	}
	if i%2 == 0 {
		l.Extensions = []byte{byte(i), 0, 0xff}
	}
	if i%3 != 0 {
		l.AppendedAt = time.Unix(1700000000, int64(i)*7919)
	}
	return l
}

func testLogs(lo, hi uint64) []*raft.Log {
	out := make([]*raft.Log, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		out = append(out, testLog(i))
	}
	return out
}

func logsEqual(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt) && a.AppendedAt.IsZero() == b.AppendedAt.IsZero()
}

func checkBounds(t *testing.T, s *LogStore, wantFirst, wantLast uint64) {
	t.Helper()
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	last, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if first != wantFirst || last != wantLast {
		t.Fatalf("bounds = [%d, %d], want [%d, %d]", first, last, wantFirst, wantLast)
	}
	// The cache must agree with what is actually on disk.
	diskFirst, diskLast, err := s.scanBounds()
	if err != nil {
		t.Fatalf("scanBounds: %v", err)
	}
	if diskFirst != wantFirst || diskLast != wantLast {
		t.Fatalf("disk bounds = [%d, %d], want [%d, %d]", diskFirst, diskLast, wantFirst, wantLast)
	}
}

func checkPresent(t *testing.T, s *LogStore, lo, hi uint64) {
	t.Helper()
	for i := lo; i <= hi; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		if want := testLog(i); !logsEqual(&got, want) {
			t.Fatalf("GetLog(%d) = %+v, want %+v", i, got, *want)
		}
	}
}

func checkMissing(t *testing.T, s *LogStore, lo, hi uint64) {
	t.Helper()
	for i := lo; i <= hi; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("GetLog(%d) err = %v, want raft.ErrLogNotFound", i, err)
		}
	}
}

func TestLogStoreStoreGetDeleteRange(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	defer db.Close()

	// Foreign keys (FSM prefix and neighbours of ours) must never be touched.
	foreign := map[string]string{"s/state": "fsm", "l": "x", "l0": "y", "k": "z", "a": "b", "m/": "c"}
	for k, v := range foreign {
		if err := db.Set([]byte(k), []byte(v), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}

	s := newTestStore(t, db)
	checkBounds(t, s, 0, 0)
	checkMissing(t, s, 0, 3)

	if err := s.StoreLogs(testLogs(1, 10)); err != nil {
		t.Fatalf("StoreLogs: %v", err)
	}
	if err := s.StoreLog(testLog(11)); err != nil {
		t.Fatalf("StoreLog: %v", err)
	}
	if err := s.StoreLogs(nil); err != nil {
		t.Fatalf("StoreLogs(nil): %v", err)
	}
	checkBounds(t, s, 1, 11)
	checkPresent(t, s, 1, 11)
	checkMissing(t, s, 12, 13)

	// Overwrite an entry (raft does this after conflict truncation).
	repl := testLog(11)
	repl.Term, repl.Data = 99, []byte("replaced")
	if err := s.StoreLog(repl); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := s.GetLog(11, &got); err != nil || !logsEqual(&got, repl) {
		t.Fatalf("GetLog(11) = %+v, %v; want %+v", got, err, *repl)
	}
	if err := s.StoreLog(testLog(11)); err != nil {
		t.Fatal(err)
	}

	// Invalid input is rejected without writing anything.
	if err := s.StoreLogs([]*raft.Log{testLog(12), nil}); err == nil {
		t.Fatal("StoreLogs with nil entry: want error")
	}
	if err := s.StoreLog(&raft.Log{Index: 0}); err == nil {
		t.Fatal("StoreLog index 0: want error")
	}
	checkBounds(t, s, 1, 11)

	// Prefix compaction.
	if err := s.DeleteRange(1, 3); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 4, 11)
	checkMissing(t, s, 1, 3)
	checkPresent(t, s, 4, 11)

	// Suffix truncation (both ends inclusive).
	if err := s.DeleteRange(9, 11); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 4, 8)
	checkMissing(t, s, 9, 11)

	// Hole in the middle: bounds unchanged.
	if err := s.DeleteRange(5, 6); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 4, 8)
	checkMissing(t, s, 5, 6)
	checkPresent(t, s, 4, 4)
	checkPresent(t, s, 7, 8)

	// Deleting across the hole finds the next real first index (7, not 5).
	if err := s.DeleteRange(1, 4); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 7, 8)

	// Ranges outside the stored set and inverted ranges are no-ops.
	if err := s.DeleteRange(100, 200); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(8, 7); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 7, 8)

	// Store below the current first, then wipe everything incl. MaxUint64 edge.
	if err := s.StoreLogs(testLogs(2, 3)); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLog(testLog(math.MaxUint64)); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 2, math.MaxUint64)
	if err := s.DeleteRange(4, math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 2, 3)
	if err := s.DeleteRange(0, math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 0, 0)
	checkMissing(t, s, 1, 11)

	for k, v := range foreign {
		val, closer, err := db.Get([]byte(k))
		if err != nil {
			t.Fatalf("foreign key %q lost: %v", k, err)
		}
		if string(val) != v {
			t.Fatalf("foreign key %q = %q, want %q", k, val, v)
		}
		closer.Close()
	}
}

func TestStableStore(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	defer db.Close()
	s := newTestStore(t, db)

	// Missing keys must look exactly like raft-boltdb / InmemStore.
	if v, err := s.Get([]byte("CurrentTerm")); err == nil || err.Error() != "not found" || v != nil {
		t.Fatalf("Get(missing) = %v, %v; want nil, \"not found\"", v, err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" || v != 0 {
		t.Fatalf("GetUint64(missing) = %v, %v; want 0, \"not found\"", v, err)
	}

	if err := s.Set([]byte("LastVoteCand"), []byte("node-1")); err != nil {
		t.Fatal(err)
	}
	v, err := s.Get([]byte("LastVoteCand"))
	if err != nil || string(v) != "node-1" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	v[0] = 'X' // caller owns the returned slice
	if v2, _ := s.Get([]byte("LastVoteCand")); string(v2) != "node-1" {
		t.Fatalf("Get after caller mutation = %q", v2)
	}

	// Empty values are stored and distinguishable from missing keys.
	if err := s.Set([]byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("empty")); err != nil || len(v) != 0 {
		t.Fatalf("Get(empty) = %q, %v", v, err)
	}

	for _, want := range []uint64{0, 1, 42, math.MaxUint64} {
		if err := s.SetUint64([]byte("CurrentTerm"), want); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetUint64([]byte("CurrentTerm")); err != nil || got != want {
			t.Fatalf("GetUint64 = %d, %v; want %d", got, err, want)
		}
	}

	// A non-8-byte value under a uint64 key is an error, not a silent 0.
	if err := s.Set([]byte("bad"), []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUint64([]byte("bad")); err == nil || err.Error() == "not found" {
		t.Fatalf("GetUint64(bad) err = %v, want corruption error", err)
	}

	// Stable keys live under "k/" and do not collide with logs or FSM keys.
	val, closer, err := db.Get([]byte("k/LastVoteCand"))
	if err != nil || string(val) != "node-1" {
		t.Fatalf("raw k/LastVoteCand = %q, %v", val, err)
	}
	closer.Close()
	checkBounds(t, s, 0, 0)
}

func TestLogStoreDurableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir)
	s := newTestStore(t, db)
	if err := s.StoreLogs(testLogs(5, 60)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(5, 9); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("n1")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openTestDB(t, dir)
	defer db.Close()
	s = newTestStore(t, db)
	checkBounds(t, s, 10, 60)
	checkPresent(t, s, 10, 60)
	checkMissing(t, s, 5, 9)
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("CurrentTerm = %d, %v", v, err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "n1" {
		t.Fatalf("LastVoteCand = %q, %v", v, err)
	}
}

const kill9DirEnv = "RAFTFSM_KILL9_DIR"

// TestKill9Child is the child half of TestLogStoreSurvivesKill9: it writes,
// and as soon as the writes are acknowledged SIGKILLs itself without closing
// the DB. It is a no-op when run normally.
func TestKill9Child(t *testing.T) {
	dir := os.Getenv(kill9DirEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietPebbleLogger{}})
	if err != nil {
		os.Exit(3)
	}
	s, err := NewLogStore(db)
	if err != nil {
		os.Exit(4)
	}
	for i := uint64(1); i <= 200; i += 20 {
		if err := s.StoreLogs(testLogs(i, i+19)); err != nil {
			os.Exit(5)
		}
	}
	if err := s.DeleteRange(1, 10); err != nil {
		os.Exit(6)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 9); err != nil {
		os.Exit(7)
	}
	p, _ := os.FindProcess(os.Getpid())
	_ = p.Kill() // SIGKILL on Unix: no deferred code, no Close, no flush.
	time.Sleep(10 * time.Second)
	os.Exit(8) // not reached unless the kill failed
}

func TestLogStoreSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a subprocess")
	}
	dir := filepath.Join(t.TempDir(), "db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$", "-test.count=1")
	cmd.Env = append(os.Environ(), kill9DirEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Exited() {
		t.Fatalf("child should die from a signal, got err=%v output:\n%s", err, out)
	}

	db := openTestDB(t, dir)
	defer db.Close()
	s := newTestStore(t, db)
	checkBounds(t, s, 11, 200)
	checkPresent(t, s, 11, 200)
	checkMissing(t, s, 1, 10)
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 9 {
		t.Fatalf("CurrentTerm = %d, %v", v, err)
	}
}

func TestDecodeLogRejectsGarbage(t *testing.T) {
	full := &raft.Log{
		Index: 1 << 40, Term: 300, Type: raft.LogConfiguration,
		Data: bytes.Repeat([]byte("d"), 200), Extensions: []byte("ext"),
		AppendedAt: time.Unix(1700000000, 123456789),
	}
	enc := appendLog(nil, full)

	var got raft.Log
	if err := decodeLog(enc, &got); err != nil || !logsEqual(&got, full) {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	zero := &raft.Log{Index: 1}
	if err := decodeLog(appendLog(nil, zero), &got); err != nil || !logsEqual(&got, zero) || !got.AppendedAt.IsZero() {
		t.Fatalf("zero round trip = %+v, %v", got, err)
	}

	// Every strict prefix is truncated and must fail.
	for n := 0; n < len(enc); n++ {
		if err := decodeLog(enc[:n], &got); !errors.Is(err, errCorruptLog) {
			t.Fatalf("decode of %d/%d bytes: err = %v, want errCorruptLog", n, len(enc), err)
		}
	}

	bad := map[string][]byte{
		"wrong version":   append([]byte{2}, enc[1:]...),
		"trailing byte":   append(bytes.Clone(enc), 0),
		"varint overflow": append([]byte{1}, bytes.Repeat([]byte{0xff}, 11)...),
		// Data length claims far more bytes than exist (and > MaxInt).
		"huge length": binary.AppendUvarint([]byte{1, 1, 1, 0}, math.MaxUint64),
	}
	for name, b := range bad {
		if err := decodeLog(b, &got); !errors.Is(err, errCorruptLog) {
			t.Fatalf("%s: err = %v, want errCorruptLog", name, err)
		}
	}

	// Random garbage and single-byte corruptions must never panic.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		var b []byte
		if i%2 == 0 {
			b = make([]byte, rng.IntN(64))
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
		} else {
			b = bytes.Clone(enc)
			b[rng.IntN(len(b))] ^= byte(rng.IntN(255) + 1)
		}
		_ = decodeLog(b, &got)
	}

	// Garbage on disk surfaces as an error from GetLog, not a panic.
	db := openTestDB(t, t.TempDir())
	defer db.Close()
	s := newTestStore(t, db)
	if err := db.Set(logKey(5), []byte{1, 0x80}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(5, &got); err == nil || errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(garbage) err = %v, want corruption error", err)
	}
	// An entry stored under the wrong key is also corruption.
	if err := db.Set(logKey(6), appendLog(nil, &raft.Log{Index: 7}), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(6, &got); err == nil {
		t.Fatal("GetLog(mismatched index): want error")
	}
}

func TestLogStoreConcurrent(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	defer db.Close()
	s := newTestStore(t, db)

	const writers, batches, perBatch = 4, 20, 5
	var wg sync.WaitGroup
	errc := make(chan error, writers+2)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			base := uint64(w*batches*perBatch) + 1
			for b := 0; b < batches; b++ {
				lo := base + uint64(b*perBatch)
				if err := s.StoreLogs(testLogs(lo, lo+perBatch-1)); err != nil {
					errc <- err
					return
				}
			}
		}(w)
	}
	var stop atomic.Bool
	var readers sync.WaitGroup
	for r := 0; r < 2; r++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; i < 100000 && !stop.Load(); i++ {
				first, _ := s.FirstIndex()
				last, _ := s.LastIndex()
				if last != 0 && first > last {
					errc <- fmt.Errorf("first %d > last %d", first, last)
					return
				}
				var l raft.Log
				idx := uint64(i%(writers*batches*perBatch)) + 1
				if err := s.GetLog(idx, &l); err != nil && !errors.Is(err, raft.ErrLogNotFound) {
					errc <- err
					return
				}
				_, _ = s.GetUint64([]byte("CurrentTerm"))
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	readers.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	checkBounds(t, s, 1, writers*batches*perBatch)
	checkPresent(t, s, 1, writers*batches*perBatch)
}

// countFSM is a trivial raft.FSM that counts applied commands.
type countFSM struct{ n atomic.Uint64 }

func (f *countFSM) Apply(l *raft.Log) interface{} { return f.n.Add(1) }

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return countSnap(f.n.Load()), nil }

func (f *countFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var buf [8]byte
	if _, err := io.ReadFull(rc, buf[:]); err != nil {
		return err
	}
	f.n.Store(binary.BigEndian.Uint64(buf[:]))
	return nil
}

type countSnap uint64

func (c countSnap) Persist(sink raft.SnapshotSink) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(c))
	if _, err := sink.Write(buf[:]); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (countSnap) Release() {}

func testRaftConfig(t *testing.T) *raft.Config {
	conf := raft.DefaultConfig()
	conf.LocalID = "n1"
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.SnapshotThreshold = 1 << 20 // keep every entry in the log
	conf.SnapshotInterval = time.Hour
	conf.LogOutput = io.Discard
	conf.LogLevel = "ERROR"
	if err := raft.ValidateConfig(conf); err != nil {
		t.Fatalf("ValidateConfig: %v", err)
	}
	return conf
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRaftSingleNodeOnLogStore(t *testing.T) {
	dir := t.TempDir()
	const addr = raft.ServerAddress("n1-addr")
	const commands = 100

	// Run 1: bootstrap, elect, apply 100 commands.
	db := openTestDB(t, dir)
	store := newTestStore(t, db)
	conf := testRaftConfig(t)
	snaps := raft.NewInmemSnapshotStore()
	if has, err := raft.HasExistingState(store, store, snaps); err != nil || has {
		t.Fatalf("HasExistingState on empty store = %v, %v", has, err)
	}
	_, trans := raft.NewInmemTransport(addr)
	cluster := raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: addr}}}
	if err := raft.BootstrapCluster(conf, store, store, snaps, trans, cluster); err != nil {
		t.Fatalf("BootstrapCluster: %v", err)
	}
	fsm := &countFSM{}
	r, err := raft.NewRaft(conf, fsm, store, store, snaps, trans)
	if err != nil {
		t.Fatalf("NewRaft: %v", err)
	}
	waitFor(t, "leadership", func() bool { return r.State() == raft.Leader })
	for i := 0; i < commands; i++ {
		f := r.Apply([]byte(fmt.Sprintf("cmd-%d", i)), 5*time.Second)
		if err := f.Error(); err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
		if got := f.Response().(uint64); got != uint64(i+1) {
			t.Fatalf("Apply %d response = %d", i, got)
		}
	}
	if err := r.Shutdown().Error(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	_ = trans.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Run 2: reopen the same DB; the log must still be there and replay.
	db = openTestDB(t, dir)
	defer db.Close()
	store = newTestStore(t, db)
	last, _ := store.LastIndex()
	if last < commands {
		t.Fatalf("LastIndex after restart = %d, want >= %d", last, commands)
	}
	first, _ := store.FirstIndex()
	var cmdEntries int
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d) after restart: %v", i, err)
		}
		if l.Type == raft.LogCommand {
			cmdEntries++
		}
	}
	if cmdEntries != commands {
		t.Fatalf("found %d command entries, want %d", cmdEntries, commands)
	}
	if term, err := store.GetUint64([]byte("CurrentTerm")); err != nil || term == 0 {
		t.Fatalf("CurrentTerm after restart = %d, %v", term, err)
	}
	snaps = raft.NewInmemSnapshotStore()
	if has, err := raft.HasExistingState(store, store, snaps); err != nil || !has {
		t.Fatalf("HasExistingState after restart = %v, %v", has, err)
	}

	_, trans = raft.NewInmemTransport(addr)
	defer trans.Close()
	fsm = &countFSM{}
	r, err = raft.NewRaft(testRaftConfig(t), fsm, store, store, snaps, trans)
	if err != nil {
		t.Fatalf("NewRaft (restart): %v", err)
	}
	defer func() {
		if err := r.Shutdown().Error(); err != nil {
			t.Errorf("Shutdown (restart): %v", err)
		}
	}()
	waitFor(t, "leadership after restart", func() bool { return r.State() == raft.Leader })
	waitFor(t, "FSM replay", func() bool { return fsm.n.Load() >= commands })
	if err := r.Apply([]byte("one-more"), 5*time.Second).Error(); err != nil {
		t.Fatalf("Apply after restart: %v", err)
	}
	if got := fsm.n.Load(); got != commands+1 {
		t.Fatalf("FSM applied %d commands after restart, want %d", got, commands+1)
	}
	if l2, _ := store.LastIndex(); l2 <= last {
		t.Fatalf("LastIndex did not advance after restart: %d <= %d", l2, last)
	}
}

// BenchmarkStoreLogs measures one synced StoreLogs of 64 x 1 KiB entries,
// i.e. the fsync cost raft pays per append batch.
func BenchmarkStoreLogs(b *testing.B) {
	db := openTestDB(b, b.TempDir())
	defer db.Close()
	s := newTestStore(b, db)

	const batch, size = 64, 1024
	payload := bytes.Repeat([]byte{0xab}, size)
	logs := make([]*raft.Log, batch)
	for i := range logs {
		logs[i] = &raft.Log{Term: 1, Type: raft.LogCommand, Data: payload, AppendedAt: time.Now()}
	}
	b.SetBytes(batch * size)
	b.ReportAllocs()
	next := uint64(1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, l := range logs {
			l.Index = next
			next++
		}
		if err := s.StoreLogs(logs); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/entry")
}
