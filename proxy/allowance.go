package proxy

import (
	"hash/maphash"
	"sync"
	"time"

	"zenmux/ledger"
)

// FlowLessor leases an allowance of an account's remaining quota from the
// replicated windows (through Raft) and takes back what is not spent.
type FlowLessor interface {
	LeaseFlows(acct string, microFlows int64) (ledger.FlowLease, error)
	ReturnFlows(acct string, microFlows int64) error
}

// Allowances keep the quota windows (Q4) across a cluster. A node admits a
// subscription request only while it holds unspent allowance for the
// account, leased from the ledger, which never grants more in total than
// the tightest window has left. Each admitted request reserves its
// estimated Flows (input at four bytes a token, output at max_tokens);
// its charge replaces the estimate with the actual Flows. So the cluster
// passes a window's limit by at most one request per node that crossed its
// own allowance, plus any request that cost more than its estimate — the
// published bound B_flows (see proxy/DESIGN.md).
type Allowances struct {
	lessor FlowLessor
	seed   maphash.Seed
	shards [limiterShards]allowanceShard
	stop   chan struct{}
	done   chan struct{}
}

type allowanceShard struct {
	mu sync.Mutex
	m  map[string]*allowance
}

type allowance struct {
	mu      sync.Mutex // held across a lease round trip: one lease at a time per account
	unspent int64      // µFlows granted, less charged and reserved
	expires time.Time
}

const allowanceTTL = 2 * time.Second

// minLease is the smallest allowance asked for: one Flow.
const minLease = 1_000_000

// NewAllowances starts the allowance cache of a cluster node.
func NewAllowances(lessor FlowLessor) *Allowances {
	a := &Allowances{lessor: lessor, seed: maphash.MakeSeed(), stop: make(chan struct{}), done: make(chan struct{})}
	for i := range a.shards {
		a.shards[i].m = map[string]*allowance{}
	}
	go a.returnLoop()
	return a
}

func (a *Allowances) get(acct string) *allowance {
	s := &a.shards[maphash.String(a.seed, acct)%limiterShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	al := s.m[acct]
	if al == nil {
		al = &allowance{}
		s.m[acct] = al
	}
	return al
}

// Reserve admits a request estimated at est µFlows if this node holds
// unspent allowance, leasing more when it has none. When it cannot, lease
// says why (an exhausted window, or all the room held by other nodes).
func (a *Allowances) Reserve(acct string, est int64) (bool, ledger.FlowLease, error) {
	al := a.get(acct)
	al.mu.Lock()
	defer al.mu.Unlock()
	if al.unspent <= 0 {
		res, err := a.lessor.LeaseFlows(acct, max(4*est, minLease))
		if err != nil {
			return false, ledger.FlowLease{}, err
		}
		al.unspent += res.GrantedMicroFlows
		al.expires = time.Now().Add(allowanceTTL)
		if al.unspent <= 0 {
			return false, res, nil
		}
	}
	al.unspent -= est
	return true, ledger.FlowLease{}, nil
}

// Settle replaces a request's estimate with the Flows it was charged.
func (a *Allowances) Settle(acct string, est, charged int64) {
	al := a.get(acct)
	al.mu.Lock()
	al.unspent += est - charged
	al.mu.Unlock()
}

// returnLoop gives back allowance that sat unspent past allowanceTTL, so
// an account's quota is not stranded on a node its traffic left.
func (a *Allowances) returnLoop() {
	defer close(a.done)
	t := time.NewTicker(allowanceTTL / 2)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case now := <-t.C:
			for i := range a.shards {
				s := &a.shards[i]
				s.mu.Lock()
				for acct, al := range s.m {
					if !al.mu.TryLock() {
						continue
					}
					if now.After(al.expires) && al.unspent > 0 {
						n := al.unspent
						al.unspent = 0
						go func(acct string) { _ = a.lessor.ReturnFlows(acct, n) }(acct)
					}
					if al.unspent == 0 && now.After(al.expires) {
						delete(s.m, acct)
					}
					al.mu.Unlock()
				}
				s.mu.Unlock()
			}
		}
	}
}

// Close stops returning allowance.
func (a *Allowances) Close() {
	close(a.stop)
	<-a.done
}
