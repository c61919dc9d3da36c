package proxy

import (
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
	c      *leaseCache[struct{}]
}

// allowanceTTL is how long unspent allowance stays on this node after a
// lease; then it goes back, so an account's quota is not stranded on a
// node its traffic left.
const allowanceTTL = 2 * time.Second

// minLease is the smallest allowance asked for: one Flow.
const minLease = 1_000_000

// NewAllowances starts the allowance cache of a cluster node.
func NewAllowances(lessor FlowLessor, o LeaseOptions) *Allowances {
	a := &Allowances{lessor: lessor}
	a.c = newLeaseCache(o, allowanceTTL, func(acct string, n int64, _ struct{}) { _ = lessor.ReturnFlows(acct, n) })
	return a
}

// Reserve admits a request estimated at est µFlows if this node holds
// unspent allowance, leasing more when it has none. When it cannot, lease
// says why (an exhausted window, or all the room held by other nodes).
func (a *Allowances) Reserve(acct string, est int64) (bool, ledger.FlowLease, error) {
	al := a.c.lock(acct)
	defer al.mu.Unlock()
	if al.amount <= 0 {
		res, err := a.lessor.LeaseFlows(acct, max(4*est, minLease))
		if err != nil {
			return false, ledger.FlowLease{}, err
		}
		a.c.leased(al, res.GrantedMicroFlows)
		if al.amount <= 0 {
			return false, res, nil
		}
	}
	al.amount -= est
	return true, ledger.FlowLease{}, nil
}

// Settle replaces a request's estimate with the Flows it was charged.
func (a *Allowances) Settle(acct string, est, charged int64) {
	al := a.c.lock(acct)
	al.amount += est - charged
	al.mu.Unlock()
}

// Held counts the accounts this node holds quota allowance of, and the
// allowance, unspent, in micro-Flows (read at scrape time).
func (a *Allowances) Held() (accounts int, microFlows int64) { return a.c.held() }

// Close stops returning allowance. What is unspent stays counted for this
// node until it starts again (ResetNode) or goes stale in the ledger.
func (a *Allowances) Close() {
	a.c.close()
}
