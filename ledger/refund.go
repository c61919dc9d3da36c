package ledger

import (
	"fmt"
)

// refundFigures is R2 for a paid, used and already-refunded amount:
// refundable is rounded half-up to the cent first, then the 5% fee.
func refundFigures(paid, usage, already int64) (refundable, fee, final int64) {
	raw := paid - usage - already
	if raw <= 0 {
		return 0, 0, 0
	}
	refundable = roundToCent(raw)
	feeCents := roundDivHalfUp(refundable/centMicroUSD*5, 100)
	fee = feeCents * centMicroUSD
	return refundable, fee, refundable - fee
}

// refundEligibility applies R1 at now; it returns a reason when refused.
func (l *Ledger) refundEligibility(a *Account, now int64) string {
	switch {
	case a.PendingRefund != "":
		return "a refund is already processing"
	case !a.paid():
		return "refunds are only for a paid plan"
	case a.Sub.SubscribedAt == 0 || a.Sub.CycleStart != a.Sub.SubscribedAt || now >= a.Sub.SubscribedAt+refundWindow:
		return "refunds are only possible within 24 hours of subscribing"
	}
	if refundable, _, _ := refundFigures(a.Sub.PaidMicroUSD, a.Sub.UsageMicroUSD, a.Sub.RefundedMicroUSD); refundable <= 0 {
		return "usage has used up the amount paid: nothing to refund"
	}
	return ""
}

// RefundPreview answers POST …/refunds/preview (R2) for an account at now.
func (l *Ledger) RefundPreview(accountID string, now int64) (RefundPreviewView, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	a, err := l.account(accountID)
	if err != nil {
		return RefundPreviewView{}, err
	}
	reason := l.refundEligibility(a, now)
	return refundPreviewView(reason, a.Sub.PaidMicroUSD, a.Sub.UsageMicroUSD, a.Sub.RefundedMicroUSD), nil
}

func (c *RefundSubmit) apply(l *Ledger, now int64) (RefundView, error) {
	a, err := l.account(c.AccountID)
	if err != nil {
		return RefundView{}, err
	}
	if !validID(c.RefundID) || l.refunds[c.RefundID] != nil {
		return RefundView{}, invalid("bad refund id")
	}
	l.settle(a, now)
	if reason := l.refundEligibility(a, now); reason != "" {
		return RefundView{}, wrapNotEligible(reason)
	}
	r := &Refund{
		ID: c.RefundID, AccountID: a.ID, Status: RefundProcessing, Plan: a.Plan,
		CycleStart: a.Sub.CycleStart, SubmittedAt: now,
		PaidMicroUSD: a.Sub.PaidMicroUSD, UsageMicroUSD: a.Sub.UsageMicroUSD, RefundedMicroUSD: a.Sub.RefundedMicroUSD,
		Saved: a.Sub, SavedMonthly: a.Monthly,
	}
	if a.Tier == TierInsider {
		r.SavedMultiplierPPM = a.MultiplierPPM
	}
	// R3: the account drops to Free at once; the refund keeps the plan and
	// cycle so a failed or canceled refund can give them back.
	l.dropToFree(a)
	a.PendingRefund = r.ID
	l.refunds[r.ID] = r
	l.markRefund(r)
	// The billing history shows the refund from its submit on (B5).
	l.pay(a, Payment{Kind: payRefundRequest, Plan: r.Plan, At: now, RefundRef: r.ID})
	l.markAccount(a)
	return refundView(r), nil
}

func (c *RefundStatus) apply(l *Ledger, now int64) (RefundView, error) {
	r := l.refunds[c.RefundID]
	if r == nil {
		return RefundView{}, notFound("refund", c.RefundID)
	}
	switch c.Status {
	case RefundSucceeded, RefundFailed, RefundCanceled:
	default:
		return RefundView{}, invalid("status must be succeeded, failed or canceled")
	}
	if r.Status != RefundProcessing {
		return RefundView{}, conflict("refund is %s, not processing", r.Status)
	}
	a := l.accounts[r.AccountID]
	r.Status, r.ResolvedAt = c.Status, now
	a.PendingRefund = ""
	if c.Status == RefundSucceeded {
		// R3: the final amount is fixed now, with every in-flight request
		// of the cycle counted.
		_, _, final := refundFigures(r.PaidMicroUSD, r.UsageMicroUSD, r.RefundedMicroUSD)
		l.pay(a, Payment{Kind: "refund", Plan: r.Plan, MicroUSD: -final, At: now, RefundRef: r.ID})
	} else if !a.paid() && now < r.Saved.CycleEnd {
		// The plan comes back with every charge of the cycle counted: the
		// usage that landed while the refund was processing (R2), and the
		// Flows charged meanwhile on Free's monthly period (Q3).
		a.Plan = r.Plan
		a.Sub = r.Saved
		a.Sub.UsageMicroUSD = r.UsageMicroUSD
		if month := r.SavedMonthly; a.Monthly.StartedAt != month.StartedAt {
			month.UsedMicroFlows = satAdd(month.UsedMicroFlows, a.Monthly.UsedMicroFlows)
			a.Monthly = month
		}
		// The Insider tier comes back too (M4: the subscription did not
		// break), unless the operator set a tier meanwhile (which cleared
		// SavedMultiplierPPM).
		if r.SavedMultiplierPPM > 0 {
			a.Tier, a.MultiplierPPM = TierInsider, r.SavedMultiplierPPM
		}
	}
	l.markRefund(r)
	l.markAccount(a)
	return refundView(r), nil
}

func wrapNotEligible(reason string) error { return fmt.Errorf("%w: %s", ErrNotEligible, reason) }
