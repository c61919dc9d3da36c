package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Durability of acknowledged money moves (C2) and exactly-once
// application of Idempotency-Keys (C4) across kill -9 and clean restarts.

// topUp is one planned balance top-up: a distinct key, a distinct amount.
type topUp struct {
	key     string
	account string
	cents   int64

	// Filled by the first (pre-kill) phase.
	sent     bool  // a request was made before the kill
	acked    bool  // a 200 was received before the kill
	ackCents int64 // balance_usd of that 200 (the "first result")
	status   int   // last HTTP status, 0 for a transport error
	err      string
}

func (u *topUp) body() string {
	return fmt.Sprintf(`{"add_usd":%d.%02d}`, u.cents/100, u.cents%100)
}

// moneyClient is a plain HTTP client for the admin API that never retries
// on its own: net/http would replay a request carrying an Idempotency-Key
// on a reused connection that broke, so GetBody is cleared.
type moneyClient struct {
	hc    *http.Client
	admin string
	token string
}

func newMoneyClient(n *Node, timeout time.Duration) *moneyClient {
	tr := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	return &moneyClient{hc: &http.Client{Timeout: timeout, Transport: tr}, admin: n.Admin, token: n.Token}
}

func (c *moneyClient) close() { c.hc.CloseIdleConnections() }

// do returns the status and body, or a transport error.
func (c *moneyClient) do(method, path, body, idemKey string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.admin+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.GetBody = nil // not replayable: no transparent retry by net/http
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, b, nil
}

// topUp posts u once and returns the balance_usd of a 200 in cents.
func (c *moneyClient) topUp(u *topUp) (status int, cents int64, err error) {
	st, b, err := c.do("POST", "/admin/v1/accounts/"+u.account+"/balance", u.body(), u.key)
	if err != nil {
		return st, 0, err
	}
	if st != 200 {
		return st, 0, fmt.Errorf("status %d: %s", st, b)
	}
	cents, err = balanceCents(b)
	return st, cents, err
}

// balance reads an account's balance_usd in cents.
func (c *moneyClient) balance(acct string) (int64, error) {
	st, b, err := c.do("GET", "/admin/v1/accounts/"+acct, "", "")
	if err != nil {
		return 0, err
	}
	if st != 200 {
		return 0, fmt.Errorf("GET account %s: status %d: %s", acct, st, b)
	}
	return balanceCents(b)
}

// balanceCents extracts balance_usd from a JSON object, exactly.
func balanceCents(body []byte) (int64, error) {
	var raw map[string]any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&raw); err != nil {
		return 0, fmt.Errorf("not a JSON object: %v: %s", err, body)
	}
	n, ok := raw["balance_usd"].(json.Number)
	if !ok {
		return 0, fmt.Errorf("no numeric balance_usd in %s", body)
	}
	return usdToCents(string(n))
}

// usdToCents parses a decimal string ("12.34", "5", "0.100000", "-1.5")
// into integer cents; it refuses exponents and non-zero sub-cent digits.
func usdToCents(s string) (int64, error) {
	orig := s
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	ip, fp, _ := strings.Cut(s, ".")
	if ip == "" || strings.Trim(ip, "0123456789") != "" || strings.Trim(fp, "0123456789") != "" || len(ip) > 15 {
		return 0, fmt.Errorf("amount %q is not a plain decimal", orig)
	}
	if len(fp) > 2 {
		if strings.Trim(fp[2:], "0") != "" {
			return 0, fmt.Errorf("amount %q is not whole cents", orig)
		}
		fp = fp[:2]
	}
	for len(fp) < 2 {
		fp += "0"
	}
	var c int64
	for _, r := range ip + fp {
		c = c*10 + int64(r-'0')
	}
	if neg {
		c = -c
	}
	return c, nil
}

func centsString(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}

func createAccounts(t *testing.T, n *Node, count int, prefix string) []string {
	t.Helper()
	var ids []string
	for i := 0; i < count; i++ {
		r := n.AdminDo("POST", "/admin/v1/accounts", fmt.Sprintf(`{"email":"%s%d@example.com","name":"%s %d"}`, prefix, i, prefix, i))
		if r.Status != 201 {
			t.Fatalf("create account: %d %s", r.Status, r.Body)
		}
		id := Get(r.JSON(t), "id")
		if id == "" || id == "null" || id == "<missing>" {
			t.Fatalf("create account: no id in %s", r.Body)
		}
		ids = append(ids, id)
	}
	return ids
}

// runParallel runs f over items with w workers and returns the first
// error messages (bounded).
func runParallel(items []*topUp, w int, f func(*topUp) error) []string {
	var (
		mu   sync.Mutex
		errs []string
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for i := 0; i < w; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1)) - 1
				if k >= len(items) {
					return
				}
				if err := f(items[k]); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("key %s: %v", items[k].key, err))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// TestKill9TopUpsExactlyOnce: 16 clients top up 4 accounts with distinct
// keys and amounts; the node is SIGKILLed midway. After a restart every
// acknowledged top-up is there (C2), an unacknowledged one is there at
// most once, and retrying or replaying any key never applies it twice (C4).
func TestKill9TopUpsExactlyOnce(t *testing.T) {
	const (
		accounts   = 4
		clients    = 16
		totalKeys  = 2400
		killAfter  = 1000 // acknowledged top-ups before the kill
		phaseLimit = 25 * time.Second
	)
	start := time.Now()
	n := StartNode(t, NodeOptions{})
	ids := createAccounts(t, n, accounts, "durable")

	run := fmt.Sprintf("k9-%d", time.Now().UnixNano())
	plan := make([]*topUp, totalKeys)
	for k := range plan {
		// Amount 1.00 + k×0.01 USD: every key's amount is distinct.
		plan[k] = &topUp{key: fmt.Sprintf("%s-%05d", run, k), account: ids[k%accounts], cents: 100 + int64(k)}
	}

	// Phase 1: concurrent top-ups, kill -9 midway.
	mc := newMoneyClient(n, 3*time.Second)
	var (
		next      atomic.Int64
		ackedN    atomic.Int64
		killed    atomic.Bool
		reached   = make(chan struct{})
		reachOnce sync.Once
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(phaseLimit)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !killed.Load() && time.Now().Before(deadline) {
				k := int(next.Add(1)) - 1
				if k >= len(plan) {
					return
				}
				u := plan[k]
				u.sent = true
				st, bal, err := mc.topUp(u)
				u.status = st
				if err != nil {
					u.err = err.Error()
					continue // unacknowledged; the loop ends once killed is set
				}
				u.acked, u.ackCents = true, bal
				if ackedN.Add(1) >= killAfter {
					reachOnce.Do(func() { close(reached) })
				}
			}
		}()
	}
	select {
	case <-reached:
	case <-time.After(phaseLimit):
	}
	killed.Store(true)
	n.Kill()
	wg.Wait()
	mc.close()
	killAt := time.Since(start)
	if got := ackedN.Load(); got < killAfter {
		t.Fatalf("only %d top-ups acknowledged within %v (want %d before the kill)", got, phaseLimit, killAfter)
	}

	var acked, unacked, unsent []*topUp
	for _, u := range plan {
		switch {
		case u.acked:
			acked = append(acked, u)
		case u.sent:
			unacked = append(unacked, u)
			if u.status >= 400 && u.status < 500 {
				t.Errorf("key %s got a client error before the kill: %s", u.key, u.err)
			}
		default:
			unsent = append(unsent, u)
		}
	}
	if len(unacked) == 0 {
		t.Logf("note: no top-up was in flight at the kill")
	}

	// Restart on the same data dir.
	n.Start()
	restartAt := time.Since(start)
	rc := newMoneyClient(n, 15*time.Second)
	defer rc.close()

	// Step 1 bounds: Σacked ≤ balance ≤ Σacked + Σunacked per account.
	sumAcked := map[string]int64{}
	sumUnacked := map[string]int64{}
	sumAll := map[string]int64{}
	for _, u := range acked {
		sumAcked[u.account] += u.cents
	}
	for _, u := range unacked {
		sumUnacked[u.account] += u.cents
	}
	for _, u := range plan {
		sumAll[u.account] += u.cents
	}
	afterRestart := map[string]int64{}
	outOfBounds := false
	for _, id := range ids {
		b, err := rc.balance(id)
		if err != nil {
			t.Fatal(err)
		}
		afterRestart[id] = b
		extra := b - sumAcked[id]
		if extra < 0 {
			outOfBounds = true
			t.Errorf("account %s: balance %s after kill -9 is below the acknowledged sum %s: %s of acknowledged top-ups lost (C2)",
				id, centsString(b), centsString(sumAcked[id]), centsString(-extra))
		}
		if extra > sumUnacked[id] {
			outOfBounds = true
			t.Errorf("account %s: balance %s exceeds acknowledged %s + unacknowledged %s: something applied twice",
				id, centsString(b), centsString(sumAcked[id]), centsString(sumUnacked[id]))
		}
	}
	if outOfBounds {
		t.FailNow()
	}

	// Step 2a: retry each unacknowledged key, one at a time, and see whether
	// it was already applied (balance unchanged) or is applied now (balance
	// moves by exactly its amount).
	appliedBefore := map[string]int64{}
	appliedBeforeN := 0
	cur := map[string]int64{}
	for id, b := range afterRestart {
		cur[id] = b
	}
	for _, u := range unacked {
		st, got, err := rc.topUp(u)
		if err != nil {
			t.Fatalf("retry of unacknowledged key %s (status %d): %v", u.key, st, err)
		}
		b, err := rc.balance(u.account)
		if err != nil {
			t.Fatal(err)
		}
		switch b - cur[u.account] {
		case 0: // committed before the kill; the answer is the first result
			appliedBefore[u.account] += u.cents
			appliedBeforeN++
			if got > b {
				t.Errorf("key %s replayed balance %s, above the current %s: not the first result", u.key, centsString(got), centsString(b))
			}
		case u.cents: // applied now
			if got != b {
				t.Errorf("key %s applied now answered balance %s, want %s", u.key, centsString(got), centsString(b))
			}
		default:
			t.Fatalf("retry of key %s (amount %s) moved account %s from %s to %s",
				u.key, centsString(u.cents), u.account, centsString(cur[u.account]), centsString(b))
		}
		cur[u.account] = b
	}
	// Step 1 exact: what was there beyond the acknowledged sum is exactly
	// the unacknowledged keys that the retry found already applied.
	for _, id := range ids {
		if extra := afterRestart[id] - sumAcked[id]; extra != appliedBefore[id] {
			t.Errorf("account %s: balance after restart %s = acknowledged %s + %s, but the already-applied unacknowledged keys sum to %s",
				id, centsString(afterRestart[id]), centsString(sumAcked[id]), centsString(extra), centsString(appliedBefore[id]))
		}
	}

	// Step 2b: send the keys the clients never got to, concurrently.
	errs := runParallel(unsent, clients, func(u *topUp) error {
		if _, _, err := rc.topUp(u); err != nil {
			return err
		}
		return nil
	})
	if len(errs) > 0 {
		t.Fatalf("%d of %d never-sent top-ups failed after restart: %v", len(errs), len(unsent), firstN(errs, 5))
	}

	// Every key applied exactly once.
	final := map[string]int64{}
	for _, id := range ids {
		b, err := rc.balance(id)
		if err != nil {
			t.Fatal(err)
		}
		final[id] = b
		if b != sumAll[id] {
			t.Errorf("account %s: balance %s after all keys, want exactly %s (Σ of every amount once)", id, centsString(b), centsString(sumAll[id]))
		}
	}

	// Step 2c: replay every key once more, concurrently: all 200, nothing moves,
	// and a key acknowledged before the kill answers its first result.
	errs = runParallel(plan, clients, func(u *topUp) error {
		st, got, err := rc.topUp(u)
		if err != nil {
			return fmt.Errorf("replay (status %d): %v", st, err)
		}
		if u.acked && got != u.ackCents {
			return fmt.Errorf("replay answered balance %s, first answer was %s", centsString(got), centsString(u.ackCents))
		}
		return nil
	})
	if len(errs) > 0 {
		t.Errorf("%d of %d replays failed: %v", len(errs), len(plan), firstN(errs, 5))
	}
	for _, id := range ids {
		b, err := rc.balance(id)
		if err != nil {
			t.Fatal(err)
		}
		if b != final[id] {
			t.Errorf("account %s: balance moved from %s to %s on replaying already-used keys (C4)", id, centsString(final[id]), centsString(b))
		}
	}

	t.Logf("keys=%d acked-before-kill=%d unacked=%d (applied-before-kill=%d, applied-on-retry=%d) never-sent=%d; kill at %v, ready again at %v, total %v",
		len(plan), len(acked), len(unacked), appliedBeforeN, len(unacked)-appliedBeforeN, len(unsent),
		killAt.Round(time.Millisecond), restartAt.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// TestSIGTERMCleanRestart: SIGTERM stops the node cleanly within 10 s and a
// restart shows exactly the same accounts and balances; used keys stay used.
func TestSIGTERMCleanRestart(t *testing.T) {
	n := StartNode(t, NodeOptions{})
	ids := createAccounts(t, n, 2, "term")
	mc := newMoneyClient(n, 10*time.Second)
	run := fmt.Sprintf("term-%d", time.Now().UnixNano())
	var plan []*topUp
	want := map[string]int64{}
	for k := 0; k < 100; k++ {
		u := &topUp{key: fmt.Sprintf("%s-%03d", run, k), account: ids[k%len(ids)], cents: 100 + int64(k)}
		plan = append(plan, u)
		want[u.account] += u.cents
	}
	if errs := runParallel(plan, 8, func(u *topUp) error {
		_, bal, err := mc.topUp(u)
		u.acked, u.ackCents = err == nil, bal
		return err
	}); len(errs) > 0 {
		t.Fatalf("top-ups: %v", firstN(errs, 5))
	}
	mc.close()

	snapshot := func() map[string]any {
		t.Helper()
		out := map[string]any{}
		for _, id := range ids {
			r := n.AdminDo("GET", "/admin/v1/accounts/"+id, "")
			if r.Status != 200 {
				t.Fatalf("GET account %s: %d %s", id, r.Status, r.Body)
			}
			out[id] = r.JSON(t)
		}
		r := n.AdminDo("GET", "/admin/v1/accounts", "")
		if r.Status != 200 {
			t.Fatalf("GET accounts: %d %s", r.Status, r.Body)
		}
		out["list"] = r.JSON(t)
		return out
	}
	before := snapshot()
	for _, id := range ids {
		c, err := usdToCents(Get(before[id], "balance_usd"))
		if err != nil || c != want[id] {
			t.Fatalf("account %s: balance %s (%v) before stop, want %s", id, Get(before[id], "balance_usd"), err, centsString(want[id]))
		}
	}

	logBefore, _ := os.ReadFile(n.logPath)
	t0 := time.Now()
	n.Stop() // fails the test if the process outlives SIGTERM by 10 s
	stopTook := time.Since(t0)
	logAll, _ := os.ReadFile(n.logPath)
	stopLog := string(logAll[len(logBefore):])
	if !strings.Contains(stopLog, "shutting down") {
		t.Errorf("no \"shutting down\" in the log after SIGTERM:\n%s", tail(stopLog, 2000))
	}
	for _, bad := range []string{`"level":"error"`, `"level":"fatal"`, "panic", "zenmuxd stopped"} {
		if strings.Contains(stopLog, bad) {
			t.Errorf("log after SIGTERM contains %q:\n%s", bad, tail(stopLog, 2000))
		}
	}

	n.Start()
	after := snapshot()
	if !reflect.DeepEqual(before, after) {
		for k := range before {
			if !reflect.DeepEqual(before[k], after[k]) {
				b1, _ := json.Marshal(before[k])
				b2, _ := json.Marshal(after[k])
				t.Errorf("%s differs after a clean restart:\nbefore %s\nafter  %s", k, b1, b2)
			}
		}
	}

	// Used keys are still remembered: replays answer the first result and
	// change nothing.
	rc := newMoneyClient(n, 10*time.Second)
	defer rc.close()
	if errs := runParallel(plan, 8, func(u *topUp) error {
		_, got, err := rc.topUp(u)
		if err != nil {
			return err
		}
		if got != u.ackCents {
			return fmt.Errorf("replay answered %s, first answer was %s", centsString(got), centsString(u.ackCents))
		}
		return nil
	}); len(errs) > 0 {
		t.Errorf("replays after restart: %v", firstN(errs, 5))
	}
	for _, id := range ids {
		b, err := rc.balance(id)
		if err != nil {
			t.Fatal(err)
		}
		if b != want[id] {
			t.Errorf("account %s: balance %s after replays, want %s", id, centsString(b), centsString(want[id]))
		}
	}
	t.Logf("100 top-ups on 2 accounts; SIGTERM exit took %v", stopTook.Round(time.Millisecond))
}
