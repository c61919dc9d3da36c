package ledger

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Durable answers point lookups on the durable state as of the last
// checkpoint written; keys are the ledger's own (raftfsm adds its prefix).
// Get returns a copy of the value.
type Durable interface {
	Get(key []byte) ([]byte, bool, error)
}

// SetDurable connects the ledger to its durable state for dedupe lookups.
func (l *Ledger) SetDurable(d Durable) {
	l.mu.Lock()
	l.durable = d
	l.mu.Unlock()
}

// logged reports whether a charge was applied, by the suffix its request-log
// and dedupe records share. Every replica must answer the same, whenever it
// last checkpointed:
//   - a first proposal (not retry) is looked for in its own entry and among
//     the charges of retried batches of the last retriedWindow (of the
//     retry clock, which a proposer's clock jump cannot rush): ids are
//     unique per proxy, so it can only repeat an id its own resend — which
//     can overtake it on the way to the leader — applied first;
//   - a retried batch is looked for among every applied charge: those not
//     checkpointed yet (unflushed) and the durable state (the request-log
//     record, or the dedupe record when the log is kept for less than the
//     dedupe horizon). With LogFormatBlocks only a batch's first logged
//     charge names a record: found, the block lists the batch's others
//     (rememberBlock), and those are found in that list.
//
// A storage error is a broken invariant: guessing would diverge replicas.
func (l *Ledger) logged(suffix string, retry bool) bool {
	if seq, ok := l.unflushed[suffix]; ok && (retry || seq == l.entrySeq) {
		return true
	}
	if at, ok := l.retried[suffix]; ok && l.retryNow()-at < retriedWindow {
		return true
	}
	if l.durable == nil || !retry {
		return false
	}
	if _, ok := l.block.seen[suffix]; ok {
		return true
	}
	prefixes := []string{LogPrefix}
	if l.logDays < l.dedupeDays {
		prefixes = append(prefixes, DedupePrefix)
	}
	for _, prefix := range prefixes {
		key := prefix + suffix
		if l.dropPending(key) {
			// Pruned, but the range delete waits for the next checkpoint:
			// a replica that checkpointed since has no such record.
			continue
		}
		v, ok, err := l.durable.Get([]byte(key))
		if err != nil {
			panic("ledger: durable lookup: " + err.Error())
		}
		if ok {
			l.rememberBlock(prefix == LogPrefix, v)
			return true
		}
	}
	return false
}

// dropPending reports whether key falls in a range delete not taken by a
// checkpoint yet.
func (l *Ledger) dropPending(key string) bool {
	for _, r := range l.rangeDrops {
		if key >= r[0] && key < r[1] {
			return true
		}
	}
	return false
}

// LogPrefix and DedupePrefix hold the request log and the charge dedupe
// records; Load needs neither (they are read through Durable lookups).
const (
	LogPrefix    = "rlog/"
	DedupePrefix = "dd/"
)

// Writer receives the durable form of the state changed since the last
// checkpoint (Changes.Write). raftfsm implements it over a Pebble batch and
// commits that batch together with the applied index.
type Writer interface {
	Set(key, value []byte) error
	Delete(key []byte) error
	DeleteRange(start, end []byte) error
}

// Key layout of the durable state (all relative to raftfsm's prefix):
//
// Records are JSON but for the ones every charge changes: accounts, totals
// (binary, record_codec.go) and request-log entries (binary, LogEntry).
//
//	meta                      rate history, ledger time, clock, options
//	plan/<id>  model/<id>  acct/<id>  key/<id>  refund/<id>  member/<id>
//	day/<acct>/<yyyy-mm-dd>   daily totals
//	bymodel/<acct>/<model>    per-model totals
//	pay/<acct>/<8-digit seq>  billing history, in order
//	bucket/<bucket>           a replicated rate bucket's GCRA time
//	sess/<64 hex>  link/<64 hex>   a session, a sign-in link, by its token's SHA-256
//	preq/<id>                 a plan request
//	pint/<id>                 a card payment intent
//	panom/<8-digit seq>       a payment anomaly, in order
//	idem/<idempotency key>    first result of a money command
//	rlog/<16 hex admitted ns>/<request id>   request log entry (binary, see
//	                                         LogEntry), also the charge's dedupe record;
//	                                         with LogFormatBlocks a block of a batch's
//	                                         entries, keyed by its first (logblock.go)
//	dd/<16 hex admitted ns>/<request id>     charge dedupe record (empty, or a block's
//	                                         charges), only while request_log_days < dedupe_days

type meta struct {
	Now         int64       `json:"now"`
	Seeded      bool        `json:"seeded"`
	DedupeDays  int         `json:"dedupe_days"`
	LogDays     int         `json:"request_log_days"`
	Rates       []RatePoint `json:"rates"`
	ClockOffset int64       `json:"clock_offset"`
	LastPrune   int64       `json:"last_prune"`
	RetryClock  int64       `json:"retry_clock,omitempty"`
	LogFormat   int         `json:"log_format,omitempty"` // 0 in state written before it: LogFormatEntries
}

// logSuffix names a charge's request-log entry and dedupe record: time
// first, so new entries append at the end of their key space (Pebble then
// moves their files down the levels instead of rewriting them) and old
// ones go with one range delete. A retry carries the admission time and id
// unchanged, so "seen?" is a point lookup.
func logSuffix(at int64, reqID string) string {
	return string(appendTimeKey(make([]byte, 0, 17+len(reqID)), at, reqID))
}

// appendTimeKey appends 16 hex digits of at, a slash and the id: keys that
// sort by time.
func appendTimeKey(b []byte, at int64, reqID string) []byte {
	const hexDigits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, hexDigits[(uint64(at)>>shift)&0xf])
	}
	b = append(b, '/')
	return append(b, reqID...)
}

// Flush writes every record changed since the last Flush and clears the
// change set: TakeChanges, then Write.
func (l *Ledger) Flush(w Writer) error { return l.TakeChanges().Write(w) }

// Changes are the records changed since the last checkpoint, taken under
// the ledger's lock and written without it. Taking encodes every changed
// record into one buffer (an account record is about 150 bytes, a totals
// record 30): encoding a record costs less than copying the account it
// comes from, and one buffer is one allocation where copies were several
// per account. Request-log entries, immutable once made, are handed over
// and encoded by Write.
type Changes struct {
	drops     [][2]string
	buf       []byte   // the records' keys and values, back to back
	records   []change // in buf
	logs      []*LogEntry
	dedupeToo bool // request_log_days < dedupe_days: write dd records
}

// change is one record in Changes.buf: its key at [at, at+keyLen), its
// value from there to end; deleted records have no value.
type change struct {
	at, keyLen, end int
	deleted         bool
}

// TakeChanges captures the changes since the last call and clears the
// change set.
func (l *Ledger) TakeChanges() *Changes {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.dirty) + len(l.dirtyAccts) + len(l.dirtyTotals)
	c := &Changes{drops: l.rangeDrops, logs: l.newLogs, dedupeToo: l.logDays < l.dedupeDays,
		buf: make([]byte, 0, max(l.lastChangesBuf, 4096)), records: make([]change, 0, n)}
	l.rangeDrops, l.newLogs = nil, nil
	add := func(at, keyEnd int, deleted bool) {
		c.records = append(c.records, change{at: at, keyLen: keyEnd - at, end: len(c.buf), deleted: deleted})
	}
	for k := range l.dirty {
		at := len(c.buf)
		c.buf = append(c.buf, k...)
		keyEnd := len(c.buf)
		v := l.encodeRecord(k)
		c.buf = append(c.buf, v...)
		add(at, keyEnd, v == nil)
	}
	clear(l.dirty)
	for _, a := range l.dirtyAccts {
		a.dirty = false
		at := len(c.buf)
		c.buf = append(append(c.buf, "acct/"...), a.ID...)
		keyEnd := len(c.buf)
		c.buf = a.appendBinary(c.buf)
		add(at, keyEnd, false)
	}
	clear(l.dirtyAccts)
	l.dirtyAccts = l.dirtyAccts[:0]
	for _, d := range l.dirtyTotals {
		d.t.dirty = false
		at := len(c.buf)
		c.buf = append(append(append(append(c.buf, d.prefix...), d.acct...), '/'), d.sub...)
		keyEnd := len(c.buf)
		c.buf = d.t.appendBinary(c.buf)
		add(at, keyEnd, false)
	}
	clear(l.dirtyTotals)
	l.dirtyTotals = l.dirtyTotals[:0]
	clear(l.unflushed)
	l.lastChangesBuf = len(c.buf)
	return c
}

func (c *Changes) key(r *change) []byte { return c.buf[r.at : r.at+r.keyLen] }
func (c *Changes) val(r *change) []byte { return c.buf[r.at+r.keyLen : r.end] }

// SizeHint estimates the bytes Write writes, to size a batch once.
func (c *Changes) SizeHint() int {
	n := len(c.buf) + 16*len(c.records)
	for _, e := range c.logs {
		n += 2*len(e.suffix) + len(e.AccountID) + len(e.KeyID) + len(e.Model) + 64
	}
	return n
}

// Write writes the changes into w: range deletes first, then records
// and request-log entries (distinct keys), each in key order. Pebble
// inserts a batch into its memtable's skiplist with one cursor, which a
// key just after the previous one reuses instead of searching from the
// top: sorted, a checkpoint's new entries (time first) follow each other
// at the end of the log, and each record lands a few nodes after the
// last, beside its own older versions. In apply order, the nodes'
// interleaved batches made each a full search. Sorting the records,
// since they are encoded when taken: BenchmarkCheckpointWrite 4.08–4.44
// against 3.81–3.98 ms.
func (c *Changes) Write(w Writer) error {
	// A block's entries are adjacent in apply order; a stable sort keeps
	// them adjacent and in order.
	slices.SortStableFunc(c.logs, func(a, b *LogEntry) int { return strings.Compare(a.key(), b.key()) })
	for _, r := range c.drops {
		if err := w.DeleteRange([]byte(r[0]), []byte(r[1])); err != nil {
			return err
		}
	}
	// Set copies key and value: both buffers are reused.
	key := make([]byte, 0, 64)
	val := make([]byte, 0, 1024)
	slices.SortFunc(c.records, func(a, b change) int { return bytes.Compare(c.key(&a), c.key(&b)) })
	for i := range c.records {
		r := &c.records[i]
		var err error
		if r.deleted {
			err = w.Delete(c.key(r))
		} else {
			err = w.Set(c.key(r), c.val(r))
		}
		if err != nil {
			return err
		}
	}
	for i := 0; i < len(c.logs); {
		e := c.logs[i]
		group := c.logs[i : i+1]
		if e.block != "" {
			// A block ends where the next one starts: after a prune
			// dropped a block unwritten, a retry may log its charges
			// again under the same key, in the same checkpoint.
			j := i + 1
			for j < len(c.logs) && c.logs[j].block == e.block && c.logs[j].idx > 0 {
				j++
			}
			group = c.logs[i:j]
		}
		i += len(group)
		if !e.noLog {
			key = append(append(key[:0], LogPrefix...), e.key()...)
			if e.block != "" {
				val = appendLogBlock(val[:0], group)
			} else {
				val = e.appendBinary(val[:0])
			}
			if err := w.Set(key, val); err != nil {
				return err
			}
		}
		if c.dedupeToo && !e.noDedupe {
			key = append(append(key[:0], DedupePrefix...), e.key()...)
			val = val[:0]
			if e.block != "" {
				val = appendDedupeBlock(val, group)
			}
			if err := w.Set(key, val); err != nil {
				return err
			}
		}
	}
	return nil
}

// key is the suffix of the record an entry is stored in: its block's, or
// its own.
func (e *LogEntry) key() string { return cmp.Or(e.block, e.suffix) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("ledger: marshal state: " + err.Error())
	}
	return b
}

// encodeRecord returns the stored value for key, or nil when the record no
// longer exists.
func (l *Ledger) encodeRecord(key string) []byte {
	kind, id, _ := strings.Cut(key, "/")
	switch kind {
	case "meta":
		return mustJSON(meta{Now: l.now, Seeded: l.seeded, DedupeDays: l.dedupeDays, LogDays: l.logDays,
			Rates: l.rates, ClockOffset: l.clockOffset, LastPrune: l.lastPrune, RetryClock: l.retryClock, LogFormat: l.logFormat})
	case "plan":
		if p := l.plans[id]; p != nil {
			return mustJSON(p)
		}
	case "model":
		if m := l.models[id]; m != nil {
			return mustJSON(m)
		}
	case "key":
		if k := l.keys[id]; k != nil {
			return mustJSON(k)
		}
	case "refund":
		if r := l.refunds[id]; r != nil {
			return mustJSON(r)
		}
	case "member":
		if m := l.members[id]; m != nil {
			return mustJSON(m)
		}
	case "idem":
		if r := l.idem[id]; r != nil {
			return mustJSON(r)
		}
	case "rt":
		if at, suffix, ok := parseRetried(id); ok && l.retried[suffix] == at {
			return []byte{}
		}
	case "bucket":
		if tat, ok := l.buckets[id]; ok {
			return mustJSON(tat)
		}
	case "sess":
		if s := l.sessions[hashOf(id)]; s != nil {
			return mustJSON(s)
		}
	case "link":
		if k := l.links[hashOf(id)]; k != nil {
			return mustJSON(k)
		}
	case "preq":
		if r := l.planReqs[id]; r != nil {
			return mustJSON(r)
		}
	case "pint":
		if pi := l.intent(id); pi != nil {
			return mustJSON(pi)
		}
	case "panom":
		if n, err := strconv.Atoi(id); err == nil && n < len(l.paystate.anomalies) {
			return mustJSON(&l.paystate.anomalies[n])
		}
	case "pay":
		acct, seq, _ := strings.Cut(id, "/")
		n, _ := strconv.Atoi(seq)
		if ps := l.payments[acct]; n < len(ps) {
			return mustJSON(ps[n])
		}
	default:
		panic("ledger: unknown dirty key " + key)
	}
	return nil
}

// Load rebuilds a ledger from its durable form. scan must call fn for every
// stored key in ascending key order; it may skip LogPrefix and
// DedupePrefix, which Load ignores (read through durable, never loaded).
func Load(scan func(fn func(key, value []byte) error) error, durable Durable) (*Ledger, error) {
	l := New()
	l.durable = durable
	err := scan(func(k, v []byte) error {
		key := string(k)
		kind, id, _ := strings.Cut(key, "/")
		var err error
		switch kind {
		case "meta":
			var m meta
			if err = json.Unmarshal(v, &m); err == nil {
				l.now, l.seeded, l.dedupeDays, l.logDays = m.Now, m.Seeded, m.DedupeDays, m.LogDays
				l.rates, l.clockOffset, l.lastPrune = m.Rates, m.ClockOffset, m.LastPrune
				// 0 in state written before the retry clock: its rt/
				// records are in ledger time, and a Tick starts it.
				l.retryClock = m.RetryClock
				l.logFormat = m.LogFormat
			}
		case "plan":
			p := new(Plan)
			if err = json.Unmarshal(v, p); err == nil {
				l.plans[p.ID] = p
			}
		case "model":
			m := new(Model)
			if err = json.Unmarshal(v, m); err == nil {
				l.models[m.ID] = m
			}
		case "acct":
			var a *Account
			if a, err = decodeAccount(v); err == nil {
				l.accounts[a.ID] = a
				l.emails[a.Email] = a.ID
				l.queueDue(a)
			}
		case "key":
			kk := new(Key)
			if err = json.Unmarshal(v, kk); err == nil {
				l.keys[kk.ID] = kk
				l.keyHash[kk.Hash] = kk
			}
		case "refund":
			r := new(Refund)
			if err = json.Unmarshal(v, r); err == nil {
				l.refunds[r.ID] = r
			}
		case "member":
			m := new(Member)
			if err = json.Unmarshal(v, m); err == nil {
				l.members[m.ID] = m
			}
		case "idem":
			r := new(idemRecord)
			if err = json.Unmarshal(v, r); err == nil {
				l.idem[id] = r
				l.idemFIFO = append(l.idemFIFO, chargedItem{id: id, at: r.At})
			}
		case "day":
			acct, day, _ := strings.Cut(id, "/")
			err = decodeTotals(v, l.totals(l.days, acct, day))
		case "bucket":
			var tat int64
			if err = json.Unmarshal(v, &tat); err == nil {
				l.buckets[id] = tat
			}
		case "bymodel":
			acct, model, _ := strings.Cut(id, "/")
			err = decodeTotals(v, l.totals(l.byModel, acct, model))
		case "pay":
			acct, _, _ := strings.Cut(id, "/")
			var p Payment
			if err = json.Unmarshal(v, &p); err == nil {
				l.payments[acct] = append(l.payments[acct], p)
			}
		case "rt":
			at, suffix, ok := parseRetried(id)
			if !ok {
				err = errors.New("bad retried-charge record")
			} else {
				l.retried[suffix] = at
			}
		case "sess":
			s := new(Session)
			if err = json.Unmarshal(v, s); err == nil {
				l.indexSession(s)
			}
		case "link":
			k := new(SignInLink)
			if err = json.Unmarshal(v, k); err == nil {
				l.links[k.LinkHash] = k
				l.queueExpiry(expiryEntry{at: k.ExpiresAt, kind: expiryLink, hash: k.LinkHash})
			}
		case "preq":
			r := new(PlanRequest)
			if err = json.Unmarshal(v, r); err == nil {
				l.planReqs[r.ID] = r
				if r.DecidedAt != 0 {
					l.queueExpiry(expiryEntry{at: r.DecidedAt + planRequestKeep, kind: expiryPlanRequest, id: r.ID})
				}
			}
		case "pint":
			pi := new(PaymentIntent)
			if err = json.Unmarshal(v, pi); err == nil {
				l.loadIntent(pi)
			}
		case "panom":
			var an PaymentAnomaly
			if err = json.Unmarshal(v, &an); err == nil {
				l.loadAnomaly(an)
			}
		case "rlog", "dd":
		default:
			err = fmt.Errorf("unknown record kind %q", kind)
		}
		if err != nil {
			return fmt.Errorf("ledger: load %q: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(l.idemFIFO, func(i, j int) bool { return l.idemFIFO[i].at < l.idemFIFO[j].at })
	l.indexRenewals()
	return l, nil
}

// totals returns (creating) an account's totals for one day or model.
func (l *Ledger) totals(m map[string]map[string]*Totals, acct, sub string) *Totals {
	byAcct := m[acct]
	if byAcct == nil {
		byAcct = map[string]*Totals{}
		m[acct] = byAcct
	}
	t := byAcct[sub]
	if t == nil {
		t = new(Totals)
		byAcct[sub] = t
	}
	return t
}
