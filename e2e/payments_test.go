package e2e

// Card payments through Stripe (#11, docs/rules.md PAY1–PAY6) on the real
// binary configured with [payments] provider = "stripe" against
// stripe-mock: a plan change or a top-up opens a Checkout Session for the
// amount the ledger computes, and only the signed webhook, applied once
// whatever its deliveries, changes the ledger; every amount is checked to
// the cent through the admin API.

import (
	"encoding/json"
	"fmt"
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
	return fmt.Sprintf("[payments]\nprovider = \"stripe\"\nstripe_secret_key_file = %q\nstripe_webhook_secret_file = %q\nstripe_api_base = %q\npublic_url = %q\n",
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
// payment mode, saving the card for renewals, returning to /console.
func (e *payEnv) payCheckoutOf(t *testing.T, acct, intentID string, cents int64) payCheckout {
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
		"payment_intent_data[setup_future_usage]":       "off_session",
		"customer_creation":                             "always",
		"line_items[0][price_data][product_data][name]": "",
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
	return e.payCheckoutOf(t, acct, intent, cents)
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
	co := e.payCheckoutOf(t, acct, Get(m, "intent_id"), 2000)

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
