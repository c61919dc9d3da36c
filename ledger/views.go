package ledger

import (
	"cmp"
	"sort"
	"time"
)

// The JSON shapes of docs/api.md ("Answer shapes"). Views are built under the ledger's lock and
// hold copies, never pointers into state.

// Rate is usd_per_flow in nano-USD, rendered as a decimal number.
type Rate int64

// MarshalJSON writes the rate with up to 9 decimals.
func (r Rate) MarshalJSON() ([]byte, error) { return []byte(Decimal(int64(r), 9)), nil }

// UnmarshalJSON reads the rate back exactly (a follower decoding the
// leader's answer).
func (r *Rate) UnmarshalJSON(b []byte) error {
	v, err := ParseDecimal(string(b), 9, MaxNanoUSDPerFlow)
	*r = Rate(v)
	return err
}

// FlowValueView is an account's Flow value tier and multiplier (M4).
type FlowValueView struct {
	Tier       string `json:"tier"`
	Multiplier Micro  `json:"multiplier"`
}

// SubscriptionView is an account's plan and billing cycle (S1-S5).
type SubscriptionView struct {
	Plan        string  `json:"plan"`
	Status      string  `json:"status"`
	CycleStart  *string `json:"cycle_start"`
	CycleEnd    *string `json:"cycle_end"`
	PendingPlan *string `json:"pending_plan"`
	PaidUSD     Micro   `json:"paid_usd"`
	// PastDueUntil is set while a card renewal has failed (status
	// past_due): the plan is kept until then unless a retry pays (PAY5).
	PastDueUntil *string `json:"past_due_until,omitempty"`
}

// AccountView is one account as the API shows it.
type AccountView struct {
	ID           string           `json:"id"`
	Email        string           `json:"email"`
	Name         string           `json:"name"`
	Plan         string           `json:"plan"`
	Subscription SubscriptionView `json:"subscription"`
	FlowValue    FlowValueView    `json:"flow_value"`
	ExtraUsage   ExtraUsageView   `json:"extra_usage"`
	BalanceUSD   Micro            `json:"balance_usd"`
	CreatedAt    string           `json:"created_at"`
}

// ChangeView answers a plan change: what was charged and when it takes
// effect (S3, S4).
type ChangeView struct {
	Plan         string           `json:"plan"`
	ChargedUSD   Micro            `json:"charged_usd"`
	EffectiveAt  *string          `json:"effective_at"`
	Subscription SubscriptionView `json:"subscription"`
}

// BalanceView is the pay-as-you-go balance (E3).
type BalanceView struct {
	BalanceUSD Micro `json:"balance_usd"`
}

// KeyView is a key without its secret (K1).
type KeyView struct {
	ID         string  `json:"id"`
	Key        string  `json:"key,omitempty"`
	Kind       string  `json:"kind"`
	Name       string  `json:"name"`
	Last4      string  `json:"last4"`
	CreatedAt  string  `json:"created_at"`
	LastUsedAt *string `json:"last_used_at"`
}

// ExtraUsageView is the Extra Usage settings view (E4).
type ExtraUsageView struct {
	Enabled    bool     `json:"enabled"`
	PaygKeyID  *string  `json:"payg_key_id"`
	PaygKey    *KeyView `json:"payg_key"`
	SpentUSD   Micro    `json:"spent_usd"`
	BalanceUSD Micro    `json:"balance_usd"`
}

// WindowView is one quota window at a time (Q1-Q3).
type WindowView struct {
	UsedFlows      Micro   `json:"used_flows"`
	LimitFlows     Micro   `json:"limit_flows"`
	RemainingFlows Micro   `json:"remaining_flows"`
	StartedAt      *string `json:"started_at"`
	ResetsAt       *string `json:"resets_at"`
}

// TotalsView is an account's usage totals for one model or one UTC day (U1).
type TotalsView struct {
	Model            string `json:"model,omitempty"`
	Day              string `json:"day,omitempty"`
	Requests         int64  `json:"requests"`
	InputTokens      int64  `json:"input_tokens"`
	OutputTokens     int64  `json:"output_tokens"`
	CacheReadTokens  int64  `json:"cache_read_tokens"`
	CacheWriteTokens int64  `json:"cache_write_tokens"`
	Flows            Micro  `json:"flows"`
	USDValue         Micro  `json:"usd_value"`
}

// UsageView is the usage view of an account (U1).
type UsageView struct {
	Plan       string       `json:"plan"`
	Window5h   WindowView   `json:"window_5h"`
	Weekly     WindowView   `json:"weekly"`
	Monthly    WindowView   `json:"monthly"`
	ExtraUsage SpentView    `json:"extra_usage"`
	ByModel    []TotalsView `json:"by_model"`
	ByDay      []TotalsView `json:"by_day"`
}

// SpentView is the Extra Usage spend of the current monthly period (E4).
type SpentView struct {
	SpentUSD Micro `json:"spent_usd"`
}

// RefundPreviewView is a refund's eligibility and every line of its amount
// (R1, R2).
type RefundPreviewView struct {
	Eligible           bool   `json:"eligible"`
	Reason             string `json:"reason"`
	TotalPaidUSD       Micro  `json:"total_paid_usd"`
	UsageUSD           Micro  `json:"usage_usd"`
	AlreadyRefundedUSD Micro  `json:"already_refunded_usd"`
	RefundableUSD      Micro  `json:"refundable_usd"`
	FeeUSD             Micro  `json:"fee_usd"`
	FinalUSD           Micro  `json:"final_usd"`
}

// RefundView is a refund request and its status (R3).
type RefundView struct {
	ID          string  `json:"id"`
	AccountID   string  `json:"account_id"`
	Status      string  `json:"status"`
	Plan        string  `json:"plan"`
	SubmittedAt string  `json:"submitted_at"`
	ResolvedAt  *string `json:"resolved_at"`
	// ProviderRefs are the card provider's refunds (PAY6); empty when
	// the operator returns the money.
	ProviderRefs []string `json:"provider_refs"`
	RefundPreviewView
}

// RatePointView is one entry of the rate history (M3).
type RatePointView struct {
	USDPerFlow Rate   `json:"usd_per_flow"`
	At         string `json:"at"`
}

// RateView is the current rate and its history (M3).
type RateView struct {
	USDPerFlow Rate            `json:"usd_per_flow"`
	UpdatedAt  string          `json:"updated_at"`
	History    []RatePointView `json:"history"`
}

// PlanView is a plan with its derived figures (P2).
type PlanView struct {
	ID              string      `json:"id"`
	Name            string      `json:"name"`
	PriceUSD        Micro       `json:"price_usd"`
	Window5hFlows   Micro       `json:"window_5h_flows"`
	WeeklyFlows     Micro       `json:"weekly_flows"`
	MonthlyFlows    Micro       `json:"monthly_flows"`
	RPM             int64       `json:"rpm"`
	Burst           int64       `json:"burst"`
	USDEquivalent   Micro       `json:"usd_equivalent"`
	ValueMultiplier *Hundredths `json:"value_multiplier"`
}

// ModelView is a catalog model as the admin API shows it.
type ModelView struct {
	ID                   string   `json:"id"`
	Name                 string   `json:"name,omitempty"`
	Modality             string   `json:"modality,omitempty"`
	Provider             string   `json:"provider"`
	Upstream             string   `json:"upstream"`
	Unpriced             bool     `json:"unpriced,omitempty"`
	InputUSDPerMTok      Micro    `json:"input_usd_per_mtok"`
	OutputUSDPerMTok     Micro    `json:"output_usd_per_mtok"`
	CacheReadUSDPerMTok  Micro    `json:"cache_read_usd_per_mtok"`
	CacheWriteUSDPerMTok Micro    `json:"cache_write_usd_per_mtok"`
	ImageUSD             Micro    `json:"image_usd"`
	RequestUSD           Micro    `json:"request_usd"`
	Plans                []string `json:"plans"`
}

// LogEntryView is one request-log line as the API shows it (U1).
type LogEntryView struct {
	ID               string `json:"id"`
	At               string `json:"at"`
	Model            string `json:"model"`
	KeyID            string `json:"key_id"`
	InputTokens      int64  `json:"input_tokens"`
	OutputTokens     int64  `json:"output_tokens"`
	CacheReadTokens  int64  `json:"cache_read_tokens"`
	CacheWriteTokens int64  `json:"cache_write_tokens"`
	Images           int64  `json:"images"`
	Flows            Micro  `json:"flows"`
	USDValue         Micro  `json:"usd_value"`
	Billing          string `json:"billing"`
	Status           string `json:"status"`
	Estimated        bool   `json:"estimated"`
}

func str(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (l *Ledger) subscriptionView(a *Account, now int64) SubscriptionView {
	if !a.paid() {
		return SubscriptionView{Plan: a.Plan, Status: "active"}
	}
	status := "active"
	if a.Sub.Canceled {
		status = "canceled"
	}
	var pastDue *string
	if pi := l.intent(a.Sub.RenewalIntent); pi != nil && pi.Attempts > 0 {
		status, pastDue = "past_due", optTime(a.Sub.RenewalDeadline)
	}
	return SubscriptionView{
		Plan: a.Plan, Status: status, CycleStart: optTime(a.Sub.CycleStart), CycleEnd: optTime(a.Sub.CycleEnd),
		PendingPlan: str(a.Sub.PendingPlan), PaidUSD: Micro(a.Sub.PaidMicroUSD), PastDueUntil: pastDue,
	}
}

func (l *Ledger) accountView(a *Account, now int64) AccountView {
	return AccountView{
		ID: a.ID, Email: a.Email, Name: a.Name, Plan: a.Plan,
		Subscription: l.subscriptionView(a, now),
		FlowValue:    FlowValueView{Tier: a.Tier, Multiplier: Micro(a.MultiplierPPM)},
		ExtraUsage:   l.extraView(a, now),
		BalanceUSD:   Micro(a.BalanceMicroUSD),
		CreatedAt:    rfc3339(a.CreatedAt),
	}
}

func keyView(k *Key) KeyView {
	return KeyView{ID: k.ID, Kind: k.Kind, Name: k.Name, Last4: k.Last4, CreatedAt: rfc3339(k.CreatedAt), LastUsedAt: optTime(k.LastUsedAt)}
}

func (l *Ledger) extraView(a *Account, now int64) ExtraUsageView {
	v := ExtraUsageView{Enabled: a.ExtraEnabled, PaygKeyID: str(a.ExtraKeyID), BalanceUSD: Micro(a.BalanceMicroUSD)}
	if k := l.keys[a.ExtraKeyID]; k != nil {
		kv := keyView(k)
		v.PaygKey = &kv
	}
	if start, _ := a.period(now); start == a.ExtraPeriodStart {
		v.SpentUSD = Micro(a.ExtraSpentMicroUSD)
	}
	return v
}

// resetRFC3339 renders a reset instant rounded up to the whole second: a
// window started at a nanosecond is over at a nanosecond, and a client that
// waits until the shown time and retries must find it over (Q1, Q2, Q3,
// Q5). Start times stay truncated: no reset is derived from a shown start.
func resetRFC3339(nanos int64) string {
	const second = int64(time.Second)
	return rfc3339((nanos + second - 1) / second * second)
}

// windowAt renders a window at now: an expired rolling window shows as
// inactive with nothing used (Q1, Q2); an active one's resets_at is never
// before its real end.
func windowAt(w Window, limit, now int64) WindowView {
	v := WindowView{LimitFlows: Micro(limit)}
	used := windowUsed(w, now)
	if w.StartedAt != 0 && now < w.ResetsAt {
		resets := resetRFC3339(w.ResetsAt)
		v.StartedAt, v.ResetsAt = optTime(w.StartedAt), &resets
	}
	v.UsedFlows = Micro(used)
	v.RemainingFlows = Micro(windowRemaining(w, limit, now))
	return v
}

// windowUsed is what w has used at now: nothing once it has reset or before
// it started.
func windowUsed(w Window, now int64) int64 {
	if w.StartedAt == 0 || now >= w.ResetsAt {
		return 0
	}
	return w.UsedMicroFlows
}

// windowRemaining is what w has left of limit at now, never below 0; the
// admission path asks it on every request, so it formats no times (a
// WindowView formats two).
func windowRemaining(w Window, limit, now int64) int64 {
	return max(0, limit-windowUsed(w, now))
}

func (l *Ledger) usageView(a *Account, now int64) UsageView {
	p := l.effectivePlan(a, now)
	start, end := a.period(now)
	month := a.Monthly
	if month.StartedAt != start {
		month = Window{StartedAt: start, ResetsAt: end}
	}
	v := UsageView{
		Plan:     p.ID,
		Window5h: windowAt(a.W5h, p.Window5hMicroFlows, now),
		Weekly:   windowAt(a.Weekly, p.WeeklyMicroFlows, now),
		Monthly:  windowAt(month, p.MonthlyMicroFlows, now),
		ByModel:  []TotalsView{},
		ByDay:    []TotalsView{},
	}
	if start == a.ExtraPeriodStart {
		v.ExtraUsage.SpentUSD = Micro(a.ExtraSpentMicroUSD)
	}
	for id, t := range l.byModel[a.ID] {
		tv := totals(t)
		tv.Model = id
		v.ByModel = append(v.ByModel, tv)
	}
	sort.Slice(v.ByModel, func(i, j int) bool { return v.ByModel[i].Model < v.ByModel[j].Model })
	for day, t := range l.days[a.ID] {
		tv := totals(t)
		tv.Day = day
		v.ByDay = append(v.ByDay, tv)
	}
	sort.Slice(v.ByDay, func(i, j int) bool { return v.ByDay[i].Day < v.ByDay[j].Day })
	return v
}

func totals(t *Totals) TotalsView {
	return TotalsView{
		Requests: t.Requests, InputTokens: t.InputTokens, OutputTokens: t.OutputTokens,
		CacheReadTokens: t.CacheReadTokens, CacheWriteTokens: t.CacheWriteTokens,
		Flows: Micro(t.MicroFlows), USDValue: Micro(t.MicroUSD),
	}
}

func refundPreviewView(reason string, paid, usage, already int64) RefundPreviewView {
	refundable, fee, final := refundFigures(paid, usage, already)
	return RefundPreviewView{
		Eligible: reason == "", Reason: reason,
		TotalPaidUSD: Micro(paid), UsageUSD: Micro(usage), AlreadyRefundedUSD: Micro(already),
		RefundableUSD: Micro(refundable), FeeUSD: Micro(fee), FinalUSD: Micro(final),
	}
}

func refundView(r *Refund) RefundView {
	return RefundView{
		ID: r.ID, AccountID: r.AccountID, Status: r.Status, Plan: r.Plan,
		SubmittedAt: rfc3339(r.SubmittedAt), ResolvedAt: optTime(r.ResolvedAt),
		ProviderRefs:      append([]string{}, r.ProviderRefs...),
		RefundPreviewView: refundPreviewView("", r.PaidMicroUSD, r.UsageMicroUSD, r.RefundedMicroUSD),
	}
}

func (l *Ledger) rateView() RateView {
	if len(l.rates) == 0 {
		return RateView{History: []RatePointView{}}
	}
	last := l.rates[len(l.rates)-1]
	v := RateView{USDPerFlow: Rate(last.NanoUSDPerFlow), UpdatedAt: rfc3339(last.At)}
	for _, r := range l.rates {
		v.History = append(v.History, RatePointView{USDPerFlow: Rate(r.NanoUSDPerFlow), At: rfc3339(r.At)})
	}
	return v
}

// planView derives P2 from the current rate: usd_equivalent = monthly_max ×
// usd_per_flow in cents, value_multiplier = usd_equivalent / price to two
// decimals (none for a free plan).
func (l *Ledger) planView(p *Plan) PlanView {
	rate := int64(DefaultNanoUSDPerFlow)
	if len(l.rates) > 0 {
		rate = l.rates[len(l.rates)-1].NanoUSDPerFlow
	}
	// monthly µFlows × nanoUSD/Flow = 1e-15 USD; to cents divide by 1e13.
	cents, ok := mulDivHalfUp(uint64(p.MonthlyMicroFlows), uint64(rate), 10_000_000_000_000)
	if !ok {
		panic("ledger: usd_equivalent overflow")
	}
	v := PlanView{
		ID: p.ID, Name: p.Name, PriceUSD: Micro(p.PriceMicroUSD),
		Window5hFlows: Micro(p.Window5hMicroFlows), WeeklyFlows: Micro(p.WeeklyMicroFlows), MonthlyFlows: Micro(p.MonthlyMicroFlows),
		RPM: p.RPM, Burst: p.Burst, USDEquivalent: Micro(int64(cents) * centMicroUSD),
	}
	if p.PriceMicroUSD > 0 {
		priceCents := uint64(p.PriceMicroUSD / centMicroUSD)
		h, _ := mulDivHalfUp(cents, 100, priceCents)
		hv := Hundredths(h)
		v.ValueMultiplier = &hv
	}
	return v
}

// PublicModelView is a model on the public pricing page: its prices and
// plans, not who serves it.
type PublicModelView struct {
	ID                   string   `json:"id"`
	Name                 string   `json:"name"`
	Modality             string   `json:"modality,omitempty"`
	InputUSDPerMTok      Micro    `json:"input_usd_per_mtok"`
	OutputUSDPerMTok     Micro    `json:"output_usd_per_mtok"`
	CacheReadUSDPerMTok  Micro    `json:"cache_read_usd_per_mtok"`
	CacheWriteUSDPerMTok Micro    `json:"cache_write_usd_per_mtok"`
	ImageUSD             Micro    `json:"image_usd"`
	RequestUSD           Micro    `json:"request_usd"`
	Plans                []string `json:"plans"`
	// Available: the node that answered can serve the model now (see
	// Ledger.Pricing).
	Available bool `json:"available"`
}

func renderPublicModel(m *Model) PublicModelView {
	return PublicModelView{
		ID: m.ID, Name: cmp.Or(m.Name, m.ID), Modality: m.Modality,
		InputUSDPerMTok: Micro(m.InputMicroUSDPerMTok), OutputUSDPerMTok: Micro(m.OutputMicroUSDPerMTok),
		CacheReadUSDPerMTok: Micro(m.CacheReadMicroUSDPerM), CacheWriteUSDPerMTok: Micro(m.CacheWriteMicroUSDPerM),
		ImageUSD: Micro(m.ImageMicroUSD), RequestUSD: Micro(m.RequestMicroUSD), Plans: append([]string(nil), m.Plans...),
	}
}

func renderModel(m *Model) ModelView {
	return ModelView{
		ID: m.ID, Name: m.Name, Modality: m.Modality, Provider: m.Provider, Upstream: m.Upstream, Unpriced: m.Unpriced,
		InputUSDPerMTok: Micro(m.InputMicroUSDPerMTok), OutputUSDPerMTok: Micro(m.OutputMicroUSDPerMTok),
		CacheReadUSDPerMTok: Micro(m.CacheReadMicroUSDPerM), CacheWriteUSDPerMTok: Micro(m.CacheWriteMicroUSDPerM),
		ImageUSD: Micro(m.ImageMicroUSD), RequestUSD: Micro(m.RequestMicroUSD), Plans: append([]string(nil), m.Plans...),
	}
}
