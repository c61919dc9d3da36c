package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The browser tests drive Debian's chromium, headless, through the Chrome
// DevTools Protocol against a real zenmuxd: the pages are loaded from the
// proxy listener as a subscriber's browser loads them, under the served
// Content-Security-Policy, so a page that works here works for a person.

// browserPath finds the chromium binary, or skips the test: the suite needs
// a real browser and says so plainly where none is installed.
func browserPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("browser tests skipped: no chromium or chromium-browser on PATH (Debian: apt-get install -y chromium; .ci/run installs it)")
	return ""
}

// Viewports the pages are checked at: a desktop and a phone.
const (
	desktopW, desktopH = 1440, 900
	phoneW, phoneH     = 375, 812
)

// browserTimeout bounds one browser test whole; every wait inside it is
// shorter.
const browserTimeout = 120 * time.Second

// Browser is one headless chromium with one tab, under a test.
type Browser struct {
	t   *testing.T
	ctx context.Context // the tab's context

	mu       sync.Mutex
	dialogs  []string // messages of JavaScript dialogs that opened
	problems []string // console errors and uncaught exceptions
}

// StartBrowser starts chromium headless with a fresh profile, opens one tab
// at the desktop viewport in the light color scheme, and ends it all when
// the test ends. Every JavaScript dialog is recorded and dismissed (a page
// that opens one fails the security tests), and so are console errors
// (a Content-Security-Policy refusal shows there).
func StartBrowser(t *testing.T) *Browser {
	t.Helper()
	path := browserPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Headless,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(desktopW, desktopH),
	)
	base, cancelBase := context.WithTimeout(context.Background(), browserTimeout)
	actx, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelBase()
	})
	b := &Browser{t: t, ctx: ctx}
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium (%s): %v", path, err)
	}
	t.Logf("chromium started in %s", time.Since(start).Round(time.Millisecond))
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, ev.Type.String()+": "+ev.Message)
			b.mu.Unlock()
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	console := chromedp.Events(ctx, runtime.ConsoleAPICalled)
	go func() {
		for ev, err := range console {
			if err != nil {
				return
			}
			if ev.Type != runtime.ConsoleAPICalledTypeError {
				continue
			}
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			b.problem("console.error: " + strings.Join(parts, " "))
		}
	}()
	// A Content-Security-Policy refusal and a failed load are reported
	// through the Log domain, not the console API.
	entries := chromedp.Events(ctx, cdplog.EntryAdded)
	go func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			// An API refusal (a 401 for a wrong key) is logged as a failed
			// load too: the tests check those answers themselves.
			if e := ev.Entry; e != nil && e.Level == cdplog.EntryLevelError && !(e.Source == cdplog.EntrySourceNetwork && strings.Contains(e.URL, "/api/")) {
				b.problem(fmt.Sprintf("%s error: %s %s", e.Source, e.Text, e.URL))
			}
		}
	}()
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("enable the browser's log: %v", err)
	}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.problem(fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber, msg))
		}
	}()
	b.Viewport(desktopW, desktopH)
	b.ColorScheme("light")
	return b
}

func (b *Browser) problem(s string) {
	b.mu.Lock()
	b.problems = append(b.problems, s)
	b.mu.Unlock()
}

// Dialogs are the JavaScript dialogs that opened so far.
func (b *Browser) Dialogs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.dialogs...)
}

// Problems are the console errors and uncaught exceptions so far.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// NoProblems fails the test if a page logged an error or threw, or if a
// dialog opened: a page someone pays for does neither.
func (b *Browser) NoProblems() {
	b.t.Helper()
	for _, p := range b.Problems() {
		b.t.Errorf("the page had a problem: %s", p)
	}
	for _, d := range b.Dialogs() {
		b.t.Errorf("a JavaScript dialog opened: %s", d)
	}
}

// Viewport sets the tab's viewport (a phone's is mobile, with touch).
func (b *Browser) Viewport(w, h int64) {
	b.t.Helper()
	var opts []chromedp.EmulateViewportOption
	if w < 600 {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait, chromedp.EmulateScale(2))
	}
	b.do(chromedp.EmulateViewport(w, h, opts...))
}

// ColorScheme emulates prefers-color-scheme ("light" or "dark").
func (b *Browser) ColorScheme(scheme string) {
	b.t.Helper()
	_, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
	})
	if err != nil {
		b.t.Fatalf("emulate prefers-color-scheme %s: %v", scheme, err)
	}
}

func (b *Browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// Open navigates to url and waits for the load event.
func (b *Browser) Open(url string) {
	b.t.Helper()
	b.do(chromedp.Navigate(url))
}

// Eval evaluates a JavaScript expression (a promise is awaited) and decodes
// its JSON value into T.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %.200s: %v", expr, err)
	}
	return v
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// WaitFor polls a JavaScript condition every 50 ms until it is true, for at
// most limit; what says what was awaited when it never comes.
func (b *Browser) WaitFor(what, cond string, limit time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool]("!!("+cond+")"))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.Shot("failed-" + safeName(b.t.Name()))
			b.t.Fatalf("%s: not within %s (last error %v; condition %s)", what, limit, err, cond)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Exists is whether a CSS selector matches an element now.
func (b *Browser) Exists(sel string) bool {
	b.t.Helper()
	return Eval[bool](b, "document.querySelector("+js(sel)+") !== null")
}

// WaitVisible waits until sel matches an element that is rendered (has a
// box), for at most 10 s.
func (b *Browser) WaitVisible(sel string) {
	b.t.Helper()
	b.WaitFor("visible "+sel, "(e => e && e.getClientRects().length > 0)(document.querySelector("+js(sel)+"))", 10*time.Second)
}

// Text is the textContent of the first element sel matches, whitespace
// collapsed; it fails the test when nothing matches.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	s := Eval[*string](b, "(e => e ? e.textContent.replace(/\\s+/g, ' ').trim() : null)(document.querySelector("+js(sel)+"))")
	if s == nil {
		b.Shot("failed-" + safeName(b.t.Name()))
		b.t.Fatalf("no element matches %s", sel)
	}
	return *s
}

// Click clicks the first element sel matches, once it is visible.
func (b *Browser) Click(sel string) {
	b.t.Helper()
	b.WaitVisible(sel)
	b.do(chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// Fill replaces the value of an input or textarea with s, as typed.
func (b *Browser) Fill(sel, s string) {
	b.t.Helper()
	b.WaitVisible(sel)
	Eval[chromedp.Void](b, "(e => { e.value = ''; e.focus() })(document.querySelector("+js(sel)+"))")
	b.do(chromedp.SendKeys(chromedp.CSS(sel), s))
}

// Select picks the option with value v in a <select>, as a person would
// (the change event fires).
func (b *Browser) Select(sel, v string) {
	b.t.Helper()
	b.WaitVisible(sel)
	ok := Eval[bool](b, `(s => { if (!s || ![...s.options].some(o => o.value === `+js(v)+`)) return false;
		s.value = `+js(v)+`; s.dispatchEvent(new Event('input', {bubbles: true})); s.dispatchEvent(new Event('change', {bubbles: true})); return true })(document.querySelector(`+js(sel)+`))`)
	if !ok {
		b.t.Fatalf("%s has no option %q", sel, v)
	}
}

// shotDir is where screenshots go: $ZENMUX_SCREENSHOTS, or a directory
// removed after the test.
func shotDir(t *testing.T) string {
	if d := os.Getenv("ZENMUX_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

var shotDirs sync.Map // test name → directory

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// Shot saves a full-page PNG screenshot as name.png and returns its path.
func (b *Browser) Shot(name string) string {
	b.t.Helper()
	d, ok := shotDirs.Load(b.t.Name())
	if !ok {
		d, _ = shotDirs.LoadOrStore(b.t.Name(), shotDir(b.t))
	}
	// The page's own width and full height: a plain full screenshot takes
	// the width of the widest scroll container's content, which at a
	// phone's width is not what the phone shows.
	size := Eval[[]float64](b, `[document.documentElement.clientWidth, document.documentElement.scrollHeight]`)
	buf, err := chromedp.Call(b.ctx, page.CaptureScreenshot, page.CaptureScreenshotParams{
		Format:                page.CaptureScreenshotFormatPng,
		Clip:                  &page.Viewport{Width: size[0], Height: size[1], Scale: 1},
		FromSurface:           ptrTo(true),
		CaptureBeyondViewport: ptrTo(true),
	})
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(d.(string), name+".png")
	if err := os.WriteFile(path, buf.Data, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", path)
	return path
}

// browserPlans is the node config of the browser tests: the offline echo
// provider, and a plan "tiny" whose 5-hour window one request of
// tiny/echo fills, so that the next goes to Extra Usage.
const browserPlans = `
[[providers]]
name = "echo"
kind = "echo"

[[plans]]
id = "tiny"
name = "Tiny"
price_usd = 1
window_5h_flows = 1
weekly_flows = 1000
monthly_flows = 1000
rpm = 1000
burst = 1000

[[models]]
id = "tiny/echo"
provider = "echo"
upstream = "echo"
request_usd = 0.03283
plans = ["tiny"]
`

// bAccount is a subscriber made through the admin API.
type bAccount struct {
	ID, Email          string
	SubKey, SubKeyID   string // a subscription key
	PaygKey, PaygKeyID string // a pay-as-you-go key
}

// browserAccount creates an account subscribed to plan, with a
// subscription key, a pay-as-you-go key and balanceUSD on its balance.
func browserAccount(t *testing.T, n *Node, plan, balanceUSD string) bAccount {
	t.Helper()
	return browserAccountNamed(t, n, plan, balanceUSD, "Ada Browser")
}

// browserAccountNamed is browserAccount with the account's name.
func browserAccountNamed(t *testing.T, n *Node, plan, balanceUSD, name string) bAccount {
	t.Helper()
	var a bAccount
	a.Email = fmt.Sprintf("browser-%d@example.com", time.Now().UnixNano())
	body, _ := json.Marshal(map[string]string{"email": a.Email, "name": name})
	a.ID = Get(wtWant(t, n.AdminDo("POST", "/admin/v1/accounts", string(body)), 201), "id")
	base := "/admin/v1/accounts/" + a.ID
	if plan != "free" {
		if r := n.AdminDo("POST", base+"/subscription", fmt.Sprintf(`{"plan":%q}`, plan), "Idempotency-Key: browser-sub-"+a.ID); r.Status/100 != 2 {
			t.Fatalf("subscribe %s to %s: %d %s", a.ID, plan, r.Status, r.Body)
		}
	}
	k := wtWant(t, n.AdminDo("POST", base+"/keys", `{"kind":"subscription","name":"laptop"}`), 201)
	a.SubKey, a.SubKeyID = Get(k, "key"), Get(k, "id")
	k = wtWant(t, n.AdminDo("POST", base+"/keys", `{"kind":"payg","name":"overage"}`), 201)
	a.PaygKey, a.PaygKeyID = Get(k, "key"), Get(k, "id")
	if balanceUSD != "" && balanceUSD != "0" {
		wtWant(t, n.AdminDo("POST", base+"/balance", fmt.Sprintf(`{"add_usd":%s}`, balanceUSD), "Idempotency-Key: browser-bal-"+a.ID), 200)
	}
	return a
}

// micro reads a decimal field of a JSON object as integer micro-units.
func micro(t *testing.T, m map[string]any, path string) int64 {
	t.Helper()
	v, err := chaosMicro(Get(m, path))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// chat sends one chat completion through the proxy with key and returns
// the answer.
func chat(t *testing.T, n *Node, key, model, text string) *Response {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 16, "messages": []any{map[string]string{"role": "user", "content": text}}})
	return Do(t, "POST", n.Proxy+"/v1/chat/completions", string(body), "Authorization: Bearer "+key)
}

// requestLog waits (at most 10 s) until the account's request log holds
// want entries, and returns them newest first: a request is charged just
// after its answer, so a test reads the usage only once it is logged.
func requestLog(t *testing.T, n *Node, acct string, want int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := wtWant(t, n.AdminDo("GET", "/admin/v1/accounts/"+acct+"/requests?limit=100", ""), 200)
		data, _ := m["data"].([]any)
		if len(data) >= want {
			out := make([]map[string]any, len(data))
			for i, e := range data {
				out[i], _ = e.(map[string]any)
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("the request log of %s holds %d entries after 10 s, want %d", acct, len(data), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// usage is the admin API's usage of the account.
func usage(t *testing.T, n *Node, acct string) map[string]any {
	t.Helper()
	return wtWant(t, n.AdminDo("GET", "/admin/v1/accounts/"+acct+"/usage", ""), 200)
}

// balance is the account's balance in micro-USD, from the admin API.
func balance(t *testing.T, n *Node, acct string) int64 {
	t.Helper()
	return micro(t, wtWant(t, n.AdminDo("GET", "/admin/v1/accounts/"+acct, ""), 200), "balance_usd")
}

// SignInKey signs in on /sign-in with key, as a person types it, and waits
// for the console to show the account.
func (b *Browser) SignInKey(n *Node, a bAccount, key string) {
	b.t.Helper()
	b.Open(n.Proxy + "/sign-in")
	b.Fill("#key", key)
	b.Click("#submit")
	b.WaitConsole(a)
}

// WaitConsole waits until /console shows the account and its usage,
// keys and request log.
func (b *Browser) WaitConsole(a bAccount) {
	b.t.Helper()
	b.WaitFor("the console of "+a.Email, `location.pathname === "/console" &&
		document.querySelector("#account-name").textContent.includes(`+js(a.Email)+`) &&
		document.querySelector("#w5-used").textContent !== "—" &&
		document.querySelectorAll("#keys-body tr").length > 0 &&
		document.querySelectorAll("#log-body tr").length > 0`, 10*time.Second)
}

// usdText formats micro-USD as the pages' usd(v, {precise: true}) does:
// at least 2 decimals, up to 6 below $1.
func usdText(m int64) string {
	neg := m < 0
	if neg {
		m = -m
	}
	var out string
	if m < 1_000_000 && m%10_000 != 0 {
		out = "$0." + strings.TrimRight(fmt.Sprintf("%06d", m), "0")
	} else {
		cents := (m + 5_000) / 10_000 // half up, as Intl.NumberFormat rounds
		out = fmt.Sprintf("$%s.%02d", thousands(cents/100), cents%100)
	}
	if neg {
		out = "-" + out
	}
	return out
}

// thousands writes n with comma separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// flowsText formats micro-Flows as the pages show Flows (web's lib.js
// flows): exact, up to 6 decimals, thousands separated.
func flowsText(m int64) string {
	if m < 0 {
		return "-" + flowsText(-m)
	}
	s := thousands(m/1_000_000) + "." + fmt.Sprintf("%06d", m%1_000_000)
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

// countdownSeconds reads a countdown as the pages write it ("4h 05m 09s",
// "12m 03s", "9s").
func countdownSeconds(s string) (int64, bool) {
	var total int64
	for _, part := range strings.Fields(s) {
		if len(part) < 2 {
			return 0, false
		}
		var v int64
		if _, err := fmt.Sscan(part[:len(part)-1], &v); err != nil {
			return 0, false
		}
		switch part[len(part)-1] {
		case 'd':
			total += v * 86400
		case 'h':
			total += v * 3600
		case 'm':
			total += v * 60
		case 's':
			total += v
		default:
			return 0, false
		}
	}
	return total, s != ""
}

func ptrTo[T any](v T) *T { return &v }
