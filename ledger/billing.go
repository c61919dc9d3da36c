package ledger

import (
	"sort"
)

// payRefundRequest is the billing-history line of a refund's submit; the
// refund it names gives its status and amount (B5). A refund submitted
// before these lines were recorded shows from its "refund" line, written
// when it succeeded.
const payRefundRequest = "refund_request"

// BillingEntryView is one line of an account's billing history (B5):
// type is subscribe, upgrade, renewal, topup or refund; a payment has
// status succeeded, a refund its own (R3). A refund's amount is negative,
// money back: the final amount (R2), fixed when it succeeds.
type BillingEntryView struct {
	ID        string  `json:"id"`
	Type      string  `json:"type"`
	Plan      *string `json:"plan"`
	AmountUSD Micro   `json:"amount_usd"`
	Status    string  `json:"status"`
	At        string  `json:"at"`
	RefundID  *string `json:"refund_id"`
}

// Billing is an account's billing history in time order (B5): payments,
// upgrades, renewals, top-ups and refunds, one line each.
func (l *Ledger) Billing(accountID string) ([]BillingEntryView, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if _, err := l.account(accountID); err != nil {
		return nil, err
	}
	pays := l.payments[accountID]
	requested := map[string]bool{}
	for _, p := range pays {
		if p.Kind == payRefundRequest {
			requested[p.RefundRef] = true
		}
	}
	type line struct {
		at int64
		v  BillingEntryView
	}
	lines := make([]line, 0, len(pays))
	for _, p := range pays {
		v := BillingEntryView{ID: p.ID, Type: p.Kind, Plan: str(p.Plan), AmountUSD: Micro(p.MicroUSD), Status: RefundSucceeded,
			At: rfc3339(p.At), RefundID: str(p.RefundRef)}
		switch {
		case p.Kind == "refund" && requested[p.RefundRef]:
			continue // shown at its submit
		case p.Kind == payRefundRequest:
			v.Type = "refund"
			if r := l.refunds[p.RefundRef]; r != nil {
				_, _, final := refundFigures(r.PaidMicroUSD, r.UsageMicroUSD, r.RefundedMicroUSD)
				v.AmountUSD, v.Status = Micro(-final), r.Status
			}
		}
		lines = append(lines, line{p.At, v})
	}
	// Renewals are dated at the cycle boundary but recorded when settled,
	// which may follow a later top-up.
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].at < lines[j].at })
	out := make([]BillingEntryView, len(lines))
	for i := range lines {
		out[i] = lines[i].v
	}
	return out, nil
}
