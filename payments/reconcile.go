package payments

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/stripe/stripe-go/v85"

	"zenmux/ledger"
)

// Kinds of difference between the ledger and Stripe.
const (
	DiffPaidNotCredited = "paid_not_credited" // Stripe took the money, the ledger did not credit the intent
	DiffCreditedNotPaid = "credited_not_paid" // the ledger credited an intent Stripe shows no payment for
	DiffAmount          = "amount_mismatch"   // Stripe took another amount than the ledger asked for
	DiffRefundStatus    = "refund_status"     // a Stripe refund's final status differs from the ledger refund's
	DiffRefundUnknown   = "refund_unknown"    // a Stripe refund no ledger refund made
)

// Difference is one disagreement between the ledger and Stripe, for the
// operator.
type Difference struct {
	Kind      string        `json:"kind"`
	IntentID  string        `json:"intent_id,omitempty"`
	RefundID  string        `json:"refund_id,omitempty"`
	StripeID  string        `json:"stripe_id,omitempty"`
	LedgerUSD *ledger.Micro `json:"ledger_usd"`
	StripeUSD *ledger.Micro `json:"stripe_usd"`
	Detail    string        `json:"detail"`
}

// Reconciliation answers GET /admin/v1/payments/reconcile.
type Reconciliation struct {
	Since       string       `json:"since"`
	Intents     int          `json:"intents"`
	StripePaid  int          `json:"stripe_payments"`
	Refunds     int          `json:"stripe_refunds"`
	Differences []Difference `json:"differences"`
}

// maxListed bounds each Stripe listing of a reconciliation.
const maxListed = 10_000

// Reconcile lists every difference between the ledger's payment intents
// created since and Stripe's paid Checkout Sessions, renewal charges and
// refunds created since: money taken and not credited or credited and not
// taken, amounts that differ, refunds whose outcome differs or that zenmux
// did not make. It only reads.
func (s *Stripe) Reconcile(ctx context.Context, since time.Time) (Reconciliation, error) {
	out := Reconciliation{Since: since.UTC().Format(time.RFC3339), Differences: []Difference{}}
	intents, err := s.ledger.Intents(since.UnixNano())
	if err != nil {
		return out, err
	}
	out.Intents = len(intents)
	byID := make(map[string]Intent, len(intents))
	for _, in := range intents {
		byID[in.ID] = in
	}
	// paid: intent id → Stripe object and amount in cents.
	type payment struct {
		ref   string
		cents int64
	}
	paid := map[string]payment{}
	created := &stripe.RangeQueryParams{GreaterThanOrEqual: since.Unix()}
	n := 0
	for sess, err := range s.client.V1CheckoutSessions.List(ctx, &stripe.CheckoutSessionListParams{CreatedRange: created}).All(ctx) {
		if err != nil {
			return out, fmt.Errorf("%w: listing checkout sessions: %w", ErrStripe, err)
		}
		if n++; n > maxListed {
			break
		}
		if id := sess.Metadata["intent_id"]; id != "" && sess.PaymentStatus == stripe.CheckoutSessionPaymentStatusPaid {
			paid[id] = payment{sess.ID, sess.AmountTotal}
		}
	}
	n = 0
	for pi, err := range s.client.V1PaymentIntents.List(ctx, &stripe.PaymentIntentListParams{CreatedRange: created}).All(ctx) {
		if err != nil {
			return out, fmt.Errorf("%w: listing payment intents: %w", ErrStripe, err)
		}
		if n++; n > maxListed {
			break
		}
		// Only renewals carry the intent on the PaymentIntent; a
		// Checkout's is counted through its session.
		if id := pi.Metadata["intent_id"]; id != "" && pi.Status == stripe.PaymentIntentStatusSucceeded {
			paid[id] = payment{pi.ID, pi.AmountReceived}
		}
	}
	out.StripePaid = len(paid)
	for id, p := range paid {
		stripeUSD := ledger.Micro(p.cents * 10_000)
		in, ok := byID[id]
		switch {
		case !ok:
			out.Differences = append(out.Differences, Difference{Kind: DiffPaidNotCredited, IntentID: id, StripeID: p.ref, StripeUSD: &stripeUSD,
				Detail: "Stripe was paid for an intent the ledger does not have since then"})
		case in.Status != ledger.IntentSucceeded:
			ledgerUSD := ledger.Micro(in.MicroUSD)
			out.Differences = append(out.Differences, Difference{Kind: DiffPaidNotCredited, IntentID: id, StripeID: p.ref, StripeUSD: &stripeUSD, LedgerUSD: &ledgerUSD,
				Detail: "the ledger's intent is " + in.Status})
		case int64(stripeUSD) != in.MicroUSD:
			ledgerUSD := ledger.Micro(in.MicroUSD)
			out.Differences = append(out.Differences, Difference{Kind: DiffAmount, IntentID: id, StripeID: p.ref, StripeUSD: &stripeUSD, LedgerUSD: &ledgerUSD,
				Detail: "Stripe took another amount than the ledger asked for"})
		}
	}
	for _, in := range intents {
		if _, ok := paid[in.ID]; !ok && in.Status == ledger.IntentSucceeded {
			ledgerUSD := ledger.Micro(in.MicroUSD)
			out.Differences = append(out.Differences, Difference{Kind: DiffCreditedNotPaid, IntentID: in.ID, StripeID: in.ProviderRef, LedgerUSD: &ledgerUSD,
				Detail: "no paid Checkout Session or charge names this intent at Stripe"})
		}
	}
	n = 0
	for re, err := range s.client.V1Refunds.List(ctx, &stripe.RefundListParams{CreatedRange: created}).All(ctx) {
		if err != nil {
			return out, fmt.Errorf("%w: listing refunds: %w", ErrStripe, err)
		}
		if n++; n > maxListed {
			break
		}
		out.Refunds++
		stripeUSD := ledger.Micro(re.Amount * 10_000)
		id := re.Metadata["refund_id"]
		r, err := s.ledger.Refund(id)
		if id == "" || err != nil {
			out.Differences = append(out.Differences, Difference{Kind: DiffRefundUnknown, RefundID: id, StripeID: re.ID, StripeUSD: &stripeUSD,
				Detail: "no ledger refund made this Stripe refund"})
			continue
		}
		switch st := string(re.Status); {
		case (st == "failed" || st == "canceled") && r.Status == ledger.RefundSucceeded,
			st == "succeeded" && (r.Status == ledger.RefundFailed || r.Status == ledger.RefundCanceled):
			out.Differences = append(out.Differences, Difference{Kind: DiffRefundStatus, RefundID: id, StripeID: re.ID, StripeUSD: &stripeUSD,
				Detail: fmt.Sprintf("Stripe's refund is %s, the ledger's %s", st, r.Status)})
		}
	}
	sort.SliceStable(out.Differences, func(i, j int) bool {
		a, b := out.Differences[i], out.Differences[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.IntentID+a.RefundID+a.StripeID < b.IntentID+b.RefundID+b.StripeID
	})
	return out, nil
}
