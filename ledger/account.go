package ledger

import (
	"fmt"
	"net/mail"
	"strconv"
	"strings"
)

const maxAccounts = 10_000_000

func (c *CreateAccount) apply(l *Ledger, now int64) (AccountView, error) {
	email := strings.ToLower(strings.TrimSpace(c.Email))
	if !validID(c.ID) {
		return AccountView{}, invalid("bad account id")
	}
	if addr, err := mail.ParseAddress(email); err != nil || addr.Address != email || len(email) > 254 {
		return AccountView{}, invalid("email %q is not a valid address", c.Email)
	}
	if len(c.Name) > 200 {
		return AccountView{}, invalid("name is longer than 200 characters")
	}
	if a := l.accounts[c.ID]; a != nil {
		if a.Email == email && a.Name == c.Name {
			return l.accountView(a, now), nil // a retried command: same answer
		}
		return AccountView{}, conflict("account %q exists", c.ID)
	}
	if _, dup := l.emails[email]; dup {
		return AccountView{}, conflict("an account with email %q exists", email)
	}
	if len(l.accounts) >= maxAccounts {
		return AccountView{}, conflict("account limit reached")
	}
	a := &Account{
		ID: c.ID, Email: email, Name: c.Name, CreatedAt: now, Plan: PlanFree,
		Tier: TierStandard, MultiplierPPM: micro,
	}
	l.accounts[a.ID] = a
	l.emails[email] = a.ID
	l.markAccount(a)
	return l.accountView(a, now), nil
}

func (c *SetFlowValue) apply(l *Ledger, now int64) (AccountView, error) {
	a, err := l.account(c.AccountID)
	if err != nil {
		return AccountView{}, err
	}
	m := c.MultiplierPPM
	switch c.Tier {
	case TierStandard:
		if m != micro {
			return AccountView{}, invalid("the standard tier's multiplier is 1")
		}
	case TierInsider:
		if m <= micro || m > MaxMultiplierPPM {
			return AccountView{}, invalid("an insider multiplier must be above 1 and at most 10")
		}
	case TierAbuse:
		if m >= micro || m < MinMultiplierPPM {
			return AccountView{}, invalid("an abuse multiplier must be below 1 and at least 0.01")
		}
	default:
		return AccountView{}, invalid("tier must be standard, insider or abuse")
	}
	l.settle(a, now)
	a.Tier, a.MultiplierPPM = c.Tier, m
	l.markAccount(a)
	// The operator decided the tier while a refund is processing: a failed
	// or canceled refund does not give the Insider tier back over it.
	if r := l.refunds[a.PendingRefund]; r != nil && r.SavedMultiplierPPM != 0 {
		r.SavedMultiplierPPM = 0
		l.markRefund(r)
	}
	return l.accountView(a, now), nil
}

// pay records a line of the account's billing history.
func (l *Ledger) pay(a *Account, p Payment) {
	n := len(l.payments[a.ID])
	p.ID = "pay_" + a.ID + "_" + strconv.Itoa(n)
	l.payments[a.ID] = append(l.payments[a.ID], p)
	l.dirty[fmt.Sprintf("pay/%s/%08d", a.ID, n)] = struct{}{}
}

// paid reports whether the account is on a paid cycle.
func (a *Account) paid() bool { return a.Plan != PlanFree }

// dropToFree ends the paid run of cycles: the account falls back to Free,
// and an Insider loses the tier, since the subscription broke (M4, S5).
func (l *Ledger) dropToFree(a *Account) {
	a.Plan = PlanFree
	a.Sub = Subscription{}
	if a.Tier == TierInsider {
		a.Tier, a.MultiplierPPM = TierStandard, micro
	}
	l.markAccount(a)
}

// settle rolls an account's billing cycles forward to now (S5): each cycle
// end renews at the (pending) plan's price, or falls back to Free when the
// subscription was canceled or downgraded to Free.
func (l *Ledger) settle(a *Account, now int64) {
	if a.paid() && a.Sub.RenewalIntent != "" && now >= a.Sub.RenewalDeadline {
		l.lapseRenewal(a, now)
		return
	}
	for i := 0; a.paid() && now >= a.Sub.CycleEnd && i < maxCycles; i++ {
		if a.Sub.Canceled {
			l.dropToFree(a)
			return
		}
		next := a.Plan
		if a.Sub.PendingPlan != "" {
			next = a.Sub.PendingPlan
		}
		p := l.plans[next]
		if p == nil || p.PriceMicroUSD == 0 {
			l.dropToFree(a)
			return
		}
		s := &a.Sub
		a.Plan = next
		s.PendingPlan = ""
		s.CycleIndex++
		s.CycleStart = s.CycleEnd
		s.CycleEnd = addMonths(s.CycleAnchor, s.CycleIndex+1)
		s.PaidMicroUSD, s.UsageMicroUSD, s.RefundedMicroUSD = p.PriceMicroUSD, 0, 0
		if s.Billing == BilledByStripe {
			// Paid when the card is (PAY5): the cycle runs meanwhile.
			s.PaidMicroUSD = 0
			l.askRenewal(a, p)
			if now >= s.RenewalDeadline {
				l.lapseRenewal(a, now)
				return
			}
			continue
		}
		l.pay(a, Payment{Kind: "renewal", Plan: next, MicroUSD: p.PriceMicroUSD, At: s.CycleStart})
		l.markAccount(a)
	}
}

func (*Tick) apply(l *Ledger, now int64) (tickResult, error) {
	return tickResult{Settled: l.settleDue(now)}, nil
}

// settleDue settles every account whose cycle has ended, in id order, and
// says how many.
func (l *Ledger) settleDue(now int64) int {
	l.startRetryClock(now)
	due := l.takeDue(now)
	for _, id := range due {
		l.settle(l.accounts[id], now)
	}
	return len(due)
}

// NextDue reports whether some account's cycle may have ended by now, so
// the leader proposes a Tick only when there is work (rarely, a Tick that
// finds none: an entry left behind in the due queue). It looks at the
// queue's head: the leader asks every second, and a scan of every account
// would hold charges up.
func (l *Ledger) NextDue(now int64) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.due) > 0 && now >= l.due[0].end
}

func (l *Ledger) paidPlan(id string) (*Plan, error) {
	p := l.plans[id]
	if p == nil {
		return nil, notFound("plan", id)
	}
	return p, nil
}

func (c *Subscribe) apply(l *Ledger, now int64) (SubscriptionView, error) {
	a, err := l.account(c.AccountID)
	if err != nil {
		return SubscriptionView{}, err
	}
	p, err := l.paidPlan(c.Plan)
	if err != nil {
		return SubscriptionView{}, err
	}
	if p.PriceMicroUSD == 0 {
		return SubscriptionView{}, invalid("plan %q is free: nothing to subscribe to", p.ID)
	}
	l.settle(a, now)
	if err := subscribable(a); err != nil {
		return SubscriptionView{}, err
	}
	l.startSubscription(a, p, p.PriceMicroUSD, now)
	return l.subscriptionView(a, now), nil
}

// subscribable refuses a subscribe that S1 or a processing refund (R3)
// does not allow now; a is settled.
func subscribable(a *Account) error {
	if a.paid() {
		return conflict("account is already on %q; use subscription/change", a.Plan)
	}
	if a.PendingRefund != "" {
		return conflict("a refund is processing for this account")
	}
	return nil
}

// startSubscription is S2 once allowed: a cycle starting now, paid with
// price (the plan's, or what a card payment was asked for, PAY2).
func (l *Ledger) startSubscription(a *Account, p *Plan, price, now int64) {
	a.Plan = p.ID
	a.Sub = Subscription{
		CycleAnchor: now, CycleStart: now, CycleEnd: addMonths(now, 1),
		SubscribedAt: now, PaidMicroUSD: price,
	}
	l.pay(a, Payment{Kind: "subscribe", Plan: p.ID, MicroUSD: price, At: now})
	l.markAccount(a)
}

// upgradeCharge is S3: Δ = max(0, (P_new − P_old) × T_rem / T), T and
// T_rem in whole seconds, rounded half-up to the cent.
func upgradeCharge(oldPrice, newPrice, cycleStart, cycleEnd, now int64) int64 {
	if newPrice <= oldPrice || now >= cycleEnd {
		return 0
	}
	const second = 1_000_000_000
	total := (cycleEnd - cycleStart) / second
	rem := (cycleEnd - now) / second
	if total <= 0 {
		return 0
	}
	deltaCents := (newPrice - oldPrice) / centMicroUSD
	cents, ok := mulDivHalfUp(uint64(deltaCents), uint64(rem), uint64(total))
	if !ok {
		panic("ledger: upgrade charge overflow")
	}
	return int64(cents) * centMicroUSD
}

func (c *ChangePlan) apply(l *Ledger, now int64) (ChangeView, error) {
	a, err := l.account(c.AccountID)
	if err != nil {
		return ChangeView{}, err
	}
	target, err := l.paidPlan(c.Plan)
	if err != nil {
		return ChangeView{}, err
	}
	l.settle(a, now)
	if !a.paid() {
		return ChangeView{}, conflict("account is on Free; use subscription to start a paid plan")
	}
	cur := l.plans[a.Plan]
	s := &a.Sub
	switch {
	case target.ID == a.Plan:
		// Taking back a pending downgrade or a cancel (S4).
		s.PendingPlan, s.Canceled = "", false
		l.markAccount(a)
		return ChangeView{Plan: a.Plan, ChargedUSD: Micro(0), EffectiveAt: nil, Subscription: l.subscriptionView(a, now)}, nil
	case target.PriceMicroUSD >= cur.PriceMicroUSD:
		delta := upgradeCharge(cur.PriceMicroUSD, target.PriceMicroUSD, s.CycleStart, s.CycleEnd, now)
		l.upgrade(a, target, delta, now)
		eff := rfc3339(now)
		return ChangeView{Plan: a.Plan, ChargedUSD: Micro(delta), EffectiveAt: &eff, Subscription: l.subscriptionView(a, now)}, nil
	default:
		s.PendingPlan = target.ID
		l.markAccount(a)
		eff := rfc3339(s.CycleEnd)
		return ChangeView{Plan: a.Plan, ChargedUSD: Micro(0), EffectiveAt: &eff, Subscription: l.subscriptionView(a, now)}, nil
	}
}

// upgrade is S3 once allowed: the plan changes now, charged delta.
func (l *Ledger) upgrade(a *Account, target *Plan, delta, now int64) {
	s := &a.Sub
	a.Plan = target.ID
	s.PendingPlan, s.Canceled = "", false
	s.PaidMicroUSD = mustAdd(s.PaidMicroUSD, delta)
	l.pay(a, Payment{Kind: "upgrade", Plan: target.ID, MicroUSD: delta, At: now})
	l.markAccount(a)
}

func (c *Cancel) apply(l *Ledger, now int64) (SubscriptionView, error) {
	a, err := l.account(c.AccountID)
	if err != nil {
		return SubscriptionView{}, err
	}
	l.settle(a, now)
	if !a.paid() {
		return SubscriptionView{}, conflict("account has no paid subscription to cancel")
	}
	a.Sub.Canceled = true
	l.markAccount(a)
	return l.subscriptionView(a, now), nil
}

func (c *TopUp) apply(l *Ledger, now int64) (BalanceView, error) {
	a, err := l.account(c.AccountID)
	if err != nil {
		return BalanceView{}, err
	}
	if c.MicroUSD <= 0 || c.MicroUSD > MaxTopUpMicroUSD || c.MicroUSD%centMicroUSD != 0 {
		return BalanceView{}, invalid("add_usd must be whole cents, above 0 and at most 1000000")
	}
	if err := l.credit(a, c.MicroUSD, now); err != nil {
		return BalanceView{}, err
	}
	return BalanceView{BalanceUSD: Micro(a.BalanceMicroUSD)}, nil
}

// credit adds a top-up to the balance (E3), up to its maximum.
func (l *Ledger) credit(a *Account, microUSD, now int64) error {
	nb, ok := checkedAdd(a.BalanceMicroUSD, microUSD)
	if !ok || nb > MaxBalanceMicroUSD {
		return invalid("balance would exceed its maximum")
	}
	a.BalanceMicroUSD = nb
	l.pay(a, Payment{Kind: "topup", MicroUSD: microUSD, At: now})
	l.markAccount(a)
	return nil
}

func (c *SetExtra) apply(l *Ledger, now int64) (ExtraUsageView, error) {
	a, err := l.account(c.AccountID)
	if err != nil {
		return ExtraUsageView{}, err
	}
	if c.KeyID != "" {
		k := l.keys[c.KeyID]
		if k == nil || k.AccountID != a.ID {
			return ExtraUsageView{}, notFound("key", c.KeyID)
		}
		if k.Kind != KindPayg {
			return ExtraUsageView{}, invalid("Extra Usage needs a pay-as-you-go key, %q is a %s key", k.ID, k.Kind)
		}
		a.ExtraKeyID = k.ID
	}
	if c.Enabled && a.ExtraKeyID == "" {
		return ExtraUsageView{}, invalid("turning Extra Usage on needs payg_key_id (E1)")
	}
	a.ExtraEnabled = c.Enabled
	l.markAccount(a)
	return l.extraView(a, now), nil
}

// period returns the monthly period [start, end) that contains now (Q3):
// the billing cycle of a paid plan, else calendar months from creation. A
// cycle that has ended but not been settled yet is projected the way
// settle will roll it.
func (a *Account) period(now int64) (int64, int64) {
	if a.paid() && now < a.Sub.CycleEnd {
		return a.Sub.CycleStart, a.Sub.CycleEnd
	}
	if a.paid() && !a.Sub.Canceled {
		k := monthIndex(a.Sub.CycleAnchor, now)
		return addMonths(a.Sub.CycleAnchor, k), addMonths(a.Sub.CycleAnchor, k+1)
	}
	k := monthIndex(a.CreatedAt, now)
	return addMonths(a.CreatedAt, k), addMonths(a.CreatedAt, k+1)
}

// applyPeriod is period for the apply path (write lock held): a Free
// account's calendar period is remembered, since computing it from the
// creation date is the costliest step of a charge. The memo is derived
// from CreatedAt alone, so it needs no persistence and cannot diverge.
func (a *Account) applyPeriod(now int64) (int64, int64) {
	if !a.paid() && now >= a.freeStart && now < a.freeEnd {
		return a.freeStart, a.freeEnd
	}
	start, end := a.period(now)
	if !a.paid() {
		a.freeStart, a.freeEnd = start, end
	}
	return start, end
}

// effectivePlan is the plan in force at now, projecting an unsettled cycle
// end (S4, S5) so admission never runs on a plan that has lapsed.
func (l *Ledger) effectivePlan(a *Account, now int64) *Plan {
	id := a.Plan
	if a.paid() && a.Sub.RenewalIntent != "" && now >= a.Sub.RenewalDeadline {
		id = PlanFree // a card renewal never paid (PAY5)
	} else if a.paid() && now >= a.Sub.CycleEnd {
		switch {
		case a.Sub.Canceled:
			id = PlanFree
		case a.Sub.PendingPlan != "":
			id = a.Sub.PendingPlan
		}
	}
	if p := l.plans[id]; p != nil {
		return p
	}
	return l.plans[PlanFree]
}
