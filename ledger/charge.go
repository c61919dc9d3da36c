package ledger

import (
	"math/bits"
	"time"
)

// Price is the cost of one request: its API value in micro-USD (M2) and
// its Flows (M4), each rounded half-up once from the exact value.
type Price struct {
	MicroUSD   int64
	MicroFlows int64
}

// u128 is an unsigned 128-bit accumulator for exact pricing.
type u128 struct{ hi, lo uint64 }

func (u *u128) addMul(a, b uint64) {
	hi, lo := bits.Mul64(a, b)
	var c uint64
	u.lo, c = bits.Add64(u.lo, lo, 0)
	u.hi, _ = bits.Add64(u.hi, hi, c)
}

// divHalfUp divides by d with half-up rounding; ok is false on overflow.
func (u u128) divHalfUp(d uint64) (uint64, bool) {
	lo, c := bits.Add64(u.lo, d/2, 0)
	hi := u.hi + c
	if hi >= d {
		return 0, false
	}
	q, _ := bits.Div64(hi, lo, d)
	return q, true
}

// PriceOf computes M2 and M4 for token counts at a model's prices, a rate
// in nano-USD per Flow and a multiplier in ppm:
//
//	picoUSD = Σ tokens × µUSD/Mtok + (images × image µUSD + request µUSD) × 1e6
//	µUSD    = round(picoUSD / 1e6)
//	µFlows  = round(picoUSD × 1e9 / (nanoUSDPerFlow × multiplierPPM))
//
// which is api_value / (usd_per_flow × multiplier) in micro-Flows with a
// single rounding. Inputs are bounded by validation, so overflow is a bug.
func PriceOf(m *Model, c *Charge, nanoUSDPerFlow, multiplierPPM int64) Price {
	p, ok := priceOf(m, c, nanoUSDPerFlow, multiplierPPM)
	if !ok {
		panic("ledger: price overflow")
	}
	return p
}

// priceOf is PriceOf reporting overflow instead of panicking; the apply
// path rejects such a charge rather than stopping every replica.
func priceOf(m *Model, c *Charge, nanoUSDPerFlow, multiplierPPM int64) (Price, bool) {
	var pico u128
	pico.addMul(uint64(c.InputTokens), uint64(m.InputMicroUSDPerMTok))
	pico.addMul(uint64(c.OutputTokens), uint64(m.OutputMicroUSDPerMTok))
	pico.addMul(uint64(c.CacheReadTokens), uint64(m.CacheReadMicroUSDPerM))
	pico.addMul(uint64(c.CacheWriteTokens), uint64(m.CacheWriteMicroUSDPerM))
	pico.addMul(uint64(c.Images), uint64(m.ImageMicroUSD)*micro)
	pico.addMul(1, uint64(m.RequestMicroUSD)*micro)
	usd, ok := pico.divHalfUp(micro)
	if !ok || usd > maxMicroUSD {
		return Price{}, false
	}
	// × 1e9, then divide by rate × multiplier.
	var scaled u128
	hi1, lo1 := bits.Mul64(pico.lo, 1_000_000_000)
	hiHi, hiLo := bits.Mul64(pico.hi, 1_000_000_000)
	scaled.lo = lo1
	var carry uint64
	scaled.hi, carry = bits.Add64(hiLo, hi1, 0)
	if hiHi != 0 || carry != 0 {
		return Price{}, false
	}
	flows, ok := scaled.divHalfUp(uint64(nanoUSDPerFlow) * uint64(multiplierPPM))
	if !ok || flows > maxMicroFlows {
		return Price{}, false
	}
	return Price{MicroUSD: int64(usd), MicroFlows: int64(flows)}, true
}

// ChargeResult answers one charge of a batch.
type ChargeResult struct {
	Status     string // charged | exists | rejected
	Reason     string `json:",omitempty"`
	MicroUSD   int64
	MicroFlows int64
}

func (b *ChargeBatch) apply(l *Ledger, now int64) ([]ChargeResult, error) {
	out := make([]ChargeResult, len(b.Charges))
	l.entrySeq++
	l.startBlock()
	for i := range b.Charges {
		out[i] = l.applyCharge(&b.Charges[i], now, b.Retry)
	}
	return out, nil
}

func validateCharge(c *Charge) string {
	switch {
	case !validID(c.ReqID):
		return "bad request id"
	case c.Billing != BillingSubscription && c.Billing != BillingPayg:
		return "bad billing mode"
	}
	for _, n := range [...]int64{c.InputTokens, c.OutputTokens, c.CacheReadTokens, c.CacheWriteTokens} {
		if n < 0 || n > MaxTokensPerKind {
			return "token count out of range"
		}
	}
	if c.Images < 0 || c.Images > MaxImagesPerRequest {
		return "image count out of range"
	}
	return ""
}

// applyCharge meters one completed request (Q4, Q7, E2, U1, K4). A request
// id already applied answers "exists" and changes nothing (C2): its dedupe
// record — its own, or its batch's block, keyed by the batch's first
// charge — is keyed by admission time and id, which a retry carries
// unchanged, so the check is one point lookup — in the newest part of the
// key space, where Pebble finds a missing key without reading old files.
func (l *Ledger) applyCharge(c *Charge, now int64, retry bool) ChargeResult {
	if why := validateCharge(c); why != "" {
		return ChargeResult{Status: "rejected", Reason: why}
	}
	if c.AdmittedAt <= 0 {
		return ChargeResult{Status: "rejected", Reason: "no admission time"}
	}
	suffix := logSuffix(c.AdmittedAt, c.ReqID)
	if l.logged(suffix, retry) {
		return ChargeResult{Status: "exists"}
	}
	a := l.accounts[c.AccountID]
	if a == nil {
		return ChargeResult{Status: "rejected", Reason: "unknown account"}
	}
	m := l.lookupModel(c.Model)
	if m == nil {
		return ChargeResult{Status: "rejected", Reason: "unknown model"}
	}
	l.settle(a, now)
	admittedAt := min(c.AdmittedAt, now)
	mult := a.MultiplierPPM
	if c.Billing == BillingPayg {
		mult = micro // pay-as-you-go pays the API value in USD
	}
	price, ok := priceOf(m, c, l.rateAt(admittedAt), mult)
	if !ok {
		return ChargeResult{Status: "rejected", Reason: "amount out of range"}
	}
	flows := price.MicroFlows
	if c.Billing == BillingSubscription {
		l.chargeWindows(a, now, admittedAt, flows)
		if left, ok := a.Allowances[c.Node]; ok {
			if left -= flows; left > 0 {
				a.Allowances[c.Node] = left
			} else {
				delete(a.Allowances, c.Node)
			}
		}
		if a.paid() && admittedAt >= a.Sub.CycleStart {
			a.Sub.UsageMicroUSD = satAdd(a.Sub.UsageMicroUSD, price.MicroUSD)
		}
		if r := l.refunds[a.PendingRefund]; r != nil && admittedAt >= r.CycleStart && admittedAt < r.SubmittedAt {
			// R3: a request in flight at submit is counted in the refund.
			r.UsageMicroUSD = satAdd(r.UsageMicroUSD, price.MicroUSD)
			l.markRefund(r)
		}
	} else {
		flows = 0
		a.BalanceMicroUSD = satAdd(a.BalanceMicroUSD, -price.MicroUSD)
		if c.ViaExtra {
			start, _ := a.applyPeriod(now)
			if a.ExtraPeriodStart != start {
				a.ExtraPeriodStart, a.ExtraSpentMicroUSD = start, 0
			}
			a.ExtraSpentMicroUSD = satAdd(a.ExtraSpentMicroUSD, price.MicroUSD)
		}
	}
	if a.lastModTot == nil || a.lastModel != m.ID {
		a.lastModel, a.lastModTot = m.ID, l.totals(l.byModel, a.ID, m.ID)
	}
	a.lastModTot.add(c, flows, price.MicroUSD)
	l.markTotals(a.lastModTot, "bymodel/", a.ID, m.ID)
	if day := l.dayOf(now); a.lastDayTot == nil || a.lastDay != day {
		a.lastDay, a.lastDayTot = day, l.totals(l.days, a.ID, day)
	}
	a.lastDayTot.add(c, flows, price.MicroUSD)
	l.markTotals(a.lastDayTot, "day/", a.ID, a.lastDay)
	l.touchKey(a, c.KeyID, now)
	if c.ViaExtra { // the pay-as-you-go key Extra Usage billed was used too (E2)
		l.touchKey(a, a.ExtraKeyID, now)
	}
	l.markAccount(a)
	status := c.Status
	if status == "" {
		status = "ok"
	}
	e := &LogEntry{
		ID: c.ReqID, AccountID: a.ID, KeyID: c.KeyID, At: now, AdmittedAt: c.AdmittedAt, Model: m.ID,
		InputTokens: c.InputTokens, OutputTokens: c.OutputTokens, CacheReadTokens: c.CacheReadTokens,
		CacheWriteTokens: c.CacheWriteTokens, Images: c.Images, MicroFlows: flows, MicroUSD: price.MicroUSD,
		Billing: c.Billing, Status: status, Estimated: c.Estimated, Prev: a.LastLog, suffix: suffix,
	}
	l.newLogs = append(l.newLogs, e)
	a.LastLog = l.logAddress(e)
	l.unflushed[suffix] = l.entrySeq
	if retry {
		l.markRetried(suffix)
	}
	return ChargeResult{Status: "charged", MicroUSD: price.MicroUSD, MicroFlows: flows}
}

// chargeWindows adds a completed request's Flows to the 5 h, weekly and
// monthly windows (Q4). A rolling window that is not active opens at the
// request's admission time, but never before the previous window ended and
// never so early that it is already over (Q1, Q2).
func (l *Ledger) chargeWindows(a *Account, now, admittedAt, flows int64) {
	for _, w := range []struct {
		win    *Window
		length int64
	}{{&a.W5h, window5h}, {&a.Weekly, windowWeekly}} {
		if w.win.StartedAt == 0 || now >= w.win.ResetsAt {
			start := admittedAt
			if start < w.win.ResetsAt {
				start = w.win.ResetsAt
			}
			if start+w.length <= now || start > now {
				start = now
			}
			*w.win = Window{StartedAt: start, ResetsAt: start + w.length}
		}
		w.win.UsedMicroFlows = satAdd(w.win.UsedMicroFlows, flows)
	}
	start, end := a.applyPeriod(now)
	if a.Monthly.StartedAt != start {
		a.Monthly = Window{StartedAt: start, ResetsAt: end}
	}
	a.Monthly.UsedMicroFlows = satAdd(a.Monthly.UsedMicroFlows, flows)
}

// touchKey records that the account's key id was used at now, to the
// minute (K4), and never before the key's creation: a key made at
// 12:00:30 and used at once shows 12:00:30, not 12:00:00.
func (l *Ledger) touchKey(a *Account, id string, now int64) {
	k := l.keys[id]
	if k == nil || k.AccountID != a.ID {
		return
	}
	at := max(now-now%int64(time.Minute), k.CreatedAt)
	if k.LastUsedAt != at {
		k.LastUsedAt = at
		l.markKey(k.ID)
	}
}
