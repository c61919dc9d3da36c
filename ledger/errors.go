package ledger

import (
	"errors"
	"fmt"
)

// Rejections are results, not failures of the ledger: a rejected command
// changes nothing. Callers match them with errors.Is and map them to wire
// statuses in one place (admin, proxy).
var (
	ErrInvalid             = errors.New("invalid_request")
	ErrNotFound            = errors.New("not_found")
	ErrConflict            = errors.New("conflict")
	ErrIdempotencyConflict = errors.New("idempotency_key_reused")
	ErrNotEligible         = errors.New("refund_not_eligible")

	// Admission (Q4, Q5, E3, P3, K3).
	ErrInvalidAPIKey  = errors.New("invalid_api_key")
	ErrModelNotFound  = errors.New("model_not_found")
	ErrModelNotInPlan = errors.New("model_not_in_plan")
	// ErrModelUnpriced refuses a catalog model that has no price yet: it
	// is never served free (M5).
	ErrModelUnpriced       = errors.New("model_unpriced")
	ErrQuotaExceeded       = errors.New("quota_exceeded")
	ErrInsufficientBalance = errors.New("insufficient_balance")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func notFound(what, id string) error {
	return fmt.Errorf("%w: %s %q", ErrNotFound, what, id)
}

func conflict(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConflict, fmt.Sprintf(format, args...))
}

// QuotaError says which window is exhausted and when it resets (Q5).
type QuotaError struct {
	Window        string // window_5h | weekly | monthly
	ResetsAt      int64  // the real end; Error shows it rounded up to the second
	BalanceEmpty  bool   // Extra Usage is on but the pay-as-you-go balance is ≤ 0
	RetryAfterSec int64
}

func (e *QuotaError) Error() string {
	msg := fmt.Sprintf("%s quota exhausted; resets at %s", e.Window, resetRFC3339(e.ResetsAt))
	if e.BalanceEmpty {
		msg += "; Extra Usage is on but the pay-as-you-go balance is empty"
	}
	return msg
}

// Unwrap lets errors.Is(err, ErrQuotaExceeded) match.
func (e *QuotaError) Unwrap() error { return ErrQuotaExceeded }

// codes name the sentinels on the wire between nodes: a write forwarded to
// the leader comes back as (code, message) and is rebuilt here, so that
// errors.Is matches on the follower exactly as on the leader.
var codes = []error{ErrInvalid, ErrNotFound, ErrConflict, ErrIdempotencyConflict, ErrNotEligible, ErrTooLarge, ErrBadCommand}

// ErrorCode returns the wire code of a rejection ("" if it is none of the
// ledger's).
func ErrorCode(err error) string {
	for _, s := range codes {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return ""
}

// remoteError is a rejection decoded from another node: its message is the
// original's, and it unwraps to the sentinel of its code.
type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// ErrorFromCode rebuilds a rejection from its wire form; an unknown code
// yields nil.
func ErrorFromCode(code, msg string) error {
	for _, s := range codes {
		if s.Error() == code {
			return &remoteError{sentinel: s, msg: msg}
		}
	}
	return nil
}
