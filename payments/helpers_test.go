package payments

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"zenmux/ledger"
)

// stripeMockVersion is the stripe-mock the tests are written against.
const stripeMockVersion = "v0.203.0"

// stripeMockBin finds stripe-mock: $STRIPE_MOCK, then the tools cache
// (GOBIN=$HOME/.cache/zenmux-tools/bin go install
// github.com/stripe/stripe-mock@v0.203.0), then PATH.
func stripeMockBin() string {
	if p := os.Getenv("STRIPE_MOCK"); p != "" {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "zenmux-tools", "bin", "stripe-mock")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, _ := exec.LookPath("stripe-mock")
	return p
}

// call is one request the driver sent to Stripe.
type call struct {
	Method, Path, Idem string
	Form               url.Values
}

// mockStripe is stripe-mock on a free loopback port behind a recording
// proxy: the tests read what the driver sent.
type mockStripe struct {
	URL   string
	mu    sync.Mutex
	calls []call
}

func (m *mockStripe) Calls() []call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]call(nil), m.calls...)
}

// startStripeMock starts stripe-mock for the test, or skips it.
func startStripeMock(t *testing.T) *mockStripe {
	t.Helper()
	bin := stripeMockBin()
	if bin == "" {
		t.Skipf("stripe-mock is not installed: GOBIN=$HOME/.cache/zenmux-tools/bin go install github.com/stripe/stripe-mock@%s (or set STRIPE_MOCK)", stripeMockVersion)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-http-addr", "127.0.0.1:")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		cancel()
		t.Skipf("stripe-mock %s does not start: %v", bin, err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "Listening for HTTP at address: "); ok {
				addr <- a
			}
		}
	}()
	var target string
	select {
	case target = <-addr:
	case <-time.After(20 * time.Second):
		t.Fatal("stripe-mock did not say where it listens within 20 s")
	}
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatal(err)
	}
	m := &mockStripe{}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		if r.Method == http.MethodGet {
			form = r.URL.Query()
		}
		m.mu.Lock()
		m.calls = append(m.calls, call{Method: r.Method, Path: r.URL.Path, Idem: r.Header.Get("Idempotency-Key"), Form: form})
		m.mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		r.ContentLength = int64(len(body))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	m.URL = srv.URL
	return m
}

// fakeLedger records the driver's ledger calls and answers as told.
type fakeLedger struct {
	mu         sync.Mutex
	kind       string // PlanPayment's answer
	amount     int64  // CreateIntent's amount for plan kinds
	refuse     error  // CreateIntent's and ApplyEvent's refusal
	intents    []NewIntent
	refs       map[string]string
	free       []string
	events     []Event
	refunds    []string // "refund status" moves
	anomalies  []Anomaly
	due        []Intent  // RenewalsDue's answer
	listed     []Intent  // Intents' answer
	processing []*Refund // the refunds processing
	down       bool      // every command answers unavailable
}

// errDown is the store's "not now" error (no leader).
type errDown struct{}

func (errDown) Error() string     { return "no leader" }
func (errDown) Unavailable() bool { return true }

func newFakeLedger() *fakeLedger { return &fakeLedger{refs: map[string]string{}} }

func (f *fakeLedger) PlanPayment(accountID, action, plan string) (string, error) {
	return f.kind, nil
}

func (f *fakeLedger) ApplyFreeChange(accountID, action, plan string) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.free = append(f.free, action+" "+plan)
	return map[string]string{"plan": plan}, nil
}

func (f *fakeLedger) CreateIntent(in NewIntent) (Intent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return Intent{}, f.refuse
	}
	f.intents = append(f.intents, in)
	amount := in.MicroUSD
	if in.Kind != KindTopUp {
		amount = f.amount
	}
	return Intent{ID: in.ID, AccountID: in.AccountID, Kind: in.Kind, Plan: in.Plan, MicroUSD: amount, Status: "pending"}, nil
}

func (f *fakeLedger) SetIntentRef(intentID, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refs[intentID] = ref
	return nil
}

func (f *fakeLedger) ApplyEvent(e Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errDown{}
	}
	if f.refuse != nil {
		return f.refuse
	}
	f.events = append(f.events, e)
	return nil
}

func (f *fakeLedger) ApplyRefundStatus(refundID, status string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errDown{}
	}
	f.refunds = append(f.refunds, refundID+" "+status)
	return nil
}

func (f *fakeLedger) RenewalsDue() ([]Intent, error) { return f.due, nil }

func (f *fakeLedger) Intents(since int64) ([]Intent, error) { return f.listed, nil }

func (f *fakeLedger) ProcessingRefunds() ([]Refund, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Refund
	for _, r := range f.processing {
		out = append(out, *r)
	}
	return out, nil
}

func (f *fakeLedger) Refund(id string) (Refund, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.processing {
		if r.ID == id {
			return *r, nil
		}
	}
	return Refund{}, fmt.Errorf("%w: refund %q", ledger.ErrNotFound, id)
}

func (f *fakeLedger) SetRefundRef(refundID, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.processing {
		if r.ID == refundID {
			r.Refs = append(r.Refs, ref)
			return nil
		}
	}
	return fmt.Errorf("%w: refund %q", ledger.ErrNotFound, refundID)
}

func (f *fakeLedger) RecordAnomaly(a Anomaly) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errDown{}
	}
	f.anomalies = append(f.anomalies, a)
	return nil
}

// newDriver is a driver over f talking to base ("" → a dead address: the
// test must not reach Stripe).
func newDriver(t *testing.T, f Ledger, base string) *Stripe {
	t.Helper()
	if base == "" {
		base = "http://127.0.0.1:1"
	}
	s, err := New(Options{Ledger: f, SecretKey: "sk_test_123", WebhookSecret: testWebhookSecret, APIBase: base,
		PublicURL: "https://zen.example/", HTTPClient: &http.Client{Timeout: 10 * time.Second}, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const testWebhookSecret = "whsec_test_secret"

var errRefused = fmt.Errorf("%w: refused by the test ledger", ledger.ErrConflict)
