package ledger

import ()

// The replicated state. Every field is an integer or a string so that state
// encodes the same on every replica; JSON is the storage form (versionable,
// readable in a dump) but for accounts and totals, which every charge
// rewrites (binary, record_codec.go), and views.go renders the API shapes.

// Plan is a subscription plan (P1). Amounts are micro-units.
type Plan struct {
	ID                 string `json:"id"`
	Name               string `json:"name"`
	PriceMicroUSD      int64  `json:"price_micro_usd"`
	Window5hMicroFlows int64  `json:"window_5h_micro_flows"`
	WeeklyMicroFlows   int64  `json:"weekly_micro_flows"`
	MonthlyMicroFlows  int64  `json:"monthly_micro_flows"`
	RPM                int64  `json:"rpm"`
	Burst              int64  `json:"burst"`
}

// Model is a catalog entry (M2, P3). Token prices are micro-USD per
// million tokens; image and request prices are micro-USD. Provider and
// Upstream may both be empty: the node's routes then say who serves the
// model. An Unpriced model has no price yet and is never served (M5).
type Model struct {
	ID                     string   `json:"id"`
	Name                   string   `json:"name,omitempty"`     // display name; the id when empty
	Modality               string   `json:"modality,omitempty"` // text, image, video or embedding
	Provider               string   `json:"provider"`
	Upstream               string   `json:"upstream"`
	Unpriced               bool     `json:"unpriced,omitempty"`
	InputMicroUSDPerMTok   int64    `json:"input_micro_usd_per_mtok"`
	OutputMicroUSDPerMTok  int64    `json:"output_micro_usd_per_mtok"`
	CacheReadMicroUSDPerM  int64    `json:"cache_read_micro_usd_per_mtok"`
	CacheWriteMicroUSDPerM int64    `json:"cache_write_micro_usd_per_mtok"`
	ImageMicroUSD          int64    `json:"image_micro_usd"`
	RequestMicroUSD        int64    `json:"request_micro_usd"`
	Plans                  []string `json:"plans"`
}

// AllowsPlan reports whether a plan may call the model (P3).
func (m *Model) AllowsPlan(planID string) bool {
	for _, p := range m.Plans {
		if p == planID {
			return true
		}
	}
	return false
}

// RatePoint is one entry of the rate history (M3).
type RatePoint struct {
	NanoUSDPerFlow int64 `json:"nano_usd_per_flow"`
	At             int64 `json:"at"`
}

// Window is a rolling quota window (Q1, Q2) or the monthly period
// (Q3). A rolling window is active while StartedAt ≤ now < ResetsAt.
type Window struct {
	StartedAt      int64 `json:"started_at"`
	ResetsAt       int64 `json:"resets_at"`
	UsedMicroFlows int64 `json:"used_micro_flows"`
}

// Subscription is the paid billing cycle of an account (S1-S5). A
// Free account has Plan "free" and no cycle; its monthly period is
// anchored at the account's creation (Q3).
type Subscription struct {
	CycleAnchor int64  `json:"cycle_anchor"` // start of the first cycle: renewals keep its day of month
	CycleIndex  int    `json:"cycle_index"`
	CycleStart  int64  `json:"cycle_start"`
	CycleEnd    int64  `json:"cycle_end"`
	PendingPlan string `json:"pending_plan"` // downgrade at cycle end (S4)
	Canceled    bool   `json:"canceled"`     // falls back to Free at cycle end (S5)
	// SubscribedAt is the time of the subscribe payment that opened the
	// current run of cycles; refunds are open for 24 h after it (R1).
	SubscribedAt int64 `json:"subscribed_at"`
	// Per-cycle money, reset at each renewal (R2, E4).
	PaidMicroUSD     int64 `json:"paid_micro_usd"`
	UsageMicroUSD    int64 `json:"usage_micro_usd"`
	RefundedMicroUSD int64 `json:"refunded_micro_usd"`
	// Billing is BilledByStripe when the subscription was paid by card
	// (PAY1); empty: the operator records its payments. Customer and
	// PaymentMethod are the provider's, saved for off-session renewals.
	Billing       string `json:"billing,omitempty"`
	Customer      string `json:"customer,omitempty"`
	PaymentMethod string `json:"payment_method,omitempty"`
	// RenewalIntent is the card renewal asked for at the last cycle end
	// and not paid yet (PAY5); the account keeps its plan until
	// RenewalDeadline, then falls to Free.
	RenewalIntent   string `json:"renewal_intent,omitempty"`
	RenewalDeadline int64  `json:"renewal_deadline,omitempty"`
}

// Payment is one line of the billing history.
type Payment struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"` // subscribe | upgrade | renewal | refund | topup | refund_request
	Plan      string `json:"plan,omitempty"`
	MicroUSD  int64  `json:"micro_usd"`
	At        int64  `json:"at"`
	RefundRef string `json:"refund_id,omitempty"`
}

// Totals aggregates usage for one model or one day (U1).
type Totals struct {
	Requests         int64 `json:"requests"`
	InputTokens      int64 `json:"input_tokens"`
	OutputTokens     int64 `json:"output_tokens"`
	CacheReadTokens  int64 `json:"cache_read_tokens"`
	CacheWriteTokens int64 `json:"cache_write_tokens"`
	MicroFlows       int64 `json:"micro_flows"`
	MicroUSD         int64 `json:"micro_usd"`

	dirty bool // changed since the last checkpoint (markTotals)
}

func (t *Totals) add(c *Charge, microFlows, microUSD int64) {
	t.Requests++
	t.InputTokens = satAdd(t.InputTokens, c.InputTokens)
	t.OutputTokens = satAdd(t.OutputTokens, c.OutputTokens)
	t.CacheReadTokens = satAdd(t.CacheReadTokens, c.CacheReadTokens)
	t.CacheWriteTokens = satAdd(t.CacheWriteTokens, c.CacheWriteTokens)
	t.MicroFlows = satAdd(t.MicroFlows, microFlows)
	t.MicroUSD = satAdd(t.MicroUSD, microUSD)
}

// Flow value tiers (M4).
const (
	TierStandard = "standard"
	TierInsider  = "insider"
	TierAbuse    = "abuse"
)

// PlanFree is the plan every account falls back to (S1, S5, R3).
const PlanFree = "free"

// Account is one customer: plan, windows, balance and settings.
type Account struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	Name      string `json:"name"`
	CreatedAt int64  `json:"created_at"`
	Plan      string `json:"plan"`
	Sub       Subscription

	Tier          string `json:"tier"`
	MultiplierPPM int64  `json:"multiplier_ppm"`

	BalanceMicroUSD int64 `json:"balance_micro_usd"`

	ExtraEnabled bool   `json:"extra_enabled"`
	ExtraKeyID   string `json:"extra_key_id"`
	// ExtraSpent is the Extra Usage spend of the period that starts at
	// ExtraPeriodStart (E4: "in this cycle").
	ExtraSpentMicroUSD int64 `json:"extra_spent_micro_usd"`
	ExtraPeriodStart   int64 `json:"extra_period_start"`

	W5h    Window `json:"w5h"`
	Weekly Window `json:"weekly"`
	// Monthly is the Q3 period: StartedAt/ResetsAt are the period bounds.
	Monthly Window `json:"monthly"`

	KeyIDs        []string `json:"key_ids"`
	PendingRefund string   `json:"pending_refund"`
	// LastLog is the key suffix of the account's newest request-log entry,
	// the head of its chain (see LogEntry).
	LastLog string `json:"last_log,omitempty"`
	// Allowances are the Flows each node may still admit against the
	// windows (LeaseFlows), less what its charges have spent.
	Allowances map[string]int64 `json:"allowances,omitempty"`
	// AllowanceAt is when each node last leased, in ledger time: an
	// allowance not renewed for allowanceStale belongs to a node that died
	// or left, and no longer holds the quota.
	AllowanceAt map[string]int64 `json:"allowance_at,omitempty"`

	// freeStart and freeEnd memoise the Free calendar period for the apply
	// path (applyPeriod); derived, never stored.
	freeStart, freeEnd int64
	// The totals the account's last charge added to, by day and by model:
	// the next charge usually adds to the same ones (derived, never stored).
	lastDay, lastModel     string
	lastDayTot, lastModTot *Totals
	dirty                  bool  // changed since the last checkpoint (markAccount)
	dueQueued              int64 // the cycle end last put in the due queue (due.go)
}

// Key kinds (K1).
const (
	KindSubscription = "subscription"
	KindPayg         = "payg"
)

// Key is an API key; only the SHA-256 of its secret is stored (K1).
type Key struct {
	ID         string   `json:"id"`
	AccountID  string   `json:"account_id"`
	Kind       string   `json:"kind"`
	Name       string   `json:"name"`
	Hash       [32]byte `json:"hash"`
	Last4      string   `json:"last4"`
	CreatedAt  int64    `json:"created_at"`
	LastUsedAt int64    `json:"last_used_at"` // to the minute (K4)
}

// Refund statuses (R3).
const (
	RefundProcessing = "processing"
	RefundSucceeded  = "succeeded"
	RefundFailed     = "failed"
	RefundCanceled   = "canceled"
)

// Refund is a refund request and the figures it was computed from (R2).
type Refund struct {
	ID               string `json:"id"`
	AccountID        string `json:"account_id"`
	Status           string `json:"status"`
	Plan             string `json:"plan"`
	CycleStart       int64  `json:"cycle_start"`
	SubmittedAt      int64  `json:"submitted_at"`
	ResolvedAt       int64  `json:"resolved_at"`
	PaidMicroUSD     int64  `json:"paid_micro_usd"`
	UsageMicroUSD    int64  `json:"usage_micro_usd"`
	RefundedMicroUSD int64  `json:"already_refunded_micro_usd"`
	// Saved is the subscription the account had at submit, with its
	// monthly window; a failed or canceled refund gives them back if the
	// cycle has not ended.
	Saved        Subscription `json:"saved"`
	SavedMonthly Window       `json:"saved_monthly"`
	// SavedMultiplierPPM is an Insider's multiplier at submit (0 for any
	// other tier): dropping to Free ends the tier (M4), and a failed or
	// canceled refund, which leaves the subscription unbroken, gives it
	// back.
	SavedMultiplierPPM int64 `json:"saved_insider_multiplier_ppm,omitempty"`
	// ProviderRefs are the card provider's refunds of this refund, one
	// per card payment it returns money to (PAY6, SetRefundRef).
	ProviderRefs []string `json:"provider_refs,omitempty"`
}

// Member is a cluster node's addresses, replicated so any node can answer
// GET /admin/v1/cluster.
type Member struct {
	ID        string `json:"id"`
	RaftAddr  string `json:"raft_addr"`
	AdminAddr string `json:"admin_addr"`
}

// idemRecord remembers a money command's first result (C4).
type idemRecord struct {
	Fingerprint string `json:"fp"`
	Result      []byte `json:"result"`
	At          int64  `json:"at"`
	// A rejected command's first result is its rejection: the wire code
	// and message (errors.go) it is rebuilt from.
	ErrCode string `json:"err_code,omitempty"`
	ErrMsg  string `json:"err,omitempty"`
}

// LogEntry is one request-log line (U1); it is also the charge's dedupe
// record (C2). Entries are stored in binary (logentry.go) under
// rlog/<suffix>, time first; Prev is the suffix of the same account's
// previous entry, so an account's log is a chain that starts at
// Account.LastLog and is read newest first with point lookups.
type LogEntry struct {
	ID               string
	AccountID        string
	KeyID            string
	At               int64
	AdmittedAt       int64
	Model            string
	InputTokens      int64
	OutputTokens     int64
	CacheReadTokens  int64
	CacheWriteTokens int64
	Images           int64
	MicroFlows       int64
	MicroUSD         int64
	Billing          string
	Status           string
	Estimated        bool
	Prev             string

	suffix string // this entry's own key suffix (admission time, id), set when it is created
	// block is the key suffix of the request-log block the entry is
	// stored in (the first entry's suffix) and idx its place there; ""
	// with the stand-alone records of LogFormatEntries (logblock.go).
	block string
	idx   int
	// Pruned before a checkpoint took the entry: its log record, its
	// dedupe record are not written.
	noLog, noDedupe bool
}
