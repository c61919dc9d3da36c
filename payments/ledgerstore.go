package payments

import (
	"fmt"

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

var (
	_ Ledger       = LedgerStore{}
	_ RefundLedger = LedgerStore{}
)

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
	key := "card-change-" + randomHex(12)
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

// ApplyRefundEvent proposes RefundStatus under the event's key.
func (s LedgerStore) ApplyRefundEvent(eventID, refundID, status string) error {
	_, err := ledger.Propose(s.Store, &ledger.RefundStatus{
		Idem:     ledger.Idem{IdemKey: ledger.EventIdemKey(eventID), Fingerprint: fmt.Sprintf("%s|%s", refundID, status)},
		RefundID: refundID, Status: status,
	})
	return err
}

func intentOf(v ledger.PaymentIntentView) Intent {
	in := Intent{ID: v.ID, AccountID: v.AccountID, Kind: v.Kind, MicroUSD: int64(v.AmountUSD), Status: v.Status}
	if v.Plan != nil {
		in.Plan = *v.Plan
	}
	if v.ProviderRef != nil {
		in.ProviderRef = *v.ProviderRef
	}
	return in
}
