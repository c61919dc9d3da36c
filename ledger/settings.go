package ledger

import (
	"regexp"
	"sort"
	"time"
)

// Bounds on every input, chosen so that no sum or product in the ledger can
// overflow (M1) and so that absurd values are refused, not stored.
const (
	MinNanoUSDPerFlow   = 100_000           // $0.0001 per Flow
	MaxNanoUSDPerFlow   = 100_000_000_000   // $100 per Flow
	MinMultiplierPPM    = 10_000            // 0.01x
	MaxMultiplierPPM    = 10_000_000        // 10x
	MaxPriceMicroUSD    = 1_000_000_000_000 // $1,000,000 a month
	MaxPlanMicroFlows   = 1_000_000_000_000_000
	MaxTokenMicroUSD    = 1_000_000_000 // $1,000 per million tokens
	MaxItemMicroUSD     = 1_000_000_000 // $1,000 per image or request
	MaxTokensPerKind    = 1_000_000_000
	MaxImagesPerRequest = 1_000
	MaxTopUpMicroUSD    = 1_000_000_000_000 // $1,000,000 per top-up
	MaxBalanceMicroUSD  = 1_000_000_000_000_000
	MaxRateLimit        = 1_000_000
	MaxPlans            = 100
	MaxModels           = 10_000
	MaxKeysPerAccount   = 100
	MaxAdvanceNanos     = 10 * 366 * 24 * int64(time.Hour)
)

var (
	planIDPattern  = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)
	modelIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]+/[A-Za-z0-9._:-]+$`)
)

// ValidatePlan checks a plan against every plan rule. It is the one place
// they live: the ledger applies it to each plan it stores, and the admin
// API and config call it before that. It reports every rule broken, not
// only the first, as a *PlanError.
func ValidatePlan(p *Plan) error {
	var e PlanError
	bad := func(field, rule string) { e.Broken = append(e.Broken, BrokenRule{field, rule}) }
	if !planIDPattern.MatchString(p.ID) {
		bad("id", "must be 1-32 of [a-z0-9_-]")
	}
	if p.Name == "" || len(p.Name) > 64 {
		bad("name", "must be 1-64 characters")
	}
	switch {
	case p.PriceMicroUSD < 0 || p.PriceMicroUSD > MaxPriceMicroUSD || p.PriceMicroUSD%centMicroUSD != 0:
		bad("price_usd", "must be whole cents between 0 and 1000000")
	case p.ID == PlanFree && p.PriceMicroUSD != 0:
		bad("price_usd", "must be 0 on the free plan")
	}
	for _, f := range []struct {
		field string
		v     int64
	}{{"window_5h_flows", p.Window5hMicroFlows}, {"weekly_flows", p.WeeklyMicroFlows}, {"monthly_flows", p.MonthlyMicroFlows}} {
		if f.v <= 0 || f.v > MaxPlanMicroFlows {
			bad(f.field, "must be > 0 and ≤ 1e9")
		}
	}
	for _, f := range []struct {
		field string
		v     int64
	}{{"rpm", p.RPM}, {"burst", p.Burst}} {
		if f.v < 1 || f.v > MaxRateLimit {
			bad(f.field, "must be 1..1000000")
		}
	}
	if e.Broken != nil {
		return &e
	}
	return nil
}

// PlanError is a plan that breaks plan rules: each under its field, the
// plan's key in the admin API and the config file (price_usd, rpm, …),
// so callers can file each under its key. It is an ErrInvalid.
type PlanError struct{ Broken []BrokenRule }

// BrokenRule is one rule a plan breaks.
type BrokenRule struct{ Field, Rule string }

func (e *PlanError) Error() string {
	msg := ErrInvalid.Error() + ": "
	for i, b := range e.Broken {
		if i > 0 {
			msg += "; "
		}
		msg += b.Field + " " + b.Rule
	}
	return msg
}

// Unwrap lets errors.Is(err, ErrInvalid) match.
func (e *PlanError) Unwrap() error { return ErrInvalid }

// validateModel checks a model's fields against the plans that exist.
func (l *Ledger) validateModel(m *Model, plans map[string]*Plan) error {
	switch {
	case len(m.ID) > 128 || !modelIDPattern.MatchString(m.ID):
		return invalid("model id %q must look like vendor/name", m.ID)
	case len(m.Name) > 128 || len(m.Modality) > 32:
		return invalid("model name must be at most 128 bytes and modality at most 32")
	case len(m.Provider) > 64:
		return invalid("model provider must be at most 64 characters")
	case m.Provider != "" && m.Upstream == "" || len(m.Upstream) > 128:
		return invalid("model upstream must be 1-128 characters when a provider is named")
	case len(m.Plans) == 0:
		return invalid("model plans must name at least one plan")
	case m.Unpriced && (m.InputMicroUSDPerMTok != 0 || m.OutputMicroUSDPerMTok != 0 || m.CacheReadMicroUSDPerM != 0 ||
		m.CacheWriteMicroUSDPerM != 0 || m.ImageMicroUSD != 0 || m.RequestMicroUSD != 0):
		return invalid("an unpriced model has no prices: setting one prices it")
	}
	for _, v := range []int64{m.InputMicroUSDPerMTok, m.OutputMicroUSDPerMTok, m.CacheReadMicroUSDPerM, m.CacheWriteMicroUSDPerM} {
		if v < 0 || v > MaxTokenMicroUSD {
			return invalid("token prices must be between 0 and 1000 USD per million tokens")
		}
	}
	if m.ImageMicroUSD < 0 || m.ImageMicroUSD > MaxItemMicroUSD || m.RequestMicroUSD < 0 || m.RequestMicroUSD > MaxItemMicroUSD {
		return invalid("image_usd and request_usd must be between 0 and 1000")
	}
	seen := map[string]bool{}
	for _, p := range m.Plans {
		if plans[p] == nil {
			return notFound("plan", p)
		}
		if seen[p] {
			return invalid("plan %q listed twice", p)
		}
		seen[p] = true
	}
	return nil
}

func validRate(n int64) error {
	if n < MinNanoUSDPerFlow || n > MaxNanoUSDPerFlow {
		return invalid("usd_per_flow must be between 0.0001 and 100")
	}
	return nil
}

func (c *Seed) apply(l *Ledger, now int64) (None, error) {
	if l.seeded {
		return None{}, nil
	}
	if err := validRate(c.NanoUSDPerFlow); err != nil {
		return None{}, err
	}
	if c.DedupeDays < 7 || c.RequestLogDays < 1 {
		return None{}, invalid("dedupe_days must be ≥ 7 and request_log_days ≥ 1")
	}
	if c.LogFormat < LogFormatEntries || c.LogFormat > LogFormatCurrent {
		return None{}, invalid("log format %d is not one this build writes (%d–%d)", c.LogFormat, LogFormatEntries, LogFormatCurrent)
	}
	plans := map[string]*Plan{}
	for i := range c.Plans {
		p := c.Plans[i]
		if err := ValidatePlan(&p); err != nil {
			return None{}, err
		}
		plans[p.ID] = &p
	}
	if plans[PlanFree] == nil {
		return None{}, invalid("the plans must include %q", PlanFree)
	}
	models := map[string]*Model{}
	for i := range c.Models {
		m := c.Models[i]
		if err := l.validateModel(&m, plans); err != nil {
			return None{}, err
		}
		models[m.ID] = &m
	}
	l.plans, l.models = plans, models
	l.logFormat = c.LogFormat
	for id := range plans {
		l.markPlan(id)
	}
	for id := range models {
		l.markModel(id)
	}
	for i := range c.Members {
		m := c.Members[i]
		l.members[m.ID] = &m
		l.markMember(m.ID)
	}
	l.rates = []RatePoint{{NanoUSDPerFlow: c.NanoUSDPerFlow, At: now}}
	l.dedupeDays, l.logDays = c.DedupeDays, c.RequestLogDays
	l.seeded = true
	l.startRetryClock(now)
	l.lastPrune = now
	l.markMeta()
	return None{}, nil
}

func (c *SetRate) apply(l *Ledger, now int64) (RateView, error) {
	if err := validRate(c.NanoUSDPerFlow); err != nil {
		return RateView{}, err
	}
	if len(l.rates) >= 10_000 {
		return RateView{}, conflict("rate history is full")
	}
	l.rates = append(l.rates, RatePoint{NanoUSDPerFlow: c.NanoUSDPerFlow, At: now})
	l.markMeta()
	return l.rateView(), nil
}

// rateAt returns the rate in force at t (M3): the last change at or before
// t, or the first rate for times before any change.
func (l *Ledger) rateAt(t int64) int64 {
	i := sort.Search(len(l.rates), func(i int) bool { return l.rates[i].At > t })
	if i == 0 {
		return l.rates[0].NanoUSDPerFlow
	}
	return l.rates[i-1].NanoUSDPerFlow
}

func (c *PutPlan) apply(l *Ledger, _ int64) (PlanView, error) {
	p := c.Plan
	if err := ValidatePlan(&p); err != nil {
		return PlanView{}, err
	}
	if l.plans[p.ID] == nil && len(l.plans) >= MaxPlans {
		return PlanView{}, conflict("at most %d plans", MaxPlans)
	}
	l.plans[p.ID] = &p
	l.markPlan(p.ID)
	return l.planView(&p), nil
}

func (c *PutModel) apply(l *Ledger, _ int64) (ModelView, error) {
	m := c.Model
	if err := l.validateModel(&m, l.plans); err != nil {
		return ModelView{}, err
	}
	if l.models[m.ID] == nil && len(l.models) >= MaxModels {
		return ModelView{}, conflict("at most %d models", MaxModels)
	}
	l.models[m.ID] = &m
	l.markModel(m.ID)
	return renderModel(&m), nil
}

// lookupModel resolves a catalog id, treating bytedance/* and volcengine/*
// as aliases of each other (P3).
func (l *Ledger) lookupModel(id string) *Model {
	if m := l.models[id]; m != nil {
		return m
	}
	for _, pair := range [][2]string{{"bytedance/", "volcengine/"}, {"volcengine/", "bytedance/"}} {
		if len(id) > len(pair[0]) && id[:len(pair[0])] == pair[0] {
			if m := l.models[pair[1]+id[len(pair[0]):]]; m != nil {
				return m
			}
		}
	}
	return nil
}

func (c *AdvanceClock) apply(l *Ledger, now int64) (clockView, error) {
	if c.Nanos <= 0 || c.Nanos > MaxAdvanceNanos {
		return clockView{}, invalid("advance_seconds must be > 0 and at most ten years")
	}
	if l.clockOffset > 10*MaxAdvanceNanos-c.Nanos {
		return clockView{}, invalid("the test clock is already a century ahead")
	}
	l.clockOffset += c.Nanos
	l.markMeta()
	// The clock moved: settle what fell due at the new time at once, so
	// the next read already shows it.
	l.settleDue(now + c.Nanos)
	return clockView{OffsetSeconds: l.clockOffset / int64(time.Second)}, nil
}

func (c *SetMember) apply(l *Ledger, _ int64) (None, error) {
	m := c.Member
	if !validID(m.ID) || m.RaftAddr == "" || len(m.RaftAddr) > 256 || len(m.AdminAddr) > 256 {
		return None{}, invalid("member needs an id, a raft_addr and an admin_addr")
	}
	l.members[m.ID] = &m
	l.markMember(m.ID)
	return None{}, nil
}

func (c *RemoveMember) apply(l *Ledger, _ int64) (None, error) {
	if l.members[c.ID] == nil {
		return None{}, notFound("node", c.ID)
	}
	delete(l.members, c.ID)
	l.markMember(c.ID)
	return None{}, nil
}
