package proxy

import (
	"strings"
	"testing"
	"time"

	"zenmux/ledger"
)

// A reset the gateway shows (resets_at in a refusal, Retry-After, the
// x-ratelimit-reset-* and anthropic-ratelimit-*-reset headers) is rounded
// up to its resolution: a client that waits until it is not refused again.

// rule Q1, Q5, Q6: a 5 h window opened at 00:00:00.123456789 ends at
// 05:00:00.123456789; the refusal names 05:00:01 with Retry-After 1 one
// nanosecond before that end and at the truncated 05:00:00, and at
// exactly the shown 05:00:01 the subscription answers.
func TestQ5ShownResetAdmitsOnSubscription(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("free")
	g.advance(123_456_789)
	end := g.now.Load() + int64(5*time.Hour)
	g.OpenAI.Handle(limChatUsage(200_000, 0)) // 6.091989 Flows > the 5 of Free
	limWantOK(t, limChat(t, g, key, modelGPT), "subscription")
	const shown = "2026-04-01T05:00:01Z"
	if got := limWindow(t, g, acct, "window_5h", "resets_at"); got != shown {
		t.Fatalf("window_5h resets_at %s, want %s (the real end rounded up)", got, shown)
	}
	for _, now := range []int64{end - end%int64(time.Second), end - 1} {
		g.now.Store(now)
		r := limChat(t, g, key, ledger.EchoModelID)
		if msg := limOpenAIError(t, r, 429, "quota_exceeded"); !strings.Contains(msg, "window_5h") || !strings.Contains(msg, shown) {
			t.Errorf("at %s: message %q, want window_5h and %s", time.Unix(0, now).UTC().Format(time.RFC3339Nano), msg, shown)
		}
		if n := limRetryAfter(t, r); n != 1 {
			t.Errorf("at %s: Retry-After %d, want 1", time.Unix(0, now).UTC().Format(time.RFC3339Nano), n)
		}
		r = limMsg(t, g, key, ledger.EchoModelID)
		if msg := limAnthError(t, r, 429, "rate_limit_error", "quota_exceeded"); !strings.Contains(msg, shown) {
			t.Errorf("at %s: Anthropic message %q, want %s", time.Unix(0, now).UTC().Format(time.RFC3339Nano), msg, shown)
		}
	}
	at, err := time.Parse(time.RFC3339, shown)
	if err != nil {
		t.Fatal(err)
	}
	g.now.Store(at.UnixNano())
	limWantOK(t, limChat(t, g, key, ledger.EchoModelID), "subscription")
}

// rule Q8: 15 requests of Pro's bucket (10 a minute) at one instant, then
// 1.6000005 s: the next request is 4.3999995 s away. Every header and the
// message round that wait up: 4400ms, Retry-After 5, "retry in 5s", and
// the Anthropic reset at 00:00:06 (exactly when the request is available).
func TestQ8ShownResetRoundedUp(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	_, key, _ := g.account("pro")
	for i := 0; i < 15; i++ {
		limWantOK(t, limChat(t, g, key, ledger.EchoModelID), "subscription")
	}
	g.advance(1_600_000_500)
	r := limChat(t, g, key, ledger.EchoModelID)
	if msg := limOpenAIError(t, r, 429, "rate_limit_exceeded"); !strings.Contains(msg, "retry in 5s") {
		t.Errorf("message %q, want \"retry in 5s\"", msg)
	}
	if got := r.Header.Get("x-ratelimit-reset-requests"); got != "4400ms" {
		t.Errorf("x-ratelimit-reset-requests %q, want 4400ms", got)
	}
	if n := limRetryAfter(t, r); n != 5 {
		t.Errorf("Retry-After %d, want 5", n)
	}
	r = limMsg(t, g, key, ledger.EchoModelID)
	limAnthError(t, r, 429, "rate_limit_error", "rate_limit_exceeded")
	if got := r.Header.Get("anthropic-ratelimit-requests-reset"); got != "2026-04-01T00:00:06Z" {
		t.Errorf("anthropic-ratelimit-requests-reset %q, want 2026-04-01T00:00:06Z", got)
	}
	g.now.Store(testT0 + int64(6*time.Second) - 1)
	limOpenAIError(t, limChat(t, g, key, ledger.EchoModelID), 429, "rate_limit_exceeded")
	g.now.Store(testT0 + int64(6*time.Second))
	limWantOK(t, limChat(t, g, key, ledger.EchoModelID), "subscription")
}
