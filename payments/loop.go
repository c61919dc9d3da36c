package payments

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/stripe/stripe-go/v85"
)

// DefaultSweepEvery is how often the leader charges due renewals and
// sends submitted refunds to Stripe.
const DefaultSweepEvery = 30 * time.Second

// Run sweeps every Options.SweepEvery (DefaultSweepEvery when 0) while
// isLeader says this node leads, until ctx is done: one node charges and
// refunds, and a new leader picks up whatever the old one left half done.
func (s *Stripe) Run(ctx context.Context, isLeader func() bool) {
	every := s.sweepEvery
	if every <= 0 {
		every = DefaultSweepEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !isLeader() {
			continue
		}
		if err := s.Sweep(ctx); err != nil {
			s.log.Warn().Err(err).Msg("payments sweep incomplete; the next one retries")
		}
	}
}

// Sweep charges every due renewal and sends every processing refund once;
// its errors are joined, one item's failure not stopping the others.
func (s *Stripe) Sweep(ctx context.Context) error {
	var errs []error
	due, err := s.ledger.RenewalsDue()
	errs = append(errs, err)
	for _, in := range due {
		errs = append(errs, s.renew(ctx, in))
	}
	refunds, err := s.ledger.ProcessingRefunds()
	errs = append(errs, err)
	for _, r := range refunds {
		errs = append(errs, s.sendRefund(ctx, r))
	}
	return errors.Join(errs...)
}

// renew charges a renewal to the saved card, off-session (PAY5). The
// idempotency key names the intent and its attempt: a sweep that charges
// again before the outcome's webhook arrives gets the same PaymentIntent
// back from Stripe, and no second charge. The outcome reaches the ledger
// only through the webhook (payment_intent.succeeded / payment_failed,
// which carry metadata.intent_id).
func (s *Stripe) renew(ctx context.Context, in Intent) error {
	cents, err := toCents(in.MicroUSD)
	if err != nil {
		return err
	}
	if in.Customer == "" {
		return fmt.Errorf("%w: renewal %s: account %s has no saved card", ErrStripe, in.ID, in.AccountID)
	}
	attempt := strconv.Itoa(in.Attempts)
	if in.ProviderRef != "" {
		// This attempt's charge may be made already, its outcome's webhook
		// not arrived yet: charging again once the idempotency key has
		// expired (24 h) would take the money twice.
		pi, err := s.client.V1PaymentIntents.Retrieve(ctx, in.ProviderRef, nil)
		if err != nil {
			return fmt.Errorf("%w: renewal %s: %w", ErrStripe, in.ID, err)
		}
		if pi.Metadata["intent_id"] == in.ID && pi.Metadata["attempt"] == attempt {
			s.log.Info().Str("intent", in.ID).Str("payment_intent", pi.ID).Str("status", string(pi.Status)).Msg("renewal charged; waiting for its webhook")
			return nil
		}
	}
	pm := in.PaymentMethod
	if pm == "" {
		// Checkout saved the card to the customer without naming it in
		// its event: the customer's newest card.
		it := s.client.V1PaymentMethods.List(ctx, &stripe.PaymentMethodListParams{Customer: stripe.String(in.Customer), Type: stripe.String("card")})
		for p, err := range it.All(ctx) {
			if err != nil {
				return fmt.Errorf("%w: renewal %s: cards of %s: %w", ErrStripe, in.ID, in.Customer, err)
			}
			pm = p.ID
			break
		}
		if pm == "" {
			return fmt.Errorf("%w: renewal %s: customer %s has no card", ErrStripe, in.ID, in.Customer)
		}
	}
	params := &stripe.PaymentIntentCreateParams{
		Amount: stripe.Int64(cents), Currency: stripe.String("usd"),
		Customer: stripe.String(in.Customer), PaymentMethod: stripe.String(pm),
		OffSession: stripe.Bool(true), Confirm: stripe.Bool(true),
		Description: stripe.String(lineName(in)),
		Metadata:    map[string]string{"intent_id": in.ID, "account_id": in.AccountID, "kind": in.Kind, "attempt": attempt},
	}
	params.SetIdempotencyKey("renewal-" + in.ID + "-" + attempt)
	pi, err := s.client.V1PaymentIntents.Create(ctx, params)
	if err != nil {
		// A declined card answers an error here too; its
		// payment_intent.payment_failed event records the failure.
		return fmt.Errorf("%w: renewal %s: %w", ErrStripe, in.ID, err)
	}
	if err := s.ledger.SetIntentRef(in.ID, pi.ID); err != nil {
		return err
	}
	s.log.Info().Str("intent", in.ID).Str("payment_intent", pi.ID).Str("status", string(pi.Status)).Msg("renewal charged off-session")
	return nil
}

// sendRefund returns a processing refund to the card payments it covers,
// one Stripe refund per part, recorded on the refund in order; a part
// already recorded is not sent again (a Stripe refund made and not yet
// recorded is found again by its idempotency key). Once every part is
// sent, their statuses settle the refund.
func (s *Stripe) sendRefund(ctx context.Context, r Refund) error {
	for i := len(r.Refs); i < len(r.Parts); i++ {
		p := r.Parts[i]
		cents, err := toCents(p.MicroUSD)
		if err != nil {
			return fmt.Errorf("refund %s: %w", r.ID, err)
		}
		if p.PaymentRef == "" {
			return fmt.Errorf("%w: refund %s: payment intent %s names no payment", ErrStripe, r.ID, p.IntentID)
		}
		params := &stripe.RefundCreateParams{
			PaymentIntent: stripe.String(p.PaymentRef), Amount: stripe.Int64(cents),
			Metadata: map[string]string{"refund_id": r.ID, "intent_id": p.IntentID},
		}
		params.SetIdempotencyKey("refund-" + r.ID + "-" + p.IntentID)
		re, err := s.client.V1Refunds.Create(ctx, params)
		if err != nil {
			return fmt.Errorf("%w: refund %s of %s: %w", ErrStripe, r.ID, p.PaymentRef, err)
		}
		if err := s.ledger.SetRefundRef(r.ID, re.ID); err != nil {
			return err
		}
		r.Refs = append(r.Refs, re.ID)
	}
	return s.settleRefund(ctx, r, nil)
}

// settleRefund moves a refund whose every part was sent to its outcome:
// failed or canceled as soon as one part is, succeeded when all are;
// otherwise it stays processing. known holds statuses an event just told
// (Stripe refund id → status); the others are read from Stripe.
func (s *Stripe) settleRefund(ctx context.Context, r Refund, known map[string]string) error {
	if len(r.Parts) == 0 || len(r.Refs) < len(r.Parts) {
		return nil // the sweep sends the rest first
	}
	outcome := RefundSucceeded
	for _, ref := range r.Refs {
		st, ok := known[ref]
		if !ok {
			re, err := s.client.V1Refunds.Retrieve(ctx, ref, nil)
			if err != nil {
				return fmt.Errorf("%w: refund %s: %w", ErrStripe, ref, err)
			}
			st = string(re.Status)
		}
		switch st {
		case "failed":
			outcome = RefundFailed
		case "canceled":
			if outcome != RefundFailed {
				outcome = RefundCanceled
			}
		case "succeeded":
		default:
			if outcome == RefundSucceeded {
				outcome = ""
			}
		}
	}
	if outcome == "" {
		return nil
	}
	return s.ledger.ApplyRefundStatus(r.ID, outcome)
}
