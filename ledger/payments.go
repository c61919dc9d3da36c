package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"
)

// Card payments (docs/rules.md PAY1–PAY6): the ledger decides what a
// payment is for and how much it must be, a driver (package payments)
// takes the money, and the provider's signed events are applied here
// exactly once. Nothing is credited before the provider says the money
// was taken.

// Payment intent kinds.
const (
	IntentSubscribe = "subscribe"
	IntentUpgrade   = "upgrade"
	IntentTopUp     = "topup"
	IntentRenewal   = "renewal"
)

// Payment intent statuses. An intent is settled once: succeeded (applied)
// or anomaly (paid but not applied, for the operator to refund). Failed
// and expired intents may still succeed: a declined card can be retried
// on the same Checkout page.
const (
	IntentPending   = "pending"
	IntentSucceeded = "succeeded"
	IntentFailed    = "failed"
	IntentExpired   = "expired"
	IntentAnomaly   = "anomaly"
)

// Payment event outcomes, as the driver reads them from the provider.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeExpired   = "expired"
)

// What applying a payment event did (PaymentEventView.Result).
const (
	EventApplied   = "applied"   // the intent succeeded and its action was applied
	EventFailed    = "failed"    // a failure or expiry was recorded
	EventAnomaly   = "anomaly"   // recorded for the operator, nothing credited
	EventDuplicate = "duplicate" // this event already settled the intent
	EventIgnored   = "ignored"   // a failure for an intent already settled
)

// Anomaly reasons the ledger records itself; a driver may record others.
const (
	AnomalyAmount        = "amount_mismatch"
	AnomalyCurrency      = "currency_mismatch"
	AnomalyUnknownIntent = "unknown_intent"
	AnomalyAlreadyPaid   = "already_paid"
	AnomalyNotApplicable = "not_applicable"
)

// BilledByStripe is Subscription.Billing for a subscription paid by card.
const BilledByStripe = "stripe"

// PaymentCurrency is the only currency the ledger accepts (M1: USD).
const PaymentCurrency = "usd"

// Bounds of a card top-up (PAY2) and of intents waiting for payment.
const (
	MinCardTopUpMicroUSD = 1_000_000      // $1
	MaxCardTopUpMicroUSD = 10_000_000_000 // $10,000
	// MaxPendingIntents bounds an account's intents created in the last
	// pendingIntentWindow and not settled: a visitor clicking "pay" in a
	// loop cannot grow the state.
	MaxPendingIntents   = 10
	pendingIntentWindow = 24 * int64(time.Hour)
	maxAnomalyText      = 500
)

// PaymentIntent is what the ledger asked a payment provider to take, and
// what became of it (PAY1).
type PaymentIntent struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	Kind      string `json:"kind"`
	Plan      string `json:"plan,omitempty"`
	MicroUSD  int64  `json:"micro_usd"`
	Status    string `json:"status"`
	// ProviderRef is the provider's object for the payment page or
	// charge (SetPaymentRef); PaymentRef the payment the success event
	// named, which a refund is made against.
	ProviderRef   string `json:"provider_ref,omitempty"`
	PaymentRef    string `json:"payment_ref,omitempty"`
	Customer      string `json:"customer,omitempty"`
	PaymentMethod string `json:"payment_method,omitempty"`
	// An upgrade is priced for the plan and cycle it was created in
	// (S3); paid in another, it is not applied.
	FromPlan   string `json:"from_plan,omitempty"`
	CycleStart int64  `json:"cycle_start,omitempty"`
	CreatedAt  int64  `json:"created_at"`
	SettledAt  int64  `json:"settled_at,omitempty"`
	// EventID is the event that settled the intent: its replay, even
	// after its idempotency key is pruned, is a duplicate.
	EventID string `json:"event_id,omitempty"`
	Anomaly string `json:"anomaly,omitempty"`
	// A renewal's failed charges so far, and when the driver charges it
	// next (PAY5).
	Attempts      int   `json:"attempts,omitempty"`
	NextAttemptAt int64 `json:"next_attempt_at,omitempty"`
}

// RenewalRetries is when a card renewal that failed is charged again,
// after the cycle end (PAY5); renewalGrace is how long after the cycle
// end an unpaid renewal keeps the plan: past the last retry, time for its
// outcome to arrive.
var RenewalRetries = [...]time.Duration{24 * time.Hour, 3 * 24 * time.Hour, 5 * 24 * time.Hour}

const renewalGrace = 7 * 24 * int64(time.Hour)

// PaymentAnomaly is a payment event the ledger did not credit, for the
// operator (PAY4).
type PaymentAnomaly struct {
	ID        string `json:"id"`
	EventID   string `json:"event_id"`
	IntentID  string `json:"intent_id,omitempty"`
	AccountID string `json:"account_id,omitempty"`
	Reason    string `json:"reason"`
	Detail    string `json:"detail"`
	MicroUSD  int64  `json:"micro_usd,omitempty"`
	Currency  string `json:"currency,omitempty"`
	At        int64  `json:"at"`
}

// paymentState is the ledger's card-payment state; its maps are made on
// first use.
type paymentState struct {
	intents   map[string]*PaymentIntent
	byAccount map[string][]string // account → intent ids, oldest first (derived)
	anomalies []PaymentAnomaly
	anomalyOf map[string]int // event id + reason → index in anomalies (derived)
	// renewing holds the renewal intents an account waits for (derived
	// from Subscription.RenewalIntent).
	renewing map[string]struct{}
}

func (p *paymentState) init() {
	if p.intents == nil {
		p.intents = map[string]*PaymentIntent{}
		p.byAccount = map[string][]string{}
		p.anomalyOf = map[string]int{}
		p.renewing = map[string]struct{}{}
	}
}

func (l *Ledger) putIntent(pi *PaymentIntent) {
	l.paystate.init()
	if l.paystate.intents[pi.ID] == nil {
		l.paystate.byAccount[pi.AccountID] = append(l.paystate.byAccount[pi.AccountID], pi.ID)
	}
	l.paystate.intents[pi.ID] = pi
	l.dirty["pint/"+pi.ID] = struct{}{}
}

func (l *Ledger) intent(id string) *PaymentIntent { return l.paystate.intents[id] }

func anomalyKey(eventID, reason string) string { return eventID + "\x00" + reason }

func (l *Ledger) putAnomaly(an PaymentAnomaly) PaymentAnomaly {
	l.paystate.init()
	n := len(l.paystate.anomalies)
	an.ID = "pan_" + strconv.Itoa(n)
	l.paystate.anomalies = append(l.paystate.anomalies, an)
	l.paystate.anomalyOf[anomalyKey(an.EventID, an.Reason)] = n
	l.dirty[fmt.Sprintf("panom/%08d", n)] = struct{}{}
	return an
}

// CreatePaymentIntent asks for a card payment (PAY2); the proposer picks
// the id. The ledger computes the amount: the plan's price, the upgrade's
// proration (S3) at this moment, or the top-up asked for (MicroUSD, whole
// cents, $1 to $10,000). It is refused when the action is not allowed now,
// as Subscribe or ChangePlan would refuse it.
type CreatePaymentIntent struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	Kind      string `json:"kind"`
	Plan      string `json:"plan"`
	MicroUSD  int64  `json:"micro_usd"`
}

func (*CreatePaymentIntent) Type() CmdType { return 33 }

var _ = define((*CreatePaymentIntent).apply, traits{})

// SetPaymentRef records the provider's object for an intent (a Checkout
// Session, a PaymentIntent) once the driver made it.
type SetPaymentRef struct {
	ID          string `json:"id"`
	ProviderRef string `json:"provider_ref"`
}

func (*SetPaymentRef) Type() CmdType { return 34 }

var _ = define((*SetPaymentRef).apply, traits{})

// ApplyPaymentEvent applies a provider's payment event (PAY3, PAY4). It is
// a money command keyed "stripe:"+EventID, so an event delivered twice, to
// two nodes or across a leader change applies once and answers its first
// result; an intent succeeds at most once whatever the events.
type ApplyPaymentEvent struct {
	EventID     string `json:"event_id"`
	IntentID    string `json:"intent_id"`
	ProviderRef string `json:"provider_ref"` // the payment (PaymentIntent) id
	MicroUSD    int64  `json:"micro_usd"`
	Currency    string `json:"currency"`
	Outcome     string `json:"outcome"` // succeeded | failed | expired
	// Customer and PaymentMethod, when the event names them, are saved
	// for off-session renewals (PAY5).
	Customer      string `json:"customer,omitempty"`
	PaymentMethod string `json:"payment_method,omitempty"`
}

func (*ApplyPaymentEvent) Type() CmdType { return 35 }

var _ = define((*ApplyPaymentEvent).apply, traits{})

// EventIdemKey is the idempotency key a provider event id is applied
// under: "stripe:"+eventID.
func EventIdemKey(eventID string) string { return "stripe:" + eventID }

// idempotency makes ApplyPaymentEvent a money command with the event's
// key and a fingerprint of its content, so no caller can forget either.
func (c *ApplyPaymentEvent) idempotency() (string, string) {
	if c.EventID == "" {
		return "", ""
	}
	return EventIdemKey(c.EventID), fmt.Sprintf("%s|%s|%d|%s|%s|%s|%s",
		c.IntentID, c.ProviderRef, c.MicroUSD, c.Currency, c.Outcome, c.Customer, c.PaymentMethod)
}

// RecordPaymentAnomaly records a provider event the driver could not
// apply (PAY4); the same event and reason again answers the record made.
type RecordPaymentAnomaly struct {
	EventID string `json:"event_id"`
	Reason  string `json:"reason"`
	Detail  string `json:"detail"`
}

func (*RecordPaymentAnomaly) Type() CmdType { return 36 }

var _ = define((*RecordPaymentAnomaly).apply, traits{})

// PaymentIntentView is a payment intent as the API shows it.
type PaymentIntentView struct {
	ID            string  `json:"id"`
	AccountID     string  `json:"account_id"`
	Kind          string  `json:"kind"`
	Plan          *string `json:"plan"`
	AmountUSD     Micro   `json:"amount_usd"`
	Currency      string  `json:"currency"`
	Status        string  `json:"status"`
	ProviderRef   *string `json:"provider_ref"`
	PaymentRef    *string `json:"payment_ref"`
	Customer      *string `json:"customer"`
	PaymentMethod *string `json:"payment_method"`
	CreatedAt     string  `json:"created_at"`
	SettledAt     *string `json:"settled_at"`
	EventID       *string `json:"event_id"`
	Anomaly       *string `json:"anomaly"`
	Attempts      int     `json:"attempts"`
	NextAttemptAt *string `json:"next_attempt_at"`
}

func intentView(pi *PaymentIntent) PaymentIntentView {
	return PaymentIntentView{ID: pi.ID, AccountID: pi.AccountID, Kind: pi.Kind, Plan: str(pi.Plan),
		AmountUSD: Micro(pi.MicroUSD), Currency: PaymentCurrency, Status: pi.Status,
		ProviderRef: str(pi.ProviderRef), PaymentRef: str(pi.PaymentRef), Customer: str(pi.Customer),
		PaymentMethod: str(pi.PaymentMethod), CreatedAt: rfc3339(pi.CreatedAt), SettledAt: optTime(pi.SettledAt),
		EventID: str(pi.EventID), Anomaly: str(pi.Anomaly), Attempts: pi.Attempts, NextAttemptAt: optTime(pi.NextAttemptAt)}
}

// PaymentAnomalyView is an anomaly as the API shows it.
type PaymentAnomalyView struct {
	ID        string  `json:"id"`
	EventID   string  `json:"event_id"`
	IntentID  *string `json:"intent_id"`
	AccountID *string `json:"account_id"`
	Reason    string  `json:"reason"`
	Detail    string  `json:"detail"`
	AmountUSD Micro   `json:"amount_usd"`
	Currency  *string `json:"currency"`
	At        string  `json:"at"`
}

func anomalyView(an *PaymentAnomaly) PaymentAnomalyView {
	return PaymentAnomalyView{ID: an.ID, EventID: an.EventID, IntentID: str(an.IntentID), AccountID: str(an.AccountID),
		Reason: an.Reason, Detail: an.Detail, AmountUSD: Micro(an.MicroUSD), Currency: str(an.Currency), At: rfc3339(an.At)}
}

// PaymentEventView answers ApplyPaymentEvent: what the event did, the
// intent as it now is (nil for an unknown one) and the anomaly recorded.
type PaymentEventView struct {
	EventID string              `json:"event_id"`
	Result  string              `json:"result"`
	Intent  *PaymentIntentView  `json:"intent"`
	Anomaly *PaymentAnomalyView `json:"anomaly"`
}

func (c *CreatePaymentIntent) apply(l *Ledger, now int64) (PaymentIntentView, error) {
	if !validID(c.ID) {
		return PaymentIntentView{}, invalid("bad payment intent id")
	}
	a, err := l.account(c.AccountID)
	if err != nil {
		return PaymentIntentView{}, err
	}
	if old := l.intent(c.ID); old != nil {
		if old.AccountID == c.AccountID && old.Kind == c.Kind && old.Plan == c.Plan && (c.Kind != IntentTopUp || old.MicroUSD == c.MicroUSD) {
			return intentView(old), nil // a retried command
		}
		return PaymentIntentView{}, conflict("payment intent %q exists", c.ID)
	}
	pending := 0
	for _, id := range l.paystate.byAccount[a.ID] {
		if pi := l.intent(id); pi.Kind != IntentRenewal && pi.SettledAt == 0 && pi.CreatedAt > now-pendingIntentWindow {
			pending++
		}
	}
	if pending >= MaxPendingIntents {
		return PaymentIntentView{}, conflict("an account has at most %d unpaid payments a day", MaxPendingIntents)
	}
	pi := &PaymentIntent{ID: c.ID, AccountID: a.ID, Kind: c.Kind, Status: IntentPending, CreatedAt: now}
	switch c.Kind {
	case IntentSubscribe:
		p, err := l.paidPlan(c.Plan)
		if err != nil {
			return PaymentIntentView{}, err
		}
		if p.PriceMicroUSD == 0 {
			return PaymentIntentView{}, invalid("plan %q is free: nothing to pay", p.ID)
		}
		l.settle(a, now)
		if err := subscribable(a); err != nil {
			return PaymentIntentView{}, err
		}
		pi.Plan, pi.MicroUSD = p.ID, p.PriceMicroUSD
	case IntentUpgrade:
		target, err := l.paidPlan(c.Plan)
		if err != nil {
			return PaymentIntentView{}, err
		}
		l.settle(a, now)
		if !a.paid() {
			return PaymentIntentView{}, conflict("account is on Free; subscribe to start a paid plan")
		}
		if a.Sub.RenewalIntent != "" {
			return PaymentIntentView{}, conflict("the renewal of this cycle is not paid yet (PAY5)")
		}
		cur := l.plans[a.Plan]
		if target.ID == a.Plan || target.PriceMicroUSD <= cur.PriceMicroUSD {
			return PaymentIntentView{}, conflict("%q is not an upgrade from %q: change plan without a payment (S4)", target.ID, a.Plan)
		}
		delta := upgradeCharge(cur.PriceMicroUSD, target.PriceMicroUSD, a.Sub.CycleStart, a.Sub.CycleEnd, now)
		if delta == 0 {
			return PaymentIntentView{}, conflict("the upgrade costs nothing this cycle: change plan without a payment")
		}
		pi.Plan, pi.MicroUSD, pi.FromPlan, pi.CycleStart = target.ID, delta, a.Plan, a.Sub.CycleStart
	case IntentTopUp:
		if c.Plan != "" {
			return PaymentIntentView{}, invalid("a top-up names no plan")
		}
		if c.MicroUSD < MinCardTopUpMicroUSD || c.MicroUSD > MaxCardTopUpMicroUSD || c.MicroUSD%centMicroUSD != 0 {
			return PaymentIntentView{}, invalid("a card top-up is whole cents from 1 to 10000 USD")
		}
		if nb, ok := checkedAdd(a.BalanceMicroUSD, c.MicroUSD); !ok || nb > MaxBalanceMicroUSD {
			return PaymentIntentView{}, invalid("balance would exceed its maximum")
		}
		pi.MicroUSD = c.MicroUSD
	case IntentRenewal:
		return PaymentIntentView{}, invalid("renewals are asked for by the ledger at cycle end (PAY5)")
	default:
		return PaymentIntentView{}, invalid("kind must be subscribe, upgrade or topup")
	}
	l.putIntent(pi)
	return intentView(pi), nil
}

func (c *SetPaymentRef) apply(l *Ledger, now int64) (PaymentIntentView, error) {
	pi := l.intent(c.ID)
	if pi == nil {
		return PaymentIntentView{}, notFound("payment intent", c.ID)
	}
	if !validID(c.ProviderRef) {
		return PaymentIntentView{}, invalid("bad provider reference")
	}
	if pi.ProviderRef == c.ProviderRef {
		return intentView(pi), nil
	}
	if pi.SettledAt != 0 {
		return PaymentIntentView{}, conflict("payment intent %q is %s", pi.ID, pi.Status)
	}
	cp := *pi
	cp.ProviderRef = c.ProviderRef
	l.putIntent(&cp)
	return intentView(&cp), nil
}

func (c *ApplyPaymentEvent) apply(l *Ledger, now int64) (PaymentEventView, error) {
	if !validID(c.EventID) || !validID(c.IntentID) || len(c.ProviderRef) > 255 || len(c.Currency) > 16 ||
		len(c.Customer) > 255 || len(c.PaymentMethod) > 255 {
		return PaymentEventView{}, invalid("bad payment event")
	}
	switch c.Outcome {
	case OutcomeSucceeded, OutcomeFailed, OutcomeExpired:
	default:
		return PaymentEventView{}, invalid("outcome must be succeeded, failed or expired")
	}
	if c.MicroUSD < 0 {
		return PaymentEventView{}, invalid("amount must not be negative")
	}
	out := PaymentEventView{EventID: c.EventID}
	anomaly := func(pi *PaymentIntent, reason, format string, args ...any) (PaymentEventView, error) {
		an := PaymentAnomaly{EventID: c.EventID, IntentID: c.IntentID, Reason: reason, Detail: fmt.Sprintf(format, args...),
			MicroUSD: c.MicroUSD, Currency: c.Currency, At: now}
		if pi != nil {
			an.AccountID = pi.AccountID
		}
		an = l.putAnomaly(an)
		v := anomalyView(&an)
		out.Result, out.Anomaly = EventAnomaly, &v
		if pi != nil {
			iv := intentView(pi)
			out.Intent = &iv
		}
		return out, nil
	}
	pi := l.intent(c.IntentID)
	if pi == nil {
		return anomaly(nil, AnomalyUnknownIntent, "no payment intent %q", c.IntentID)
	}
	if pi.EventID == c.EventID {
		// Applied before, its idempotency key since pruned (C4).
		iv := intentView(pi)
		out.Result, out.Intent = EventDuplicate, &iv
		return out, nil
	}
	if pi.Status == IntentSucceeded || pi.Status == IntentAnomaly {
		if c.Outcome != OutcomeSucceeded {
			iv := intentView(pi)
			out.Result, out.Intent = EventIgnored, &iv
			return out, nil
		}
		return anomaly(pi, AnomalyAlreadyPaid, "payment intent %q is %s already; this payment of %s %s is not credited",
			pi.ID, pi.Status, Decimal(c.MicroUSD, 6), c.Currency)
	}
	if c.Outcome != OutcomeSucceeded && pi.Kind == IntentRenewal {
		return l.renewalFailed(pi, c, now), nil
	}
	if c.Outcome != OutcomeSucceeded {
		cp := *pi
		cp.Status = IntentFailed
		if c.Outcome == OutcomeExpired {
			cp.Status = IntentExpired
		}
		if c.ProviderRef != "" {
			cp.PaymentRef = c.ProviderRef
		}
		l.putIntent(&cp)
		iv := intentView(&cp)
		out.Result, out.Intent = EventFailed, &iv
		return out, nil
	}
	if c.Currency != PaymentCurrency {
		return anomaly(pi, AnomalyCurrency, "paid in %q, asked for %q", c.Currency, PaymentCurrency)
	}
	if c.MicroUSD != pi.MicroUSD {
		return anomaly(pi, AnomalyAmount, "paid %s USD, asked for %s USD", Decimal(c.MicroUSD, 6), Decimal(pi.MicroUSD, 6))
	}
	cp := *pi
	cp.SettledAt, cp.EventID, cp.PaymentRef = now, c.EventID, c.ProviderRef
	cp.Customer = cmpOr(c.Customer, cp.Customer)
	cp.PaymentMethod = cmpOr(c.PaymentMethod, cp.PaymentMethod)
	if err := l.applyIntent(&cp, now); err != nil {
		// Paid, but the action is no longer allowed: the intent is
		// settled as an anomaly, for the operator to refund (PAY4).
		cp.Status, cp.Anomaly = IntentAnomaly, AnomalyNotApplicable
		l.putIntent(&cp)
		return anomaly(&cp, AnomalyNotApplicable, "paid but not applied: %v", err)
	}
	cp.Status = IntentSucceeded
	l.putIntent(&cp)
	iv := intentView(&cp)
	out.Result, out.Intent = EventApplied, &iv
	return out, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// applyIntent applies a paid intent's action through the rule code the
// manual commands use (S2, S3, E3), with the amount the intent asked for;
// it changes nothing when it refuses.
func (l *Ledger) applyIntent(pi *PaymentIntent, now int64) error {
	a, err := l.account(pi.AccountID)
	if err != nil {
		return err
	}
	switch pi.Kind {
	case IntentSubscribe:
		p, err := l.paidPlan(pi.Plan)
		if err != nil {
			return err
		}
		l.settle(a, now)
		if err := subscribable(a); err != nil {
			return err
		}
		l.startSubscription(a, p, pi.MicroUSD, now)
		a.Sub.Billing, a.Sub.Customer, a.Sub.PaymentMethod = BilledByStripe, pi.Customer, pi.PaymentMethod
		return nil
	case IntentUpgrade:
		target, err := l.paidPlan(pi.Plan)
		if err != nil {
			return err
		}
		l.settle(a, now)
		if !a.paid() || a.Plan != pi.FromPlan || a.Sub.CycleStart != pi.CycleStart {
			return conflict("the upgrade was priced for %q in the cycle from %s; the account is on %q now", pi.FromPlan, rfc3339(pi.CycleStart), a.Plan)
		}
		l.upgrade(a, target, pi.MicroUSD, now)
		if pi.Customer != "" {
			a.Sub.Customer, a.Sub.PaymentMethod = pi.Customer, pi.PaymentMethod
		}
		return nil
	case IntentTopUp:
		return l.credit(a, pi.MicroUSD, now)
	case IntentRenewal:
		l.settle(a, now)
		s := &a.Sub
		if !a.paid() || s.RenewalIntent != pi.ID {
			return conflict("the renewal %q is no longer due: the account is on %q", pi.ID, a.Plan)
		}
		// Renewed as S5 renews, dated at the cycle boundary.
		s.PaidMicroUSD = pi.MicroUSD
		s.RenewalIntent, s.RenewalDeadline = "", 0
		if pi.Customer != "" {
			s.Customer, s.PaymentMethod = pi.Customer, pi.PaymentMethod
		}
		l.pay(a, Payment{Kind: "renewal", Plan: pi.Plan, MicroUSD: pi.MicroUSD, At: s.CycleStart})
		l.markAccount(a)
		delete(l.paystate.renewing, pi.ID)
		return nil
	}
	return invalid("payment intent kind %q", pi.Kind)
}

func (c *RecordPaymentAnomaly) apply(l *Ledger, now int64) (PaymentAnomalyView, error) {
	if !validID(c.EventID) || c.Reason == "" || len(c.Reason) > 64 || len(c.Detail) > maxAnomalyText {
		return PaymentAnomalyView{}, invalid("an anomaly needs an event id, a reason (at most 64 bytes) and a detail of at most %d bytes", maxAnomalyText)
	}
	if i, ok := l.paystate.anomalyOf[anomalyKey(c.EventID, c.Reason)]; ok {
		return anomalyView(&l.paystate.anomalies[i]), nil
	}
	an := l.putAnomaly(PaymentAnomaly{EventID: c.EventID, Reason: c.Reason, Detail: c.Detail, At: now})
	return anomalyView(&an), nil
}

// PaymentIntent answers one payment intent.
func (l *Ledger) PaymentIntent(id string) (PaymentIntentView, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	pi := l.intent(id)
	if pi == nil {
		return PaymentIntentView{}, notFound("payment intent", id)
	}
	return intentView(pi), nil
}

// PaymentIntents lists an account's payment intents, oldest first.
func (l *Ledger) PaymentIntents(accountID string) ([]PaymentIntentView, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if _, err := l.account(accountID); err != nil {
		return nil, err
	}
	ids := l.paystate.byAccount[accountID]
	pis := make([]*PaymentIntent, len(ids))
	for i, id := range ids {
		pis[i] = l.intent(id)
	}
	// By creation, then id: a replica that loaded its intents from their
	// records holds them in id order.
	sort.Slice(pis, func(i, j int) bool {
		if pis[i].CreatedAt != pis[j].CreatedAt {
			return pis[i].CreatedAt < pis[j].CreatedAt
		}
		return pis[i].ID < pis[j].ID
	})
	out := make([]PaymentIntentView, len(pis))
	for i, pi := range pis {
		out[i] = intentView(pi)
	}
	return out, nil
}

// PaymentAnomalies lists every payment anomaly, oldest first.
func (l *Ledger) PaymentAnomalies() []PaymentAnomalyView {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]PaymentAnomalyView, len(l.paystate.anomalies))
	for i := range l.paystate.anomalies {
		out[i] = anomalyView(&l.paystate.anomalies[i])
	}
	return out
}

// loadIntent and loadAnomaly rebuild the payment state from its records
// (Load); anomalies come in key order, which is theirs.
func (l *Ledger) loadIntent(pi *PaymentIntent) {
	l.paystate.init()
	l.paystate.intents[pi.ID] = pi
	l.paystate.byAccount[pi.AccountID] = append(l.paystate.byAccount[pi.AccountID], pi.ID)
}

func (l *Ledger) loadAnomaly(an PaymentAnomaly) {
	l.paystate.init()
	l.paystate.anomalyOf[anomalyKey(an.EventID, an.Reason)] = len(l.paystate.anomalies)
	l.paystate.anomalies = append(l.paystate.anomalies, an)
}

// maxRefundRefs bounds the provider refunds of one refund: one per card
// payment of the cycle, a subscribe and its upgrades.
const maxRefundRefs = 20

// SetRefundRef records a card provider's refund made for a refund (PAY6);
// recording the same one again changes nothing.
type SetRefundRef struct {
	RefundID    string `json:"refund_id"`
	ProviderRef string `json:"provider_ref"`
}

func (*SetRefundRef) Type() CmdType { return 37 }

var _ = define((*SetRefundRef).apply, traits{})

func (c *SetRefundRef) apply(l *Ledger, now int64) (RefundView, error) {
	r := l.refunds[c.RefundID]
	if r == nil {
		return RefundView{}, notFound("refund", c.RefundID)
	}
	if !validID(c.ProviderRef) {
		return RefundView{}, invalid("bad provider reference")
	}
	if slices.Contains(r.ProviderRefs, c.ProviderRef) {
		return refundView(r), nil
	}
	if len(r.ProviderRefs) >= maxRefundRefs {
		return RefundView{}, conflict("a refund has at most %d provider refunds", maxRefundRefs)
	}
	r.ProviderRefs = append(slices.Clip(r.ProviderRefs), c.ProviderRef)
	l.markRefund(r)
	return refundView(r), nil
}

// RefundPartView is the money a refund returns to one card payment.
type RefundPartView struct {
	IntentID   string `json:"intent_id"`
	PaymentRef string `json:"payment_ref"`
	AmountUSD  Micro  `json:"amount_usd"`
}

// RefundParts splits a refund's final amount (R2, as it stands now) over
// the card payments of its cycle — the subscribe, then each upgrade, each
// up to what it paid — for the driver to return to each (PAY6). It is
// empty when the cycle was not paid by card.
func (l *Ledger) RefundParts(refundID string) ([]RefundPartView, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	r := l.refunds[refundID]
	if r == nil {
		return nil, notFound("refund", refundID)
	}
	var paid []*PaymentIntent
	for _, id := range l.paystate.byAccount[r.AccountID] {
		pi := l.intent(id)
		if pi.Status == IntentSucceeded && (pi.Kind == IntentSubscribe || pi.Kind == IntentUpgrade) &&
			pi.SettledAt >= r.CycleStart && pi.SettledAt <= r.SubmittedAt {
			paid = append(paid, pi)
		}
	}
	sort.Slice(paid, func(i, j int) bool {
		if paid[i].SettledAt != paid[j].SettledAt {
			return paid[i].SettledAt < paid[j].SettledAt
		}
		return paid[i].ID < paid[j].ID
	})
	_, _, left := refundFigures(r.PaidMicroUSD, r.UsageMicroUSD, r.RefundedMicroUSD)
	out := []RefundPartView{}
	for _, pi := range paid {
		if left <= 0 {
			break
		}
		n := min(left, pi.MicroUSD)
		out = append(out, RefundPartView{IntentID: pi.ID, PaymentRef: pi.PaymentRef, AmountUSD: Micro(n)})
		left -= n
	}
	return out, nil
}

// renewalID names the renewal of an account's cycle: deterministic, unique
// per run of cycles (its anchor) and short enough for an id.
func renewalID(a *Account) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d/%d", a.ID, a.Sub.CycleAnchor, a.Sub.CycleIndex))
	return "ren_" + hex.EncodeToString(sum[:12])
}

// askRenewal asks for the card payment of the cycle a just entered at
// plan p's price (PAY5); the driver charges it at once, off-session.
func (l *Ledger) askRenewal(a *Account, p *Plan) {
	s := &a.Sub
	pi := &PaymentIntent{ID: renewalID(a), AccountID: a.ID, Kind: IntentRenewal, Plan: p.ID, MicroUSD: p.PriceMicroUSD,
		Status: IntentPending, Customer: s.Customer, PaymentMethod: s.PaymentMethod, CycleStart: s.CycleStart,
		CreatedAt: s.CycleStart, NextAttemptAt: s.CycleStart}
	l.putIntent(pi)
	l.paystate.renewing[pi.ID] = struct{}{}
	s.RenewalIntent, s.RenewalDeadline = pi.ID, s.CycleStart+renewalGrace
	l.markAccount(a)
}

// lapseRenewal ends a subscription whose card renewal was not paid by its
// deadline or failed its last retry (PAY5): the account falls to Free.
func (l *Ledger) lapseRenewal(a *Account, now int64) {
	if pi := l.intent(a.Sub.RenewalIntent); pi != nil && pi.Status != IntentSucceeded {
		pi.Status, pi.SettledAt, pi.NextAttemptAt = IntentFailed, now, 0
		l.putIntent(pi)
		delete(l.paystate.renewing, pi.ID)
	}
	l.dropToFree(a)
}

// renewalFailed records a failed renewal charge (PAY5): the next retry of
// the schedule, or Free after the last. A failure that comes before the
// next retry was due repeats one already counted and changes nothing.
func (l *Ledger) renewalFailed(pi *PaymentIntent, c *ApplyPaymentEvent, now int64) PaymentEventView {
	out := PaymentEventView{EventID: c.EventID, Result: EventIgnored}
	a := l.accounts[pi.AccountID]
	if pi.NextAttemptAt != 0 && now >= pi.NextAttemptAt && a != nil && a.Sub.RenewalIntent == pi.ID {
		out.Result = EventFailed
		pi.Attempts++
		if c.ProviderRef != "" {
			pi.PaymentRef = c.ProviderRef
		}
		if pi.Attempts > len(RenewalRetries) {
			l.lapseRenewal(a, now)
		} else {
			pi.Status, pi.NextAttemptAt = IntentFailed, pi.CycleStart+int64(RenewalRetries[pi.Attempts-1])
			l.putIntent(pi)
			l.markAccount(a) // its subscription shows past due
		}
	}
	iv := intentView(pi)
	out.Intent = &iv
	return out
}

// RenewalsDue lists the card renewals the driver is to charge by now
// (PAY5), oldest first: it charges each off-session with an idempotency
// key of the intent id and its attempt, so charging again before the
// outcome arrives takes no money twice.
func (l *Ledger) RenewalsDue(now int64) []PaymentIntentView {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var due []*PaymentIntent
	for id := range l.paystate.renewing {
		if pi := l.intent(id); pi != nil && pi.NextAttemptAt != 0 && pi.NextAttemptAt <= now {
			due = append(due, pi)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		if due[i].NextAttemptAt != due[j].NextAttemptAt {
			return due[i].NextAttemptAt < due[j].NextAttemptAt
		}
		return due[i].ID < due[j].ID
	})
	out := make([]PaymentIntentView, len(due))
	for i, pi := range due {
		out[i] = intentView(pi)
	}
	return out
}

// indexRenewals rebuilds the renewals waited for from the accounts (Load).
func (l *Ledger) indexRenewals() {
	l.paystate.init()
	for _, a := range l.accounts {
		if a.Sub.RenewalIntent != "" {
			l.paystate.renewing[a.Sub.RenewalIntent] = struct{}{}
		}
	}
}
