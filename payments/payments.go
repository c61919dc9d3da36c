// Package payments is the card-payment driver: it takes a subscriber's
// plan change or top-up to Stripe Checkout for the amount the ledger
// computed, and applies Stripe's signed webhook events to the ledger,
// which credits each payment exactly once (DESIGN.md). It reaches the
// ledger through the Ledger interface it declares, so it never sees Raft,
// and implements selfservice.Payments.
package payments

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/stripe/stripe-go/v85"

	"zenmux/internal/mint"
	"zenmux/ledger"
	"zenmux/selfservice"
)

// Payment intent kinds (the ledger's PaymentIntent.Kind).
const (
	KindSubscribe = ledger.IntentSubscribe
	KindUpgrade   = ledger.IntentUpgrade
	KindTopUp     = ledger.IntentTopUp
	KindRenewal   = ledger.IntentRenewal
)

// Outcomes of a payment event.
const (
	OutcomeSucceeded = ledger.OutcomeSucceeded
	OutcomeFailed    = ledger.OutcomeFailed
	OutcomeExpired   = ledger.OutcomeExpired
)

// Intent is a payment the ledger asked for: its amount is the ledger's,
// never the browser's or Stripe's.
type Intent struct {
	ID          string
	AccountID   string
	Kind        string
	Plan        string
	MicroUSD    int64
	ProviderRef string // the Checkout Session (cs_…) or PaymentIntent (pi_…) id, once known
	Status      string // pending, succeeded, failed, expired
	// Customer and PaymentMethod are the saved card a renewal is charged
	// to; Attempts the renewal's failed charges so far.
	Customer      string
	PaymentMethod string
	Attempts      int
}

// Refund is a refund the driver is returning to the card (R3, PAY6).
type Refund struct {
	ID     string
	Status string // processing, succeeded, failed, canceled
	// Refs are the Stripe refunds made for it, in Parts order.
	Refs  []string
	Parts []RefundPart
}

// RefundPart is the money a refund returns to one card payment.
type RefundPart struct {
	IntentID   string
	PaymentRef string // the payment (pi_…) refunded
	MicroUSD   int64
}

// NewIntent asks the ledger for a payment. MicroUSD is a top-up's amount;
// the ledger computes the others (the plan price, or S3's proration).
type NewIntent struct {
	ID        string
	AccountID string
	Kind      string
	Plan      string
	MicroUSD  int64
}

// Event is a Stripe event as the ledger applies it, at most once per
// EventID and, for a success, at most once per intent.
type Event struct {
	EventID     string
	IntentID    string
	ProviderRef string // the payment (pi_…) a refund is made against
	MicroUSD    int64
	Currency    string
	Outcome     string // OutcomeSucceeded, OutcomeFailed, OutcomeExpired
	// Customer is the Stripe customer Checkout saved the card to, for
	// off-session renewals.
	Customer      string
	PaymentMethod string
}

// Anomaly is an event the ledger could not apply, kept for the operator.
type Anomaly struct {
	EventID string
	Reason  string
	Detail  string
}

// Ledger is what the driver needs of the replicated ledger: the payment
// commands (each a proposal through Raft) and a few reads. Errors are the
// ledger's (ledger.ErrInvalid, ErrNotFound, ErrConflict, …) or the store's
// unavailable ones (apierr.Unavailable).
type Ledger interface {
	// PlanPayment answers the kind of payment a plan change needs now:
	// KindSubscribe or KindUpgrade, or "" when it costs nothing (a
	// downgrade or a cancel, at cycle end: S4, S5).
	PlanPayment(accountID, action, plan string) (kind string, err error)
	// ApplyFreeChange applies a plan change that costs nothing and answers
	// the ledger's answer to it.
	ApplyFreeChange(accountID, action, plan string) (any, error)
	// CreateIntent records a pending payment, refused when the change is
	// not allowed now.
	CreateIntent(in NewIntent) (Intent, error)
	// SetIntentRef records the Stripe object that collects an intent.
	SetIntentRef(intentID, ref string) error
	// ApplyEvent applies a payment's outcome, exactly once per event id.
	ApplyEvent(e Event) error
	// RecordAnomaly keeps an event the driver could not apply.
	RecordAnomaly(a Anomaly) error
	// RenewalsDue lists the renewals to charge now (PAY5).
	RenewalsDue() ([]Intent, error)
	// ProcessingRefunds lists the refunds still processing.
	ProcessingRefunds() ([]Refund, error)
	// Refund reads one refund.
	Refund(id string) (Refund, error)
	// SetRefundRef records a Stripe refund made for a refund.
	SetRefundRef(refundID, ref string) error
	// Intents lists the payment intents created at or after since (Unix
	// nanoseconds), for reconciliation.
	Intents(since int64) ([]Intent, error)
	// ApplyRefundStatus moves a processing refund to status
	// (RefundSucceeded, RefundFailed, RefundCanceled), once: the move is
	// keyed by the refund, so a webhook and the sweep, or two nodes,
	// settling it at once apply it once.
	ApplyRefundStatus(refundID, status string) error
}

// Errors of the driver.
var (
	ErrConfig   = errors.New("payments: bad configuration")
	ErrStripe   = errors.New("payments: stripe")
	ErrAmount   = errors.New("payments: amount is not whole cents")
	ErrNoIntent = errors.New("payments: no intent")
)

// Options configure the Stripe driver.
type Options struct {
	Ledger        Ledger
	SecretKey     string
	WebhookSecret string
	// APIBase replaces https://api.stripe.com (stripe-mock in tests).
	APIBase string
	// PublicURL is where subscribers reach the proxy listener; Checkout
	// sends them back to its /console.
	PublicURL string
	// SweepEvery is Run's period (DefaultSweepEvery when 0).
	SweepEvery time.Duration
	// HTTPClient calls Stripe; nil is a client with a 30 s timeout.
	HTTPClient *http.Client
	Log        zerolog.Logger
}

// Stripe is the Stripe driver.
type Stripe struct {
	ledger        Ledger
	client        *stripe.Client
	webhookSecret string
	publicURL     string
	sweepEvery    time.Duration
	log           zerolog.Logger
}

var _ selfservice.Payments = (*Stripe)(nil)

// New returns the Stripe driver over opts.
func New(opts Options) (*Stripe, error) {
	if opts.Ledger == nil || opts.SecretKey == "" || opts.WebhookSecret == "" || opts.PublicURL == "" {
		return nil, fmt.Errorf("%w: a ledger, a secret key, a webhook secret and a public URL are required", ErrConfig)
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	cfg := &stripe.BackendConfig{
		HTTPClient: hc, MaxNetworkRetries: stripe.Int64(2),
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if opts.APIBase != "" {
		cfg.URL = stripe.String(strings.TrimRight(opts.APIBase, "/"))
	}
	return &Stripe{
		ledger:        opts.Ledger,
		client:        stripe.NewClient(opts.SecretKey, stripe.WithBackends(stripe.NewBackendsWithConfig(cfg))),
		webhookSecret: opts.WebhookSecret,
		publicURL:     strings.TrimRight(opts.PublicURL, "/"),
		sweepEvery:    opts.SweepEvery,
		log:           opts.Log,
	}, nil
}

// Driver names the driver in answers.
func (*Stripe) Driver() string { return "stripe" }

// Message tells the subscriber what happens next.
func (*Stripe) Message() string {
	return "You pay on Stripe's page. The change applies as soon as Stripe confirms the payment to us, usually within seconds."
}

// RequestPlanChange takes a subscribe or an upgrade to Checkout for the
// ledger's amount; a downgrade or a cancel costs nothing and is applied
// now, effective at cycle end (S4, S5).
func (s *Stripe) RequestPlanChange(accountID, action, plan string) (selfservice.PlanChange, error) {
	kind, err := s.ledger.PlanPayment(accountID, action, plan)
	if err != nil {
		return selfservice.PlanChange{}, err
	}
	if kind == "" {
		v, err := s.ledger.ApplyFreeChange(accountID, action, plan)
		return selfservice.PlanChange{Applied: v}, err
	}
	in, url, err := s.checkout(NewIntent{AccountID: accountID, Kind: kind, Plan: plan})
	return selfservice.PlanChange{CheckoutURL: url, IntentID: in.ID}, err
}

// TopUp takes a pay-as-you-go top-up (E3) to Checkout.
func (s *Stripe) TopUp(accountID string, microUSD int64) (string, error) {
	_, url, err := s.checkout(NewIntent{AccountID: accountID, Kind: KindTopUp, MicroUSD: microUSD})
	return url, err
}

// checkout records the intent in the ledger, which sets or checks its
// amount, then opens a Checkout Session for exactly that amount and links
// the two. The session carries the intent id in its metadata, so its
// webhook finds the intent even if the link was not recorded.
func (s *Stripe) checkout(ni NewIntent) (Intent, string, error) {
	ni.ID = "pay_" + mint.Hex(12)
	in, err := s.ledger.CreateIntent(ni)
	if err != nil {
		return Intent{}, "", err
	}
	cents, err := toCents(in.MicroUSD)
	if err != nil {
		return in, "", err
	}
	params := &stripe.CheckoutSessionCreateParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
		ClientReferenceID: stripe.String(in.AccountID),
		SuccessURL:        stripe.String(s.publicURL + "/console?checkout=success"),
		CancelURL:         stripe.String(s.publicURL + "/console?checkout=canceled"),
		Metadata:          map[string]string{"intent_id": in.ID, "account_id": in.AccountID, "kind": in.Kind},
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionCreateLineItemPriceDataParams{
				Currency:    stripe.String("usd"),
				UnitAmount:  stripe.Int64(cents),
				ProductData: &stripe.CheckoutSessionCreateLineItemPriceDataProductDataParams{Name: stripe.String(lineName(in))},
			},
		}},
	}
	if in.Kind != KindTopUp {
		// A subscription renews off-session with the card paid with here.
		params.CustomerCreation = stripe.String("always")
		params.PaymentIntentData = &stripe.CheckoutSessionCreatePaymentIntentDataParams{SetupFutureUsage: stripe.String("off_session")}
	}
	params.SetIdempotencyKey("checkout-" + in.ID)
	sess, err := s.client.V1CheckoutSessions.Create(context.Background(), params)
	if err != nil {
		return in, "", fmt.Errorf("%w: checkout session for %s: %w", ErrStripe, in.ID, err)
	}
	if err := s.ledger.SetIntentRef(in.ID, sess.ID); err != nil {
		s.log.Warn().Err(err).Str("intent", in.ID).Str("session", sess.ID).Msg("checkout session not linked to its intent; its webhook still names the intent")
	}
	return in, sess.URL, nil
}

// lineName is what the subscriber reads on Checkout's page.
func lineName(in Intent) string {
	switch in.Kind {
	case KindSubscribe:
		return "Subscription: " + in.Plan + " plan, first month"
	case KindUpgrade:
		return "Upgrade to the " + in.Plan + " plan, rest of this cycle"
	case KindRenewal:
		return "Renewal: " + in.Plan + " plan"
	}
	return "Pay-as-you-go balance top-up"
}

// toCents converts the ledger's micro-USD into Stripe's cents; an amount
// that is not whole cents cannot be charged exactly.
func toCents(microUSD int64) (int64, error) {
	if microUSD <= 0 || microUSD%10_000 != 0 {
		return 0, fmt.Errorf("%w: %d micro-USD", ErrAmount, microUSD)
	}
	return microUSD / 10_000, nil
}
