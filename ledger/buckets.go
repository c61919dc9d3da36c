package ledger

import (
	"sort"
	"time"
)

// Rate buckets shared by the nodes of a cluster (Q8). Each bucket is GCRA
// state — the theoretical arrival time tat — replicated like everything
// else. Nodes lease requests from it through Raft and spend them in
// memory; since every admitted request spent a request the bucket granted,
// the cluster as a whole never admits more than one bucket allows.

// LeaseResult answers LeaseTokens.
type LeaseResult struct {
	Granted       int64 `json:"granted"`
	RetryAfterNs  int64 `json:"retry_after_ns"` // until one more request is available (when none was granted)
	RemainingHint int64 `json:"remaining"`      // requests left in the bucket after the grant
}

func validBucket(rpm, burst int64) error {
	if rpm < 1 || rpm > MaxRateLimit || burst < 1 || burst > MaxRateLimit {
		return invalid("rpm and burst must be 1..1000000")
	}
	return nil
}

func (c *LeaseTokens) apply(l *Ledger, now int64) (LeaseResult, error) {
	if c.Bucket == "" || len(c.Bucket) > 128 || c.Want < 1 || c.Want > MaxRateLimit {
		return LeaseResult{}, invalid("a lease needs a bucket and 1..1000000 requests")
	}
	if err := validBucket(c.RPM, c.Burst); err != nil {
		return LeaseResult{}, err
	}
	g := GCRA{RPM: c.RPM, Burst: c.Burst}.Take(l.buckets[c.Bucket], now, c.Want)
	res := LeaseResult{Granted: g.Granted, RemainingHint: g.Remaining}
	if g.Granted == 0 {
		res.RetryAfterNs = g.Wait
	}
	l.setBucket(c.Bucket, g.TAT, now)
	return res, nil
}

func (c *ReturnTokens) apply(l *Ledger, now int64) (None, error) {
	if c.Bucket == "" || c.N < 1 || c.N > MaxRateLimit || c.RPM < 1 || c.RPM > MaxRateLimit {
		return None{}, invalid("a return needs a bucket, 1..1000000 requests and the bucket's rpm")
	}
	tat, ok := l.buckets[c.Bucket]
	if !ok {
		return None{}, nil
	}
	l.setBucket(c.Bucket, GCRA{RPM: c.RPM}.Give(tat, now, c.N), now)
	return None{}, nil
}

// setBucket stores a bucket's time, dropping it once it is full again
// (tat ≤ now carries no information), so state tracks active buckets.
func (l *Ledger) setBucket(bucket string, tat, now int64) {
	if tat <= now {
		delete(l.buckets, bucket)
	} else {
		l.buckets[bucket] = tat
	}
	l.dirty["bucket/"+bucket] = struct{}{}
}

// FlowLease answers LeaseFlows. When nothing is granted because a window
// is exhausted, Window and ResetsAt name it; when the windows have room
// but other nodes hold it all, both are empty.
type FlowLease struct {
	GrantedMicroFlows int64  `json:"granted_micro_flows"`
	Window            string `json:"window,omitempty"`
	ResetsAt          int64  `json:"resets_at,omitempty"`
}

// remainingFlows is the least any window has left at now (Q4).
func (l *Ledger) remainingFlows(a *Account, now int64) (int64, *QuotaError) {
	p := l.effectivePlan(a, now)
	if qe := l.exhausted(a, p, now); qe != nil {
		return 0, qe
	}
	rem := min(windowRemaining(a.W5h, p.Window5hMicroFlows, now), windowRemaining(a.Weekly, p.WeeklyMicroFlows, now))
	start, _ := a.period(now)
	used := int64(0)
	if a.Monthly.StartedAt == start {
		used = a.Monthly.UsedMicroFlows
	}
	return min(rem, p.MonthlyMicroFlows-used), nil
}

func (c *LeaseFlows) apply(l *Ledger, now int64) (FlowLease, error) {
	a, err := l.account(c.AccountID)
	if err != nil {
		return FlowLease{}, err
	}
	if !validID(c.Node) || c.MicroFlows < 1 || c.MicroFlows > MaxPlanMicroFlows {
		return FlowLease{}, invalid("a flow lease needs a node and 1 µFlow .. 1e9 Flows")
	}
	l.settle(a, now)
	l.dropStaleAllowances(a, now)
	rem, qe := l.remainingFlows(a, now)
	if qe != nil {
		return FlowLease{Window: qe.Window, ResetsAt: qe.ResetsAt}, nil
	}
	for _, held := range a.Allowances {
		rem -= held
	}
	grant := min(c.MicroFlows, max(0, rem))
	if grant > 0 {
		if a.Allowances == nil {
			a.Allowances, a.AllowanceAt = map[string]int64{}, map[string]int64{}
		}
		a.Allowances[c.Node] = satAdd(a.Allowances[c.Node], grant)
		a.AllowanceAt[c.Node] = now
		l.markAccount(a)
	}
	return FlowLease{GrantedMicroFlows: grant}, nil
}

// allowanceStale is how long an allowance survives without a new lease
// from its node: past it, the node is taken to have died or left (its
// requests in flight long ago finished or died with it).
const allowanceStale = 5 * int64(time.Minute)

func (l *Ledger) dropStaleAllowances(a *Account, now int64) {
	for node, at := range a.AllowanceAt {
		if now-at > allowanceStale {
			delete(a.Allowances, node)
			delete(a.AllowanceAt, node)
			l.markAccount(a)
		}
	}
}

func (c *ResetNode) apply(l *Ledger, _ int64) (resetResult, error) {
	ids := make([]string, 0)
	for id, a := range l.accounts {
		if _, ok := a.Allowances[c.Node]; ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		a := l.accounts[id]
		delete(a.Allowances, c.Node)
		delete(a.AllowanceAt, c.Node)
		l.markAccount(a)
	}
	return resetResult{Accounts: len(ids)}, nil
}

func (c *ReturnFlows) apply(l *Ledger, _ int64) (None, error) {
	a, err := l.account(c.AccountID)
	if err != nil {
		return None{}, err
	}
	if c.MicroFlows < 1 {
		return None{}, invalid("a flow return needs a positive amount")
	}
	if left, ok := a.Allowances[c.Node]; ok {
		if left -= c.MicroFlows; left > 0 {
			a.Allowances[c.Node] = left
		} else {
			delete(a.Allowances, c.Node)
			delete(a.AllowanceAt, c.Node)
		}
		l.markAccount(a)
	}
	return None{}, nil
}
