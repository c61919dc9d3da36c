package payments

import (
	"time"

	"zenmux/internal/mint"
	"zenmux/ledger"
)

// Store is what the ledger adapter needs of its node: the replicated
// ledger for reads and a proposer for commands.
type Store interface {
	Ledger() *ledger.Ledger
	ledger.Proposer
	// Now is the node's clock in Unix nanoseconds (test offset included).
	Now() int64
	// ReadBarrier makes the next reads reflect every acknowledged write.
	ReadBarrier() error
}

// LedgerStore is the Ledger (and RefundLedger) over the node's replicated
// ledger: each method is one ledger command or read (docs/rules.md PAY1–PAY6).
type LedgerStore struct{ Store Store }

var _ Ledger = LedgerStore{}

// PlanPayment: a subscribe is paid; a change is paid when the target plan
// costs more than the current one (an upgrade, S3), else it is a
// downgrade at cycle end (S4); a cancel is never paid (S5).
func (s LedgerStore) PlanPayment(accountID, action, plan string) (string, error) {
	switch action {
	case ledger.ActionSubscribe:
		return KindSubscribe, nil
	case ledger.ActionCancel:
		return "", nil
	}
	if err := s.Store.ReadBarrier(); err != nil {
		return "", err
	}
	l := s.Store.Ledger()
	a, err := l.Account(accountID, s.Store.Now())
	if err != nil {
		return "", err
	}
	target, err := l.Plan(plan)
	if err != nil {
		return "", err
	}
	cur, err := l.Plan(a.Plan)
	if err != nil {
		return "", err
	}
	if target.PriceUSD > cur.PriceUSD {
		return KindUpgrade, nil
	}
	return "", nil
}

// ApplyFreeChange proposes ChangePlan (a downgrade, effective at cycle
// end) or Cancel.
func (s LedgerStore) ApplyFreeChange(accountID, action, plan string) (any, error) {
	if action == ledger.ActionCancel {
		return ledger.Propose(s.Store, &ledger.Cancel{AccountID: accountID})
	}
	key := "card-change-" + mint.Hex(12)
	return ledger.Propose(s.Store, &ledger.ChangePlan{Idem: ledger.Idem{IdemKey: key, Fingerprint: key}, AccountID: accountID, Plan: plan})
}

// CreateIntent proposes CreatePaymentIntent.
func (s LedgerStore) CreateIntent(in NewIntent) (Intent, error) {
	v, err := ledger.Propose(s.Store, &ledger.CreatePaymentIntent{ID: in.ID, AccountID: in.AccountID, Kind: in.Kind, Plan: in.Plan, MicroUSD: in.MicroUSD})
	if err != nil {
		return Intent{}, err
	}
	return intentOf(v), nil
}

// SetIntentRef proposes SetPaymentRef.
func (s LedgerStore) SetIntentRef(intentID, ref string) error {
	_, err := ledger.Propose(s.Store, &ledger.SetPaymentRef{ID: intentID, ProviderRef: ref})
	return err
}

// ApplyEvent proposes ApplyPaymentEvent, keyed by the event id: an
// amount or currency that differs is the ledger's anomaly, not an error.
func (s LedgerStore) ApplyEvent(e Event) error {
	_, err := ledger.Propose(s.Store, &ledger.ApplyPaymentEvent{EventID: e.EventID, IntentID: e.IntentID, ProviderRef: e.ProviderRef,
		MicroUSD: e.MicroUSD, Currency: e.Currency, Outcome: e.Outcome, Customer: e.Customer, PaymentMethod: e.PaymentMethod})
	return err
}

// RecordAnomaly proposes RecordPaymentAnomaly.
func (s LedgerStore) RecordAnomaly(a Anomaly) error {
	_, err := ledger.Propose(s.Store, &ledger.RecordPaymentAnomaly{EventID: a.EventID, Reason: a.Reason, Detail: a.Detail})
	return err
}

// ApplyRefundStatus proposes RefundStatus keyed by the refund and the
// status ("stripe:refund-<id>"): every node and every path (a webhook,
// the sweep) that settles it proposes the same command, applied once.
func (s LedgerStore) ApplyRefundStatus(refundID, status string) error {
	_, err := ledger.Propose(s.Store, &ledger.RefundStatus{
		Idem:     ledger.Idem{IdemKey: ledger.EventIdemKey("refund-" + refundID), Fingerprint: status},
		RefundID: refundID, Status: status,
	})
	return err
}

// SetRefundRef proposes SetRefundRef.
func (s LedgerStore) SetRefundRef(refundID, ref string) error {
	_, err := ledger.Propose(s.Store, &ledger.SetRefundRef{RefundID: refundID, ProviderRef: ref})
	return err
}

// RenewalsDue reads the ledger's due renewals at the node's clock.
func (s LedgerStore) RenewalsDue() ([]Intent, error) {
	if err := s.Store.ReadBarrier(); err != nil {
		return nil, err
	}
	views := s.Store.Ledger().RenewalsDue(s.Store.Now())
	out := make([]Intent, len(views))
	for i, v := range views {
		out[i] = intentOf(v)
	}
	return out, nil
}

// Refund reads a refund with its card parts (RefundParts).
func (s LedgerStore) Refund(id string) (Refund, error) {
	l := s.Store.Ledger()
	v, err := l.Refund(id)
	if err != nil {
		return Refund{}, err
	}
	parts, err := l.RefundParts(id)
	if err != nil {
		return Refund{}, err
	}
	r := Refund{ID: v.ID, Status: v.Status, Refs: v.ProviderRefs, Parts: make([]RefundPart, len(parts))}
	for i, p := range parts {
		r.Parts[i] = RefundPart{IntentID: p.IntentID, PaymentRef: p.PaymentRef, MicroUSD: int64(p.AmountUSD)}
	}
	return r, nil
}

// Intents reads every account's intents created since.
func (s LedgerStore) Intents(since int64) ([]Intent, error) {
	if err := s.Store.ReadBarrier(); err != nil {
		return nil, err
	}
	l := s.Store.Ledger()
	var out []Intent
	err := s.eachAccount(func(id string) error {
		views, err := l.PaymentIntents(id)
		for _, v := range views {
			at, perr := time.Parse(time.RFC3339Nano, v.CreatedAt)
			if perr == nil && at.UnixNano() >= since {
				out = append(out, intentOf(v))
			}
		}
		return err
	})
	return out, err
}

// eachAccount calls fn with every account id, in id order.
func (s LedgerStore) eachAccount(fn func(id string) error) error {
	l := s.Store.Ledger()
	for after := ""; ; {
		page, next := l.Accounts(after, 500, s.Store.Now())
		for _, a := range page {
			if v, ok := a.(ledger.AccountView); ok {
				if err := fn(v.ID); err != nil {
					return err
				}
			}
		}
		if next == "" {
			return nil
		}
		after = next
	}
}

// ProcessingRefunds finds the processing refunds through every account's
// billing history: the ledger has no index of them, and the sweep runs on
// the leader alone, every DefaultSweepEvery.
func (s LedgerStore) ProcessingRefunds() ([]Refund, error) {
	if err := s.Store.ReadBarrier(); err != nil {
		return nil, err
	}
	l := s.Store.Ledger()
	var out []Refund
	err := s.eachAccount(func(id string) error {
		lines, err := l.Billing(id)
		if err != nil {
			return err
		}
		for _, b := range lines {
			if b.Type != "refund" || b.Status != ledger.RefundProcessing || b.RefundID == nil {
				continue
			}
			r, err := s.Refund(*b.RefundID)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

func intentOf(v ledger.PaymentIntentView) Intent {
	in := Intent{ID: v.ID, AccountID: v.AccountID, Kind: v.Kind, MicroUSD: int64(v.AmountUSD), Status: v.Status}
	if v.Plan != nil {
		in.Plan = *v.Plan
	}
	if v.ProviderRef != nil {
		in.ProviderRef = *v.ProviderRef
	}
	if v.Customer != nil {
		in.Customer = *v.Customer
	}
	if v.PaymentMethod != nil {
		in.PaymentMethod = *v.PaymentMethod
	}
	in.Attempts = v.Attempts
	return in
}
