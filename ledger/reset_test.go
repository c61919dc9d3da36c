package ledger

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A window starts at the nanosecond of its first request, so its real end
// is rarely a whole second; the views show whole seconds. A shown reset is
// rounded up: at the shown instant the window is over, never a fraction of
// a second later (Q1, Q2, Q3, Q5, Q6).

func TestResetRFC3339RoundsUp(t *testing.T) {
	for _, c := range []struct {
		nanos int64
		want  string
	}{
		{t0, "2026-04-01T00:00:00Z"},
		{t0 + 1, "2026-04-01T00:00:01Z"},
		{t0 + 999_999_999, "2026-04-01T00:00:01Z"},
		{t0 + 1_000_000_000, "2026-04-01T00:00:01Z"},
		{t0 - 1, "2026-04-01T00:00:00Z"},
	} {
		if got := resetRFC3339(c.nanos); got != c.want {
			t.Errorf("resetRFC3339(%d) = %s, want %s", c.nanos, got, c.want)
		}
	}
}

// shownAt parses a shown RFC 3339 time back to ledger nanoseconds.
func shownAt(t *testing.T, s string) int64 {
	t.Helper()
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("shown time %q: %v", s, err)
	}
	return at.UnixNano()
}

// rule Q1, Q5, Q6: a 5 h window started at 00:10:00.123456789 really ends
// at 05:10:00.123456789. It shows resets_at 05:10:01 (not the truncated
// 05:10:00, at which it is still exhausted); at exactly the shown instant
// the window is over and the subscription admits again; one nanosecond
// before the real end it does not.
func TestQ1Q5ShownResetIsNotEarly(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	f.advance(10*time.Minute + 123_456_789)
	start := f.now
	end := start + window5h
	f.charge(acct, key, 5, BillingSubscription) // the Free 5 h quota, all of it
	const shown = "2026-04-01T05:10:01Z"
	u := f.usage(acct)
	expect(t, u, "window_5h.used_flows", "5", "window_5h.remaining_flows", "0",
		"window_5h.started_at", "2026-04-01T00:10:00Z", "window_5h.resets_at", shown,
		"weekly.resets_at", "2026-04-08T00:10:01Z")
	resetsAt := shownAt(t, get(u, "window_5h.resets_at"))
	if resetsAt < end || resetsAt-end >= int64(time.Second) {
		t.Fatalf("shown %s is not the real end %s rounded up", get(u, "window_5h.resets_at"), time.Unix(0, end).UTC().Format(time.RFC3339Nano))
	}

	refused := func(now, retryAfter int64) {
		t.Helper()
		ad, err := f.l.Admit(key, EchoModelID, now)
		var qe *QuotaError
		if err != nil || !errors.As(ad.BillingErr, &qe) {
			t.Fatalf("at %s: admitted (%+v, %v), want window_5h exhausted", time.Unix(0, now).UTC().Format(time.RFC3339Nano), ad, err)
		}
		if qe.Window != "window_5h" || qe.ResetsAt != end || qe.RetryAfterSec != retryAfter {
			t.Errorf("at %s: %+v, want window_5h, the real end and Retry-After %d", time.Unix(0, now).UTC().Format(time.RFC3339Nano), qe, retryAfter)
		}
		if msg := qe.Error(); !strings.Contains(msg, "resets at "+shown) {
			t.Errorf("message %q, want it to name the reset %s", msg, shown)
		}
	}
	refused(f.now, 5*3600)
	// The truncated time the views used to show: still exhausted.
	truncated := end - end%int64(time.Second)
	refused(truncated, 1)
	f.now = truncated
	expect(t, f.usage(acct), "window_5h.used_flows", "5", "window_5h.resets_at", shown)
	refused(end-1, 1)
	f.now = end - 1
	expect(t, f.usage(acct), "window_5h.used_flows", "5", "window_5h.remaining_flows", "0", "window_5h.resets_at", shown)

	// At the real end and at the shown instant the window is over.
	for _, now := range []int64{end, resetsAt} {
		ad, err := f.l.Admit(key, EchoModelID, now)
		if err != nil || ad.BillingErr != nil || ad.Billing != BillingSubscription {
			t.Fatalf("at %s: %+v, %v; want admitted on the subscription", time.Unix(0, now).UTC().Format(time.RFC3339Nano), ad, err)
		}
		f.now = now
		expect(t, f.usage(acct), "window_5h.used_flows", "0", "window_5h.remaining_flows", "5",
			"window_5h.started_at", "null", "window_5h.resets_at", "null")
	}
}

// rule E2, Q6: with Extra Usage on, a request before the real end runs on
// pay-as-you-go, and the refusal it would carry names the rounded-up
// reset; at the shown reset the subscription takes over again.
func TestE2ShownResetSwitchesBack(t *testing.T) {
	f := newFixture(t)
	acct, key := f.account()
	payg := f.key(acct, KindPayg)
	f.must(&SetExtra{AccountID: acct, Enabled: true, KeyID: f.keyID(payg)})
	f.must(&TopUp{Idem: f.idem("t"), AccountID: acct, MicroUSD: 1_000_000})
	f.advance(999_999_999)
	end := f.now + window5h
	f.charge(acct, key, 5, BillingSubscription)
	const shown = "2026-04-01T05:00:01Z"
	u := f.usage(acct)
	expect(t, u, "window_5h.resets_at", shown)

	ad, _ := f.l.Admit(key, EchoModelID, end-1)
	if ad.Billing != BillingPayg || !ad.ViaExtra || ad.Exhausted == nil {
		t.Fatalf("one nanosecond before the real end: %+v, want Extra Usage", ad)
	}
	if msg := ad.Exhausted.Error(); !strings.Contains(msg, "resets at "+shown) {
		t.Errorf("message %q, want it to name the reset %s", msg, shown)
	}
	ad, _ = f.l.Admit(key, EchoModelID, shownAt(t, get(u, "window_5h.resets_at")))
	if ad.Billing != BillingSubscription || ad.ViaExtra || ad.BillingErr != nil {
		t.Fatalf("at the shown reset: %+v, want the subscription", ad)
	}
}

// rule Q1, Q2, Q3, Q5: one request exhausts every Free window; each window
// in turn names its reset rounded up, is still exhausted one nanosecond
// before its real end, and is over at the shown instant. The monthly
// period runs from the account's creation at a fraction of a second.
func TestQ5EveryWindowShownResetIsNotEarly(t *testing.T) {
	f := newFixtureAt(t, t0+250_000_000)
	acct, key := f.account()
	f.advance(time.Hour + 500_000_001)
	first := f.now
	f.charge(acct, key, 170, BillingSubscription) // more than the 165.6 monthly
	u := f.usage(acct)
	expect(t, u, "window_5h.started_at", "2026-04-01T01:00:00Z", "window_5h.resets_at", "2026-04-01T06:00:01Z",
		"weekly.started_at", "2026-04-01T01:00:00Z", "weekly.resets_at", "2026-04-08T01:00:01Z",
		"monthly.started_at", "2026-04-01T00:00:00Z", "monthly.resets_at", "2026-05-01T00:00:01Z")
	steps := []struct {
		window string
		end    int64
		shown  string
	}{
		{"window_5h", first + window5h, "2026-04-01T06:00:01Z"},
		{"weekly", first + windowWeekly, "2026-04-08T01:00:01Z"},
		{"monthly", addMonths(t0+250_000_000, 1), "2026-05-01T00:00:01Z"},
	}
	for i, s := range steps {
		ad, _ := f.l.Admit(key, EchoModelID, s.end-1)
		var qe *QuotaError
		if !errors.As(ad.BillingErr, &qe) || qe.Window != s.window || qe.ResetsAt != s.end || qe.RetryAfterSec != 1 {
			t.Fatalf("%s one nanosecond before its real end: %+v, want it exhausted, Retry-After 1", s.window, ad.BillingErr)
		}
		if msg := qe.Error(); !strings.Contains(msg, "resets at "+s.shown) {
			t.Errorf("message %q, want it to name the reset %s", msg, s.shown)
		}
		f.now = s.end - 1
		u := f.usage(acct)
		expect(t, u, s.window+".resets_at", s.shown)
		at := shownAt(t, get(u, s.window+".resets_at"))
		ad, _ = f.l.Admit(key, EchoModelID, at)
		if i+1 < len(steps) {
			if !errors.As(ad.BillingErr, &qe) || qe.Window != steps[i+1].window {
				t.Fatalf("at %s's shown reset: %+v, want %s exhausted next", s.window, ad.BillingErr, steps[i+1].window)
			}
		} else if ad.BillingErr != nil || ad.Billing != BillingSubscription {
			t.Fatalf("at the shown monthly reset: %+v, want the subscription", ad)
		}
		f.now = at
		expect(t, f.usage(acct), s.window+".used_flows", "0")
	}
}
