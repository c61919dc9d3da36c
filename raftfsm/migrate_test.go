package raftfsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"zenmux/internal/zlog"
	"zenmux/ledger"
)

// fixtureCommands are the commands behind testdata/format1.frames: the
// previous release (commit ce0df3d, JSON account and totals records,
// version-1 request-log entries) applied them, one entry each from index 1,
// and wrote its applied index and state records as snapshot frames (the
// stream its leader sends). This list must stay as it was then.
func fixtureCommands(t testing.TB) [][]byte {
	t.Helper()
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	cmds := []ledger.Command{&ledger.Seed{NanoUSDPerFlow: ledger.DefaultNanoUSDPerFlow, Plans: ledger.DefaultPlans(), Models: ledger.DefaultModels(),
		DedupeDays: 7, RequestLogDays: 30}}
	for i := 0; i < 3; i++ {
		id := fmt.Sprint("a", i)
		cmds = append(cmds, &ledger.CreateAccount{ID: id, Email: id + "@x.io", Name: "Zoë " + id},
			&ledger.CreateKey{AccountID: id, KeyID: "k" + id, Kind: ledger.KindSubscription, Hash: ledger.HashSecret("s" + id), Last4: "abcd"},
			&ledger.CreateKey{AccountID: id, KeyID: "p" + id, Kind: ledger.KindPayg, Hash: ledger.HashSecret("p" + id), Last4: "efgh"},
			&ledger.TopUp{Idem: ledger.Idem{IdemKey: "t" + id, Fingerprint: "f"}, AccountID: id, MicroUSD: 5_000000})
	}
	cmds = append(cmds, &ledger.Subscribe{Idem: ledger.Idem{IdemKey: "s0", Fingerprint: "f"}, AccountID: "a0", Plan: "pro"})
	var charges []ledger.Charge
	for i := 0; i < 24; i++ {
		acct := fmt.Sprint("a", i%3)
		c := ledger.Charge{ReqID: fmt.Sprint("n1-", i), AccountID: acct, KeyID: "k" + acct, Model: ledger.EchoModelID, Node: "n1",
			Billing: ledger.BillingSubscription, AdmittedAt: at + int64(i)*int64(time.Second), InputTokens: int64(1000 + i), OutputTokens: 300, Status: "ok"}
		if i%4 == 3 {
			c.KeyID, c.Billing, c.Status, c.Estimated = "p"+acct, ledger.BillingPayg, "client_closed", true
		}
		charges = append(charges, c)
	}
	cmds = append(cmds, &ledger.ChargeBatch{Charges: charges[:12]}, &ledger.ChargeBatch{Charges: charges[12:]})
	out := make([][]byte, len(cmds))
	for i, c := range cmds {
		data, err := ledger.Encode(c, at+int64(i+1)*int64(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = data
	}
	return out
}

// applyFixture applies fixtureCommands to a new FSM over a new database.
func applyFixture(t testing.TB) (*FSM, *pebble.DB) {
	t.Helper()
	db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: zlog.Pebble(zerolog.Nop())})
	if err != nil {
		t.Fatal(err)
	}
	fsm, err := NewFSM(db)
	if err != nil {
		t.Fatal(err)
	}
	for i, data := range fixtureCommands(t) {
		fsm.ApplyBatch([]*raft.Log{{Index: uint64(i + 1), Type: raft.LogCommand, Data: data}})
	}
	fsm.Checkpoint()
	return fsm, db
}

// readFixture reads testdata/format1.frames: frames without a stream
// header, as the previous release's leader sends them.
func readFixture(t testing.TB) (raw []byte, keys, values [][]byte) {
	t.Helper()
	raw, err := os.ReadFile("testdata/format1.frames")
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(bytes.NewReader(raw))
	for {
		k, v, err := readFrame(r)
		if err == io.EOF {
			return raw, keys, values
		}
		if err != nil {
			t.Fatal(err)
		}
		keys, values = append(keys, k), append(values, v)
	}
}

// A data dir the previous release wrote (JSON accounts and totals,
// version-1 request-log entries) opens: every record is recoded in this
// build's encoding with the applied index unchanged, and the state hashes
// equal to the same commands applied natively; the request log still
// reads. A snapshot stream from a leader of that release restores to the
// same. The migration runs once.
func TestOldFormatMigratesOnOpenAndRestore(t *testing.T) {
	native, ndb := applyFixture(t)
	defer ndb.Close()
	want, wantIdx, err := native.StateHash()
	if err != nil {
		t.Fatal(err)
	}
	raw, keys, values := readFixture(t)
	oldRecords := 0
	for i, k := range keys {
		if _, changed, err := ledger.Recode(k[len(statePrefix):], values[i]); err == nil && changed && bytes.HasPrefix(k, statePrefix) {
			oldRecords++
		}
	}
	if oldRecords < 10 {
		t.Fatalf("the fixture holds %d records in the old encoding", oldRecords)
	}

	// An old data dir: the records as the old build stored them.
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{Logger: zlog.Pebble(zerolog.Nop())})
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if err := db.Set(k, values[i], pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	fsm, err := NewFSM(db)
	if err != nil {
		t.Fatal(err)
	}
	got, gotIdx, err := fsm.StateHash()
	if err != nil {
		t.Fatal(err)
	}
	if got != want || gotIdx != wantIdx {
		t.Fatalf("migrated state %x@%d, native %x@%d", got, gotIdx, want, wantIdx)
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: statePrefix, UpperBound: stateUpper})
	if err != nil {
		t.Fatal(err)
	}
	for it.First(); it.Valid(); it.Next() {
		if _, changed, err := ledger.Recode(it.Key()[len(statePrefix):], it.Value()); changed || err != nil {
			t.Errorf("%s left in the old encoding (%v)", it.Key(), err)
		}
	}
	it.Close()
	for _, id := range []string{"a0", "a1", "a2"} {
		a, _ := native.Ledger().Usage(id, 0)
		b, _ := fsm.Ledger().Usage(id, 0)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("usage of %s differs: %s vs %s", id, jb, ja)
		}
	}
	// Open again: nothing left to recode, the format is recorded.
	if v, closer, err := db.Get(formatKey); err != nil || binary.BigEndian.Uint64(v) != recordFormat {
		t.Fatalf("format key: %v", err)
	} else {
		closer.Close()
	}
	if err := migrate(db); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// A snapshot stream from an old leader restores to the same state.
	rdb, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: zlog.Pebble(zerolog.Nop())})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	restored, err := NewFSM(rdb)
	if err != nil {
		t.Fatal(err)
	}
	if err := restored.Restore(io.NopCloser(bytes.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	if got, gotIdx, _ := restored.StateHash(); got != want || gotIdx != wantIdx {
		t.Fatalf("restored state %x@%d, native %x@%d", got, gotIdx, want, wantIdx)
	}
}

// A database a later build recorded in a newer format is refused.
func TestNewerFormatRefused(t *testing.T) {
	db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: zlog.Pebble(zerolog.Nop())})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], recordFormat+1)
	if err := db.Set(formatKey, v[:], pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFSM(db); err == nil {
		t.Fatal("opened a newer format")
	}
}
