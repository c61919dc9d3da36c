package payments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"
	"github.com/valyala/fasthttp"

	"zenmux/internal/apierr"
	"zenmux/ledger"
)

// WebhookPath is where Stripe posts its events, on the proxy listener.
const WebhookPath = "/api/v1/webhooks/stripe"

// WebhookTolerance is how old a signed event may be: an older one is a
// replay of a captured delivery and is refused.
const WebhookTolerance = 5 * time.Minute

// Refund statuses the ledger's RefundStatus takes from Stripe's refunds;
// Stripe's "pending" and "requires_action" leave it processing.
const (
	RefundSucceeded = ledger.RefundSucceeded
	RefundFailed    = ledger.RefundFailed
	RefundCanceled  = ledger.RefundCanceled
)

// Anomaly reasons the driver records.
const (
	AnomalyNoIntent      = "no_intent"      // a Checkout event without our intent id
	AnomalyUnknownRefund = "unknown_refund" // a refund made outside zenmux
	AnomalyRefused       = "refused"        // the ledger refused the event
)

// errBadSignature is a webhook refused before anything is read from it.
var errBadSignature = errors.New("bad_signature")

// Webhook is the fasthttp handler of POST /api/v1/webhooks/stripe. A bad
// signature or a timestamp over WebhookTolerance old is 400 and nothing
// is applied; an event is applied to the ledger exactly once by its id;
// an event type the driver does not take is 200 (Stripe retries anything
// else) and logged; a ledger that cannot commit now is 503, so Stripe
// delivers again.
func (s *Stripe) Webhook(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		apierr.Write(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", errors.New("the Stripe webhook takes POST"))
		return
	}
	ev, err := webhook.ConstructEventWithOptions(ctx.PostBody(), string(ctx.Request.Header.Peek("Stripe-Signature")), s.webhookSecret,
		webhook.ConstructEventOptions{Tolerance: WebhookTolerance, IgnoreAPIVersionMismatch: true})
	if err != nil {
		s.log.Warn().Err(err).Msg("stripe webhook refused: bad signature, stale timestamp or not an event")
		apierr.Write(ctx, fasthttp.StatusBadRequest, "bad_signature", fmt.Errorf("%w: %v", errBadSignature, err))
		return
	}
	if err := s.handle(ctx, &ev); err != nil {
		status, code := fasthttp.StatusInternalServerError, "internal_error"
		if apierr.Unavailable(err) {
			status, code = fasthttp.StatusServiceUnavailable, "unavailable"
		}
		s.log.Error().Err(err).Str("event", ev.ID).Str("type", string(ev.Type)).Msg("stripe webhook not applied; Stripe delivers it again")
		apierr.Write(ctx, status, code, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"received":true}` + "\n")
}

// stripeObject is the part of an event's object the driver reads: a
// Checkout Session, a PaymentIntent or a Refund.
type stripeObject struct {
	ID             string            `json:"id"`
	Metadata       map[string]string `json:"metadata"`
	PaymentStatus  string            `json:"payment_status"`  // session
	AmountTotal    int64             `json:"amount_total"`    // session
	Amount         int64             `json:"amount"`          // payment intent, refund
	AmountReceived int64             `json:"amount_received"` // payment intent
	Currency       string            `json:"currency"`
	Status         string            `json:"status"`         // refund
	PaymentIntent  expandable        `json:"payment_intent"` // session, refund
	Customer       expandable        `json:"customer"`       // session, payment intent
	PaymentMethod  expandable        `json:"payment_method"` // payment intent
}

// expandable is a Stripe reference: an id, or the object (expanded)
// whose id it keeps, or null.
type expandable string

func (e *expandable) UnmarshalJSON(b []byte) error {
	var id string
	if json.Unmarshal(b, &id) == nil {
		*e = expandable(id)
		return nil
	}
	var obj struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return err
	}
	*e = expandable(obj.ID)
	return nil
}

// handle maps one verified event to the ledger. The error is one to
// answer non-2xx for (Stripe delivers again); a ledger refusal is
// recorded as an anomaly instead.
func (s *Stripe) handle(ctx context.Context, ev *stripe.Event) error {
	var obj stripeObject
	if ev.Data == nil || json.Unmarshal(ev.Data.Raw, &obj) != nil {
		return s.anomaly(Anomaly{EventID: ev.ID, Reason: AnomalyRefused, Detail: "event " + string(ev.Type) + " has no readable object"})
	}
	switch ev.Type {
	case "checkout.session.completed", "checkout.session.async_payment_succeeded":
		if obj.PaymentStatus != "paid" {
			// An asynchronous method (a bank debit) pays later: its
			// async_payment_succeeded event credits it.
			s.log.Info().Str("event", ev.ID).Str("session", obj.ID).Str("payment_status", obj.PaymentStatus).Msg("checkout completed, not paid yet")
			return nil
		}
		return s.payment(ev, obj, obj.AmountTotal, OutcomeSucceeded)
	case "checkout.session.async_payment_failed":
		return s.payment(ev, obj, obj.AmountTotal, OutcomeFailed)
	case "checkout.session.expired":
		// Nothing was paid: the subscriber may start again.
		return s.payment(ev, obj, obj.AmountTotal, OutcomeExpired)
	case "payment_intent.succeeded", "payment_intent.payment_failed":
		if obj.Metadata["intent_id"] == "" {
			// A Checkout's own PaymentIntent: its session's event credits
			// it, once.
			s.log.Debug().Str("event", ev.ID).Str("type", string(ev.Type)).Msg("payment intent of a checkout session, applied by the session's event")
			return nil
		}
		if ev.Type == "payment_intent.succeeded" {
			return s.payment(ev, obj, obj.AmountReceived, OutcomeSucceeded)
		}
		return s.payment(ev, obj, obj.Amount, OutcomeFailed)
	case "refund.created", "refund.updated", "refund.failed", "charge.refund.updated":
		return s.refund(ctx, ev, obj)
	}
	s.log.Info().Str("event", ev.ID).Str("type", string(ev.Type)).Msg("stripe event type not taken; answered 200 and ignored")
	return nil
}

// payment applies a payment's outcome to the intent its metadata names;
// the ledger checks the amount and currency against the intent's.
func (s *Stripe) payment(ev *stripe.Event, obj stripeObject, cents int64, outcome string) error {
	id := obj.Metadata["intent_id"]
	if id == "" {
		return s.anomaly(Anomaly{EventID: ev.ID, Reason: AnomalyNoIntent, Detail: fmt.Sprintf("%s %s names no intent_id", ev.Type, obj.ID)})
	}
	// A refund goes back to the payment: a session's PaymentIntent, or the
	// PaymentIntent itself (a renewal).
	ref := string(obj.PaymentIntent)
	if ref == "" {
		ref = obj.ID
	}
	err := s.ledger.ApplyEvent(Event{EventID: ev.ID, IntentID: id, ProviderRef: ref, MicroUSD: cents * 10_000, Currency: obj.Currency,
		Outcome: outcome, Customer: string(obj.Customer), PaymentMethod: string(obj.PaymentMethod)})
	return s.refused(ev, err)
}

// refund settles the ledger refund a Stripe refund's metadata names, now
// that this part of it has a status (settleRefund).
func (s *Stripe) refund(ctx context.Context, ev *stripe.Event, obj stripeObject) error {
	id := obj.Metadata["refund_id"]
	if id == "" {
		return s.anomaly(Anomaly{EventID: ev.ID, Reason: AnomalyUnknownRefund, Detail: fmt.Sprintf("refund %s of %d cents %s was not made by zenmux", obj.ID, obj.Amount, obj.Currency)})
	}
	r, err := s.ledger.Refund(id)
	if err != nil {
		return s.refused(ev, err)
	}
	return s.refused(ev, s.settleRefund(ctx, r, map[string]string{obj.ID: obj.Status}))
}

// refused turns a ledger refusal into an anomaly; other errors (the
// ledger unavailable) go back to Stripe as non-2xx.
func (s *Stripe) refused(ev *stripe.Event, err error) error {
	if err == nil || !isRefusal(err) {
		return err
	}
	return s.anomaly(Anomaly{EventID: ev.ID, Reason: AnomalyRefused, Detail: fmt.Sprintf("%s: %v", ev.Type, err)})
}

func (s *Stripe) anomaly(a Anomaly) error {
	s.log.Warn().Str("event", a.EventID).Str("reason", a.Reason).Str("detail", a.Detail).Msg("stripe event recorded as an anomaly, nothing credited")
	return s.ledger.RecordAnomaly(a)
}

// isRefusal reports a ledger rejection: the event is wrong, not the time,
// so delivering it again would not help.
func isRefusal(err error) bool {
	return errors.Is(err, ledger.ErrInvalid) || errors.Is(err, ledger.ErrNotFound) || errors.Is(err, ledger.ErrConflict) ||
		errors.Is(err, ledger.ErrNotEligible) || errors.Is(err, ledger.ErrIdempotencyConflict)
}
