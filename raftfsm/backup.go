package raftfsm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"
)

// A backup file (zenmuxd backup; DESIGN.md, "Backups") is, in order:
//
//	backupMagic, the format version (one byte)
//	uvarint length, header JSON (BackupInfo: index, created, node, members)
//	the state stream, in chunks: uvarint length (1 to backupChunk), bytes;
//	  a zero length ends it. The chunks' bytes are writeState's stream,
//	  whatever its own version, read back by FSM.Restore
//	the state hash (32 bytes): FSM.StateHash's, over the same records
//	the checksum (32 bytes): SHA-256 of every byte before it
//
// and nothing after. The chunks let the file be written while the state is
// read from a Pebble snapshot, without knowing its size first; the
// checksum makes a truncated or altered file fail as a whole.
const (
	backupMagic   = "zenmux-backup\n"
	backupVersion = 1
	backupChunk   = 1 << 20
	maxBackupHead = 1 << 20
)

// ErrBackup marks a backup file that cannot be used: cut short, altered,
// of another format or version, or whose state does not hash to what it
// says.
var ErrBackup = errors.New("not a usable backup")

// ErrDataDirNotEmpty refuses a restore into a data dir that holds files.
var ErrDataDirNotEmpty = errors.New("data dir is not empty")

// BackupInfo describes a backup: its header, and once it is read whole,
// its state hash, record count and size.
type BackupInfo struct {
	// Index is the Raft index the state is at (the applied index it holds).
	Index uint64 `json:"index"`
	// Created is when the node took it (its wall clock).
	Created time.Time `json:"created"`
	// Node is the id of the node that wrote it; Members the Raft
	// configuration it was in.
	Node    string         `json:"node"`
	Members []BackupMember `json:"members"`
	// Hash is the state hash (FSM.StateHash at Index); Records the number
	// of state records; Bytes the file's size. Read from the file, not
	// from its header.
	Hash    [32]byte `json:"-"`
	Records int64    `json:"-"`
	Bytes   int64    `json:"-"`
	// Stream is the version of the snapshot stream inside (its record
	// format: readStreamHeader).
	Stream byte `json:"-"`
	// Restored is, after RestoreBackup, the hash of the state it wrote:
	// Hash, unless the backup is of an earlier record format, which
	// FSM.Restore recodes as it does an old leader's snapshot.
	Restored [32]byte `json:"-"`
}

// BackupMember is one voter of the cluster a backup came from.
type BackupMember struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
}

// Backup is the state of one moment pinned for a backup: a Pebble snapshot
// taken right after a checkpoint, so it holds every entry applied before
// it and its applied index says which. Write it once, then Close it.
type Backup struct {
	info BackupInfo
	snap *pebble.Snapshot
}

// OpenBackup pins the state as applied now. A caller that needs it to
// reflect every acknowledged write runs a read barrier first (cluster's
// ReadBarrier): the snapshot is taken after the barrier returns, at an
// applied index at or past it.
func (s *Store) OpenBackup() (*Backup, error) {
	_, servers, err := s.Servers()
	if err != nil {
		return nil, err
	}
	f := s.fsm
	f.mu.Lock()
	f.checkpointLocked(true)
	snap := s.db.NewSnapshot()
	f.mu.Unlock()
	idx, err := readApplied(snap)
	if err != nil {
		snap.Close()
		return nil, err
	}
	b := &Backup{snap: snap, info: BackupInfo{Index: idx, Created: time.Now().UTC(), Node: s.nodeID, Members: []BackupMember{}}}
	for _, sv := range servers {
		b.info.Members = append(b.info.Members, BackupMember{ID: string(sv.ID), RaftAddr: string(sv.Address)})
	}
	return b, nil
}

// Index is the Raft index the pinned state is at.
func (b *Backup) Index() uint64 { return b.info.Index }

// Close frees the Pebble snapshot.
func (b *Backup) Close() error { return b.snap.Close() }

// WriteTo writes the backup file to w: the state streams from the
// snapshot through a small buffer, never held whole in memory. The state
// hash is a second pass over the same snapshot, so it is exactly the hash
// of the records written.
func (b *Backup) WriteTo(w io.Writer) (int64, error) {
	return writeBackup(w, b.info, func(bw *bufio.Writer) error { return writeState(bw, b.snap) },
		func() ([32]byte, error) { return hashState(b.snap) })
}

// writeBackup writes a backup file of info's header, the snapshot stream
// stream writes and the state hash sum returns once it has.
func writeBackup(w io.Writer, info BackupInfo, stream func(*bufio.Writer) error, sum func() ([32]byte, error)) (int64, error) {
	hw := &hashWriter{w: w, h: sha256.New()}
	head, err := json.Marshal(info)
	if err != nil {
		return 0, err
	}
	var hdr []byte
	hdr = append(append(hdr, backupMagic...), backupVersion)
	hdr = binary.AppendUvarint(hdr, uint64(len(head)))
	if _, err := hw.Write(append(hdr, head...)); err != nil {
		return hw.n, err
	}
	bw := bufio.NewWriterSize(&chunkWriter{w: hw}, 256<<10)
	if err := stream(bw); err != nil {
		return hw.n, err
	}
	if err := bw.Flush(); err != nil {
		return hw.n, err
	}
	h, err := sum()
	if err != nil {
		return hw.n, err
	}
	if _, err := hw.Write(append([]byte{0}, h[:]...)); err != nil { // the chunks' end, the hash
		return hw.n, err
	}
	n, err := w.Write(hw.h.Sum(nil))
	return hw.n + int64(n), err
}

// hashState is FSM.StateHash's hash of the state records in r (the
// applied index is not one of them): keys and values in key order, each
// preceded by its length as a uvarint.
func hashState(r pebble.Reader) ([32]byte, error) {
	h := sha256.New()
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: statePrefix, UpperBound: stateUpper})
	if err != nil {
		return [32]byte{}, err
	}
	for it.First(); it.Valid(); it.Next() {
		hashRecord(h, it.Key(), it.Value())
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out, errors.Join(it.Error(), it.Close())
}

func hashRecord(h hash.Hash, k, v []byte) {
	var n [binary.MaxVarintLen64]byte
	for _, part := range [][]byte{k, v} {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(part)))])
		h.Write(part)
	}
}

// hashWriter passes writes to w and into the checksum h.
type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (s *hashWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	return n, err
}

// chunkWriter frames what is written as chunks of at most backupChunk
// bytes; an empty write writes nothing (a zero length would end the
// stream).
type chunkWriter struct{ w io.Writer }

func (c *chunkWriter) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		part := p[:min(len(p), backupChunk)]
		hdr := binary.AppendUvarint(nil, uint64(len(part)))
		if _, err := c.w.Write(hdr); err != nil {
			return done, err
		}
		if _, err := c.w.Write(part); err != nil {
			return done, err
		}
		done += len(part)
		p = p[len(part):]
	}
	return done, nil
}

// backupReader reads a backup file: the header at open, the state stream
// through state (a reader that ends where the chunks do), and the trailer
// at finish. Every byte it consumes goes into the checksum.
type backupReader struct {
	r     *bufio.Reader
	sum   hash.Hash
	n     int64
	info  BackupInfo
	left  int  // bytes left in the current chunk
	ended bool // the zero-length chunk was read
}

func (b *backupReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.sum.Write(p[:n])
	b.n += int64(n)
	return n, err
}

func (b *backupReader) ReadByte() (byte, error) {
	c, err := b.r.ReadByte()
	if err == nil {
		b.sum.Write([]byte{c})
		b.n++
	}
	return c, err
}

// cut is ErrBackup for a failed read of the file's part what: a
// premature end says so; a malformed length or a failed read is named.
func cut(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: the file ends inside the %s (cut short?)", ErrBackup, what)
	}
	return fmt.Errorf("%w: the %s: %w", ErrBackup, what, err)
}

// openBackup reads a backup file's magic, version and header.
func openBackup(r io.Reader) (*backupReader, error) {
	b := &backupReader{r: bufio.NewReaderSize(r, 256<<10), sum: sha256.New()}
	magic := make([]byte, len(backupMagic)+1)
	if _, err := io.ReadFull(b, magic); err != nil {
		return nil, fmt.Errorf("%w: too short for a zenmuxd backup", ErrBackup)
	}
	if string(magic[:len(backupMagic)]) != backupMagic {
		return nil, fmt.Errorf("%w: not a zenmuxd backup file", ErrBackup)
	}
	if v := magic[len(backupMagic)]; v != backupVersion {
		return nil, fmt.Errorf("%w: format version %d; this build reads version %d", ErrBackup, v, backupVersion)
	}
	n, err := binary.ReadUvarint(b)
	if err != nil {
		return nil, cut(err, "header")
	}
	if n > maxBackupHead {
		return nil, fmt.Errorf("%w: a %d-byte header", ErrBackup, n)
	}
	head := make([]byte, n)
	if _, err := io.ReadFull(b, head); err != nil {
		return nil, cut(err, "header")
	}
	if err := json.Unmarshal(head, &b.info); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBackup, err)
	}
	return b, nil
}

// stateReader reads the state stream's bytes; io.EOF once its chunks end.
type stateReader struct{ b *backupReader }

func (s stateReader) Read(p []byte) (int, error) {
	b := s.b
	if b.ended {
		return 0, io.EOF
	}
	if b.left == 0 {
		n, err := binary.ReadUvarint(b)
		if err != nil {
			return 0, cut(err, "state")
		}
		if n > backupChunk {
			return 0, fmt.Errorf("%w: a %d-byte chunk", ErrBackup, n)
		}
		if n == 0 {
			b.ended = true
			return 0, io.EOF
		}
		b.left = int(n)
	}
	n, err := b.Read(p[:min(len(p), b.left)])
	b.left -= n
	if err != nil && n > 0 {
		err = nil
	}
	return n, cut(err, "state")
}

func (b *backupReader) state() io.Reader { return stateReader{b} }

// finish reads the trailer once the state stream has ended: the state
// hash, then the checksum, which must match every byte before it, then
// the end of the file.
func (b *backupReader) finish() error {
	if !b.ended {
		if _, err := io.Copy(io.Discard, b.state()); err != nil {
			return err
		}
	}
	if _, err := io.ReadFull(b, b.info.Hash[:]); err != nil {
		return cut(err, "trailer")
	}
	want := b.sum.Sum(nil)
	var got [sha256.Size]byte
	if _, err := io.ReadFull(b.r, got[:]); err != nil {
		return cut(err, "trailer")
	}
	b.n += sha256.Size
	if !bytes.Equal(got[:], want) {
		return fmt.Errorf("%w: its checksum does not match its contents (the file was altered or damaged)", ErrBackup)
	}
	if _, err := b.r.ReadByte(); err != io.EOF {
		return fmt.Errorf("%w: data after the checksum", ErrBackup)
	}
	b.info.Bytes = b.n
	return nil
}

// VerifyBackup reads a backup file to its end and checks it whole: magic
// and version, the checksum over every byte, and the state: each frame
// readable as FSM.Restore reads it, the applied index the header names,
// and the records hashing to the state hash the file carries. It returns
// the backup's description with the hash, record count and size.
func VerifyBackup(r io.Reader) (BackupInfo, error) {
	b, err := openBackup(r)
	if err != nil {
		return BackupInfo{}, err
	}
	h := sha256.New()
	fr := bufio.NewReaderSize(b.state(), 64<<10)
	var applied uint64
	seen := false
	if b.info.Stream, err = readStreamHeader(fr); err != nil {
		return BackupInfo{}, backupStateError(err)
	}
	for {
		k, v, err := readFrame(fr)
		if err == io.EOF {
			break
		}
		if err != nil {
			return BackupInfo{}, backupStateError(err)
		}
		if bytes.Equal(k, appliedKey) {
			if len(v) != 8 || seen {
				return BackupInfo{}, fmt.Errorf("%w: a malformed applied index", ErrBackup)
			}
			applied, seen = binary.BigEndian.Uint64(v), true
			continue
		}
		if bytes.HasPrefix(k, statePrefix) { // what StateHash covers
			hashRecord(h, k, v)
			b.info.Records++
		}
	}
	if err := b.finish(); err != nil {
		return BackupInfo{}, err
	}
	if applied != b.info.Index {
		return BackupInfo{}, fmt.Errorf("%w: the state is at index %d, the header says %d", ErrBackup, applied, b.info.Index)
	}
	if got := h.Sum(nil); !bytes.Equal(got, b.info.Hash[:]) {
		return BackupInfo{}, fmt.Errorf("%w: the state hashes to %x, the file says %x", ErrBackup, got, b.info.Hash)
	}
	return b.info, nil
}

// backupStateError is a state stream that cannot be read: ErrBackup, with
// what the frame reader said (a cut file says so first).
func backupStateError(err error) error {
	if errors.Is(err, ErrBackup) {
		return err
	}
	return fmt.Errorf("%w: the state: %v", ErrBackup, err)
}

// RestoreBackup prepares dir, which must be absent or empty, as the data
// dir of the first node of a new cluster holding exactly the backup's
// state (recoded to this build's record format if it is of an earlier
// one, as FSM.Restore does a snapshot stream): the state database at the
// backup's index, and a Raft snapshot at
// that index (term 1) whose configuration names this node alone, at
// raftAddr, the address peers dial. Raft then starts after the backup's
// index, so the new cluster's first entries are applied, none is skipped
// and none applied twice; joiners catch up from that snapshot. The file
// is verified whole first (VerifyBackup); the state is then read again and
// written in a directory inside dir, checked against the hash once more,
// and moved into place, so a failure leaves dir as it was.
func RestoreBackup(path, dir, nodeID, raftAddr string) (BackupInfo, error) {
	if err := emptyDir(dir); err != nil {
		return BackupInfo{}, err
	}
	info, err := verifyFile(path)
	if err != nil {
		return BackupInfo{}, err
	}
	created := false
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		created = true
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return BackupInfo{}, err
	}
	tmp := filepath.Join(dir, ".restore.tmp")
	err = restoreInto(path, tmp, nodeID, raftAddr, &info)
	if err == nil {
		err = moveInto(tmp, dir)
	}
	if err != nil {
		// dir was empty: whatever is in it now, the restore put there.
		if entries, rerr := os.ReadDir(dir); rerr == nil {
			for _, e := range entries {
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
		if created {
			os.Remove(dir)
		}
		return BackupInfo{}, err
	}
	return info, nil
}

// emptyDir refuses a dir that exists and holds anything.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%w: %s holds %s and more; restore only into an absent or empty data_dir", ErrDataDirNotEmpty, dir, entries[0].Name())
	}
	return nil
}

func verifyFile(path string) (BackupInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return BackupInfo{}, err
	}
	defer f.Close()
	return VerifyBackup(f)
}

// restoreInto writes the backup's state and the Raft snapshot under tmp,
// and sets want.Restored.
func restoreInto(path, tmp, nodeID, raftAddr string, want *BackupInfo) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := openBackup(f)
	if err != nil {
		return err
	}
	cache := pebble.NewCache(8 << 20)
	defer cache.Unref()
	opts := pebbleOptions(cache, 8, true)
	opts.DisableWAL = true
	db, err := pebble.Open(filepath.Join(tmp, "pebble"), opts)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	}()
	fsm, err := NewFSM(db)
	if err != nil {
		return err
	}
	if err := fsm.Restore(io.NopCloser(b.state())); err != nil {
		return backupStateError(err)
	}
	if err := b.finish(); err != nil {
		return err
	}
	h, idx, err := fsm.StateHash()
	if err != nil {
		return err
	}
	if b.info.Hash != want.Hash || idx != want.Index || (h != want.Hash && want.Stream == streamVersion) {
		return fmt.Errorf("%w: the file changed while it was restored", ErrBackup)
	}
	want.Restored = h
	snaps, err := newSnapStore(filepath.Join(tmp, "snapshots"), 2)
	if err != nil {
		return err
	}
	snaps.log = zerolog.Nop()
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(nodeID), Address: raft.ServerAddress(raftAddr)}}}
	sink, err := snaps.Create(1, idx, 1, conf, idx, nil)
	if err != nil {
		return err
	}
	if err := sink.(*snapSink).checkpoint(db); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// moveInto moves tmp's entries into dir, then removes tmp.
func moveInto(tmp, dir string) error {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(tmp, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	if err := os.Remove(tmp); err != nil {
		return err
	}
	return syncDir(dir)
}
