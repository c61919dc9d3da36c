package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The subscriber's side in a real browser (issue #10): each test starts a
// node and a headless chromium, makes the account through the admin API as
// the operator would, and then does in the pages what a subscriber does.

// A subscriber signs in with a key, signs out, then signs in with a
// one-time link the operator made: the link works once, and leaves the
// address bar.
func TestBrowserSignIn(t *testing.T) {
	b := StartBrowser(t)
	n := StartNode(t, NodeOptions{Extra: browserPlans})
	a := browserAccount(t, n, "pro", "0")
	chat(t, n, a.SubKey, "zenmux/echo", "hello")
	requestLog(t, n, a.ID, 1)

	// A wrong key is refused on the page, with no hint which part was wrong.
	b.Open(n.Proxy + "/sign-in")
	b.Fill("#key", "sk-ss-v1-"+strings.Repeat("0", 64))
	b.Click("#submit")
	b.WaitFor("the refusal of a wrong key", `!document.querySelector("#form-error").hidden`, 5*time.Second)
	if got := b.Text("#form-error"); got != "That key was not accepted. Check it and try again." {
		t.Errorf("a wrong key shows %q", got)
	}

	b.SignInKey(n, a, a.SubKey)
	if got := b.Text("#plan-badge"); got != "Pro plan" {
		t.Errorf("plan badge %q, want Pro plan", got)
	}
	// The session cookie: out of the page's reach, not sent cross-site,
	// and dead once the subscriber signs out, even if it was copied.
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{n.Proxy + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	var session *network.Cookie
	for _, c := range res.Cookies {
		if c.Name == "zx_session" {
			session = c
		}
	}
	if session == nil {
		t.Fatalf("no zx_session cookie after signing in: %v", res.Cookies)
	}
	if !session.HTTPOnly || session.SameSite != network.CookieSameSiteLax || session.Path != "/" {
		t.Errorf("zx_session is HttpOnly %v, SameSite %q, Path %q; want HttpOnly, Lax, /", session.HTTPOnly, session.SameSite, session.Path)
	}
	if Eval[bool](b, `document.cookie.includes("zx_session")`) {
		t.Error("the page's script can read zx_session")
	}
	stolen := "Cookie: zx_session=" + session.Value
	if r := Do(t, "GET", n.Proxy+"/api/v1/me", "", stolen); r.Status != 200 {
		t.Fatalf("GET /api/v1/me with the session cookie: %d %s", r.Status, r.Body)
	}
	b.Click("#sign-out")
	b.WaitFor("the sign-in page after signing out", `location.pathname === "/sign-in"`, 5*time.Second)
	if r := Do(t, "GET", n.Proxy+"/api/v1/me", "", stolen); r.Status != 401 {
		t.Errorf("the copied cookie after signing out: %d %s, want 401", r.Status, r.Body)
	}
	b.Open(n.Proxy + "/console")
	b.WaitFor("the console sends a signed-out browser to sign in", `location.pathname === "/sign-in"`, 5*time.Second)

	link := wtWant(t, n.AdminDo("POST", "/admin/v1/accounts/"+a.ID+"/sign-in-links", ""), 201)
	url := Get(link, "url")
	if !regexp.MustCompile(`^/sign-in#zsl_[A-Za-z0-9_-]+$`).MatchString(url) {
		t.Fatalf("sign-in link url %q", url)
	}
	// As from a mail: a fresh page load.
	b.Open("about:blank")
	b.Open(n.Proxy + url)
	b.WaitConsole(a)
	if h := Eval[string](b, "location.hash"); h != "" {
		t.Errorf("the link's token stays in the address bar: %q", h)
	}
	b.Click("#sign-out")
	b.WaitFor("the sign-in page after signing out", `location.pathname === "/sign-in"`, 5*time.Second)

	// The same link again: single use.
	b.Open("about:blank")
	b.Open(n.Proxy + url)
	b.WaitFor("the refusal of a used link", `!document.querySelector("#form-error").hidden`, 5*time.Second)
	if got := b.Text("#form-error"); !strings.Contains(got, "This sign-in link is not valid") {
		t.Errorf("a used link shows %q", got)
	}
	b.NoProblems()
}

// Guessing keys on the sign-in page is slowed: after the address's ten
// tries a minute the page says when to try again, and a right key waits
// too.
func TestBrowserSignInSlowed(t *testing.T) {
	b := StartBrowser(t)
	n := StartNode(t, NodeOptions{Extra: browserPlans})
	a := browserAccount(t, n, "pro", "0")
	b.Open(n.Proxy + "/sign-in")
	try := func(key string) string {
		t.Helper()
		Eval[chromedp.Void](b, `document.querySelector("#form-error").hidden = true`)
		b.Fill("#key", key)
		b.Click("#submit")
		b.WaitFor("the answer to a try", `!document.querySelector("#form-error").hidden && !document.querySelector("#submit").disabled`, 5*time.Second)
		return b.Text("#form-error")
	}
	for i := 1; i <= 10; i++ {
		if got := try(fmt.Sprintf("sk-ss-v1-%064x", i)); got != "That key was not accepted. Check it and try again." {
			t.Fatalf("wrong key %d: %q", i, got)
		}
	}
	got := try("sk-ss-v1-" + strings.Repeat("f", 64))
	if !regexp.MustCompile(`Try again in \d+s\.$`).MatchString(got) {
		t.Errorf("the 11th wrong key in a minute: %q, want a refusal saying when to try again", got)
	}
	if got := try(a.SubKey); !strings.Contains(got, "Try again in") {
		t.Errorf("the right key while slowed: %q, want it refused too", got)
	}
	b.NoProblems()
}

// A link pasted into the address bar of an open /sign-in signs in too:
// only the fragment changes, so the page loads nothing and must notice
// the new fragment itself.
func TestBrowserSignInLinkPastedOnSignIn(t *testing.T) {
	b := StartBrowser(t)
	n := StartNode(t, NodeOptions{Extra: browserPlans})
	a := browserAccount(t, n, "pro", "0")
	b.Open(n.Proxy + "/sign-in")
	link := wtWant(t, n.AdminDo("POST", "/admin/v1/accounts/"+a.ID+"/sign-in-links", ""), 201)
	b.Open(n.Proxy + Get(link, "url"))
	b.WaitConsole(a)
	b.NoProblems()
}

// After requests through the proxy the console shows the 5-hour window
// exactly as the admin API counts it, a countdown that moves, the Flow
// charts by model and by day, and the request log.
func TestBrowserConsoleWindow(t *testing.T) {
	b := StartBrowser(t)
	n := StartNode(t, NodeOptions{Extra: browserPlans})
	a := browserAccount(t, n, "pro", "0")
	const sent = 3
	for i := range sent {
		if r := chat(t, n, a.SubKey, "zenmux/echo", fmt.Sprintf("request %d", i)); r.Status != 200 || r.Header.Get("x-zenmux-billing") != "subscription" {
			t.Fatalf("request %d: %d %q %s", i, r.Status, r.Header.Get("x-zenmux-billing"), r.Body)
		}
	}
	requestLog(t, n, a.ID, sent)
	u := usage(t, n, a.ID)
	b.SignInKey(n, a, a.SubKey)

	// The page shows Flows exactly: the admin API's, to the micro-Flow.
	for _, c := range []struct{ sel, path string }{
		{"#w5-used", "window_5h.used_flows"}, {"#w5-limit", "window_5h.limit_flows"}, {"#w5-remaining", "window_5h.remaining_flows"},
	} {
		if got, want := b.Text(c.sel), flowsText(micro(t, u, c.path)); got != want {
			t.Errorf("%s shows %q, want %q: the admin API's %s is %s", c.sel, got, want, c.path, Get(u, c.path))
		}
	}
	var costs int64
	for _, e := range requestLog(t, n, a.ID, sent) {
		costs += micro(t, e, "flows")
	}
	if used := micro(t, u, "window_5h.used_flows"); used != costs || used == 0 {
		t.Errorf("the window used %d micro-Flows, the %d requests cost %d", used, sent, costs)
	}

	// The countdown: the time to resets_at, to the second, and moving.
	resets := wtTime(t, u, "window_5h.resets_at")
	first := b.Text("#w5-countdown")
	left, ok := countdownSeconds(first)
	want := int64(time.Until(resets).Round(time.Second) / time.Second)
	if !ok || left < want-3 || left > want+3 { // the page's second and the test's may straddle under load
		t.Errorf("countdown %q, want about %d s to %s", first, want, resets)
	}
	b.WaitFor("the countdown to move", "document.querySelector('#w5-countdown').textContent !== "+js(first), 2*time.Second)

	// The charts: a bar per model, a uPlot canvas per day.
	b.WaitFor("the by-model bars", `document.querySelectorAll("#by-model .hbar-row").length === 1`, 5*time.Second)
	if got := b.Text("#by-model .hbar-row .name"); got != "zenmux/echo" {
		t.Errorf("by-model bar %q, want zenmux/echo", got)
	}
	if got, want := b.Text("#by-model .hbar-row .val"), flowsText(micro(t, u, "by_model.0.flows"))+" Flows · 3 req"; got != want {
		t.Errorf("by-model value %q, want %q", got, want)
	}
	b.WaitFor("the by-day chart", `document.querySelector("#by-day canvas") !== null`, 5*time.Second)
	if got := Eval[int](b, `document.querySelectorAll("#log-body tr").length`); got != sent {
		t.Errorf("the request log shows %d rows, want %d", got, sent)
	}
	if got := b.Text("#log-body tr td:nth-child(2)"); got != "zenmux/echo" {
		t.Errorf("the request log's model %q", got)
	}
	b.NoProblems()
}

// A key made on the page: its secret is shown once, the copy button puts
// it on the clipboard, it works against the proxy, and revoking it on the
// page makes the proxy refuse it.
func TestBrowserKeys(t *testing.T) {
	b := StartBrowser(t)
	n := StartNode(t, NodeOptions{Extra: browserPlans})
	a := browserAccount(t, n, "pro", "0")
	chat(t, n, a.SubKey, "zenmux/echo", "hello")
	requestLog(t, n, a.ID, 1)
	b.SignInKey(n, a, a.SubKey)
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(b.ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: perm}, Setting: browser.PermissionSettingGranted, Origin: n.Proxy,
		}); err != nil {
			t.Fatalf("grant %s: %v", perm, err)
		}
	}

	b.Fill("#key-name", "ci box")
	b.Select("#key-kind", "subscription")
	b.Click("#key-create")
	b.WaitFor("the new key's secret", `document.querySelector("#secret-dialog").open && document.querySelector("#secret-value").value !== ""`, 5*time.Second)
	secret := Eval[string](b, `document.querySelector("#secret-value").value`)
	if !regexp.MustCompile(`^sk-ss-v1-[0-9a-f]{64}$`).MatchString(secret) {
		t.Fatalf("the shown secret %q is not a subscription key", secret)
	}
	b.Click("#secret-copy")
	b.WaitFor("the copy confirmation", `(t => t && !t.hidden && t.textContent === "Copied to the clipboard")(document.querySelector("#toast"))`, 3*time.Second)
	if got := Eval[string](b, `navigator.clipboard.readText()`); got != secret {
		t.Errorf("the clipboard holds %q, want the shown secret", got)
	}
	b.Click("#secret-done")
	b.WaitFor("the secret dialog to close and forget the secret", `!document.querySelector("#secret-dialog").open && document.querySelector("#secret-value").value === ""`, 3*time.Second)
	if r := chat(t, n, secret, "zenmux/echo", "new key"); r.Status != 200 {
		t.Fatalf("the new key: %d %s", r.Status, r.Body)
	}
	b.WaitFor("the new key's row", `[...document.querySelectorAll("#keys-body tr td:first-child")].some(td => td.textContent === "ci box")`, 3*time.Second)

	b.Click(`button[aria-label="Revoke key ci box"]`)
	b.WaitFor("the confirmation dialog", `document.querySelector("#confirm-dialog").open`, 3*time.Second)
	b.Click("#confirm-yes")
	b.WaitFor("the key's row to go", `![...document.querySelectorAll("#keys-body tr td:first-child")].some(td => td.textContent === "ci box")`, 5*time.Second)
	if r := chat(t, n, secret, "zenmux/echo", "revoked"); r.Status != 401 {
		t.Errorf("the revoked key: %d %s, want 401", r.Status, r.Body)
	}
	if r := chat(t, n, a.SubKey, "zenmux/echo", "still here"); r.Status != 200 {
		t.Errorf("the other key after the revoke: %d %s", r.Status, r.Body)
	}
	b.NoProblems()
}

// Extra Usage turned on in the page with a pay-as-you-go key: once the
// plan's 5-hour window is full, a request goes to payg, and the console
// shows the spend the admin API shows.
func TestBrowserExtraUsage(t *testing.T) {
	b := StartBrowser(t)
	n := StartNode(t, NodeOptions{Extra: browserPlans})
	a := browserAccount(t, n, "tiny", "5")
	if r := chat(t, n, a.SubKey, "tiny/echo", "fill the window"); r.Status != 200 || r.Header.Get("x-zenmux-billing") != "subscription" {
		t.Fatalf("first request: %d %q %s", r.Status, r.Header.Get("x-zenmux-billing"), r.Body)
	}
	requestLog(t, n, a.ID, 1)
	if r := chat(t, n, a.SubKey, "tiny/echo", "over"); r.Status != 429 {
		t.Fatalf("over the window without Extra Usage: %d %s, want 429", r.Status, r.Body)
	}
	b.SignInKey(n, a, a.SubKey)
	if got := b.Text("#extra-state"); got != "Off" {
		t.Errorf("Extra Usage shows %q, want Off", got)
	}
	b.Select("#extra-key", a.PaygKeyID)
	b.Click("#extra-switch")
	b.WaitFor("Extra Usage on", `document.querySelector("#extra-state").textContent === "On" && document.querySelector("#extra-switch").checked`, 5*time.Second)
	Expect(t, wtWant(t, n.AdminDo("GET", "/admin/v1/accounts/"+a.ID+"/extra-usage", ""), 200), "enabled", "true", "payg_key_id", a.PaygKeyID)

	r := chat(t, n, a.SubKey, "tiny/echo", "over, billed to the balance")
	if r.Status != 200 || r.Header.Get("x-zenmux-billing") != "payg" {
		t.Fatalf("over the window with Extra Usage: %d %q %s, want 200 payg", r.Status, r.Header.Get("x-zenmux-billing"), r.Body)
	}
	log := requestLog(t, n, a.ID, 2)
	Expect(t, log[0], "billing", "payg")
	x := wtWant(t, n.AdminDo("GET", "/admin/v1/accounts/"+a.ID+"/extra-usage", ""), 200)
	spent := micro(t, x, "spent_usd")
	if spent == 0 || spent != micro(t, log[0], "usd_value") {
		t.Fatalf("Extra Usage spent %d micro-USD, the payg request cost %s", spent, Get(log[0], "usd_value"))
	}
	b.Open(n.Proxy + "/console")
	b.WaitConsole(a)
	b.WaitFor("the spend", `document.querySelector("#extra-spent").textContent !== "—"`, 5*time.Second)
	for _, sel := range []string{"#extra-spent", "#extra-spent-top"} {
		if got := b.Text(sel); got != usdText(spent) {
			t.Errorf("%s shows %q, want %s", sel, got, usdText(spent))
		}
	}
	if got := b.Text("#extra-balance"); got != usdText(micro(t, x, "balance_usd")) {
		t.Errorf("the balance shows %q, want %s", got, usdText(micro(t, x, "balance_usd")))
	}
	if got := b.Text("#log-body tr td:nth-child(6)"); got != "Pay-as-you-go" {
		t.Errorf("the newest request's billing shows %q, want Pay-as-you-go", got)
	}
	if got := b.Text("#extra-key-used"); got == "Never" || got == "—" {
		t.Errorf("the payg key's last use shows %q after it was used", got)
	}
	b.NoProblems()
}

// The refund dialog previews what the admin API previews, submits, and
// follows the status the operator sets.
func TestBrowserRefund(t *testing.T) {
	b := StartBrowser(t)
	n := StartNode(t, NodeOptions{Extra: browserPlans})
	a := browserAccount(t, n, "pro", "0")
	chat(t, n, a.SubKey, "zenmux/echo", "a little usage")
	requestLog(t, n, a.ID, 1)
	preview := wtWant(t, n.AdminDo("POST", "/admin/v1/accounts/"+a.ID+"/refunds/preview", ""), 200)
	Expect(t, preview, "eligible", "true")
	b.SignInKey(n, a, a.SubKey)

	b.Click("#refund-open")
	b.WaitFor("the refund preview", `document.querySelector("#refund-dialog").open && !document.querySelector("#refund-submit").disabled`, 5*time.Second)
	lines := b.Text("#refund-lines")
	for _, want := range []string{
		"Total paid this cycle" + usdText(micro(t, preview, "total_paid_usd")),
		"Payment processing fee (5%)−" + usdText(micro(t, preview, "fee_usd")),
		"Final refund" + usdText(micro(t, preview, "final_usd")),
	} {
		if !strings.Contains(lines, want) {
			t.Errorf("the refund preview %q lacks %q", lines, want)
		}
	}
	b.Click("#refund-submit")
	b.WaitFor("the submitted refund's status", `document.querySelector("#refund-status").textContent.includes("Processing")`, 5*time.Second)
	b.Click("#refund-close")
	b.WaitFor("the refund in the billing history", `document.querySelector('#billing-body button[aria-label^="Status of refund "]') !== null`, 5*time.Second)
	label := Eval[string](b, `document.querySelector('#billing-body button[aria-label^="Status of refund "]').getAttribute("aria-label")`)
	id := strings.TrimPrefix(label, "Status of refund ")
	Expect(t, wtWant(t, n.AdminDo("GET", "/admin/v1/refunds/"+id, ""), 200), "account_id", a.ID, "status", "processing",
		"final_usd", Get(preview, "final_usd"))

	b.Click(`#billing-body button[aria-label="Status of refund ` + id + `"]`)
	b.WaitFor("the refund's status", `document.querySelector("#refund-status").textContent.includes("Processing")`, 5*time.Second)
	wtWant(t, n.AdminDo("POST", "/admin/v1/refunds/"+id+"/status", `{"status":"succeeded"}`), 200)
	// The dialog looks again every 3 s while the refund is processing.
	b.WaitFor("the status the operator set", `document.querySelector("#refund-status").textContent.includes("Succeeded")`, 8*time.Second)
	b.NoProblems()
}

// Studio Chat in both billing modes (B1): a subscription conversation
// moves the 5-hour window by exactly the request's Flows and leaves the
// balance alone; a pay-as-you-go one takes exactly the request's USD
// from the balance and leaves the window alone. Each answer streams in
// and shows its cost as the request log has it.
func TestBrowserStudio(t *testing.T) {
	b := StartBrowser(t)
	n := StartNode(t, NodeOptions{Extra: browserPlans})
	a := browserAccount(t, n, "pro", "5")
	chat(t, n, a.SubKey, "zenmux/echo", "open the window")
	requestLog(t, n, a.ID, 1)
	b.SignInKey(n, a, a.SubKey)
	b.Open(n.Proxy + "/studio")
	b.WaitFor("Studio's models and meters", `document.querySelector("#model").options.length > 0 &&
		document.querySelector("#meter-window").textContent.includes("Flows left") &&
		document.querySelector("#meter-balance").textContent !== "Balance: —"`, 10*time.Second)

	// ask sends text in the current conversation and waits for the
	// answer's cost line.
	ask := func(text, costSuffix string) (bubble, meta string) {
		t.Helper()
		before := Eval[int](b, `document.querySelectorAll("#messages .msg.assistant").length`)
		b.Fill("#prompt", text)
		b.do(chromedp.KeyEvent("\r"))
		b.WaitFor("the answer's cost", `(m => m.length > `+fmt.Sprint(before)+` && m[m.length-1].querySelector(".meta").textContent.endsWith(`+js(costSuffix)+`))(document.querySelectorAll("#messages .msg.assistant"))`, 10*time.Second)
		return Eval[string](b, `[...document.querySelectorAll("#messages .msg.assistant .bubble")].pop().textContent`),
			Eval[string](b, `[...document.querySelectorAll("#messages .msg.assistant .meta")].pop().textContent`)
	}

	// A subscription conversation.
	b.Select("#billing", "subscription")
	b.Select("#model", "zenmux/echo")
	used0, bal0 := micro(t, usage(t, n, a.ID), "window_5h.used_flows"), balance(t, n, a.ID)
	bubble, meta := ask("hello from the subscription", " Flows")
	e := requestLog(t, n, a.ID, 2)[0]
	Expect(t, e, "billing", "subscription", "model", "zenmux/echo")
	cost := micro(t, e, "flows")
	u := usage(t, n, a.ID)
	if used := micro(t, u, "window_5h.used_flows"); used-used0 != cost || cost == 0 {
		t.Errorf("the window moved by %d micro-Flows, the request cost %d", used-used0, cost)
	}
	if bal := balance(t, n, a.ID); bal != bal0 {
		t.Errorf("a subscription chat moved the balance from %d to %d micro-USD", bal0, bal)
	}
	if !strings.Contains(bubble, "hello from the subscription") {
		t.Errorf("the answer %q does not echo the question", bubble)
	}
	if want := "zenmux/echo · Subscription · "; !strings.HasPrefix(meta, want) || !strings.HasSuffix(meta, " · "+flowsText(cost)+" Flows") {
		t.Errorf("the answer's line %q, want %s… · %s Flows", meta, want, flowsText(cost))
	}
	b.WaitFor("the window meter after the answer", `document.querySelector("#meter-window").textContent.startsWith(`+js("5-hour window: "+flowsText(micro(t, u, "window_5h.remaining_flows"))+" of 50 Flows left")+`)`, 5*time.Second)

	// A pay-as-you-go conversation.
	b.Click("#new-convo")
	b.Select("#billing", "payg")
	b.Select("#model", "zenmux/echo")
	used0, bal0 = micro(t, usage(t, n, a.ID), "window_5h.used_flows"), balance(t, n, a.ID)
	bubble, meta = ask("hello from the balance", " from your balance")
	e = requestLog(t, n, a.ID, 3)[0]
	Expect(t, e, "billing", "payg", "model", "zenmux/echo", "flows", "0")
	cost = micro(t, e, "usd_value")
	if bal := balance(t, n, a.ID); bal0-bal != cost || cost == 0 {
		t.Errorf("the balance moved by %d micro-USD, the request cost %d", bal0-bal, cost)
	}
	if used := micro(t, usage(t, n, a.ID), "window_5h.used_flows"); used != used0 {
		t.Errorf("a pay-as-you-go chat moved the window from %d to %d micro-Flows", used0, used)
	}
	if !strings.Contains(bubble, "hello from the balance") {
		t.Errorf("the answer %q does not echo the question", bubble)
	}
	if !strings.HasSuffix(meta, " · "+usdText(cost)+" from your balance") {
		t.Errorf("the answer's line %q, want … · %s from your balance", meta, usdText(cost))
	}

	// Both conversations stay in this browser, each with its billing.
	if got := Eval[[]string](b, `[...document.querySelectorAll("#convo-list .sub")].map(e => e.textContent)`); len(got) != 2 ||
		got[0] != "zenmux/echo · Pay-as-you-go" || got[1] != "zenmux/echo · Subscription" {
		t.Errorf("the conversation list %q", got)
	}
	b.Open(n.Proxy + "/studio")
	b.WaitFor("the conversations after a reload", `document.querySelectorAll("#convo-list li").length === 2 && document.querySelectorAll("#messages .msg").length === 2`, 10*time.Second)
	b.NoProblems()
}

// Text a subscriber or an operator typed is shown as text: an account
// name, a key name and a plan name holding markup open no dialog and reach
// the page as the literal characters.
func TestBrowserMarkupIsText(t *testing.T) {
	const evil = `<script>alert(1)</script><img src=x onerror=alert(2)>`
	b := StartBrowser(t)
	n := StartNode(t, NodeOptions{Extra: browserPlans + `
[[plans]]
id = "evil"
name = "` + strings.ReplaceAll(evil, `"`, `\"`) + `"
price_usd = 3
window_5h_flows = 10
weekly_flows = 100
monthly_flows = 100
rpm = 100
burst = 100

[[models]]
id = "evil/echo"
provider = "echo"
upstream = "echo"
request_usd = 0.01
plans = ["evil"]
`})
	a := browserAccountNamed(t, n, "evil", "0", evil)
	wtWant(t, n.AdminDo("POST", "/admin/v1/accounts/"+a.ID+"/keys", `{"kind":"subscription","name":"`+evil+`"}`), 201)
	if r := chat(t, n, a.SubKey, "evil/echo", evil); r.Status != 200 {
		t.Fatalf("chat: %d %s", r.Status, r.Body)
	}
	requestLog(t, n, a.ID, 1)
	b.SignInKey(n, a, a.SubKey)

	check := func(where, sel string) {
		t.Helper()
		found := Eval[bool](b, `[...document.querySelectorAll(`+js(sel)+`)].some(e => e.textContent.includes(`+js(evil)+`))`)
		if !found {
			t.Errorf("%s: no %s shows the literal %s", where, sel, evil)
		}
	}
	check("console", "#account-name")
	check("console", "#plan-badge")
	check("console", "#keys-body td")
	b.Open(n.Proxy + "/pricing")
	b.WaitFor("the pricing page's plans", `document.querySelectorAll("#plans .plan").length > 0`, 5*time.Second)
	check("pricing", "main *")
	b.Open(n.Proxy + "/studio")
	b.WaitFor("Studio's models", `document.querySelector("#model").options.length > 0`, 10*time.Second)
	b.Select("#billing", "subscription")
	b.Select("#model", "evil/echo")
	b.Fill("#prompt", evil)
	b.Click("#send")
	b.WaitFor("the echoed answer", `(m => m && m.querySelector(".meta").textContent.endsWith(" Flows"))([...document.querySelectorAll("#messages .msg.assistant")].pop())`, 10*time.Second)
	check("studio, the question", "#messages .msg.user .bubble")
	check("studio, the answer", "#messages .msg.assistant .bubble")
	check("studio, the conversation's title", "#convo-list li")
	if got := Eval[int](b, `document.querySelectorAll("script:not([src]), img[src='x'], [onerror]").length`); got != 0 {
		t.Errorf("the markup became %d elements", got)
	}
	if d := b.Dialogs(); len(d) != 0 {
		t.Errorf("dialogs opened: %v", d)
	}
	b.NoProblems()
}

// The pages at a phone's and a desktop's width, light and dark: full-page
// screenshots to look at ($ZENMUX_SCREENSHOTS keeps them), and no page
// wider than the phone's screen.
func TestBrowserScreenshots(t *testing.T) {
	b := StartBrowser(t)
	n := StartNode(t, NodeOptions{Extra: browserPlans})
	a := browserAccount(t, n, "pro", "12.5")
	for i := range 4 {
		chat(t, n, a.SubKey, "zenmux/echo", fmt.Sprintf("request %d", i))
	}
	chat(t, n, a.PaygKey, "zenmux/echo", "on the balance")
	requestLog(t, n, a.ID, 5)
	// A rate change, so that /pricing charts the rate's history.
	wtWant(t, n.AdminDo("PUT", "/admin/v1/rate", `{"usd_per_flow":0.035}`), 200)
	b.SignInKey(n, a, a.SubKey)
	// A conversation to show in Studio (kept in the browser).
	b.Open(n.Proxy + "/studio")
	b.WaitFor("Studio's models", `document.querySelector("#model").options.length > 0`, 10*time.Second)
	b.Select("#model", "zenmux/echo")
	b.Fill("#prompt", "Write a haiku about rate limits.")
	b.Click("#send")
	b.WaitFor("the answer's cost", `(m => m && m.querySelector(".meta").textContent.endsWith(" Flows"))([...document.querySelectorAll("#messages .msg.assistant")].pop())`, 10*time.Second)
	pages := []struct{ path, ready string }{
		{"/pricing", `document.querySelectorAll("#plans .plan").length > 0 && document.querySelectorAll("#models tr").length > 0 && document.querySelector("#rate-chart canvas") !== null`},
		{"/console", `document.querySelector("#w5-used").textContent !== "—" && document.querySelector("#by-day canvas") !== null`},
		{"/studio", `document.querySelectorAll("#messages .msg").length === 2 && document.querySelector("#meter-window").textContent.includes("Flows left")`},
	}
	for _, scheme := range []string{"light", "dark"} {
		b.ColorScheme(scheme)
		for _, vp := range []struct{ w, h int64 }{{phoneW, phoneH}, {desktopW, desktopH}} {
			b.Viewport(vp.w, vp.h)
			for _, p := range pages {
				b.Open(n.Proxy + p.path)
				b.WaitFor(p.path+" ready", p.ready, 10*time.Second)
				b.Shot(fmt.Sprintf("%s-%d-%s", strings.TrimPrefix(p.path, "/"), vp.w, scheme))
				// A phone zooms a too-wide page out (innerWidth grows with
				// it); the document's client width stays the screen's.
				if over := Eval[int](b, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); over > 0 {
					t.Errorf("%s at %d px is %d px wider than the screen", p.path, vp.w, over)
				}
				// Figures and buttons hold their text: none runs into its
				// neighbour.
				if spill := Eval[[]string](b, `[...document.querySelectorAll(".stat-value, .countdown, .btn, .badge, .price")]
					.filter(e => e.getClientRects().length && e.scrollWidth > e.clientWidth + 1)
					.map(e => (e.id || e.className) + ": " + e.textContent.trim())`); len(spill) > 0 {
					t.Errorf("%s at %d px, %s: text wider than its box: %q", p.path, vp.w, scheme, spill)
				}
			}
		}
	}
	b.NoProblems()
}
