package raftfsm

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"zenmux/internal/zlog"
	"zenmux/ledger"
)

// Options configure one node's replicated store.
type Options struct {
	NodeID   string
	Dir      string // data directory; Pebble and snapshots live under it
	RaftAddr string // listen address of the Raft transport
	// RaftAdvertise is the address peers dial (default RaftAddr); a
	// wildcard RaftAddr needs one.
	RaftAdvertise string
	Bootstrap     bool // form a new single-node cluster when there is no state
	// Secret, when set, authenticates every Raft connection (mutual
	// challenge-response; see transport.go). A multi-node cluster needs it.
	Secret []byte
	// Log receives Raft's log (through go-hclog, warnings and errors) and
	// Pebble's, each entry named in a "logger" field; the zero Logger
	// discards them.
	Log zerolog.Logger
	// TLS, when set, wraps every Raft connection in mutual TLS 1.3 before
	// the secret handshake (see transport.go). It is used as both server
	// and client config: Certificates, ClientCAs and RootCAs (the cluster
	// CA) are required. It needs Secret.
	TLS *tls.Config
	// Dial, when set, opens the TCP connections to peers instead of
	// net.DialTimeout: tests put a network they can partition here.
	Dial func(addr string, timeout time.Duration) (net.Conn, error)
	// Timeouts; zero means the defaults below, tuned for loopback and LAN.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	SnapshotEvery    uint64 // entries between snapshots
	MemTableMB       int    // the state database's memtable (default 8)
	// SkipCharges exists for the benchmark floor (bench -commit-fsm null)
	// and nothing else: the FSM leaves charge batches unapplied and
	// answers them nil, so a run measures Raft, the log store and the
	// transport without the ledger's work. No configuration sets it.
	SkipCharges bool
}

// The Raft timeouts a node runs with unless Options set others (tests do):
// hashicorp's defaults, which a small busy machine needs (DESIGN.md).
const (
	DefaultHeartbeatTimeout = time.Second
	DefaultElectionTimeout  = time.Second
)

// ErrNotLeader is returned when a write reaches a node that cannot commit
// it; the caller retries on the leader with the same command id.
var ErrNotLeader = errors.New("not the raft leader")

// Store is a node's replicated ledger: Raft over a Pebble log, with the
// FSM's state in a second Pebble database.
type Store struct {
	db     *pebble.DB // the ledger's state
	logDB  *pebble.DB // raft's log and stable store
	logs   *LogStore
	fsm    *FSM
	raft   *raft.Raft
	trans  *raft.NetworkTransport
	nodeID string
	// barrierTerm is the term in which this node, as leader, last ran a
	// read barrier.
	barrierTerm atomic.Uint64
	// leaderCh is closed, and replaced, when the leader this node knows
	// changes (LeaderChanged); observer feeds it from Raft.
	leaderCh atomic.Pointer[chan struct{}]
	observer *raft.Observer
	observed chan raft.Observation
	// leaders, taken and installed count for Stats: leaders seen taking
	// over, snapshots persisted, snapshots restored from a leader.
	leaders, taken, installed atomic.Uint64
}

// Open opens (or creates) the store and starts Raft.
func Open(o Options) (*Store, error) {
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	cache := pebble.NewCache(8 << 20)
	defer cache.Unref() // each DB holds its own reference
	s := &Store{nodeID: o.NodeID}
	ok := false
	defer func() {
		if !ok {
			s.closeDB()
		}
	}()
	var err error
	lopts := pebbleOptions(cache, 1, false)
	withPebbleLog(lopts, o.Log.With().Str("db", "raftlog").Logger())
	if s.logDB, err = pebble.Open(filepath.Join(o.Dir, "raftlog"), lopts); err != nil {
		return nil, fmt.Errorf("open the raft log in %s (another zenmuxd on this data_dir?): %w", o.Dir, err)
	}
	// The state needs no WAL: the raft log it is replayed from is the
	// write-ahead log (DESIGN.md, "FSM: thin, over the ledger, with
	// checkpoints").
	sopts := pebbleOptions(cache, cmp.Or(o.MemTableMB, 8), true)
	sopts.DisableWAL = true
	withPebbleLog(sopts, o.Log.With().Str("db", "state").Logger())
	if s.db, err = pebble.Open(filepath.Join(o.Dir, "pebble"), sopts); err != nil {
		return nil, fmt.Errorf("open the state in %s (another zenmuxd on this data_dir?): %w", o.Dir, err)
	}
	if err := refuseOldLayout(s.db, o.Dir); err != nil {
		return nil, err
	}
	if s.logs, err = NewLogStore(s.logDB); err != nil {
		return nil, err
	}
	if s.fsm, err = NewFSM(s.db); err != nil {
		return nil, err
	}
	s.fsm.skipCharges = o.SkipCharges
	logger := zlog.Hclog(o.Log, "raft", hclog.Warn)
	snaps, err := newSnapStore(filepath.Join(o.Dir, "snapshots"), 2)
	if err != nil {
		return nil, err
	}
	snaps.log = o.Log.With().Str("db", "snapshot").Logger()
	advertise := cmp.Or(o.RaftAdvertise, o.RaftAddr)
	if o.TLS != nil && len(o.Secret) == 0 {
		return nil, errors.New("raft transport: TLS needs the cluster secret too")
	}
	if len(o.Secret) > 0 {
		stream, serr := newAuthStream(o.RaftAddr, namedAddr(advertise), o.Secret, o.TLS)
		if serr != nil {
			return nil, fmt.Errorf("raft transport: %w", serr)
		}
		stream.dial = o.Dial
		s.trans = raft.NewNetworkTransportWithLogger(stream, 8, 10*time.Second, logger)
	} else {
		// Without a secret there are no peers: the plain transport wants
		// its address resolved. With one, the name is the peers' to
		// resolve, whenever DNS has it.
		addr, rerr := net.ResolveTCPAddr("tcp", advertise)
		if rerr != nil {
			return nil, fmt.Errorf("raft address: %w", rerr)
		}
		if s.trans, err = raft.NewTCPTransportWithLogger(o.RaftAddr, addr, 8, 10*time.Second, logger); err != nil {
			return nil, fmt.Errorf("raft transport: %w", err)
		}
	}
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(o.NodeID)
	cfg.Logger = logger
	cfg.HeartbeatTimeout = orDefault(o.HeartbeatTimeout, DefaultHeartbeatTimeout)
	cfg.ElectionTimeout = orDefault(o.ElectionTimeout, DefaultElectionTimeout)
	cfg.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.BatchApplyCh = true
	cfg.MaxAppendEntries = 256
	// State is loaded from Pebble by NewFSM, not from the snapshot store.
	cfg.NoSnapshotRestoreOnStart = true
	if o.SnapshotEvery > 0 {
		cfg.SnapshotThreshold = o.SnapshotEvery
		cfg.TrailingLogs = o.SnapshotEvery
	}
	// Raft checks the threshold every SnapshotInterval (120 s by default);
	// checking every 5 s keeps the log near snapshot_entries under load.
	cfg.SnapshotInterval = 5 * time.Second
	if err := raft.ValidateConfig(cfg); err != nil {
		return nil, err
	}
	if err := s.catchUpFromSnapshot(snaps); err != nil {
		return nil, err
	}
	if o.Bootstrap {
		has, err := raft.HasExistingState(s.logs, s.logs, snaps)
		if err != nil {
			return nil, err
		}
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{ID: cfg.LocalID, Address: s.trans.LocalAddr()}}}
			if err := raft.BootstrapCluster(cfg, s.logs, s.logs, snaps, s.trans, conf); err != nil {
				return nil, fmt.Errorf("bootstrap: %w", err)
			}
		}
	}
	s.raft, err = raft.NewRaft(cfg, countingFSM{s.fsm, &s.taken, &s.installed}, s.logs, s.logs, snaps, s.trans)
	if err != nil {
		return nil, err
	}
	s.watchLeader()
	ok = true
	return s, nil
}

// refuseOldLayout stops a data dir written when the raft log lived in the
// state database: opened as is, raft would start from an empty log below
// the state's applied index and the FSM would skip new entries up to it.
// So is one whose snapshots are in raft's file store layout
// (snapshots/snapshots/<id>), which this store would not see.
func refuseOldLayout(state *pebble.DB, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "snapshots", "snapshots")); err == nil {
		return errors.New("this data dir keeps its snapshots in an earlier zenmuxd's layout: start this node with an empty data_dir and let it join and catch up from a snapshot")
	}
	it, err := state.NewIter(&pebble.IterOptions{UpperBound: []byte("s")})
	if err != nil {
		return err
	}
	old := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	if old {
		return errors.New("this data dir holds the raft log inside the state database (an earlier zenmuxd's layout): start this node with an empty data_dir and let it join and catch up from a snapshot")
	}
	return nil
}

// catchUpFromSnapshot restores the FSM from the newest snapshot when that
// snapshot is ahead of the state in Pebble. It happens when a node died
// installing a snapshot from the leader: raft had already saved the file,
// and with NoSnapshotRestoreOnStart it would resume after the snapshot's
// index, skipping entries the state never saw.
//
// A local snapshot (a checkpoint of this very database) can be ahead only by
// entries the FSM never sees (raft's no-ops and barriers count in a
// snapshot's index): the state on disk already holds everything it does.
func (s *Store) catchUpFromSnapshot(snaps *snapStore) error {
	list, err := snaps.list()
	if err != nil || len(list) == 0 {
		return err
	}
	newest := list[0]
	if newest.Index <= s.fsm.AppliedIndex() {
		return nil
	}
	if newest.Checkpoint {
		return s.fsm.markApplied(newest.Index)
	}
	_, rc, err := snaps.Open(newest.ID)
	if err != nil {
		return fmt.Errorf("open snapshot %s: %w", newest.ID, err)
	}
	if err := s.fsm.Restore(rc); err != nil {
		return err
	}
	return s.fsm.markApplied(newest.Index)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Ledger returns the current ledger for reads and admission.
func (s *Store) Ledger() *ledger.Ledger { return s.fsm.Ledger() }

// Propose replicates one command stamped with ts and returns its result
// once it is committed and applied. A write whose outcome is unknown
// (leadership lost, timeout) returns an error; the caller retries it with
// the same id, which the ledger applies at most once.
func (s *Store) Propose(cmd ledger.Command, ts int64, timeout time.Duration) (any, error) {
	data, err := ledger.Encode(cmd, ts)
	if err != nil {
		return nil, err
	}
	resp, _, err := s.apply(data, timeout)
	return resp, err
}

// apply replicates data and returns the ledger's result and the entry's
// log index.
func (s *Store) apply(data []byte, timeout time.Duration) (any, uint64, error) {
	f := s.raft.Apply(data, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return nil, 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return nil, 0, err
	}
	return f.Response(), f.Index(), nil
}

// Leader returns the current leader's id ("" when unknown).
func (s *Store) Leader() string {
	_, id := s.raft.LeaderWithID()
	return string(id)
}

// ProposeEncoded replicates a command a follower encoded and forwarded,
// returning the result and the entry's index. It is decoded first: an
// entry that no replica could decode must never reach the log.
func (s *Store) ProposeEncoded(data []byte, timeout time.Duration) (any, uint64, error) {
	if _, _, err := ledger.Decode(data); err != nil {
		return nil, 0, err
	}
	return s.apply(data, timeout)
}

// WaitApplied blocks until the local FSM has applied index (bounded).
func (s *Store) WaitApplied(index uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for s.fsm.AppliedIndex() < index {
		if time.Now().After(deadline) {
			return fmt.Errorf("applied %d, waited for %d", s.fsm.AppliedIndex(), index)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// WaitLeader blocks until the cluster has a leader or the timeout passes.
func (s *Store) WaitLeader(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if addr, _ := s.raft.LeaderWithID(); addr != "" {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("no raft leader within " + timeout.String())
}

// IsLeader reports whether this node is the leader.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// State is this node's raft role: leader, follower, candidate or shutdown.
func (s *Store) State() string {
	switch s.raft.State() {
	case raft.Leader:
		return "leader"
	case raft.Candidate:
		return "candidate"
	case raft.Follower:
		return "follower"
	}
	return "shutdown"
}

// NotReady says why the node cannot serve yet ("" when it can): no known
// leader, or a local FSM behind what the node knows to be committed.
func (s *Store) NotReady() string {
	if addr, _ := s.raft.LeaderWithID(); addr == "" {
		return "no raft leader known (" + s.State() + ")"
	}
	if applied, commit := s.raft.AppliedIndex(), s.raft.CommitIndex(); applied < commit {
		return fmt.Sprintf("applying the raft log: %d of %d", applied, commit)
	}
	return ""
}

// Servers lists the raft configuration with the leader's id.
func (s *Store) Servers() (leaderID string, servers []raft.Server, err error) {
	_, id := s.raft.LeaderWithID()
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return "", nil, err
	}
	return string(id), f.Configuration().Servers, nil
}

// AddVoter adds a node to the cluster (leader only).
func (s *Store) AddVoter(id, addr string, timeout time.Duration) error {
	return s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout).Error()
}

// RemoveServer removes a node from the cluster (leader only).
func (s *Store) RemoveServer(id string, timeout time.Duration) error {
	return s.raft.RemoveServer(raft.ServerID(id), 0, timeout).Error()
}

// RequestLog returns an account's request log, newest first: at most
// limit entries from the cursor (an entry's address, ledger.ParseLogCursor,
// as returned by the previous page; "" starts at the newest), and the cursor of the next page
// ("" at the end). It follows the account's chain (ledger.LogEntry) with
// point lookups; an entry pruned by retention ends it. So does a link whose
// record was pruned and whose key a charge retried past the dedupe horizon
// reused (C4): it names an entry that is not older than the one linking to
// it, which would show newer entries again, or loop. The next page's
// cursor is such a link checked, so paging ends too.
func (s *Store) RequestLog(accountID, cursor string, limit int) ([]ledger.LogEntryView, string, error) {
	// A cursor may come from another node's page: checkpoint here too, so
	// every entry this node applied can be read.
	next := s.fsm.logHead(accountID)
	if cursor != "" {
		next = cursor
	}
	out := []ledger.LogEntryView{}
	var from *logPlace // the entry whose link next is; nil for the page's first
	for next != "" {
		key, idx, err := ledger.ParseLogCursor(next)
		if err != nil {
			return nil, "", err
		}
		v, closer, err := s.db.Get(append(append([]byte(nil), statePrefix...), key...))
		if errors.Is(err, pebble.ErrNotFound) {
			return out, "", nil
		}
		if err != nil {
			return nil, "", err
		}
		e, err := ledger.DecodeLogAt(v, idx)
		closer.Close()
		at := logPlace{key: string(key), idx: idx, at: e.At}
		switch {
		case from != nil && (err != nil || e.AccountID != accountID || !from.linksBackTo(at)):
			return out, "", nil // a stale link: the rest of the chain was pruned
		case err != nil && cursor != "":
			// The caller's cursor names a record but no entry of it: a
			// place past a block's end, or none in a block.
			return nil, "", fmt.Errorf("%w: the cursor is not from this account's log", ledger.ErrInvalid)
		case err != nil:
			return nil, "", err
		case e.AccountID != accountID && cursor != "":
			return nil, "", fmt.Errorf("%w: the cursor is not from this account's log", ledger.ErrInvalid)
		case e.AccountID != accountID:
			return nil, "", fmt.Errorf("raftfsm: request log of %s starts at %s's entry %s", accountID, e.AccountID, next)
		}
		if len(out) == limit {
			return out, next, nil
		}
		out = append(out, e.View())
		from, next = &at, e.Prev
	}
	return out, "", nil
}

// logPlace is where an entry read from the request log is: its record's
// key, its place in a block (-1 for a record of its own) and its
// completion time.
type logPlace struct {
	key string
	idx int
	at  int64
}

// linksBackTo reports whether an entry at p may link to one at q: entries
// are applied in ledger-time order, so an account's previous entry
// completed no later, and within one block it has an earlier place.
func (p logPlace) linksBackTo(q logPlace) bool {
	if q.at != p.at {
		return q.at < p.at
	}
	return q.key != p.key || q.idx < p.idx
}

// Snapshot asks raft for a snapshot now (used by tests and operators).
func (s *Store) Snapshot() error { return s.raft.Snapshot().Error() }

// watchLeader has Raft report every change of leader (to another node or
// to none) to LeaderChanged's channels.
func (s *Store) watchLeader() {
	ch := make(chan struct{})
	s.leaderCh.Store(&ch)
	s.observed = make(chan raft.Observation, 64)
	s.observer = raft.NewObserver(s.observed, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	s.raft.RegisterObserver(s.observer)
	go func() {
		for o := range s.observed {
			if lo, ok := o.Data.(raft.LeaderObservation); ok && lo.LeaderID != "" {
				s.leaders.Add(1)
			}
			next := make(chan struct{})
			close(*s.leaderCh.Swap(&next))
		}
	}()
}

// Stats are Raft's figures for the node's metrics, read at scrape time.
type Stats struct {
	// LeaderChanges counts the leaders this node has seen take over since
	// it started (the first election included; a stretch without a
	// leader between two is not one).
	LeaderChanges uint64
	// CommitIndex is the last entry this node knows committed; ApplyLag
	// is how many of those Raft has not applied yet.
	CommitIndex, ApplyLag uint64
	// SnapshotsTaken counts the snapshots this node persisted (its log
	// compacted); SnapshotsInstalled those it restored from a leader's.
	SnapshotsTaken, SnapshotsInstalled uint64
}

// Stats returns the counts since the store opened, and the indexes now.
func (s *Store) Stats() Stats {
	// Raft's applied index, not the FSM's: the FSM never sees Raft's own
	// entries (a new leader's no-op, barriers), which would stay as lag.
	commit, applied := s.raft.CommitIndex(), s.raft.AppliedIndex()
	return Stats{LeaderChanges: s.leaders.Load(), CommitIndex: commit, ApplyLag: commit - min(applied, commit),
		SnapshotsTaken: s.taken.Load(), SnapshotsInstalled: s.installed.Load()}
}

// countingFSM is the FSM as Raft drives it, counting the snapshots Raft
// persists and installs for Stats (the start's own catch-up restores the
// FSM directly and is not counted).
type countingFSM struct {
	*FSM
	taken, installed *atomic.Uint64
}

// Snapshot counts the snapshot once Raft has persisted it.
func (c countingFSM) Snapshot() (raft.FSMSnapshot, error) {
	snap, err := c.FSM.Snapshot()
	if err != nil {
		return nil, err
	}
	return countedSnapshot{snap, c.taken}, nil
}

// Restore counts a snapshot installed from the leader.
func (c countingFSM) Restore(rc io.ReadCloser) error {
	err := c.FSM.Restore(rc)
	if err == nil {
		c.installed.Add(1)
	}
	return err
}

// countedSnapshot counts a persisted snapshot.
type countedSnapshot struct {
	raft.FSMSnapshot
	taken *atomic.Uint64
}

// Persist writes the snapshot, and counts it when it is written.
func (c countedSnapshot) Persist(sink raft.SnapshotSink) error {
	err := c.FSMSnapshot.Persist(sink)
	if err == nil {
		c.taken.Add(1)
	}
	return err
}

// LeaderChanged returns a channel that is closed when the leader this node
// knows next changes: take it before reading the leader, and a change
// after the read is not missed.
func (s *Store) LeaderChanged() <-chan struct{} { return *s.leaderCh.Load() }

// Close shuts Raft down and closes the database.
// TransferLeadership hands leadership to the most up-to-date follower
// and waits for it to take over; a node that does not lead has nothing to
// hand over.
func (s *Store) TransferLeadership() error {
	if s.raft == nil || s.raft.State() != raft.Leader {
		return nil
	}
	return s.raft.LeadershipTransfer().Error()
}

func (s *Store) Close() error {
	var err error
	if s.raft != nil {
		err = s.raft.Shutdown().Error()
		if s.observer != nil {
			// After it returns Raft sends no more, so the feed can end.
			s.raft.DeregisterObserver(s.observer)
			close(s.observed)
		}
	}
	if s.trans != nil {
		s.trans.Close()
	}
	if s.fsm != nil {
		s.fsm.Checkpoint()
	}
	return errors.Join(err, s.closeDB())
}

func (s *Store) closeDB() error {
	var errs []error
	if s.db != nil {
		// Without a WAL, state in memtables would be replayed from the
		// raft log at the next start; flushing makes the start quick.
		errs = append(errs, s.db.Flush(), s.db.Close())
		s.db = nil
	}
	if s.logDB != nil {
		errs = append(errs, s.logDB.LogData(nil, pebble.Sync), s.logDB.Close())
		s.logDB = nil
	}
	return errors.Join(errs...)
}

// withPebbleLog has a database log through log: Pebble's messages at
// debug level, background errors, slow disks and write stalls as events.
func withPebbleLog(o *pebble.Options, log zerolog.Logger) {
	o.Logger = zlog.Pebble(log)
	o.EventListener = zlog.PebbleEvents(log)
}

// VerifyLeader makes a leader's local reads linearizable: it confirms
// this node still leads (a heartbeat round with a quorum), and once per
// term it runs a Barrier, which returns only when the FSM has applied
// every entry committed before it, including those a previous leader
// acknowledged. Later writes of the same term are applied locally before
// they are acknowledged, so one barrier per term suffices.
func (s *Store) VerifyLeader(timeout time.Duration) error {
	if err := s.raft.VerifyLeader().Error(); err != nil {
		return err
	}
	term := s.raft.CurrentTerm()
	if s.barrierTerm.Load() == term {
		return nil
	}
	if err := s.raft.Barrier(timeout).Error(); err != nil {
		return err
	}
	s.barrierTerm.Store(term)
	return nil
}

// AppliedIndex is the last raft index the FSM applied.
func (s *Store) AppliedIndex() uint64 { return s.fsm.AppliedIndex() }

// StateHash hashes the local replicated state; see FSM.StateHash.
func (s *Store) StateHash() ([32]byte, uint64, error) { return s.fsm.StateHash() }

// pebbleOptions sizes Pebble for a write-heavy ledger on a small machine,
// where compactions compete with the request path for CPU (measured with
// go run ./bench -commit; see DESIGN.md): no compression above L5, where
// data is rewritten most; L0 files compacted by the 8 instead of by the 4;
// memtables of memTableMB (the log's 1 MiB: its entries are small and
// short-lived, and Pebble keeps a flushed memtable for reuse, so each
// database holds up to twice its memtable resident; the state's from
// node.memtable_mb). Bloom filters only where a lookup is usually a miss
// (the state's charge dedupe lookup).
func pebbleOptions(cache *pebble.Cache, memTableMB int, bloomFilters bool) *pebble.Options {
	o := &pebble.Options{
		Logger:                      zlog.Pebble(zerolog.Nop()), // Open gives each database the store's (withPebbleLog)
		MemTableSize:                uint64(memTableMB) << 20,
		Cache:                       cache,
		MemTableStopWritesThreshold: 4,
		L0CompactionThreshold:       8,
		L0StopWritesThreshold:       48,
	}
	o.Levels = make([]pebble.LevelOptions, 7)
	for i := range o.Levels {
		if bloomFilters {
			o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		}
		if i < 5 {
			o.Levels[i].Compression = pebble.NoCompression
		}
		o.Levels[i].EnsureDefaults()
	}
	return o
}

// HasMembership reports whether this node already belongs to a cluster
// configuration (from its log or a snapshot), so a restart does not join
// again.
func (s *Store) HasMembership() bool {
	_, servers, err := s.Servers()
	if err != nil {
		return false
	}
	for _, sv := range servers {
		if string(sv.ID) == s.nodeID {
			return true
		}
	}
	return false
}

// LocalAddr is the address this node's Raft transport listens on.
func (s *Store) LocalAddr() string { return string(s.trans.LocalAddr()) }
