package e2e

import (
	"testing"
	"time"
)

// PAY3 on the page: a subscriber on a Stripe-configured gateway is told
// they pay on Stripe's page, the browser's return credits nothing, and
// once the signed webhook is applied /console shows the plan and the
// $20.00 payment in the billing history, to the cent; a top-up shows on
// the balance the same way.
func TestBrowserPaymentsStripeSubscribe(t *testing.T) {
	b := StartBrowser(t)
	e := payStart(t, false)
	n := e.nodes[0]
	acct, key := payAccount(t, n, "card-browser")

	b.Open(n.Proxy + "/sign-in")
	b.Fill("#key", key)
	b.Click("#submit")
	b.WaitFor("the console on Free", `location.pathname === "/console" &&
		document.querySelector("#sub-plan").textContent === "Free" &&
		document.querySelector("#payments-notice").textContent.includes("Stripe")`, 10*time.Second)
	if got := b.Text("#plan-submit"); got != "Subscribe" {
		t.Errorf("the plan button reads %q under Stripe, want Subscribe", got)
	}

	m := e.payPlanRequest(t, n, key, "subscribe", "pro")
	co := e.payCheckoutOf(t, acct, Get(m, "intent_id"), 2000, true)
	b.Open(n.Proxy + "/console") // back from Checkout: still Free
	b.WaitFor("the console after the redirect", `document.querySelector("#sub-plan").textContent === "Free"`, 10*time.Second)

	e.paySend(t, n, stripeCheckoutCompleted("evt_browser_sub", co.SessionID, co.IntentID, acct, co.Cents, "usd", "pi_browsersub", "cus_browsersub"), 200)
	b.Open(n.Proxy + "/console")
	b.WaitFor("Pro and its payment", `document.querySelector("#sub-plan").textContent === "Pro" &&
		document.querySelector("#billing-body").textContent.includes("$20.00")`, 10*time.Second)
	if got := b.Text("#sub-paid"); got != "$20.00" {
		t.Errorf("paid this cycle shows %q, want $20.00", got)
	}
	Expect(t, payAccountView(t, n, acct), "plan", "pro", "subscription.paid_usd", "20")

	// A top-up (PAY2, E3): $12.34 on the balance, to the cent, after its
	// webhook only.
	top := e.payTopUp(t, n, acct, key, "12.34", 1234)
	e.paySend(t, n, stripeCheckoutCompleted("evt_browser_topup", top.SessionID, top.IntentID, acct, top.Cents, "usd", "pi_browsertopup", "cus_browsersub"), 200)
	b.Open(n.Proxy + "/console")
	b.WaitFor("the topped-up balance", `document.querySelector("#balance-top").textContent === "$12.34" &&
		document.querySelector("#billing-body").textContent.includes("$12.34")`, 10*time.Second)
	Expect(t, payAccountView(t, n, acct), "balance_usd", "12.34")
}
