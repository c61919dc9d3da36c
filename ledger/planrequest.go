package ledger

import (
	"sort"
	"time"
)

// Plan requests (B4): a subscriber asks to subscribe, change plan or
// cancel; the operator confirms, which applies it, or rejects it.

// Plan request actions.
const (
	ActionSubscribe = "subscribe"
	ActionChange    = "change"
	ActionCancel    = "cancel"
)

// Plan request statuses.
const (
	PlanRequestPending   = "pending"
	PlanRequestConfirmed = "confirmed"
	PlanRequestRejected  = "rejected"
)

const (
	// MaxPendingPlanRequests bounds an account's pending plan requests.
	MaxPendingPlanRequests = 5
	// planRequestKeep is how long a decided plan request is kept.
	planRequestKeep = 90 * 24 * int64(time.Hour)
)

// PlanRequest is a subscriber's request for a plan change (B4). Plan is
// empty for a cancel.
type PlanRequest struct {
	ID          string `json:"id"`
	AccountID   string `json:"account_id"`
	Action      string `json:"action"`
	Plan        string `json:"plan"`
	Status      string `json:"status"`
	RequestedAt int64  `json:"requested_at"`
	DecidedAt   int64  `json:"decided_at"`
}

// PlanRequestView is a plan request as the API shows it.
type PlanRequestView struct {
	ID          string  `json:"id"`
	AccountID   string  `json:"account_id"`
	Action      string  `json:"action"`
	Plan        *string `json:"plan"`
	Status      string  `json:"status"`
	RequestedAt string  `json:"requested_at"`
	DecidedAt   *string `json:"decided_at"`
}

func planRequestView(r *PlanRequest) PlanRequestView {
	return PlanRequestView{ID: r.ID, AccountID: r.AccountID, Action: r.Action, Plan: str(r.Plan), Status: r.Status,
		RequestedAt: rfc3339(r.RequestedAt), DecidedAt: optTime(r.DecidedAt)}
}

func (c *RequestPlanChange) apply(l *Ledger, now int64) (PlanRequestView, error) {
	if !validID(c.ID) {
		return PlanRequestView{}, invalid("bad plan request id")
	}
	a, err := l.account(c.AccountID)
	if err != nil {
		return PlanRequestView{}, err
	}
	switch c.Action {
	case ActionSubscribe, ActionChange:
		if _, err := l.paidPlan(c.Plan); err != nil {
			return PlanRequestView{}, err
		}
	case ActionCancel:
		if c.Plan != "" {
			return PlanRequestView{}, invalid("a cancel names no plan")
		}
	default:
		return PlanRequestView{}, invalid("action must be subscribe, change or cancel")
	}
	if old := l.planReqs[c.ID]; old != nil {
		if old.AccountID == a.ID && old.Action == c.Action && old.Plan == c.Plan {
			return planRequestView(old), nil // a retried command
		}
		return PlanRequestView{}, conflict("plan request %q exists", c.ID)
	}
	pending := 0
	for _, r := range l.planReqs {
		if r.AccountID == a.ID && r.Status == PlanRequestPending {
			pending++
		}
	}
	if pending >= MaxPendingPlanRequests {
		return PlanRequestView{}, conflict("an account has at most %d pending plan requests", MaxPendingPlanRequests)
	}
	r := &PlanRequest{ID: c.ID, AccountID: a.ID, Action: c.Action, Plan: c.Plan, Status: PlanRequestPending, RequestedAt: now}
	l.planReqs[r.ID] = r
	l.markPlanRequest(r.ID)
	return planRequestView(r), nil
}

// apply confirms or rejects a pending request. A confirm applies the
// action through the command it names, in this step: if that refuses, so
// does the confirm, and the request stays pending (for a reject).
func (c *DecidePlanRequest) apply(l *Ledger, now int64) (PlanRequestView, error) {
	r := l.planReqs[c.ID]
	if r == nil {
		return PlanRequestView{}, notFound("plan request", c.ID)
	}
	if r.Status != PlanRequestPending {
		return PlanRequestView{}, conflict("plan request is %s, not pending", r.Status)
	}
	r2 := *r
	if c.Confirm {
		var err error
		switch r.Action {
		case ActionSubscribe:
			_, err = (&Subscribe{AccountID: r.AccountID, Plan: r.Plan}).apply(l, now)
		case ActionChange:
			_, err = (&ChangePlan{AccountID: r.AccountID, Plan: r.Plan}).apply(l, now)
		default:
			_, err = (&Cancel{AccountID: r.AccountID}).apply(l, now)
		}
		if err != nil {
			return PlanRequestView{}, err
		}
		r2.Status = PlanRequestConfirmed
	} else {
		r2.Status = PlanRequestRejected
	}
	r2.DecidedAt = now
	*r = r2
	l.markPlanRequest(r.ID)
	l.queueExpiry(expiryEntry{at: r.DecidedAt + planRequestKeep, kind: expiryPlanRequest, id: r.ID})
	return planRequestView(r), nil
}

func (l *Ledger) markPlanRequest(id string) { l.dirty["preq/"+id] = struct{}{} }

// PlanRequests lists plan requests, oldest first: an account's, or every
// account's when accountID is "", with a status, or any when status is "".
func (l *Ledger) PlanRequests(accountID, status string) ([]PlanRequestView, error) {
	switch status {
	case "", PlanRequestPending, PlanRequestConfirmed, PlanRequestRejected:
	default:
		return nil, invalid("status must be pending, confirmed or rejected")
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if accountID != "" {
		if _, err := l.account(accountID); err != nil {
			return nil, err
		}
	}
	var rs []*PlanRequest
	for _, r := range l.planReqs {
		if (accountID == "" || r.AccountID == accountID) && (status == "" || r.Status == status) {
			rs = append(rs, r)
		}
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].RequestedAt != rs[j].RequestedAt {
			return rs[i].RequestedAt < rs[j].RequestedAt
		}
		return rs[i].ID < rs[j].ID
	})
	out := make([]PlanRequestView, len(rs))
	for i, r := range rs {
		out[i] = planRequestView(r)
	}
	return out, nil
}
