package raftfsm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"zenmux/internal/zlog"
	"zenmux/ledger"
)

// A local snapshot is a checkpoint of the state database: its tables are
// hard links, not copies, so taking one does not cost a copy of the state.
// Opened for a follower, it renders once into the frame stream Restore
// reads, and a fresh store restored from that stream agrees on the state
// hash. Only the newest two snapshots are kept.
func TestSnapshotIsACheckpoint(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, freeAddr(t), 0)
	defer s.Close()
	seed(t, s)
	propose(t, s, &ledger.CreateAccount{ID: "a1", Email: "a1@x.io"}, t0)
	for round := 0; round < 3; round++ {
		var charges []ledger.Charge
		for i := 0; i < 500; i++ {
			charges = append(charges, ledger.Charge{ReqID: fmt.Sprintf("r%d-%d", round, i), AccountID: "a1", Model: ledger.EchoModelID,
				Billing: ledger.BillingSubscription, AdmittedAt: t0 + int64(i), InputTokens: 1000})
		}
		propose(t, s, &ledger.ChargeBatch{Charges: charges}, t0+1)
		if err := s.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	store, err := newSnapStore(filepath.Join(dir, "snapshots"), 2)
	if err != nil {
		t.Fatal(err)
	}
	metas, err := store.list()
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != 2 || !metas[0].Checkpoint || metas[0].Index < metas[1].Index {
		t.Fatalf("snapshots: %+v", metas)
	}
	newest := filepath.Join(dir, "snapshots", metas[0].ID)
	tables, _ := filepath.Glob(filepath.Join(newest, snapStateDir, "*.sst"))
	if len(tables) == 0 {
		t.Fatal("the checkpoint has no tables")
	}
	for _, tb := range tables {
		st, err := os.Stat(tb)
		if err != nil {
			t.Fatal(err)
		}
		if n := st.Sys().(*syscall.Stat_t).Nlink; n < 2 {
			t.Errorf("%s: %d link(s): copied, not linked", filepath.Base(tb), n)
		}
	}
	if _, err := os.Stat(filepath.Join(newest, snapStreamFile)); !os.IsNotExist(err) {
		t.Fatalf("a stream before any Open: %v", err)
	}

	meta, rc, err := store.Open(metas[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || int64(len(data)) != meta.Size || meta.Index != metas[0].Index {
		t.Fatalf("opened %d bytes of %d, index %d: %v", len(data), meta.Size, meta.Index, err)
	}
	db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: zlog.Pebble(zerolog.Nop())})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fsm, err := NewFSM(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsm.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	h1, i1, _ := s.StateHash()
	h2, i2, _ := fsm.StateHash()
	if h1 != h2 || i1 != i2 {
		t.Fatalf("restored state differs: %x@%d vs %x@%d", h1, i1, h2, i2)
	}
	for _, id := range []string{"", "../x", ".tmp", "nope"} {
		if _, _, err := store.Open(id); err == nil {
			t.Errorf("opened snapshot %q", id)
		}
	}
}

// A snapshot received from a leader is kept as the stream it came as; a
// canceled one, or one a crash left half written, leaves nothing.
func TestSnapshotStoreStreams(t *testing.T) {
	dir := t.TempDir()
	store, err := newSnapStore(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	conf := raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: "127.0.0.1:1"}}}
	sink, err := store.Create(1, 42, 3, conf, 7, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("frame"), 1000)
	if _, err := sink.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	canceled, _ := store.Create(1, 50, 3, conf, 7, nil)
	canceled.Write([]byte("partial"))
	if err := canceled.Cancel(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "3-60-1"+snapTmpSuffix), 0o700); err != nil {
		t.Fatal(err)
	}
	// A directory without metadata (not ours, or from before reap renamed
	// what it deletes) is ignored, not an error that would stop the node.
	if err := os.MkdirAll(filepath.Join(dir, "3-70-1", snapStateDir), 0o700); err != nil {
		t.Fatal(err)
	}
	store, err = newSnapStore(dir, 2) // a restart
	if err != nil {
		t.Fatal(err)
	}
	list, err := store.List()
	if err != nil || len(list) != 1 || list[0].Index != 42 || list[0].Term != 3 || list[0].ConfigurationIndex != 7 ||
		len(list[0].Configuration.Servers) != 1 {
		t.Fatalf("list: %+v %v", list, err)
	}
	meta, rc, err := store.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, payload) || meta.Size != int64(len(payload)) {
		t.Fatalf("read back %d bytes, size %d", len(got), meta.Size)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("%d entries in the snapshot dir, want the snapshot and the stray directory", len(entries))
	}
	if _, err := store.Create(2, 1, 1, conf, 1, nil); err == nil {
		t.Fatal("created a version 2 snapshot")
	}
}

// Every stream this build writes starts with the version-2 header; a
// stream without one is the previous release's version 1 (the same
// frames) and restores to the same state, so a node of this build catches
// up from an old leader's snapshot.
func TestSnapshotStreamVersions(t *testing.T) {
	fsm := memFSM(t)
	ledgerState(t, fsm)
	hash, applied, err := fsm.StateHash()
	if err != nil {
		t.Fatal(err)
	}
	stream := stateStream(t, fsm)
	header := "\x00\x10" + streamMagic + "\x02"
	if !bytes.HasPrefix(stream, []byte(header)) {
		t.Fatalf("stream starts %q, want the header %q", stream[:min(len(stream), 20)], header)
	}
	for name, s := range map[string][]byte{"version 2": stream, "version 1 (no header)": stream[len(header):]} {
		other := memFSM(t)
		if err := other.Restore(io.NopCloser(bytes.NewReader(s))); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if h, i, _ := other.StateHash(); h != hash || i != applied {
			t.Errorf("%s restores to %x@%d, want %x@%d", name, h, i, hash, applied)
		}
	}
	v, err := readStreamHeader(bufio.NewReader(bytes.NewReader(nil)))
	if v != 1 || err != nil {
		t.Errorf("an empty stream reads as version %d (%v), want 1", v, err)
	}
}

// A header this build cannot read (a later version, a wrong magic, a cut
// header) refuses the stream and leaves the state as it was (invariant 5).
func TestRestoreRefusesAStreamVersionItDoesNotKnow(t *testing.T) {
	fsm := memFSM(t)
	ledgerState(t, fsm)
	hash, applied, _ := fsm.StateHash()
	body := stateStream(t, fsm)[len(streamMagic)+3:]
	for name, s := range map[string][]byte{
		"version 3":   append(frame("", streamMagic+"\x03"), body...),
		"version 1":   append(frame("", streamMagic+"\x01"), body...),
		"wrong magic": append(frame("", "zenmux-snapshoX\x02"), body...),
		"long header": append(frame("", streamMagic+"\x02\x00"), body...),
		"cut header":  []byte("\x00\x10zenmux"),
	} {
		err := fsm.Restore(io.NopCloser(bytes.NewReader(s)))
		if !errors.Is(err, errSnapshotStream) {
			t.Errorf("%s: Restore = %v, want errSnapshotStream", name, err)
		}
		if h, i, _ := fsm.StateHash(); h != hash || i != applied {
			t.Fatalf("%s: a refused stream changed the state", name)
		}
	}
}

// The previous release reads a stream frame by frame with the readFrame of
// this build (unchanged since): its first frame, the header's empty key, is
// outside the state, so an old node refuses a new leader's snapshot before
// it commits anything and keeps its state.
func TestPreviousReleaseRefusesAVersion2Stream(t *testing.T) {
	fsm := memFSM(t)
	ledgerState(t, fsm)
	_, _, err := readFrame(bufio.NewReader(bytes.NewReader(stateStream(t, fsm))))
	if err == nil || !strings.Contains(err.Error(), `snapshot key "" outside the state`) {
		t.Fatalf("the old frame reader on a version-2 stream: %v, want a refusal of the empty key", err)
	}
}
