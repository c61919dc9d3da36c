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

type flowValueView struct {
	Tier       string `json:"tier"`
	Multiplier Micro  `json:"multiplier"`
}

type subscriptionView struct {
	Plan        string  `json:"plan"`
	Status      string  `json:"status"`
	CycleStart  *string `json:"cycle_start"`
	CycleEnd    *string `json:"cycle_end"`
	PendingPlan *string `json:"pending_plan"`
	PaidUSD     Micro   `json:"paid_usd"`
}

type accountView struct {
	ID           string           `json:"id"`
	Email        string           `json:"email"`
	Name         string           `json:"name"`
	Plan         string           `json:"plan"`
	Subscription subscriptionView `json:"subscription"`
	FlowValue    flowValueView    `json:"flow_value"`
	ExtraUsage   extraView        `json:"extra_usage"`
	BalanceUSD   Micro            `json:"balance_usd"`
	CreatedAt    string           `json:"created_at"`
}

type changeView struct {
	Plan         string           `json:"plan"`
	ChargedUSD   Micro            `json:"charged_usd"`
	EffectiveAt  *string          `json:"effective_at"`
	Subscription subscriptionView `json:"subscription"`
}

type balanceView struct {
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

type extraView struct {
	Enabled    bool     `json:"enabled"`
	PaygKeyID  *string  `json:"payg_key_id"`
	PaygKey    *KeyView `json:"payg_key"`
	SpentUSD   Micro    `json:"spent_usd"`
	BalanceUSD Micro    `json:"balance_usd"`
}

type windowView struct {
	UsedFlows      Micro   `json:"used_flows"`
	LimitFlows     Micro   `json:"limit_flows"`
	RemainingFlows Micro   `json:"remaining_flows"`
	StartedAt      *string `json:"started_at"`
	ResetsAt       *string `json:"resets_at"`
}

type totalsView struct {
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

type usageView struct {
	Plan       string       `json:"plan"`
	Window5h   windowView   `json:"window_5h"`
	Weekly     windowView   `json:"weekly"`
	Monthly    windowView   `json:"monthly"`
	ExtraUsage spentView    `json:"extra_usage"`
	ByModel    []totalsView `json:"by_model"`
	ByDay      []totalsView `json:"by_day"`
}

type spentView struct {
	SpentUSD Micro `json:"spent_usd"`
}

type refundPreview struct {
	Eligible           bool   `json:"eligible"`
	Reason             string `json:"reason"`
	TotalPaidUSD       Micro  `json:"total_paid_usd"`
	UsageUSD           Micro  `json:"usage_usd"`
	AlreadyRefundedUSD Micro  `json:"already_refunded_usd"`
	RefundableUSD      Micro  `json:"refundable_usd"`
	FeeUSD             Micro  `json:"fee_usd"`
	FinalUSD           Micro  `json:"final_usd"`
}

type refundStatusView struct {
	ID          string  `json:"id"`
	AccountID   string  `json:"account_id"`
	Status      string  `json:"status"`
	Plan        string  `json:"plan"`
	SubmittedAt string  `json:"submitted_at"`
	ResolvedAt  *string `json:"resolved_at"`
	refundPreview
}

type ratePointView struct {
	USDPerFlow Rate   `json:"usd_per_flow"`
	At         string `json:"at"`
}

type rateView struct {
	USDPerFlow Rate            `json:"usd_per_flow"`
	UpdatedAt  string          `json:"updated_at"`
	History    []ratePointView `json:"history"`
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

type modelView struct {
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

func (l *Ledger) subscriptionView(a *Account, now int64) subscriptionView {
	if !a.paid() {
		return subscriptionView{Plan: a.Plan, Status: "active"}
	}
	status := "active"
	if a.Sub.Canceled {
		status = "canceled"
	}
	return subscriptionView{
		Plan: a.Plan, Status: status, CycleStart: optTime(a.Sub.CycleStart), CycleEnd: optTime(a.Sub.CycleEnd),
		PendingPlan: str(a.Sub.PendingPlan), PaidUSD: Micro(a.Sub.PaidMicroUSD),
	}
}

func (l *Ledger) accountView(a *Account, now int64) accountView {
	return accountView{
		ID: a.ID, Email: a.Email, Name: a.Name, Plan: a.Plan,
		Subscription: l.subscriptionView(a, now),
		FlowValue:    flowValueView{Tier: a.Tier, Multiplier: Micro(a.MultiplierPPM)},
		ExtraUsage:   l.extraView(a, now),
		BalanceUSD:   Micro(a.BalanceMicroUSD),
		CreatedAt:    rfc3339(a.CreatedAt),
	}
}

func keyView(k *Key) KeyView {
	return KeyView{ID: k.ID, Kind: k.Kind, Name: k.Name, Last4: k.Last4, CreatedAt: rfc3339(k.CreatedAt), LastUsedAt: optTime(k.LastUsedAt)}
}

func (l *Ledger) extraView(a *Account, now int64) extraView {
	v := extraView{Enabled: a.ExtraEnabled, PaygKeyID: str(a.ExtraKeyID), BalanceUSD: Micro(a.BalanceMicroUSD)}
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
func windowAt(w Window, limit, now int64) windowView {
	used := w.UsedMicroFlows
	v := windowView{LimitFlows: Micro(limit)}
	if w.StartedAt == 0 || now >= w.ResetsAt {
		used = 0
	} else {
		resets := resetRFC3339(w.ResetsAt)
		v.StartedAt, v.ResetsAt = optTime(w.StartedAt), &resets
	}
	v.UsedFlows = Micro(used)
	v.RemainingFlows = Micro(max(0, limit-used))
	return v
}

func (l *Ledger) usageView(a *Account, now int64) usageView {
	p := l.effectivePlan(a, now)
	start, end := a.period(now)
	month := a.Monthly
	if month.StartedAt != start {
		month = Window{StartedAt: start, ResetsAt: end}
	}
	v := usageView{
		Plan:     p.ID,
		Window5h: windowAt(a.W5h, p.Window5hMicroFlows, now),
		Weekly:   windowAt(a.Weekly, p.WeeklyMicroFlows, now),
		Monthly:  windowAt(month, p.MonthlyMicroFlows, now),
		ByModel:  []totalsView{},
		ByDay:    []totalsView{},
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

func totals(t *Totals) totalsView {
	return totalsView{
		Requests: t.Requests, InputTokens: t.InputTokens, OutputTokens: t.OutputTokens,
		CacheReadTokens: t.CacheReadTokens, CacheWriteTokens: t.CacheWriteTokens,
		Flows: Micro(t.MicroFlows), USDValue: Micro(t.MicroUSD),
	}
}

func refundPreviewView(reason string, paid, usage, already int64) refundPreview {
	refundable, fee, final := refundFigures(paid, usage, already)
	return refundPreview{
		Eligible: reason == "", Reason: reason,
		TotalPaidUSD: Micro(paid), UsageUSD: Micro(usage), AlreadyRefundedUSD: Micro(already),
		RefundableUSD: Micro(refundable), FeeUSD: Micro(fee), FinalUSD: Micro(final),
	}
}

func refundView(r *Refund) refundStatusView {
	return refundStatusView{
		ID: r.ID, AccountID: r.AccountID, Status: r.Status, Plan: r.Plan,
		SubmittedAt: rfc3339(r.SubmittedAt), ResolvedAt: optTime(r.ResolvedAt),
		refundPreview: refundPreviewView("", r.PaidMicroUSD, r.UsageMicroUSD, r.RefundedMicroUSD),
	}
}

func (l *Ledger) rateView() rateView {
	if len(l.rates) == 0 {
		return rateView{History: []ratePointView{}}
	}
	last := l.rates[len(l.rates)-1]
	v := rateView{USDPerFlow: Rate(last.NanoUSDPerFlow), UpdatedAt: rfc3339(last.At)}
	for _, r := range l.rates {
		v.History = append(v.History, ratePointView{USDPerFlow: Rate(r.NanoUSDPerFlow), At: rfc3339(r.At)})
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

// publicModelView is a model on the public pricing page: its prices and
// plans, not who serves it.
type publicModelView struct {
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
}

func renderPublicModel(m *Model) publicModelView {
	return publicModelView{
		ID: m.ID, Name: cmp.Or(m.Name, m.ID), Modality: m.Modality,
		InputUSDPerMTok: Micro(m.InputMicroUSDPerMTok), OutputUSDPerMTok: Micro(m.OutputMicroUSDPerMTok),
		CacheReadUSDPerMTok: Micro(m.CacheReadMicroUSDPerM), CacheWriteUSDPerMTok: Micro(m.CacheWriteMicroUSDPerM),
		ImageUSD: Micro(m.ImageMicroUSD), RequestUSD: Micro(m.RequestMicroUSD), Plans: append([]string(nil), m.Plans...),
	}
}

func renderModel(m *Model) modelView {
	return modelView{
		ID: m.ID, Name: m.Name, Modality: m.Modality, Provider: m.Provider, Upstream: m.Upstream, Unpriced: m.Unpriced,
		InputUSDPerMTok: Micro(m.InputMicroUSDPerMTok), OutputUSDPerMTok: Micro(m.OutputMicroUSDPerMTok),
		CacheReadUSDPerMTok: Micro(m.CacheReadMicroUSDPerM), CacheWriteUSDPerMTok: Micro(m.CacheWriteMicroUSDPerM),
		ImageUSD: Micro(m.ImageMicroUSD), RequestUSD: Micro(m.RequestMicroUSD), Plans: append([]string(nil), m.Plans...),
	}
}
