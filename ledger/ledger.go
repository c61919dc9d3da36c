// Package ledger is the whole business of zenmuxd: plans, rates, accounts,
// keys, quota windows, charges, subscriptions and refunds. It is pure and
// deterministic: every command carries its time, Apply never reads a clock,
// and two replicas that apply the same commands hold the same bytes. It
// knows nothing of Raft, Pebble or HTTP; see DESIGN.md.
package ledger

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Ledger is the in-memory, materialised view of the replicated state, kept
// in step with its durable form through Flush (see DESIGN.md). All methods
// are safe for concurrent use: Apply takes the write lock, reads the read
// lock.
type Ledger struct {
	mu sync.RWMutex

	now         int64 // ledger time: the largest command time applied so far
	seeded      bool
	dedupeDays  int
	logDays     int
	rates       []RatePoint
	clockOffset int64
	lastPrune   int64
	// due queues the paid accounts' cycle ends (due.go).
	due dueQueue

	plans    map[string]*Plan
	models   map[string]*Model
	accounts map[string]*Account
	emails   map[string]string
	keys     map[string]*Key
	keyHash  map[[32]byte]*Key
	refunds  map[string]*Refund
	members  map[string]*Member
	days     map[string]map[string]*Totals // account → day → totals
	byModel  map[string]map[string]*Totals // account → model → totals
	payments map[string][]Payment          // account → billing history
	idem     map[string]*idemRecord
	buckets  map[string]int64 // rate bucket → GCRA theoretical arrival time
	// Sessions and sign-in links (session.go) by token hash, the sessions
	// also by account (derived); expiries removes them at their time.
	sessions   map[[32]byte]*Session
	sessByAcct map[string]map[[32]byte]*Session
	links      map[[32]byte]*SignInLink
	planReqs   map[string]*PlanRequest
	expiries   expiryQueue
	// paystate holds card payments: intents and anomalies (payments.go).
	paystate paymentState

	// durable answers whether a record exists in the durable state (the
	// request log doubles as the charge dedupe record); unflushed holds the
	// charges applied since the last checkpoint (see logged). Memory stays
	// bounded however many requests the dedupe horizon covers.
	durable   Durable
	unflushed map[string]uint64 // → entrySeq of the entry that applied it
	entrySeq  uint64            // charge batches applied by this ledger (not replicated)
	// retried holds the charges applied from retried batches in the last
	// retriedWindow of retry-clock time (→ when), durable as rt/ records.
	retried map[string]int64
	// retryClock is ledger time that moves at most retryClockStep per
	// command: a proposer whose clock jumps ahead moves ledger time at
	// once, and would otherwise end the retried window early. Zero: not
	// started (state written before it existed), and the window runs on
	// ledger time until a Seed or Tick starts it, at the same index on
	// every replica (retryNow).
	retryClock int64

	idemFIFO []chargedItem

	// The records changed since the last checkpoint: accounts and totals,
	// which charges change, by flag (no key to build per charge); the
	// rest by key.
	dirty       map[string]struct{}
	dirtyAccts  []*Account
	dirtyTotals []dirtyTotals
	// lastChangesBuf is the size of the last checkpoint's records: the
	// next one's buffer starts that large, so a steady load never grows
	// it (TakeChanges).
	lastChangesBuf int
	dayMemo        struct {
		start, end int64
		day        string
	}
	newLogs    []*LogEntry
	logFormat  int      // how charges are logged: LogFormatEntries or LogFormatBlocks (logblock.go)
	block      blockRun // the request-log block of the charge batch being applied
	rangeDrops [][2]string
}

type chargedItem struct {
	id string
	at int64
}

// New returns an empty, unseeded ledger.
func New() *Ledger {
	return &Ledger{
		plans:      map[string]*Plan{},
		models:     map[string]*Model{},
		accounts:   map[string]*Account{},
		emails:     map[string]string{},
		keys:       map[string]*Key{},
		keyHash:    map[[32]byte]*Key{},
		refunds:    map[string]*Refund{},
		members:    map[string]*Member{},
		days:       map[string]map[string]*Totals{},
		byModel:    map[string]map[string]*Totals{},
		payments:   map[string][]Payment{},
		idem:       map[string]*idemRecord{},
		buckets:    map[string]int64{},
		sessions:   map[[32]byte]*Session{},
		sessByAcct: map[string]map[[32]byte]*Session{},
		links:      map[[32]byte]*SignInLink{},
		planReqs:   map[string]*PlanRequest{},
		unflushed:  map[string]uint64{},
		retried:    map[string]int64{},
		dirty:      map[string]struct{}{},
	}
}

// Apply applies one command at the proposer's time ts. Ledger time never
// goes backwards: a command stamped earlier than one already applied runs
// at the later time, so every replica sees the same sequence of times.
func (l *Ledger) Apply(cmd Command, ts int64) Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.applyLocked(cmd, ts)
}

// ApplyBatch applies commands in order under one lock.
func (l *Ledger) ApplyBatch(cmds []Command, ts []int64) []Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Result, len(cmds))
	for i, c := range cmds {
		out[i] = l.applyLocked(c, ts[i])
	}
	return out
}

func (l *Ledger) applyLocked(cmd Command, ts int64) Result {
	if ts > l.now {
		if l.retryClock != 0 {
			l.retryClock += min(ts-l.now, retryClockStep)
		}
		l.now = ts
		l.markMeta()
	}
	now := l.now
	l.prune(now)
	l.sweepExpired(now)
	d := def(cmd)
	if !l.seeded && !d.beforeSeed {
		return Result{Err: conflict("cluster is not seeded yet")}
	}
	mc, isMoney := cmd.(moneyCommand)
	if !isMoney {
		ans, err := d.apply(l, cmd, now)
		return Result{ans: ans, Err: err}
	}
	key, fp := mc.idempotency()
	if key == "" {
		return Result{Err: invalid("a money command needs an idempotency key")}
	}
	if rec := l.idem[key]; rec != nil {
		if rec.Fingerprint != fp {
			return Result{Err: fmt.Errorf("%w: Idempotency-Key %q was used for a different request", ErrIdempotencyConflict, key)}
		}
		if rec.ErrCode != "" {
			err := ErrorFromCode(rec.ErrCode, rec.ErrMsg)
			if err == nil { // a code this binary does not know
				err = fmt.Errorf("%w: %s", ErrConflict, rec.ErrMsg)
			}
			return Result{Err: err}
		}
		// The first answer as it was stored, byte for byte; its caller
		// reads it typed, outside the lock (Answer).
		return Result{ans: raw(rec.Result)}
	}
	ans, err := d.apply(l, cmd, now)
	rec := &idemRecord{Fingerprint: fp, At: now}
	if err != nil {
		// The key keeps a rejection too (docs/api.md, "Idempotency"): a
		// client retrying a refused call gets the same refusal, not another
		// outcome once the state has changed.
		if rec.ErrCode = ErrorCode(err); rec.ErrCode == "" {
			return Result{Err: err}
		}
		rec.ErrMsg = err.Error()
	} else {
		raw, merr := ans.encode()
		if merr != nil {
			panic("ledger: marshal result: " + merr.Error())
		}
		rec.Result = raw
	}
	l.idem[key] = rec
	l.idemFIFO = append(l.idemFIFO, chargedItem{id: key, at: now})
	l.dirty["idem/"+key] = struct{}{}
	return Result{ans: ans, Err: err}
}

// prune forgets idempotency keys older than the dedupe horizon, and once an
// hour of ledger time drops request-log entries older than
// request_log_days and dedupe records older than dedupe_days (C4), with a
// range delete each. It depends only on ledger time, so every replica
// prunes the same things; entries applied but not yet taken by a checkpoint
// are pruned here too, so what a replica stores never depends on when it
// last checkpointed.
func (l *Ledger) prune(now int64) {
	if !l.seeded {
		return
	}
	horizon := now - int64(l.dedupeDays)*24*int64(time.Hour)
	n := 0
	for n < len(l.idemFIFO) && l.idemFIFO[n].at < horizon {
		key := l.idemFIFO[n].id
		delete(l.idem, key)
		l.dirty["idem/"+key] = struct{}{}
		n++
	}
	if n > 0 {
		l.idemFIFO = append(l.idemFIFO[:0:0], l.idemFIFO[n:]...)
	}
	if now-l.lastPrune < int64(time.Hour) {
		return
	}
	l.lastPrune = now
	l.markMeta()
	day := 24 * int64(time.Hour)
	ddCutoff, logCutoff := now-int64(l.dedupeDays)*day, now-int64(l.logDays)*day
	if ddCutoff > 0 {
		l.rangeDrops = append(l.rangeDrops, [2]string{DedupePrefix, DedupePrefix + logSuffix(ddCutoff, "")})
	}
	if logCutoff > 0 {
		l.rangeDrops = append(l.rangeDrops, [2]string{LogPrefix, LogPrefix + logSuffix(logCutoff, "")})
	}
	rtCutoff := l.retryNow() - retriedWindow
	for suffix, at := range l.retried {
		if at < rtCutoff {
			delete(l.retried, suffix)
		}
	}
	l.rangeDrops = append(l.rangeDrops, [2]string{retriedPrefix, retriedPrefix + logSuffix(max(rtCutoff, 0), "")})
	for _, e := range l.newLogs {
		// A record goes by its key's time: a block's entries by the first.
		at := e.AdmittedAt
		if e.block != "" {
			at, _, _ = splitSuffix(e.block)
		}
		e.noLog = e.noLog || at < logCutoff
		e.noDedupe = e.noDedupe || at < ddCutoff
		if e.noLog && (e.noDedupe || l.logDays >= l.dedupeDays) { // no record left
			delete(l.unflushed, e.suffix)
		}
	}
}

// retriedWindow is how long, in retry-clock time, a charge applied from a
// retried batch is remembered for first proposals (logged): far longer than
// a forwarded batch's first send can trail its resend (both are sent within
// one proposal timeout, seconds apart). retryClockStep bounds what one
// command moves the retry clock, so the window lasts at least 10 minutes of
// ledger time and at least 600 commands, whatever a proposer's clock does.
const (
	retriedWindow  = int64(10 * time.Minute)
	retryClockStep = int64(time.Second)
)

const retriedPrefix = "rt/"

// retryNow is the retry clock, or ledger time until it is started.
func (l *Ledger) retryNow() int64 { return cmp.Or(l.retryClock, l.now) }

// startRetryClock starts the retry clock at now if it is not running:
// every replica applies the command that calls it at the same index, so
// all start from the same time, whatever checkpoint each loaded.
func (l *Ledger) startRetryClock(now int64) {
	if l.retryClock == 0 {
		l.retryClock = now
		l.markMeta()
	}
}

// RetryClockStarted reports whether the retry clock runs; the leader
// proposes a Tick to start it in state written before it existed.
func (l *Ledger) RetryClockStarted() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.retryClock != 0 || !l.seeded
}

// markRetried remembers a charge applied from a retried batch, durably as
// rt/<16 hex retry-clock time>/<suffix>.
func (l *Ledger) markRetried(suffix string) {
	at := l.retryNow()
	l.retried[suffix] = at
	l.dirty[retriedPrefix+logSuffix(at, suffix)] = struct{}{}
}

// parseRetried splits an rt/ record's id (after the prefix) into its time
// and charge suffix.
func parseRetried(id string) (int64, string, bool) {
	if len(id) < 18 || id[16] != '/' {
		return 0, "", false
	}
	at, err := strconv.ParseUint(id[:16], 16, 64)
	return int64(at), id[17:], err == nil
}

func (l *Ledger) markMeta() { l.dirty["meta"] = struct{}{} }
func (l *Ledger) markAccount(a *Account) {
	l.queueDue(a)
	if !a.dirty {
		a.dirty = true
		l.dirtyAccts = append(l.dirtyAccts, a)
	}
}

// dirtyTotals is a changed Totals record and its key's parts: prefix,
// account id, a slash, then the day or model.
type dirtyTotals struct {
	prefix, acct, sub string
	t                 *Totals
}

// markTotals marks a day's or a model's totals changed; prefix is "day/"
// or "bymodel/".
func (l *Ledger) markTotals(t *Totals, prefix, acct, sub string) {
	if !t.dirty {
		t.dirty = true
		l.dirtyTotals = append(l.dirtyTotals, dirtyTotals{prefix: prefix, acct: acct, sub: sub, t: t})
	}
}

// dayOf is the UTC day of ledger time now, memoised for the day.
func (l *Ledger) dayOf(now int64) string {
	if now < l.dayMemo.start || now >= l.dayMemo.end {
		const day = 24 * int64(time.Hour)
		start := now - ((now%day)+day)%day
		l.dayMemo.start, l.dayMemo.end, l.dayMemo.day = start, start+day, dayOf(now)
	}
	return l.dayMemo.day
}

func (l *Ledger) markKey(id string)    { l.dirty["key/"+id] = struct{}{} }
func (l *Ledger) markRefund(r *Refund) { l.dirty["refund/"+r.ID] = struct{}{} }
func (l *Ledger) markPlan(id string)   { l.dirty["plan/"+id] = struct{}{} }
func (l *Ledger) markModel(id string)  { l.dirty["model/"+id] = struct{}{} }
func (l *Ledger) markMember(id string) { l.dirty["member/"+id] = struct{}{} }
func validID(s string) bool            { return s != "" && len(s) <= 64 && !strings.ContainsAny(s, "/\x00") }
func (l *Ledger) account(id string) (*Account, error) {
	if a := l.accounts[id]; a != nil {
		return a, nil
	}
	return nil, notFound("account", id)
}
