package e2e

// Card payments through Stripe (#11, docs/rules.md PAY1–PAY6) on the real
// binary configured with [payments] provider = "stripe" against
// stripe-mock: a plan change or a top-up opens a Checkout Session for the
// amount the ledger computes, and only the signed webhook, applied once
// whatever its deliveries, changes the ledger; every amount is checked to
// the cent through the admin API.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// payPublicURL is the nodes' payments.public_url: Checkout returns there.
const payPublicURL = "https://zenmux.example.test"

// payEnv is zenmuxd nodes paying through one stripe-mock.
type payEnv struct {
	nodes  []*Node
	mock   *StripeMock
	secret string // the webhook signing secret the nodes hold
}

// payExtra writes the Stripe secrets to files and returns the [payments]
// table naming them.
func payExtra(t *testing.T, mock *StripeMock, secret string) string {
	t.Helper()
	dir := t.TempDir()
	keyFile, secretFile := filepath.Join(dir, "stripe.key"), filepath.Join(dir, "stripe-webhook.secret")
	for path, v := range map[string]string{keyFile: stripeTestKey, secretFile: secret} {
		if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprintf("[payments]\nprovider = \"stripe\"\nstripe_secret_key_file = %q\nstripe_webhook_secret_file = %q\nstripe_api_base = %q\npublic_url = %q\nsweep_every = \"1s\"\n",
		keyFile, secretFile, mock.URL, payPublicURL)
}

// paySecret is a fresh webhook signing secret, as Stripe shows one.
func paySecret() string { return fmt.Sprintf("whsec_e2e%d", time.Now().UnixNano()) }

// payStart starts one node paying through a fresh stripe-mock, skipping
// while the webhook has not landed.
func payStart(t *testing.T, testClock bool) *payEnv {
	t.Helper()
	mock := StartStripeMock(t)
	e := &payEnv{mock: mock, secret: paySecret()}
	e.nodes = []*Node{StartNode(t, NodeOptions{TestClock: testClock, Extra: payExtra(t, mock, e.secret)})}
	payRequireWebhook(t, e.nodes[0])
	return e
}

// payStartCluster is payStart with a 3-node cluster sharing the secrets.
func payStartCluster(t *testing.T) *payEnv {
	t.Helper()
	mock := StartStripeMock(t)
	e := &payEnv{mock: mock, secret: paySecret()}
	e.nodes = startCluster(t, 3, payExtra(t, mock, e.secret))
	payRequireWebhook(t, e.nodes[0])
	return e
}

// payRequireWebhook skips the test while the node serves no Stripe webhook
// (the driver of package payments not wired yet): an unsigned event must
// be refused with 400, and a 404 means there is no endpoint.
func payRequireWebhook(t *testing.T, n *Node) {
	t.Helper()
	r := postStripeRaw(t, n, []byte(`{}`))
	if r.Status == 404 {
		t.Skipf("POST %s answers 404: the Stripe webhook (package payments, wired by node) has not landed", stripeWebhookPath)
	}
}

// payAccount creates an account on Free with a subscription key, the
// bearer its self-service calls use.
func payAccount(t *testing.T, n *Node, name string) (acct, key string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"email": fmt.Sprintf("%s-%d@example.com", name, time.Now().UnixNano()), "name": name})
	acct = Get(wtWant(t, n.AdminDo("POST", "/admin/v1/accounts", string(body)), 201), "id")
	key = Get(wtWant(t, n.AdminDo("POST", "/admin/v1/accounts/"+acct+"/keys", `{"kind":"subscription","name":"card"}`), 201), "key")
	return acct, key
}

// payCheckout is a Checkout the driver opened: the ledger's intent, and
// the Checkout Session call stripe-mock took with what it answered.
type payCheckout struct {
	IntentID  string
	SessionID string
	Cents     int64
	Call      stripeCall
}

// payCheckoutOf waits for the Checkout Session the driver opened for
// intentID and checks it asks exactly cents in USD, once, for acct, in
// payment mode, returning to /console, and, for a plan (forPlan), saving
// the customer and the card for renewals.
func (e *payEnv) payCheckoutOf(t *testing.T, acct, intentID string, cents int64, forPlan bool) payCheckout {
	t.Helper()
	c := e.mock.WaitCall(t, "POST", "/v1/checkout/sessions", 10*time.Second, func(c stripeCall) bool {
		return c.Form.Get("metadata[intent_id]") == intentID
	})
	want := map[string]string{
		"mode":                                          "payment",
		"client_reference_id":                           acct,
		"line_items[0][quantity]":                       "1",
		"line_items[0][price_data][currency]":           "usd",
		"line_items[0][price_data][unit_amount]":        strconv.FormatInt(cents, 10),
		"line_items[0][price_data][product_data][name]": "",
	}
	if forPlan {
		want["payment_intent_data[setup_future_usage]"] = "off_session"
		want["customer_creation"] = "always"
	}
	for k, v := range want {
		got, ok := c.Form[k]
		switch {
		case !ok:
			t.Errorf("Checkout Session for %s: no %s in %v", intentID, k, c.Form)
		case v != "" && (len(got) != 1 || got[0] != v):
			t.Errorf("Checkout Session for %s: %s = %q, want %q", intentID, k, got, v)
		}
	}
	for _, k := range []string{"success_url", "cancel_url"} {
		if u := c.Form.Get(k); !strings.HasPrefix(u, payPublicURL+"/console") {
			t.Errorf("Checkout Session %s %q does not return to %s/console", k, u, payPublicURL)
		}
	}
	if c.Status != 200 || !strings.HasPrefix(Get(c.Answer, "id"), "cs_") {
		t.Fatalf("stripe-mock answered the Checkout Session %d %v", c.Status, c.Answer)
	}
	return payCheckout{IntentID: intentID, SessionID: Get(c.Answer, "id"), Cents: cents, Call: c}
}

// payPlanRequest asks for a plan change as the console does and answers
// the Checkout it opened (the answer's checkout_url and intent_id).
func (e *payEnv) payPlanRequest(t *testing.T, n *Node, key, action, plan string) map[string]any {
	t.Helper()
	r := Do(t, "POST", n.Proxy+"/api/v1/me/plan-requests", fmt.Sprintf(`{"action":%q,"plan":%q}`, action, plan), "Authorization: Bearer "+key)
	m := wtWant(t, r, 201)
	if Get(m, "driver") != "stripe" || !strings.HasPrefix(Get(m, "checkout_url"), "https://checkout.stripe.com/") || Get(m, "intent_id") == "<missing>" {
		t.Fatalf("plan request %s %s: want the stripe driver's checkout_url and intent_id: %s", action, plan, r.Body)
	}
	return m
}

// payTopUp asks for a top-up as the console does and answers its intent
// id, read from the Checkout Session the driver opened for acct.
func (e *payEnv) payTopUp(t *testing.T, n *Node, acct, key, amountUSD string, cents int64) payCheckout {
	t.Helper()
	before := len(e.mock.Calls("POST", "/v1/checkout/sessions"))
	r := Do(t, "POST", n.Proxy+"/api/v1/me/top-ups", fmt.Sprintf(`{"amount_usd":%s}`, amountUSD), "Authorization: Bearer "+key)
	m := wtWant(t, r, 201)
	if Get(m, "driver") != "stripe" || !strings.HasPrefix(Get(m, "checkout_url"), "https://checkout.stripe.com/") {
		t.Fatalf("top-up %s: want the stripe driver's checkout_url: %s", amountUSD, r.Body)
	}
	calls := e.mock.Calls("POST", "/v1/checkout/sessions")
	if len(calls) != before+1 {
		t.Fatalf("top-up %s opened %d Checkout Sessions, want 1", amountUSD, len(calls)-before)
	}
	intent := calls[before].Form.Get("metadata[intent_id]")
	if intent == "" || calls[before].Form.Get("client_reference_id") != acct {
		t.Fatalf("top-up Checkout Session names no intent or another account: %v", calls[before].Form)
	}
	return e.payCheckoutOf(t, acct, intent, cents, false)
}

// payLedger is what the admin API says of an account's money: the
// account (plan, subscription, balance) and its billing history.
type payLedger struct {
	Account []byte
	Billing []byte
}

func payRead(t *testing.T, n *Node, acct string) payLedger {
	t.Helper()
	a := n.AdminDo("GET", "/admin/v1/accounts/"+acct, "")
	b := n.AdminDo("GET", "/admin/v1/accounts/"+acct+"/billing", "")
	if a.Status != 200 || b.Status != 200 {
		t.Fatalf("read %s: account %d %s, billing %d %s", acct, a.Status, a.Body, b.Status, b.Body)
	}
	return payLedger{Account: a.Body, Billing: b.Body}
}

// payBilling is an account's billing history as "type plan amount status"
// lines, oldest first.
func payBilling(t *testing.T, n *Node, acct string) []string {
	t.Helper()
	m := wtWant(t, n.AdminDo("GET", "/admin/v1/accounts/"+acct+"/billing", ""), 200)
	var out []string
	for i := 0; ; i++ {
		p := fmt.Sprintf("data.%d.", i)
		if Get(m, p+"id") == "<missing>" {
			return out
		}
		out = append(out, strings.Join([]string{Get(m, p+"type"), Get(m, p+"plan"), Get(m, p+"amount_usd"), Get(m, p+"status")}, " "))
	}
}

// payAccountView reads the account through the admin API.
func payAccountView(t *testing.T, n *Node, acct string) map[string]any {
	t.Helper()
	return wtWant(t, n.AdminDo("GET", "/admin/v1/accounts/"+acct, ""), 200)
}

// paySend delivers ev to n signed now and wants status.
func (e *payEnv) paySend(t *testing.T, n *Node, ev stripeEvent, status int) *Response {
	t.Helper()
	r := postStripeEvent(t, n, e.secret, time.Now(), ev.JSON())
	if r.Status != status {
		t.Fatalf("%s %s to %s: %d %s, want %d", ev.Type, ev.ID, n.ID, r.Status, r.Body, status)
	}
	return r
}

// payEqualStrings fails unless got equals want, element by element.
func payEqualStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// Subscribe (PAY1, PAY2, S2): the console's request opens a Checkout for
// the plan's price to the cent, and nothing changes until the signed
// checkout.session.completed arrives; then Pro starts, paid $20, once,
// however often the event comes.
func TestPaymentsStripeSubscribe(t *testing.T) {
	e := payStart(t, false)
	n := e.nodes[0]
	acct, key := payAccount(t, n, "card-sub")
	m := e.payPlanRequest(t, n, key, "subscribe", "pro")
	co := e.payCheckoutOf(t, acct, Get(m, "intent_id"), 2000, true)

	// The browser's return is no payment.
	Expect(t, payAccountView(t, n, acct), "plan", "free", "subscription.paid_usd", "0")
	if b := payBilling(t, n, acct); len(b) != 0 {
		t.Fatalf("billing before the webhook: %q", b)
	}

	ev := stripeCheckoutCompleted("evt_sub_1", co.SessionID, co.IntentID, acct, co.Cents, "usd", "pi_e2esub1", "cus_e2esub1")
	e.paySend(t, n, ev, 200)
	a := payAccountView(t, n, acct)
	Expect(t, a, "plan", "pro", "subscription.plan", "pro", "subscription.status", "active", "subscription.paid_usd", "20")
	payEqualStrings(t, "billing after the webhook", payBilling(t, n, acct), []string{"subscribe pro 20 succeeded"})

	// Stripe retries: the same event again changes nothing.
	before := payRead(t, n, acct)
	for i := 0; i < 3; i++ {
		e.paySend(t, n, ev, 200)
	}
	if after := payRead(t, n, acct); string(after.Account) != string(before.Account) || string(after.Billing) != string(before.Billing) {
		t.Fatalf("a replayed event changed the ledger:\n%s\n%s\n→\n%s\n%s", before.Account, before.Billing, after.Account, after.Billing)
	}
}

// Top-up (PAY2, E3): $12.34 asked on the console is a Checkout of 1234
// cents, credited to the balance on the webhook only, once.
func TestPaymentsStripeTopUp(t *testing.T) {
	e := payStart(t, false)
	n := e.nodes[0]
	acct, key := payAccount(t, n, "card-topup")
	co := e.payTopUp(t, n, acct, key, "12.34", 1234)
	Expect(t, payAccountView(t, n, acct), "balance_usd", "0")
	ev := stripeCheckoutCompleted("evt_topup_1", co.SessionID, co.IntentID, acct, co.Cents, "usd", "pi_e2etopup1", "cus_e2etopup1")
	e.paySend(t, n, ev, 200)
	e.paySend(t, n, ev, 200)
	Expect(t, payAccountView(t, n, acct), "balance_usd", "12.34", "plan", "free")
	payEqualStrings(t, "billing", payBilling(t, n, acct), []string{"topup null 12.34 succeeded"})

	// Out of bounds (PAY2: whole cents, $1 to $10,000) is refused before
	// any Checkout.
	calls := len(e.mock.Calls("POST", "/v1/checkout/sessions"))
	for _, amount := range []string{"0.99", "10000.01", "1.001", "0", "-5"} {
		r := Do(t, "POST", n.Proxy+"/api/v1/me/top-ups", fmt.Sprintf(`{"amount_usd":%s}`, amount), "Authorization: Bearer "+key)
		if r.Status != 400 {
			t.Errorf("top-up %s: %d %s, want 400", amount, r.Status, r.Body)
		}
	}
	if got := len(e.mock.Calls("POST", "/v1/checkout/sessions")); got != calls {
		t.Fatalf("refused top-ups opened %d Checkout Sessions", got-calls)
	}
}

// payDeliver posts a signed event without a *testing.T, for goroutines.
func payDeliver(n *Node, secret string, body []byte) (int, error) {
	req, err := http.NewRequest("POST", n.Proxy+stripeWebhookPath, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", stripeSignature(secret, time.Now(), body))
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// payHash waits until the nodes agree and answers their state hash.
func payHash(t *testing.T, nodes []*Node) string {
	t.Helper()
	waitSameState(t, nodes)
	h, _ := stateHashes(t, nodes)
	return h[nodes[0].ID]
}

// payAnomalies lists the anomalies the operator sees (PAY4) as
// "reason intent_id amount currency" lines.
func payAnomalies(t *testing.T, n *Node) []string {
	t.Helper()
	m := wtWant(t, n.AdminDo("GET", "/admin/v1/payments/anomalies", ""), 200)
	var out []string
	for i := 0; ; i++ {
		p := fmt.Sprintf("data.%d.", i)
		if Get(m, p+"id") == "<missing>" {
			return out
		}
		out = append(out, strings.Join([]string{Get(m, p+"event_id"), Get(m, p+"reason"), Get(m, p+"intent_id"), Get(m, p+"amount_usd"), Get(m, p+"currency")}, " "))
	}
}

// The webhook's bad input (#11 "Exactly once", PAY3, PAY4) on a 3-node
// cluster: what Stripe did not sign, signed with another secret, signed
// over other bytes, or more than 5 minutes ago is 400 and changes no
// replica; an event type the driver does not handle and an unpaid session
// are 200 (Stripe retries anything else) and change nothing; an amount or
// currency other than asked, or an unknown payment, is 200 and an anomaly
// for the operator, crediting nothing; a good event delivered four times
// to the three nodes at once credits once.
func TestPaymentsStripeWebhookBadInput(t *testing.T) {
	e := payStartCluster(t)
	n1, n2, n3 := e.nodes[0], e.nodes[1], e.nodes[2]
	acct, key := payAccount(t, n1, "card-bad")
	co := e.payCheckoutOf(t, acct, Get(e.payPlanRequest(t, n2, key, "subscribe", "pro"), "intent_id"), 2000, true)
	good := stripeCheckoutCompleted("evt_bad_good", co.SessionID, co.IntentID, acct, co.Cents, "usd", "pi_e2ebad1", "cus_e2ebad1")
	body := good.JSON()
	tampered := []byte(strings.Replace(string(body), `"amount_total":2000`, `"amount_total":200000`, 1))
	if string(tampered) == string(body) {
		t.Fatalf("the event has no amount_total to tamper with: %s", body)
	}
	now := time.Now()
	sign := func(secret string, at time.Time, b []byte) string {
		return "Stripe-Signature: " + stripeSignature(secret, at, b)
	}
	v0 := strings.Replace(stripeSignature(e.secret, now, body), ",v1=", ",v0=", 1)
	unpaid := stripeCheckoutCompleted("evt_bad_unpaid", co.SessionID, co.IntentID, acct, co.Cents, "usd", "pi_e2ebad1", "cus_e2ebad1")
	unpaid.Object["payment_status"] = "unpaid"
	unknown := stripeEvent{ID: "evt_bad_unknown", Type: "customer.created", Object: map[string]any{"id": "cus_e2ebad1", "object": "customer"}}
	notJSON := []byte("not json")
	for _, c := range []struct {
		name    string
		node    *Node
		body    []byte
		headers []string
		status  int
	}{
		{"no Stripe-Signature", n1, body, nil, 400},
		{"signed with another secret", n2, body, []string{sign("whsec_not_this_endpoint", now, body)}, 400},
		{"body changed after signing", n3, tampered, []string{sign(e.secret, now, body)}, 400},
		{"timestamp 6 minutes old", n1, body, []string{sign(e.secret, now.Add(-6*time.Minute), body)}, 400},
		{"timestamp not a number", n2, body, []string{"Stripe-Signature: t=soon,v1=" + strings.SplitN(stripeSignature(e.secret, now, body), "v1=", 2)[1]}, 400},
		{"only a v0 signature", n3, body, []string{"Stripe-Signature: " + v0}, 400},
		{"signed, not JSON", n1, notJSON, []string{sign(e.secret, now, notJSON)}, 400},
		{"unknown event type", n2, unknown.JSON(), []string{sign(e.secret, now, unknown.JSON())}, 200},
		{"session not paid", n3, unpaid.JSON(), []string{sign(e.secret, now, unpaid.JSON())}, 200},
	} {
		before, ledgerBefore := payHash(t, e.nodes), payRead(t, n1, acct)
		r := postStripeRaw(t, c.node, c.body, c.headers...)
		if r.Status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.Status, r.Body, c.status)
		}
		if after := payHash(t, e.nodes); after != before {
			t.Errorf("%s: the state changed (%s → %s)", c.name, before, after)
		}
		if l := payRead(t, n3, acct); string(l.Account) != string(ledgerBefore.Account) || string(l.Billing) != string(ledgerBefore.Billing) {
			t.Errorf("%s: the account changed:\n%s\n%s", c.name, l.Account, l.Billing)
		}
	}
	Expect(t, payAccountView(t, n1, acct), "plan", "free", "balance_usd", "0")

	// Anomalies: each on its own payment, since a payment settles once.
	anomalies := []string{}
	for i, c := range []struct {
		name, reason string
		cents        int64
		currency     string
	}{
		{"a cent short", "amount_mismatch", 1999, "usd"},
		{"a cent over", "amount_mismatch", 2001, "usd"},
		{"in euros", "currency_mismatch", 2000, "eur"},
	} {
		a, k := payAccount(t, n1, fmt.Sprintf("card-anomaly-%d", i))
		pc := e.payCheckoutOf(t, a, Get(e.payPlanRequest(t, n1, k, "subscribe", "pro"), "intent_id"), 2000, true)
		ev := stripeCheckoutCompleted(fmt.Sprintf("evt_bad_anomaly_%d", i), pc.SessionID, pc.IntentID, a, c.cents, c.currency, fmt.Sprintf("pi_e2eanomaly%d", i), "cus_e2eanomaly")
		e.paySend(t, e.nodes[i%3], ev, 200)
		e.paySend(t, e.nodes[(i+1)%3], ev, 200)
		Expect(t, payAccountView(t, n2, a), "plan", "free", "subscription.paid_usd", "0", "balance_usd", "0")
		payEqualStrings(t, c.name+": billing", payBilling(t, n3, a), nil)
		anomalies = append(anomalies, fmt.Sprintf("%s %s %s %s %s", ev.ID, c.reason, pc.IntentID, rtMicro(c.cents*10_000), c.currency))
	}
	ghost := stripeCheckoutCompleted("evt_bad_ghost", co.SessionID, "pay_neverasked", acct, 2000, "usd", "pi_e2eghost", "cus_e2eghost")
	e.paySend(t, n3, ghost, 200)
	anomalies = append(anomalies, "evt_bad_ghost unknown_intent pay_neverasked 20 usd")
	payEqualStrings(t, "anomalies", payAnomalies(t, n2), anomalies)
	Expect(t, payAccountView(t, n1, acct), "plan", "free", "balance_usd", "0")

	// The good event, four times at once on the three nodes: once.
	type result struct {
		status int
		err    error
	}
	results := make(chan result, 4)
	for _, n := range []*Node{n1, n2, n3, n1} {
		go func(n *Node) {
			s, err := payDeliver(n, e.secret, body)
			results <- result{s, err}
		}(n)
	}
	for i := 0; i < 4; i++ {
		if r := <-results; r.err != nil || r.status != 200 {
			t.Errorf("delivery %d: %d %v, want 200", i, r.status, r.err)
		}
	}
	waitSameState(t, e.nodes)
	for _, n := range e.nodes {
		Expect(t, payAccountView(t, n, acct), "plan", "pro", "subscription.paid_usd", "20")
		payEqualStrings(t, n.ID+": billing", payBilling(t, n, acct), []string{"subscribe pro 20 succeeded"})
	}
	payEqualStrings(t, "anomalies after the good event", payAnomalies(t, n1), anomalies)
}

// payIntent reads one of acct's payment intents through the admin API.
func payIntent(t *testing.T, n *Node, acct, id string) map[string]any {
	t.Helper()
	m := wtWant(t, n.AdminDo("GET", "/admin/v1/accounts/"+acct+"/payment-intents", ""), 200)
	list, _ := m["data"].([]any)
	for _, v := range list {
		if o, ok := v.(map[string]any); ok && Get(o, "id") == id {
			return o
		}
	}
	t.Fatalf("no payment intent %s among %s's: %v", id, acct, m)
	return nil
}

// payClockNow reads the ledger's clock (node.test_clock).
func payClockNow(t *testing.T, n *Node) time.Time {
	t.Helper()
	now, err := time.Parse(time.RFC3339Nano, Get(wtWant(t, n.AdminDo("GET", "/admin/v1/clock", ""), 200), "now"))
	if err != nil {
		t.Fatal(err)
	}
	return now
}

// payProration is S3's charge in cents for Δ deltaCents with rem of total
// seconds left, rounded half-up.
func payProration(deltaCents, rem, total int64) int64 {
	return (2*deltaCents*rem + total) / (2 * total)
}

// Subscribe by card (PAY1), then, 10 days into the cycle, upgrade Pro →
// Max: the Checkout asks S3's Δ = (100 − 20) × T_rem / T to the cent, at
// the moment of the request; the webhook applies the upgrade with that
// amount (PAY2, PAY3), and a downgrade back costs nothing and opens no
// Checkout (S4).
func TestPaymentsStripeUpgradeProration(t *testing.T) {
	e := payStart(t, true)
	n := e.nodes[0]
	acct, key := payAccount(t, n, "card-upgrade")
	sub := e.payCheckoutOf(t, acct, Get(e.payPlanRequest(t, n, key, "subscribe", "pro"), "intent_id"), 2000, true)
	e.paySend(t, n, stripeCheckoutCompleted("evt_up_sub", sub.SessionID, sub.IntentID, acct, 2000, "usd", "pi_e2eupsub", "cus_e2eup"), 200)
	a := payAccountView(t, n, acct)
	Expect(t, a, "plan", "pro", "subscription.paid_usd", "20")
	start, err1 := time.Parse(time.RFC3339, Get(a, "subscription.cycle_start"))
	end, err2 := time.Parse(time.RFC3339, Get(a, "subscription.cycle_end"))
	if err1 != nil || err2 != nil {
		t.Fatalf("cycle times: %v %v", err1, err2)
	}
	rsAdvance(t, n, 10*24*3600)

	before := payClockNow(t, n)
	m := e.payPlanRequest(t, n, key, "change", "max")
	after := payClockNow(t, n)
	// The views show whole seconds: T_rem may be one second either side
	// of what they give.
	total := int64(end.Sub(start) / time.Second)
	allowed := map[int64]bool{}
	for rem := int64(end.Sub(after)/time.Second) - 1; rem <= int64(end.Sub(before)/time.Second)+1; rem++ {
		allowed[payProration(8000, rem, total)] = true
	}
	intentID := Get(m, "intent_id")
	call := e.mock.WaitCall(t, "POST", "/v1/checkout/sessions", 10*time.Second, func(c stripeCall) bool { return c.Form.Get("metadata[intent_id]") == intentID })
	cents, err := strconv.ParseInt(call.Form.Get("line_items[0][price_data][unit_amount]"), 10, 64)
	if err != nil || !allowed[cents] {
		t.Fatalf("upgrade Checkout asks %q cents, want S3's proration, one of %v (T = %d s, 10 days in)", call.Form.Get("line_items[0][price_data][unit_amount]"), allowed, total)
	}
	if cents >= 8000 || cents <= 5000 {
		t.Fatalf("upgrade of %d cents 10 days into a month is not about two thirds of 8000", cents)
	}
	up := e.payCheckoutOf(t, acct, intentID, cents, true)
	Expect(t, payIntent(t, n, acct, intentID), "kind", "upgrade", "plan", "max", "amount_usd", rtMicro(cents*10_000), "status", "pending", "provider_ref", up.SessionID)
	Expect(t, payAccountView(t, n, acct), "plan", "pro", "subscription.paid_usd", "20")

	e.paySend(t, n, stripeCheckoutCompleted("evt_up_up", up.SessionID, intentID, acct, cents, "usd", "pi_e2eupup", "cus_e2eup"), 200)
	paid := rtMicro(2000*10_000 + cents*10_000)
	Expect(t, payAccountView(t, n, acct), "plan", "max", "subscription.paid_usd", paid,
		"subscription.cycle_start", start.Format(time.RFC3339), "subscription.cycle_end", end.Format(time.RFC3339))
	Expect(t, payIntent(t, n, acct, intentID), "status", "succeeded", "event_id", "evt_up_up", "payment_ref", "pi_e2eupup")
	payEqualStrings(t, "billing", payBilling(t, n, acct), []string{"subscribe pro 20 succeeded", "upgrade max " + rtMicro(cents*10_000) + " succeeded"})

	// Back down to Pro: nothing to pay, effective at the cycle's end.
	sessions := len(e.mock.Calls("POST", "/v1/checkout/sessions"))
	r := Do(t, "POST", n.Proxy+"/api/v1/me/plan-requests", `{"action":"change","plan":"pro"}`, "Authorization: Bearer "+key)
	if r.Status/100 != 2 || strings.Contains(string(r.Body), "checkout_url") {
		t.Fatalf("downgrade: %d %s, want it applied without a Checkout", r.Status, r.Body)
	}
	if got := len(e.mock.Calls("POST", "/v1/checkout/sessions")); got != sessions {
		t.Fatalf("a downgrade opened %d Checkout Sessions", got-sessions)
	}
	Expect(t, payAccountView(t, n, acct), "plan", "max", "subscription.pending_plan", "pro", "subscription.paid_usd", paid)
}

// payRefundView reads a refund through the admin API.
func payRefundView(t *testing.T, n *Node, id string) map[string]any {
	t.Helper()
	return wtWant(t, n.AdminDo("GET", "/admin/v1/refunds/"+id, ""), 200)
}

// A refund of a cycle paid by card (R1–R3, PAY6), through every status
// Stripe's refunds go: the subscriber submits it, the driver creates a
// Stripe refund of R2's final amount ($20 paid, no usage: 20 − 5% = $19,
// 1900 cents) against the subscribe's payment and records it on the
// refund; refund.updated "pending" keeps it processing; "succeeded" leaves
// the account on Free, "failed" and "canceled" give the plan back; each
// event applies once however often it comes, and charge.refunded for a
// refund already settled changes nothing.
func TestPaymentsStripeRefundStatuses(t *testing.T) {
	e := payStart(t, false)
	n := e.nodes[0]
	for _, final := range []string{"succeeded", "failed", "canceled"} {
		t.Run(final, func(t *testing.T) {
			t.Parallel()
			acct, key := payAccount(t, n, "card-refund-"+final)
			co := e.payCheckoutOf(t, acct, Get(e.payPlanRequest(t, n, key, "subscribe", "pro"), "intent_id"), 2000, true)
			pi := "pi_e2erefund" + final
			e.paySend(t, n, stripeCheckoutCompleted("evt_rf_sub_"+final, co.SessionID, co.IntentID, acct, 2000, "usd", pi, "cus_e2erefund"), 200)
			Expect(t, payAccountView(t, n, acct), "plan", "pro", "subscription.paid_usd", "20")

			r := wtWant(t, Do(t, "POST", n.Proxy+"/api/v1/me/refunds", "", "Authorization: Bearer "+key, "Idempotency-Key: rf-"+final), 201)
			rid := Get(r, "id")
			Expect(t, r, "status", "processing", "total_paid_usd", "20", "refundable_usd", "20", "fee_usd", "1", "final_usd", "19")
			call := e.mock.WaitCall(t, "POST", "/v1/refunds", paySweep, func(c stripeCall) bool { return c.Form.Get("metadata[refund_id]") == rid })
			if got := call.Form.Get("amount"); got != "1900" {
				t.Fatalf("Stripe refund of %s cents, want 1900 (R2's final amount): %v", got, call.Form)
			}
			if got := call.Form.Get("payment_intent"); got != pi {
				t.Errorf("Stripe refund against payment_intent %q, want the subscribe's payment %s: %v", got, pi, call.Form)
			}
			ref := Get(call.Answer, "id")
			if !strings.HasPrefix(ref, "re_") {
				t.Fatalf("stripe-mock's refund has id %q", ref)
			}
			deadline := time.Now().Add(paySweep)
			for Get(payRefundView(t, n, rid), "provider_refs.0") != ref {
				if time.Now().After(deadline) {
					t.Fatalf("the refund does not record Stripe's %s within %s: %v", ref, paySweep, payRefundView(t, n, rid))
				}
				time.Sleep(50 * time.Millisecond)
			}
			Expect(t, payAccountView(t, n, acct), "plan", "free")

			pending := stripeRefundUpdated("evt_rf_pending_"+final, ref, rid, pi, 1900, "pending")
			e.paySend(t, n, pending, 200)
			Expect(t, payRefundView(t, n, rid), "status", "processing", "resolved_at", "null")

			e.mock.SetRefundStatus(ref, final)
			done := stripeRefundUpdated("evt_rf_"+final, ref, rid, pi, 1900, final)
			for i := 0; i < 2; i++ {
				e.paySend(t, n, done, 200)
			}
			Expect(t, payRefundView(t, n, rid), "status", final, "final_usd", "19")
			wantPlan := "pro"
			if final == "succeeded" {
				wantPlan = "free"
			}
			Expect(t, payAccountView(t, n, acct), "plan", wantPlan)
			billing := []string{"subscribe pro 20 succeeded", "refund pro -19 " + final}
			payEqualStrings(t, "billing", payBilling(t, n, acct), billing)

			// Later events about the settled refund change nothing.
			settled := payRead(t, n, acct)
			e.paySend(t, n, stripeChargeRefunded("evt_rf_charge_"+final, ref, rid, pi, 2000, 1900, final), 200)
			e.paySend(t, n, pending, 200)
			if l := payRead(t, n, acct); string(l.Account) != string(settled.Account) || string(l.Billing) != string(settled.Billing) {
				t.Fatalf("events after the refund settled changed the account:\n%s\n%s", l.Account, l.Billing)
			}
			Expect(t, payRefundView(t, n, rid), "status", final)
		})
	}
}

// payRenewalCharges lists the off-session charges the driver made on
// customer for renewals, oldest first.
func (e *payEnv) payRenewalCharges(customer string) []stripeCall {
	var out []stripeCall
	for _, c := range e.mock.Calls("POST", "/v1/payment_intents") {
		if strings.HasPrefix(c.Form.Get("metadata[intent_id]"), "ren_") && c.Form.Get("customer") == customer {
			out = append(out, c)
		}
	}
	return out
}

// paySweep bounds the wait for the leader's payments sweep (every second
// here: payments.sweep_every), which charges renewals and sends refunds.
const paySweep = 15 * time.Second

// payWaitCharge waits (paySweep) for acct's renewal charge number n (from 1)
// and checks it: the plan's 2000 cents in USD, off-session, confirmed, on
// the customer the subscribe's Checkout saved.
func (e *payEnv) payWaitCharge(t *testing.T, acct, customer string, n int) stripeCall {
	t.Helper()
	deadline := time.Now().Add(paySweep)
	for len(e.payRenewalCharges(customer)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: renewal charge %d on %s not made within %s (%d made)", acct, n, customer, paySweep, len(e.payRenewalCharges(customer)))
		}
		time.Sleep(100 * time.Millisecond)
	}
	c := e.payRenewalCharges(customer)[n-1]
	for k, v := range map[string]string{"amount": "2000", "currency": "usd", "customer": customer, "off_session": "true", "confirm": "true"} {
		if got := c.Form.Get(k); got != v {
			t.Errorf("%s: renewal charge %d: %s = %q, want %q (%v)", acct, n, k, got, v, c.Form)
		}
	}
	if c.Form.Get("payment_method") == "" {
		t.Errorf("%s: renewal charge %d names no saved payment method: %v", acct, n, c.Form)
	}
	return c
}

// Renewal by card (PAY5), on the test clock: at the cycle's end the
// leader charges the saved card off-session for the plan's price. One
// account's charge succeeds: renewed, $20 paid for the new cycle, dated
// at the boundary. The other's fails: past due, keeping Pro, charged
// again 1, 3 and 5 days after the cycle end, each failure counted once
// however often delivered, and after the last it falls to Free with no
// renewal billed.
func TestPaymentsStripeRenewal(t *testing.T) {
	e := payStart(t, true)
	n := e.nodes[0]
	type sub struct{ acct, customer, cycleEnd string }
	var subs [2]sub
	for i, name := range []string{"card-renew-ok", "card-renew-fail"} {
		acct, key := payAccount(t, n, name)
		co := e.payCheckoutOf(t, acct, Get(e.payPlanRequest(t, n, key, "subscribe", "pro"), "intent_id"), 2000, true)
		customer := fmt.Sprintf("cus_e2erenew%d", i)
		e.paySend(t, n, stripeCheckoutCompleted("evt_ren_sub_"+name, co.SessionID, co.IntentID, acct, 2000, "usd", fmt.Sprintf("pi_e2erenewsub%d", i), customer), 200)
		a := payAccountView(t, n, acct)
		Expect(t, a, "plan", "pro", "subscription.paid_usd", "20")
		subs[i] = sub{acct, customer, Get(a, "subscription.cycle_end")}
	}
	ok, bad := subs[0], subs[1]
	end, err := time.Parse(time.RFC3339, bad.cycleEnd)
	if err != nil {
		t.Fatal(err)
	}
	advanceTo := func(at time.Time) {
		t.Helper()
		if d := int64(at.Sub(payClockNow(t, n))/time.Second) + 1; d > 0 {
			rsAdvance(t, n, d)
		}
	}
	if got := len(e.payRenewalCharges(ok.customer)); got != 0 {
		t.Fatalf("%d renewal charges before the cycle ended", got)
	}
	advanceTo(end.Add(time.Second))

	// Paid: renewed for a new cycle starting at the old one's end.
	c := e.payWaitCharge(t, ok.acct, ok.customer, 1)
	Expect(t, payAccountView(t, n, ok.acct), "plan", "pro")
	okPI := stripePaymentIntentEvent("evt_ren_ok", "payment_intent.succeeded", Get(c.Answer, "id"), c.Form.Get("metadata[intent_id]"), 2000, "usd", ok.customer)
	e.paySend(t, n, okPI, 200)
	e.paySend(t, n, okPI, 200)
	Expect(t, payAccountView(t, n, ok.acct), "plan", "pro", "subscription.status", "active", "subscription.cycle_start", ok.cycleEnd, "subscription.paid_usd", "20")
	payEqualStrings(t, "renewed billing", payBilling(t, n, ok.acct), []string{"subscribe pro 20 succeeded", "renewal pro 20 succeeded"})

	// Declined: past due, retried on the schedule, then Free.
	retries := []time.Duration{0, 24 * time.Hour, 3 * 24 * time.Hour, 5 * 24 * time.Hour}
	for i, after := range retries {
		advanceTo(end.Add(after))
		c := e.payWaitCharge(t, bad.acct, bad.customer, i+1)
		fail := stripePaymentIntentEvent(fmt.Sprintf("evt_ren_fail_%d", i), "payment_intent.payment_failed", Get(c.Answer, "id"), c.Form.Get("metadata[intent_id]"), 2000, "usd", bad.customer)
		e.paySend(t, n, fail, 200)
		e.paySend(t, n, fail, 200)
		a := payAccountView(t, n, bad.acct)
		if i < len(retries)-1 {
			Expect(t, a, "plan", "pro", "subscription.status", "past_due", "subscription.past_due_until", end.Add(7*24*time.Hour).Format(time.RFC3339))
			Expect(t, payIntent(t, n, bad.acct, c.Form.Get("metadata[intent_id]")), "kind", "renewal", "amount_usd", "20", "attempts", strconv.Itoa(i+1),
				"next_attempt_at", end.Add(retries[i+1]).Format(time.RFC3339))
		} else {
			Expect(t, a, "plan", "free", "subscription.paid_usd", "0")
			Expect(t, payIntent(t, n, bad.acct, c.Form.Get("metadata[intent_id]")), "status", "failed")
		}
	}
	payEqualStrings(t, "declined billing", payBilling(t, n, bad.acct), []string{"subscribe pro 20 succeeded"})
	if got := len(e.payRenewalCharges(bad.customer)); got != len(retries) {
		t.Fatalf("%d charges of the declined renewal, want %d", got, len(retries))
	}
	Expect(t, payAccountView(t, n, ok.acct), "plan", "pro", "subscription.status", "active")
}
