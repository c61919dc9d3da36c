package raftfsm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"zenmux/ledger"
)

// backupOf writes a backup of s to memory.
func backupOf(t *testing.T, s *Store) []byte {
	t.Helper()
	b, err := s.OpenBackup()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var buf bytes.Buffer
	n, err := b.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo counted %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

func topUp(t *testing.T, s *Store, key string) {
	t.Helper()
	r := propose(t, s, &ledger.TopUp{Idem: ledger.Idem{IdemKey: key, Fingerprint: "f"}, AccountID: "a1", MicroUSD: 1_000_000}, t0)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
}

// A backup carries the state hash StateHash computes at its index; a
// restored data dir starts as a one-voter cluster past that index holding
// exactly that state, applies the new cluster's first writes (none is
// skipped as "already applied") and, restarted, applies nothing twice.
func TestBackupRestoreStartsPastTheBackup(t *testing.T) {
	s := openStore(t, t.TempDir(), freeAddr(t), 0)
	defer s.Close()
	seed(t, s)
	propose(t, s, &ledger.CreateAccount{ID: "a1", Email: "a1@x.io"}, t0)
	for i := range 3 {
		topUp(t, s, fmt.Sprint("before-", i))
	}
	file := backupOf(t, s)
	hash, idx, err := s.StateHash()
	if err != nil {
		t.Fatal(err)
	}
	topUp(t, s, "after") // not in the backup
	info, err := VerifyBackup(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if info.Hash != hash || info.Index != idx || info.Node != "n1" || info.Bytes != int64(len(file)) || info.Records == 0 {
		t.Fatalf("backup %x@%d by %q, %d bytes, %d records; want %x@%d by n1, %d bytes", info.Hash, info.Index, info.Node, info.Bytes, info.Records, hash, idx, len(file))
	}
	if len(info.Members) != 1 || info.Members[0].ID != "n1" || info.Members[0].RaftAddr != s.LocalAddr() {
		t.Fatalf("members %+v", info.Members)
	}

	path := filepath.Join(t.TempDir(), "b.zmb")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	dir, addr := filepath.Join(t.TempDir(), "data"), freeAddr(t)
	got, err := RestoreBackup(path, dir, "n1", addr)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash != hash || got.Restored != hash || got.Index != idx || got.Stream != streamVersion {
		t.Fatalf("restored %x (file %x) at %d, stream version %d; want %x at %d, version %d", got.Restored, got.Hash, got.Index, got.Stream, hash, idx, streamVersion)
	}
	r := openStore(t, dir, addr, 0)
	if h, i, _ := r.StateHash(); h != hash || i < idx {
		t.Fatalf("restored node at start: %x@%d, want %x at %d or later (its own no-op)", h, i, hash, idx)
	}
	if b := balance(t, r, "a1"); b != "3" {
		t.Fatalf("restored balance %s, want 3", b)
	}
	_, servers, err := r.Servers()
	if err != nil || len(servers) != 1 || string(servers[0].ID) != "n1" || string(servers[0].Address) != addr {
		t.Fatalf("restored configuration %+v (%v), want n1 at %s alone", servers, err, addr)
	}
	topUp(t, r, "restored-1")
	if b := balance(t, r, "a1"); b != "4" {
		t.Fatalf("a write after the restore: balance %s, want 4", b)
	}
	if r.AppliedIndex() <= idx {
		t.Fatalf("applied index %d, want past the backup's %d", r.AppliedIndex(), idx)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r = openStore(t, dir, addr, 0)
	defer r.Close()
	if b := balance(t, r, "a1"); b != "4" {
		t.Fatalf("after a restart: balance %s, want 4", b)
	}
}

// A file cut anywhere, or with any byte changed, is refused as a whole
// (ErrBackup), and a refused restore leaves the data dir absent; a data
// dir with anything in it is refused before the file is read.
func TestBackupRefusesDamage(t *testing.T) {
	s := openStore(t, t.TempDir(), freeAddr(t), 0)
	defer s.Close()
	seed(t, s)
	propose(t, s, &ledger.CreateAccount{ID: "a1", Email: "a1@x.io"}, t0)
	topUp(t, s, "t")
	file := backupOf(t, s)
	positions := []int{0, 5, len(backupMagic), len(backupMagic) + 1, len(backupMagic) + 3}
	for i := 0; i < len(file); i += 1 + len(file)/200 {
		positions = append(positions, i)
	}
	for i := max(0, len(file)-80); i < len(file); i++ {
		positions = append(positions, i)
	}
	for _, at := range positions {
		if _, err := VerifyBackup(bytes.NewReader(file[:at])); !errors.Is(err, ErrBackup) {
			t.Fatalf("cut at %d of %d: %v, want ErrBackup", at, len(file), err)
		}
		bad := bytes.Clone(file)
		bad[at] ^= 0x20
		if _, err := VerifyBackup(bytes.NewReader(bad)); !errors.Is(err, ErrBackup) {
			t.Fatalf("byte %d of %d changed: %v, want ErrBackup", at, len(file), err)
		}
	}
	if _, err := VerifyBackup(bytes.NewReader(append(bytes.Clone(file), 0))); !errors.Is(err, ErrBackup) {
		t.Fatalf("a byte after the checksum: %v, want ErrBackup", err)
	}

	path := filepath.Join(t.TempDir(), "b.zmb")
	if err := os.WriteFile(path, file[:len(file)-1], 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := RestoreBackup(path, dir, "n1", "127.0.0.1:1"); !errors.Is(err, ErrBackup) {
		t.Fatalf("restore of a cut file: %v, want ErrBackup", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused restore left the data dir: %v", err)
	}
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keep"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RestoreBackup(path, dir, "n1", "127.0.0.1:1"); !errors.Is(err, ErrDataDirNotEmpty) {
		t.Fatalf("restore into a non-empty dir: %v, want ErrDataDirNotEmpty", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("a refused restore changed the data dir: %v", entries)
	}
}

// A backup whose stream is of an earlier record format (here the previous
// release's version-1 frames, testdata/format1.frames) verifies against
// the hash of the records it holds, and restores recoded, as an old
// leader's snapshot does: to the state hash of the same commands applied
// by this build.
func TestRestoreRecodesAnEarlierFormat(t *testing.T) {
	native, ndb := applyFixture(t)
	defer ndb.Close()
	want, idx, err := native.StateHash()
	if err != nil {
		t.Fatal(err)
	}
	raw, keys, values := readFixture(t)
	h := sha256.New()
	for i, k := range keys {
		if bytes.HasPrefix(k, statePrefix) {
			hashRecord(h, k, values[i])
		}
	}
	var old [32]byte
	copy(old[:], h.Sum(nil))
	var file bytes.Buffer
	if _, err := writeBackup(&file, BackupInfo{Index: idx, Node: "n1", Members: []BackupMember{}},
		func(w *bufio.Writer) error { _, err := w.Write(raw); return err },
		func() ([32]byte, error) { return old, nil }); err != nil {
		t.Fatal(err)
	}
	info, err := VerifyBackup(bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if info.Stream != 1 || info.Hash != old || old == want {
		t.Fatalf("verified stream version %d, hash %x (the file's %x, the recoded state's %x)", info.Stream, info.Hash, old, want)
	}
	path := filepath.Join(t.TempDir(), "old.backup")
	if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := RestoreBackup(path, filepath.Join(t.TempDir(), "data"), "n1", "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash != old || got.Restored != want || got.Index != idx {
		t.Fatalf("restored %x (file %x) at %d; want %x (file %x) at %d", got.Restored, got.Hash, got.Index, want, old, idx)
	}
}

// FuzzVerifyBackup: any bytes are a verified backup or refused with
// ErrBackup, never a panic or another error; a verified one is the file
// it was made from (the checksum leaves nothing else).
func FuzzVerifyBackup(f *testing.F) {
	fsm := memFSM(f)
	ledgerState(f, fsm)
	snap := fsm.db.NewSnapshot()
	defer snap.Close()
	idx, err := readApplied(snap)
	if err != nil {
		f.Fatal(err)
	}
	var file bytes.Buffer
	b := &Backup{snap: snap, info: BackupInfo{Index: idx, Node: "n1", Members: []BackupMember{}}}
	if _, err := b.WriteTo(&file); err != nil {
		f.Fatal(err)
	}
	good := file.Bytes()
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(backupMagic + "\x01\x02{}\x00"))
	f.Add([]byte(backupMagic + "\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := VerifyBackup(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrBackup) {
				t.Fatalf("%v: not ErrBackup", err)
			}
			return
		}
		if !bytes.Equal(data, good) || info.Index != idx {
			t.Fatalf("verified a file that is not the one made: %d bytes at index %d", len(data), info.Index)
		}
	})
}
