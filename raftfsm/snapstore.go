package raftfsm

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"zenmux/internal/zlog"
)

// snapStore keeps raft's snapshots, one directory each:
//
//	<id>/meta.json   raft's metadata and the snapshot's kind
//	<id>/state/      a local snapshot: a Pebble checkpoint of the state
//	                 database (hard links to its tables, no copy)
//	<id>/state.bin   the snapshot as frames (writeState's format): one
//	                 received from the leader, or a local one rendered the
//	                 first time a follower needs it
//
// Taking a snapshot therefore costs a memtable flush and a few hard links,
// whatever the state's size (the request log makes it grow with
// request_log_days), instead of a copy of the state every snapshot_entries.
type snapStore struct {
	dir    string
	retain int
	mu     sync.Mutex // one rendering or reaping at a time
	// log is where Pebble logs while a checkpoint is rendered; the zero
	// Logger discards.
	log zerolog.Logger
}

const (
	snapMetaFile   = "meta.json"
	snapStreamFile = "state.bin"
	snapStateDir   = "state"
	snapTmpSuffix  = ".tmp"
)

// snapMeta is meta.json: raft's metadata and whether the snapshot is a
// checkpoint (Size is then unknown until it is rendered).
type snapMeta struct {
	raft.SnapshotMeta
	Checkpoint bool `json:"checkpoint,omitempty"`
}

// The snapshot stream (writeState's frames; what a leader sends and
// state.bin holds) has carried a header since version 2: a frame with an
// empty key whose value is streamMagic then the version byte. The previous
// release wrote the same frames without it: a stream that does not start
// with a zero byte (an empty key; every other frame's key is the applied
// index or a state key) is version 1, so a node of this build restores an
// old leader's snapshot. An old node refuses a stream with a header (its
// empty key is outside the state) and keeps its state (invariant 5).
//
// A release that changes the state records' format (recordFormat) bumps
// streamVersion with it, so an older node refuses the stream at its
// header, not at a record it cannot load.
const (
	streamMagic = "zenmux-snapshot"
	// streamVersion is the version this build writes and the newest it
	// reads; it reads every version from 1. Version 2 carries records of
	// recordFormat 2 or earlier (Restore recodes them).
	streamVersion = 2
)

// errSnapshotStream refuses a stream header this build cannot read.
var errSnapshotStream = errors.New("snapshot stream")

// writeStreamHeader starts a stream: the header frame of streamVersion.
func writeStreamHeader(w *bufio.Writer) error {
	return writeFrame(w, nil, append([]byte(streamMagic), streamVersion))
}

// readStreamHeader reads a stream's header, if it has one, and returns the
// stream's version: 1 when there is none (an empty stream included).
func readStreamHeader(r *bufio.Reader) (byte, error) {
	if b, err := r.Peek(1); err == io.EOF || (err == nil && b[0] != 0) {
		return 1, nil
	} else if err != nil {
		return 0, err
	}
	r.ReadByte() // the empty key's length, peeked above
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, fmt.Errorf("%w: header length: %w", errSnapshotStream, err)
	}
	if n != uint64(len(streamMagic))+1 {
		return 0, fmt.Errorf("%w: a %d-byte header", errSnapshotStream, n)
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return 0, fmt.Errorf("%w: header: %w", errSnapshotStream, err)
	}
	if string(hdr[:len(streamMagic)]) != streamMagic {
		return 0, fmt.Errorf("%w: header %q", errSnapshotStream, hdr)
	}
	if v := hdr[len(streamMagic)]; v < 2 || v > streamVersion {
		return 0, fmt.Errorf("%w: version %d; this build reads 1 to %d", errSnapshotStream, v, streamVersion)
	}
	return hdr[len(streamMagic)], nil
}

func newSnapStore(dir string, retain int) (*snapStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries { // snapshots a crash left half made
		if strings.HasSuffix(e.Name(), snapTmpSuffix) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return nil, err
			}
		}
	}
	return &snapStore{dir: dir, retain: retain}, nil
}

// Create starts a snapshot: the FSM's Persist fills it with a checkpoint,
// raft with the stream a leader sends.
func (s *snapStore) Create(version raft.SnapshotVersion, index, term uint64, conf raft.Configuration,
	confIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("raftfsm: snapshot version %d", version)
	}
	id := fmt.Sprintf("%d-%d-%d", term, index, time.Now().UnixMilli())
	dir := filepath.Join(s.dir, id+snapTmpSuffix)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &snapSink{store: s, dir: dir, meta: snapMeta{SnapshotMeta: raft.SnapshotMeta{Version: version, ID: id, Index: index, Term: term,
		Configuration: conf, ConfigurationIndex: confIndex}}}, nil
}

// List returns the snapshots, newest first.
func (s *snapStore) List() ([]*raft.SnapshotMeta, error) {
	metas, err := s.list()
	if err != nil {
		return nil, err
	}
	out := make([]*raft.SnapshotMeta, len(metas))
	for i := range metas {
		out[i] = &metas[i].SnapshotMeta
	}
	return out, nil
}

func (s *snapStore) list() ([]snapMeta, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var metas []snapMeta
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), snapTmpSuffix) {
			continue
		}
		m, err := s.readMeta(e.Name())
		if err != nil {
			continue // not a snapshot of ours (Close writes meta.json last)
		}
		metas = append(metas, m)
	}
	slices.SortFunc(metas, func(a, b snapMeta) int { // newest first
		return cmp.Or(cmp.Compare(b.Term, a.Term), cmp.Compare(b.Index, a.Index), strings.Compare(b.ID, a.ID))
	})
	return metas, nil
}

func (s *snapStore) readMeta(id string) (snapMeta, error) {
	var m snapMeta
	b, err := os.ReadFile(filepath.Join(s.dir, id, snapMetaFile))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("raftfsm: snapshot %s: %w", id, err)
	}
	return m, nil
}

// Open returns a snapshot as the frame stream Restore reads, rendering a
// checkpoint into one first (once; it is kept beside the checkpoint).
func (s *snapStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	if id == "" || strings.ContainsAny(id, `/\`) || strings.HasPrefix(id, ".") {
		return nil, nil, fmt.Errorf("raftfsm: snapshot id %q", id)
	}
	m, err := s.readMeta(id)
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Join(s.dir, id)
	stream := filepath.Join(dir, snapStreamFile)
	if m.Checkpoint {
		s.mu.Lock()
		err = renderCheckpoint(filepath.Join(dir, snapStateDir), stream, s.log)
		s.mu.Unlock()
		if err != nil {
			return nil, nil, fmt.Errorf("raftfsm: render snapshot %s: %w", id, err)
		}
	}
	f, err := os.Open(stream)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	m.Size = st.Size()
	return &m.SnapshotMeta, f, nil
}

// renderCheckpoint writes a checkpoint's state as frames to stream, unless
// an earlier Open did; Pebble logs through log.
func renderCheckpoint(stateDir, stream string, log zerolog.Logger) error {
	if _, err := os.Stat(stream); err == nil {
		return nil
	}
	db, err := pebble.Open(stateDir, &pebble.Options{ReadOnly: true, Logger: zlog.Pebble(log), EventListener: zlog.PebbleEvents(log)})
	if err != nil {
		return err
	}
	defer db.Close()
	tmp := stream + snapTmpSuffix
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 256<<10)
	err = writeState(w, db)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, stream)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// reap removes all but the newest retain snapshots. Each is renamed to
// <id>.tmp first, so a crash midway leaves a directory the next start
// removes, never a snapshot with part of its files.
func (s *snapStore) reap() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	metas, err := s.list()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range metas[min(s.retain, len(metas)):] {
		doomed := filepath.Join(s.dir, m.ID+snapTmpSuffix)
		if err := os.Rename(filepath.Join(s.dir, m.ID), doomed); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, syncDir(s.dir), os.RemoveAll(doomed))
	}
	return errors.Join(errs...)
}

// snapSink is one snapshot being made: a checkpoint (checkpoint) or a
// stream (Write).
type snapSink struct {
	store  *snapStore
	dir    string // <id>.tmp until Close
	meta   snapMeta
	f      *os.File
	w      *bufio.Writer
	closed bool
}

func (k *snapSink) ID() string { return k.meta.ID }

func (k *snapSink) Write(p []byte) (int, error) {
	if k.meta.Checkpoint {
		return 0, errors.New("raftfsm: snapshot is a checkpoint")
	}
	if k.f == nil {
		f, err := os.Create(filepath.Join(k.dir, snapStreamFile))
		if err != nil {
			return 0, err
		}
		k.f, k.w = f, bufio.NewWriterSize(f, 256<<10)
	}
	n, err := k.w.Write(p)
	k.meta.Size += int64(n)
	return n, err
}

// checkpoint makes this snapshot a Pebble checkpoint of db.
func (k *snapSink) checkpoint(db *pebble.DB) error {
	if k.f != nil {
		return errors.New("raftfsm: snapshot already has a stream")
	}
	k.meta.Checkpoint = true
	return db.Checkpoint(filepath.Join(k.dir, snapStateDir))
}

// Close makes the snapshot durable and visible, then drops old ones. A
// failure to drop an old one does not fail this one (the next Close tries
// again).
func (k *snapSink) Close() error {
	if k.closed {
		return nil
	}
	k.closed = true
	err := k.finish()
	if err != nil {
		os.RemoveAll(k.dir)
		return err
	}
	k.store.reap()
	return nil
}

func (k *snapSink) finish() error {
	if k.f == nil && !k.meta.Checkpoint {
		if _, err := k.Write(nil); err != nil { // an empty stream
			return err
		}
	}
	if k.f != nil {
		err := k.w.Flush()
		if err == nil {
			err = k.f.Sync()
		}
		if cerr := k.f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	b, err := json.Marshal(k.meta)
	if err != nil {
		return err
	}
	if err := writeSynced(filepath.Join(k.dir, snapMetaFile), b); err != nil {
		return err
	}
	final := strings.TrimSuffix(k.dir, snapTmpSuffix)
	if err := os.Rename(k.dir, final); err != nil {
		return err
	}
	return syncDir(k.store.dir)
}

// Cancel drops the snapshot.
func (k *snapSink) Cancel() error {
	if k.closed {
		return nil
	}
	k.closed = true
	if k.f != nil {
		k.f.Close()
	}
	return os.RemoveAll(k.dir)
}

func writeSynced(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
