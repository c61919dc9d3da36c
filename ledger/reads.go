package ledger

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"sort"
)

// Reads take the read lock and return views (copies). now is the reader's
// clock (the node's, test offset included); reads never change state.

// Seeded reports whether the cluster's settings have been seeded.
func (l *Ledger) Seeded() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.seeded
}

// ClockOffset returns the replicated test-clock offset in nanoseconds.
func (l *Ledger) ClockOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.clockOffset
}

// Account returns one account.
func (l *Ledger) Account(id string, now int64) (AccountView, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	a, err := l.account(id)
	if err != nil {
		return AccountView{}, err
	}
	return l.accountView(a, now), nil
}

// Accounts returns up to limit accounts with ids after the cursor, in id
// order, and the cursor of the next page ("" at the end).
func (l *Ledger) Accounts(after string, limit int, now int64) ([]any, string) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	ids := make([]string, 0, len(l.accounts))
	for id := range l.accounts {
		if id > after {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	out := make([]any, 0, len(ids))
	for _, id := range ids {
		out = append(out, l.accountView(l.accounts[id], now))
	}
	return out, next
}

// Keys lists an account's keys without secrets (K1).
func (l *Ledger) Keys(accountID string) ([]KeyView, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	a, err := l.account(accountID)
	if err != nil {
		return nil, err
	}
	out := make([]KeyView, 0, len(a.KeyIDs))
	for _, id := range a.KeyIDs {
		out = append(out, keyView(l.keys[id]))
	}
	return out, nil
}

// KeyAccount returns the account that owns a key.
func (l *Ledger) KeyAccount(keyID string) (string, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	k := l.keys[keyID]
	if k == nil {
		return "", notFound("key", keyID)
	}
	return k.AccountID, nil
}

// Usage returns U1 for an account.
func (l *Ledger) Usage(accountID string, now int64) (UsageView, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	a, err := l.account(accountID)
	if err != nil {
		return UsageView{}, err
	}
	return l.usageView(a, now), nil
}

// ExtraUsage returns the E4 settings of an account.
func (l *Ledger) ExtraUsage(accountID string, now int64) (ExtraUsageView, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	a, err := l.account(accountID)
	if err != nil {
		return ExtraUsageView{}, err
	}
	return l.extraView(a, now), nil
}

// Rate returns the current rate and its history (M3).
func (l *Ledger) Rate() RateView {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.rateView()
}

// Plans returns every plan with its derived figures, cheapest first.
func (l *Ledger) Plans() []PlanView {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]PlanView, 0, len(l.plans))
	for _, p := range l.plans {
		out = append(out, l.planView(p))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PriceUSD != out[j].PriceUSD {
			return out[i].PriceUSD < out[j].PriceUSD
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Plan returns one plan.
func (l *Ledger) Plan(id string) (PlanView, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	p := l.plans[id]
	if p == nil {
		return PlanView{}, notFound("plan", id)
	}
	return l.planView(p), nil
}

// Models returns the catalog in id order.
func (l *Ledger) Models() []any {
	l.mu.RLock()
	defer l.mu.RUnlock()
	ids := make([]string, 0, len(l.models))
	for id := range l.models {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]any, 0, len(ids))
	for _, id := range ids {
		out = append(out, renderModel(l.models[id]))
	}
	return out
}

// Refund returns one refund.
func (l *Ledger) Refund(id string) (RefundView, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	r := l.refunds[id]
	if r == nil {
		return RefundView{}, notFound("refund", id)
	}
	return refundView(r), nil
}

// Members returns the recorded node addresses in id order.
func (l *Ledger) Members() []Member {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]Member, 0, len(l.members))
	for _, m := range l.members {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Admission is the in-memory decision for one request (Q4, Q5, E2, E3).
// Err covers key, model and plan (K3, P3); BillingErr is the quota or
// balance refusal, which the proxy reports only after its rate bucket
// (Q8) has passed, keeping the order the gateway issue asks for.
type Admission struct {
	AccountID  string
	KeyID      string
	KeyKind    string
	Plan       string
	RPM, Burst int64
	Model      Model
	Billing    string
	ViaExtra   bool
	BillingErr error
	// BalanceMicroUSD is the pay-as-you-go balance at admission, for the
	// proxy's in-flight reservations (E3).
	BalanceMicroUSD int64
	// Exhausted is the window that sent a subscription request to Extra
	// Usage (ViaExtra), for the refusal if the balance cannot cover it.
	Exhausted *QuotaError
	// NanoUSDPerFlow and MultiplierPPM price the request in Flows for an
	// estimate before it runs (cluster quota allowances).
	NanoUSDPerFlow, MultiplierPPM int64
}

// HashSecret is the stored form of a key secret (K1).
func HashSecret(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// Admit decides a request from state and time alone.
func (l *Ledger) Admit(secretHash [32]byte, modelID string, now int64) (Admission, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	k := l.keyByHash(secretHash)
	if k == nil {
		return Admission{}, ErrInvalidAPIKey
	}
	a := l.accounts[k.AccountID]
	if a == nil {
		return Admission{}, ErrInvalidAPIKey
	}
	return l.admit(a, k.ID, k.Kind, modelID, now)
}

// AdmitAccount decides a Studio Chat request of an account (B1) as Admit
// decides one sent with a key of the billing's kind: "subscription" runs
// the plan's checks (windows, Extra Usage) exactly as for a subscription
// key, "payg" the balance's as for a pay-as-you-go key. The admission
// names no key (KeyID ""), so its charge marks none used.
func (l *Ledger) AdmitAccount(accountID, billing, modelID string, now int64) (Admission, error) {
	kind := KindSubscription
	switch billing {
	case BillingSubscription:
	case BillingPayg:
		kind = KindPayg
	default:
		return Admission{}, invalid("billing must be subscription or payg")
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	a := l.accounts[accountID]
	if a == nil {
		return Admission{}, ErrInvalidAPIKey
	}
	return l.admit(a, "", kind, modelID, now)
}

// admit is Admit for an account and the kind of key a request came with.
func (l *Ledger) admit(a *Account, keyID, kind, modelID string, now int64) (Admission, error) {
	m := l.lookupModel(modelID)
	if m == nil {
		return Admission{}, ErrModelNotFound
	}
	p := l.effectivePlan(a, now)
	ad := Admission{AccountID: a.ID, KeyID: keyID, KeyKind: kind, Plan: p.ID, RPM: p.RPM, Burst: p.Burst, Model: *m, BalanceMicroUSD: a.BalanceMicroUSD,
		NanoUSDPerFlow: l.rateAt(now), MultiplierPPM: a.MultiplierPPM}
	if kind == KindPayg {
		if m.Unpriced {
			return ad, fmt.Errorf("%w: %s", ErrModelUnpriced, m.ID)
		}
		ad.Billing = BillingPayg
		if a.BalanceMicroUSD <= 0 {
			ad.BillingErr = ErrInsufficientBalance
		}
		return ad, nil
	}
	if !m.AllowsPlan(p.ID) {
		return ad, ErrModelNotInPlan
	}
	if m.Unpriced { // after the plan: a model outside the plan is refused as such (P3)
		return ad, fmt.Errorf("%w: %s", ErrModelUnpriced, m.ID)
	}
	ad.Billing = BillingSubscription
	if qe := l.exhausted(a, p, now); qe != nil {
		// Whole seconds rounded up: a client that waits Retry-After finds
		// the window over, never a fraction of a second early (Q5).
		qe.RetryAfterSec = max(1, (qe.ResetsAt-now+999_999_999)/1_000_000_000)
		if a.ExtraEnabled && a.ExtraKeyID != "" && a.BalanceMicroUSD > 0 {
			ad.Billing, ad.ViaExtra, ad.Exhausted = BillingPayg, true, qe
			return ad, nil
		}
		qe.BalanceEmpty = a.ExtraEnabled && a.BalanceMicroUSD <= 0
		ad.BillingErr = qe
	}
	return ad, nil
}

// exhausted returns the first window with nothing remaining at now (Q4):
// 5 h, then weekly, then monthly.
func (l *Ledger) exhausted(a *Account, p *Plan, now int64) *QuotaError {
	if windowRemaining(a.W5h, p.Window5hMicroFlows, now) <= 0 {
		return &QuotaError{Window: "window_5h", ResetsAt: a.W5h.ResetsAt}
	}
	if windowRemaining(a.Weekly, p.WeeklyMicroFlows, now) <= 0 {
		return &QuotaError{Window: "weekly", ResetsAt: a.Weekly.ResetsAt}
	}
	start, end := a.period(now)
	used := int64(0)
	if a.Monthly.StartedAt == start {
		used = a.Monthly.UsedMicroFlows
	}
	if p.MonthlyMicroFlows-used <= 0 {
		return &QuotaError{Window: "monthly", ResetsAt: end}
	}
	return nil
}

// Balance is an account's pay-as-you-go balance in micro-USD (0 when the
// account does not exist).
func (l *Ledger) Balance(accountID string) int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if a := l.accounts[accountID]; a != nil {
		return a.BalanceMicroUSD
	}
	return 0
}

// CatalogEntry is a model a key may call: its id, display name (the id
// when the catalog gives none) and the provider named for it ("" when the
// node's routes decide).
type CatalogEntry struct {
	ID       string
	Name     string
	Provider string
}

// ModelsFor lists the catalog models a key may call, in id order: its
// plan's models for a subscription key, every model for a pay-as-you-go
// key (P3), never an unpriced one (M5). ok is false for an unknown key.
func (l *Ledger) ModelsFor(secretHash [32]byte, now int64) (out []CatalogEntry, ok bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	k := l.keyByHash(secretHash)
	if k == nil || l.accounts[k.AccountID] == nil {
		return nil, false
	}
	p := l.effectivePlan(l.accounts[k.AccountID], now)
	for _, m := range l.models {
		if !m.Unpriced && (k.Kind == KindPayg || m.AllowsPlan(p.ID)) {
			out = append(out, CatalogEntry{ID: m.ID, Name: cmp.Or(m.Name, m.ID), Provider: m.Provider})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, true
}

// PricingView is the public pricing view (P2): the live rate and its
// history (M3), every plan with its derived figures, and every priced
// model's prices (M2).
type PricingView struct {
	USDPerFlow  Rate              `json:"usd_per_flow"`
	UpdatedAt   string            `json:"updated_at"`
	RateHistory []RatePointView   `json:"rate_history"`
	Plans       []PlanView        `json:"plans"`
	Models      []PublicModelView `json:"models"`
}

// Pricing is the public pricing view: models in id order; an unpriced
// model is left out (M5), and so is who serves a model, which is the
// operator's business.
//
// served, when not nil, says whether the node answering can serve a model
// now (a provider on its route is configured with its key): the view's
// Available, which Studio's model picker prefers. It is called under the
// ledger's read lock and must not call back into the ledger.
func (l *Ledger) Pricing(served func(m *Model) bool) PricingView {
	l.mu.RLock()
	rate := l.rateView()
	models := make([]PublicModelView, 0, len(l.models))
	for _, m := range l.models {
		if !m.Unpriced {
			v := renderPublicModel(m)
			v.Available = served == nil || served(m)
			models = append(models, v)
		}
	}
	l.mu.RUnlock()
	sort.Slice(models, func(i, j int) bool { return models[i].ID < models[j].ID })
	return PricingView{USDPerFlow: rate.USDPerFlow, UpdatedAt: rate.UpdatedAt, RateHistory: rate.History, Plans: l.Plans(), Models: models}
}
