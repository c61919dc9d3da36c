package raftfsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"zenmux/internal/zlog"
	"zenmux/ledger"
)

var t0 = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).UnixNano()

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func openStore(t testing.TB, dir, addr string, snapEvery uint64) *Store {
	t.Helper()
	s, err := Open(Options{NodeID: "n1", Dir: dir, RaftAddr: addr, Bootstrap: true,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, SnapshotEvery: snapEvery})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	return s
}

func propose(t testing.TB, s *Store, cmd ledger.Command, ts int64) ledger.Result {
	t.Helper()
	v, err := s.Propose(cmd, ts, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return v.(ledger.Result)
}

// seededStore opens a seeded store, closed at the test's end, with the
// accounts named.
func seededStore(t *testing.T, accounts ...string) *Store {
	t.Helper()
	s := openStore(t, t.TempDir(), freeAddr(t), 0)
	t.Cleanup(func() { s.Close() })
	seed(t, s)
	for _, a := range accounts {
		propose(t, s, &ledger.CreateAccount{ID: a, Email: a + "@x.io"}, t0)
	}
	return s
}

func seed(t testing.TB, s *Store) {
	t.Helper()
	r := propose(t, s, &ledger.Seed{NanoUSDPerFlow: ledger.DefaultNanoUSDPerFlow, Plans: ledger.DefaultPlans(), Models: ledger.DefaultModels(), DedupeDays: 7, RequestLogDays: 30, LogFormat: ledger.LogFormatCurrent}, t0)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
}

func balance(t testing.TB, s *Store, acct string) string {
	t.Helper()
	v, err := s.Ledger().Account(acct, t0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	var m struct {
		Balance json.Number `json:"balance_usd"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m.Balance.String()
}

// A restart replays the raft log over state that already holds it: the
// applied index in the same batch makes every replayed entry a no-op
// (rule C2), and snapshots with log compaction change nothing.
func TestRestartAppliesNothingTwice(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	s := openStore(t, dir, addr, 64)
	seed(t, s)
	propose(t, s, &ledger.CreateAccount{ID: "a1", Email: "a1@x.io"}, t0)
	for i := 0; i < 300; i++ {
		r := propose(t, s, &ledger.TopUp{Idem: ledger.Idem{IdemKey: fmt.Sprint("k", i), Fingerprint: "f"}, AccountID: "a1", MicroUSD: 10_000}, t0+int64(i))
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	hash1, idx1, _ := s.StateHash()
	if got := balance(t, s, "a1"); got != "3" {
		t.Fatalf("balance %s, want 3", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, addr, 64)
	defer s.Close()
	if got := balance(t, s, "a1"); got != "3" {
		t.Fatalf("after restart: balance %s, want 3", got)
	}
	// A leader's first act is a no-op entry; the state records are the same.
	hash2, idx2, _ := s.StateHash()
	if idx2 < idx1 {
		t.Fatalf("applied index went back: %d → %d", idx1, idx2)
	}
	if idx2 == idx1 && hash1 != hash2 {
		t.Fatal("same applied index, different state")
	}
	// Replaying a key after restart answers the first result.
	r := propose(t, s, &ledger.TopUp{Idem: ledger.Idem{IdemKey: "k7", Fingerprint: "f"}, AccountID: "a1", MicroUSD: 10_000}, t0+1000)
	if r.Err != nil || balance(t, s, "a1") != "3" {
		t.Fatalf("replayed key: %v, balance %s", r.Err, balance(t, s, "a1"))
	}
}

type bufSink struct {
	bytes.Buffer
	canceled bool
}

func (b *bufSink) ID() string    { return "test" }
func (b *bufSink) Cancel() error { b.canceled = true; return nil }
func (b *bufSink) Close() error  { return nil }

// A snapshot streamed from one store and restored into a fresh one yields
// the same state hash, and the restored ledger serves the same reads.
func TestSnapshotRestore(t *testing.T) {
	s := openStore(t, t.TempDir(), freeAddr(t), 0)
	defer s.Close()
	seed(t, s)
	propose(t, s, &ledger.CreateAccount{ID: "a1", Email: "a1@x.io"}, t0)
	propose(t, s, &ledger.CreateKey{AccountID: "a1", KeyID: "k1", Kind: ledger.KindSubscription, Hash: ledger.HashSecret("s"), Last4: "abcd"}, t0)
	var charges []ledger.Charge
	for i := 0; i < 100; i++ {
		charges = append(charges, ledger.Charge{ReqID: fmt.Sprint("r", i), AccountID: "a1", KeyID: "k1", Model: ledger.EchoModelID, Billing: ledger.BillingSubscription, AdmittedAt: t0, InputTokens: 1000})
	}
	propose(t, s, &ledger.ChargeBatch{Charges: charges}, t0+1)
	snap, err := s.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: zlog.Pebble(zerolog.Nop())})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The target holds stale state that the restore must remove.
	if err := db.Set([]byte("s/acct/stale"), []byte(`{"id":"stale"}`), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	fsm, err := NewFSM(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsm.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	h1, i1, _ := s.StateHash()
	h2, i2, _ := fsm.StateHash()
	if h1 != h2 || i1 != i2 {
		t.Fatalf("restored state differs: %x@%d vs %x@%d", h1, i1, h2, i2)
	}
	u1, _ := s.Ledger().Usage("a1", t0+2)
	u2, _ := fsm.Ledger().Usage("a1", t0+2)
	j1, _ := json.Marshal(u1)
	j2, _ := json.Marshal(u2)
	if !bytes.Equal(j1, j2) {
		t.Fatalf("usage differs after restore")
	}
	if _, err := fsm.Ledger().Account("stale", t0); err == nil {
		t.Fatal("stale record survived the restore")
	}
	if err := fsm.Restore(io.NopCloser(bytes.NewReader([]byte{0xff, 0xff}))); err == nil {
		t.Fatal("garbage snapshot restored")
	}
}

// An entry that cannot be decoded stops the replica rather than being
// skipped (a skipped entry would diverge it from its peers).
func TestUndecodableEntryPanics(t *testing.T) {
	db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: zlog.Pebble(zerolog.Nop())})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fsm, err := NewFSM(db)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	fsm.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte{0xee, 1, 2}})
}

// rule U1: the request log lists an account's requests newest first and
// pages with an exclusive cursor.
func TestRequestLogPaging(t *testing.T) {
	s := openStore(t, t.TempDir(), freeAddr(t), 0)
	defer s.Close()
	seed(t, s)
	propose(t, s, &ledger.CreateAccount{ID: "a1", Email: "a1@x.io"}, t0)
	for i := 0; i < 5; i++ {
		propose(t, s, &ledger.ChargeBatch{Charges: []ledger.Charge{{ReqID: fmt.Sprint("r", i), AccountID: "a1", Model: ledger.EchoModelID, AdmittedAt: t0 + int64(i)*int64(time.Second),
			Billing: ledger.BillingSubscription, InputTokens: int64(100 * (i + 1)), Estimated: i == 4, Status: "ok"}}}, t0+int64(i)*int64(time.Second))
	}
	var ids []string
	cursor := ""
	for page := 0; page < 5; page++ {
		got, next, err := s.RequestLog("a1", cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range got {
			ids = append(ids, e.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if fmt.Sprint(ids) != "[r4 r3 r2 r1 r0]" {
		t.Fatalf("pages: %v", ids)
	}
	first, _, _ := s.RequestLog("a1", "", 1)
	if e := first[0]; e.InputTokens != 500 || !e.Estimated || e.Billing != "subscription" || e.USDValue != 500 {
		t.Fatalf("newest entry: %+v", e)
	}
}

// A node that died while installing a snapshot (raft had saved the file,
// the state had not caught up) restores it at start instead of resuming
// after the snapshot's index with state that never saw those entries.
func TestStartCatchesUpFromNewerSnapshot(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	s := openStore(t, dir, addr, 0)
	seed(t, s)
	propose(t, s, &ledger.CreateAccount{ID: "a1", Email: "a1@x.io"}, t0)
	propose(t, s, &ledger.TopUp{Idem: ledger.Idem{IdemKey: "k", Fingerprint: "f"}, AccountID: "a1", MicroUSD: 70_000}, t0)
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	want, _, _ := s.StateHash()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Make the snapshot one received from a leader: its stream, saved as
	// raft saves a received one (the local checkpoint is dropped).
	snaps, err := newSnapStore(filepath.Join(dir, "snapshots"), 2)
	if err != nil {
		t.Fatal(err)
	}
	local, _ := snaps.list()
	meta, rc, err := snaps.Open(local[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	sink, _ := snaps.Create(meta.Version, meta.Index, meta.Term, meta.Configuration, meta.ConfigurationIndex, nil)
	if _, err := io.Copy(sink, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if err := errors.Join(sink.Close(), os.RemoveAll(filepath.Join(dir, "snapshots", local[0].ID))); err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open(dir+"/pebble", &pebble.Options{Logger: zlog.Pebble(zerolog.Nop())})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteRange(statePrefix, stateUpper, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(appliedKey, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s = openStore(t, dir, addr, 0)
	defer s.Close()
	if got := balance(t, s, "a1"); got != "0.07" {
		t.Fatalf("balance %s after start, want 0.07", got)
	}
	if got, _, _ := s.StateHash(); got != want {
		t.Fatal("state differs from the snapshot's")
	}
}

// State reaches Pebble only at checkpoints; a crash between two loses the
// entries applied since the last one from state, not from the synced raft
// log: the restart applies them again, each exactly once (rule C2), and the
// ledger and request log come back as they were.
func TestCrashBetweenCheckpointsReplaysTheLog(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	s := openStore(t, dir, addr, 0)
	seed(t, s)
	propose(t, s, &ledger.CreateAccount{ID: "a1", Email: "a1@x.io"}, t0)
	s.fsm.mu.Lock()
	s.fsm.every = time.Hour // no checkpoint from here on
	s.fsm.mu.Unlock()
	s.fsm.Checkpoint()
	const charges = 200
	for i := 0; i < charges; i++ {
		propose(t, s, &ledger.ChargeBatch{Charges: []ledger.Charge{{ReqID: fmt.Sprint("r", i), AccountID: "a1", Model: ledger.EchoModelID,
			AdmittedAt: t0 + int64(i), Billing: ledger.BillingSubscription, InputTokens: 32_830}}}, t0+int64(i))
	}
	propose(t, s, &ledger.TopUp{Idem: ledger.Idem{IdemKey: "k", Fingerprint: "f"}, AccountID: "a1", MicroUSD: 70_000}, t0+charges)
	view := func(s *Store) string {
		u, err := s.Ledger().Usage("a1", t0+charges)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(u)
		return string(b) + " balance " + balance(t, s, "a1")
	}
	before, applied := view(s), s.AppliedIndex()
	// kill: raft and the database stop without a checkpoint.
	if err := s.raft.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	s.trans.Close()
	if err := errors.Join(s.db.Close(), s.logDB.Close()); err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open(filepath.Join(dir, "pebble"), &pebble.Options{Logger: zlog.Pebble(zerolog.Nop())})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := readApplied(db)
	db.Close()
	if err != nil || stored >= applied-charges {
		t.Fatalf("stored index %d of %d applied (%v): the test needs state behind the log", stored, applied, err)
	}
	s = openStore(t, dir, addr, 0)
	defer s.Close()
	if err := s.WaitApplied(applied, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if after := view(s); after != before {
		t.Fatalf("after the crash:\n %s\nbefore:\n %s", after, before)
	}
	log, _, err := s.RequestLog("a1", "", 1000)
	if err != nil || len(log) != charges {
		t.Fatalf("request log: %d entries, %v", len(log), err)
	}
	r := propose(t, s, &ledger.ChargeBatch{Retry: true, Charges: []ledger.Charge{{ReqID: "r7", AccountID: "a1", Model: ledger.EchoModelID,
		AdmittedAt: t0 + 7, Billing: ledger.BillingSubscription, InputTokens: 32_830}}}, t0+charges)
	if res, err := ledger.Answer(&ledger.ChargeBatch{}, r); err != nil || res[0].Status != "exists" {
		t.Fatalf("a retried charge after the crash: %v %v", res, err)
	}
}

// rule U1: a listing cursor that is malformed, names another account's
// entry, or names a block without a place in it or past its end is
// refused, not followed; one naming no record is an empty last page.
func TestRequestLogCursorChecked(t *testing.T) {
	s := seededStore(t, "a1", "a2")
	for _, a := range []string{"a1", "a2"} {
		propose(t, s, &ledger.ChargeBatch{Charges: []ledger.Charge{{ReqID: "r-" + a, AccountID: a, Model: ledger.EchoModelID,
			AdmittedAt: t0, Billing: ledger.BillingSubscription, InputTokens: 10}}}, t0)
	}
	other := s.Ledger().LastLog("a2")
	head, _, ok := strings.Cut(other[17:], "/") // a block's address: <time>/<id>/<place>
	if !ok {
		t.Fatalf("address %q names no place in a block", other)
	}
	for _, cursor := range []string{"garbage", other, other[:17] + head, other[:17] + head + "/7"} {
		if _, _, err := s.RequestLog("a1", cursor, 10); !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("cursor %q: %v", cursor, err)
		}
	}
	if got, next, err := s.RequestLog("a1", other[:17]+"r-nobody/0", 10); err != nil || len(got) != 0 || next != "" {
		t.Errorf("a cursor naming no record: %v %q %v, want an empty last page", got, next, err)
	}
	if got, next, err := s.RequestLog("a2", other, 10); err != nil || len(got) != 1 || next != "" {
		t.Fatalf("own cursor: %v %q %v", got, next, err)
	}
}

// A data dir whose state database still holds the raft log (the layout
// before the two were split) is refused, not opened with an empty log
// below its state's applied index.
func TestOldLayoutRefused(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(filepath.Join(dir, "pebble"), &pebble.Options{Logger: zlog.Pebble(zerolog.Nop())})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte("l/\x00\x00\x00\x00\x00\x00\x00\x01"), []byte("entry"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(Options{NodeID: "n1", Dir: dir, RaftAddr: freeAddr(t), Bootstrap: true})
	if err == nil || !strings.Contains(err.Error(), "earlier zenmuxd's layout") {
		t.Fatalf("opened an old data dir: %v", err)
	}
}

// rule U1 after retention (C4): a charge retried after its request-log
// record and dedupe record were pruned is charged again, in a record under
// the same key. The account's chain must still end: the new entry does not
// link to itself, and a link from an older entry to the pruned record's
// key (reused now by a block of another layout) ends the chain instead of
// showing a newer entry again or failing.
func TestRequestLogAfterKeyReuse(t *testing.T) {
	s := seededStore(t, "a1", "a2")
	charge := func(id, acct string, admitted int64) ledger.Charge {
		return ledger.Charge{ReqID: id, AccountID: acct, Model: ledger.EchoModelID, AdmittedAt: admitted,
			Billing: ledger.BillingSubscription, InputTokens: 10}
	}
	// The first batch's block, keyed by "x", holds a2's entry at place 1;
	// a1's "old" links to it only through the chain below.
	old := []ledger.Charge{charge("x", "a1", t0), charge("y", "a2", t0), charge("z", "a1", t0)}
	propose(t, s, &ledger.ChargeBatch{Charges: old}, t0)
	day := int64(24 * time.Hour)
	later := t0 + 31*day
	propose(t, s, &ledger.Tick{}, later) // prunes the 30-day log and the 7-day dedupe records
	// The same batch retried: its records are gone, so it is charged again
	// under the same block key; then a new charge for a1.
	propose(t, s, &ledger.ChargeBatch{Charges: old, Retry: true}, later)
	propose(t, s, &ledger.ChargeBatch{Charges: []ledger.Charge{charge("w", "a1", later)}}, later)
	for _, acct := range []string{"a1", "a2"} {
		got, next, err := s.RequestLog(acct, "", 100)
		if err != nil || next != "" {
			t.Fatalf("%s: %v %q %v", acct, got, next, err)
		}
		var ids []string
		for _, e := range got {
			ids = append(ids, e.ID)
		}
		want := map[string]string{"a1": "[w z x]", "a2": "[y]"}[acct]
		if fmt.Sprint(ids) != want {
			t.Errorf("%s's log: %v, want %s", acct, ids, want)
		}
		// A page at a time, the cursors end too.
		ids, cursor := nil, ""
		for page := 0; page < 10; page++ {
			got, next, err := s.RequestLog(acct, cursor, 1)
			if err != nil {
				t.Fatalf("%s, page %d: %v", acct, page, err)
			}
			for _, e := range got {
				ids = append(ids, e.ID)
			}
			if cursor = next; next == "" {
				break
			}
		}
		if fmt.Sprint(ids) != want || cursor != "" {
			t.Errorf("%s's log a page at a time: %v (cursor %q), want %s", acct, ids, cursor, want)
		}
	}
}

// A checkpoint reuses the last one's batch buffer. One too large for the
// memtable is kept by Pebble as it is (a flushable batch), so the next
// checkpoint must not write into it: large and small checkpoints
// alternate here on a 1 MiB memtable, and the state on disk, read back
// after a reopen, hashes as a second FSM's given the same entries and
// checkpointed once.
func TestCheckpointBufferReuseAcrossLargeBatches(t *testing.T) {
	open := func(dir string) (*pebble.DB, *FSM) {
		t.Helper()
		o := pebbleOptions(nil, 1, true)
		o.DisableWAL = true
		db, err := pebble.Open(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		f, err := NewFSM(db)
		if err != nil {
			t.Fatal(err)
		}
		return db, f
	}
	dir := t.TempDir()
	db, fsm := open(dir)
	ref, want := open(t.TempDir())
	defer ref.Close()
	var idx uint64
	apply := func(cmd ledger.Command) {
		t.Helper()
		data, err := ledger.Encode(cmd, t0)
		if err != nil {
			t.Fatal(err)
		}
		idx++
		lg := &raft.Log{Index: idx, Type: raft.LogCommand, Data: data}
		for _, f := range []*FSM{fsm, want} {
			if r := f.Apply(lg).(ledger.Result); r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	apply(&ledger.Seed{NanoUSDPerFlow: ledger.DefaultNanoUSDPerFlow, Plans: ledger.DefaultPlans(), Models: ledger.DefaultModels(),
		DedupeDays: 7, RequestLogDays: 30, LogFormat: ledger.LogFormatCurrent})
	const accounts = 3000 // about 1 MiB of records: over half the memtable
	charge := func(round, from, n int) {
		cb := &ledger.ChargeBatch{}
		for i := from; i < from+n; i++ {
			cb.Charges = append(cb.Charges, ledger.Charge{ReqID: fmt.Sprint("r", round, "-", i), AccountID: fmt.Sprint("a", i), Model: ledger.EchoModelID,
				Billing: ledger.BillingSubscription, AdmittedAt: t0 - int64(round), InputTokens: 1000, OutputTokens: int64(round)})
		}
		apply(cb)
	}
	for round := range 3 {
		if round == 0 {
			for i := range accounts {
				apply(&ledger.CreateAccount{ID: fmt.Sprint("a", i), Email: fmt.Sprint("a", i, "@x.io")})
			}
		} else {
			charge(round, 0, accounts)
		}
		fsm.Checkpoint() // large
		for i := range 5 {
			charge(round, i*10, 10)
			fsm.Checkpoint() // small, into the buffer kept
		}
	}
	wantHash, wantIdx, err := want.StateHash()
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(db.Flush(), db.Close()); err != nil {
		t.Fatal(err)
	}
	db, reopened := open(dir)
	defer db.Close()
	got, gotIdx, err := reopened.StateHash()
	if err != nil {
		t.Fatal(err)
	}
	if got != wantHash || gotIdx != wantIdx || gotIdx != idx {
		t.Fatalf("state after reopen %x@%d, want %x@%d (index %d)", got, gotIdx, wantHash, wantIdx, idx)
	}
}
