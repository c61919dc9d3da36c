package e2e

import (
	"testing"
	"time"
)

// PAY3 on the page: a subscriber on a Stripe-configured gateway is told
// they pay on Stripe's page, the browser's return credits nothing, and
// once the signed webhook is applied /console shows the plan and the
// $20.00 payment in the billing history, to the cent; a top-up shows on
// the balance the same way, and a refund submitted on the page follows
// Stripe's refund to Succeeded.
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

	// A refund submitted on the page (R3, PAY6): the driver refunds R2's
	// final amount ($19.00 of $20) on the card; the page follows Stripe's
	// refund to Succeeded, and the plan falls to Free.
	b.Click("#refund-open")
	b.WaitFor("the refund preview", `document.querySelector("#refund-dialog").open && !document.querySelector("#refund-submit").disabled`, 5*time.Second)
	b.Click("#refund-submit")
	b.WaitFor("the submitted refund", `document.querySelector("#refund-status").textContent.includes("Processing")`, 5*time.Second)
	call := e.mock.WaitCall(t, "POST", "/v1/refunds", paySweep, func(c stripeCall) bool { return c.Form.Get("payment_intent") == "pi_browsersub" })
	if got := call.Form.Get("amount"); got != "1900" {
		t.Fatalf("Stripe refund of %s cents, want 1900", got)
	}
	ref, rid := Get(call.Answer, "id"), call.Form.Get("metadata[refund_id]")
	deadline := time.Now().Add(paySweep)
	for Get(payRefundView(t, n, rid), "provider_refs.0") != ref {
		if time.Now().After(deadline) {
			t.Fatalf("the refund does not record Stripe's %s within %s", ref, paySweep)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.mock.SetRefundStatus(ref, "succeeded")
	e.paySend(t, n, stripeRefundUpdated("evt_browser_refund", ref, rid, "pi_browsersub", 1900, "succeeded"), 200)
	b.WaitFor("the refund succeeded on the page", `document.querySelector("#refund-status").textContent.includes("Succeeded")`, 8*time.Second)
	b.Click("#refund-close")
	b.Open(n.Proxy + "/console")
	b.WaitFor("Free and the refund line", `document.querySelector("#sub-plan").textContent === "Free" &&
		document.querySelector("#billing-body").textContent.includes("19.00")`, 10*time.Second)
	Expect(t, payRefundView(t, n, rid), "status", "succeeded", "final_usd", "19")
}
