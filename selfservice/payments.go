package selfservice

import (
	"fmt"

	"zenmux/internal/mint"
	"zenmux/ledger"
)

// recordPayments is the Payments driver that takes no payment: it records
// the plan change as a pending request, which the operator confirms (and
// the ledger then applies) or rejects through the admin API.
type recordPayments struct{ store Store }

func (p recordPayments) RequestPlanChange(accountID, action, plan string) (PlanChange, error) {
	v, err := ledger.Propose(p.store, &ledger.RequestPlanChange{ID: "pr_" + mint.Hex(8), AccountID: accountID, Action: action, Plan: plan})
	if err != nil {
		return PlanChange{}, err
	}
	return PlanChange{Request: &v}, nil
}

func (recordPayments) TopUp(string, int64) (string, error) {
	return "", fmt.Errorf("%w: top-ups need card payments configured; the operator adds to the balance meanwhile", ErrNoCardPayments)
}

func (recordPayments) Driver() string { return "manual" }

func (recordPayments) Message() string {
	return "Your request is recorded. No card is charged here: the operator confirms it, and the change applies then."
}
