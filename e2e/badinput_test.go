package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// Bad input on every admin endpoint of docs/api.md: each call is refused with
// the exact status and error code, in the API's error shape, and none of
// them changes anything.

// biErrorShape checks that body is exactly {"error":{"code":…,"message":…}}
// with the given code and a non-empty message.
func biErrorShape(body []byte, code string) error {
	var e struct {
		Error *struct {
			Code    *string `json:"code"`
			Message *string `json:"message"`
		} `json:"error"`
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil {
		return fmt.Errorf(`body is not {"error":{"code":…,"message":…}}: %v`, err)
	}
	if rest := bytes.TrimSpace(body[d.InputOffset():]); len(rest) != 0 {
		return fmt.Errorf("trailing data after the error object")
	}
	switch {
	case e.Error == nil || e.Error.Code == nil || e.Error.Message == nil:
		return fmt.Errorf(`body lacks error.code or error.message`)
	case *e.Error.Code != code:
		return fmt.Errorf("error.code %q, want %q", *e.Error.Code, code)
	case strings.TrimSpace(*e.Error.Message) == "":
		return fmt.Errorf("error.message is empty")
	}
	return nil
}

// biCase is one bad call and the refusal it must get.
type biCase struct {
	name    string
	method  string
	path    string
	body    string
	headers []string // sent as given
	noAuth  bool     // do not add the admin token
	status  int
	code    string
}

type biEndpoint struct{ method, path, body string }

type biRead struct{ method, path string }

// biSnapshot reads every view and returns their bodies by call.
func biSnapshot(t *testing.T, n *Node, reads []biRead) map[biRead][]byte {
	t.Helper()
	out := map[biRead][]byte{}
	for _, r := range reads {
		resp := n.AdminDo(r.method, r.path, "")
		if resp.Status != 200 {
			t.Fatalf("snapshot %s %s: %d %s", r.method, r.path, resp.Status, resp.Body)
		}
		out[r] = resp.Body
	}
	return out
}

// biWithUnknown adds an unknown field to a JSON object body.
func biWithUnknown(body string) string {
	if body == "{}" {
		return `{"bogus":1}`
	}
	return strings.TrimSuffix(body, "}") + `,"bogus":1}`
}

func TestAdminBadInput(t *testing.T) {
	n := StartNode(t, NodeOptions{})
	const v1 = "/admin/v1"

	// A: a Free account with a subscription key, a pay-as-you-go key and
	// a $10 balance. B: subscribed to Pro, refund processing, a payg key.
	a := wtAccount(t, n, "ada@example.com")
	acctA := v1 + "/accounts/" + a
	skA := Get(wtWant(t, n.AdminDo("POST", acctA+"/keys", `{"kind":"subscription","name":"laptop"}`), 201), "id")
	pkA := Get(wtWant(t, n.AdminDo("POST", acctA+"/keys", `{"kind":"payg","name":"overage"}`), 201), "id")
	topUp := n.AdminDo("POST", acctA+"/balance", `{"add_usd":10}`, "Idempotency-Key: bi-topup-1")
	Expect(t, wtWant(t, topUp, 200), "balance_usd", "10")
	b := wtAccount(t, n, "bob@example.com")
	acctB := v1 + "/accounts/" + b
	wtWant(t, n.AdminDo("POST", acctB+"/subscription", `{"plan":"pro"}`, "Idempotency-Key: bi-sub-b"), 200)
	pkB := Get(wtWant(t, n.AdminDo("POST", acctB+"/keys", `{"kind":"payg","name":"b"}`), 201), "id")
	rid := Get(wtWant(t, n.AdminDo("POST", acctB+"/refunds", ""), 201), "id")
	refund := v1 + "/refunds/" + rid
	rotate := v1 + "/keys/" + skA + "/rotate"

	reads := []biRead{
		{"GET", acctA}, {"GET", acctA + "/keys"}, {"GET", acctA + "/usage"}, {"GET", acctA + "/extra-usage"},
		{"GET", acctA + "/requests"}, {"POST", acctA + "/refunds/preview"},
		{"GET", acctB}, {"GET", acctB + "/keys"}, {"GET", acctB + "/usage"}, {"GET", acctB + "/extra-usage"},
		{"POST", acctB + "/refunds/preview"}, {"GET", refund},
		{"GET", v1 + "/plans"}, {"GET", v1 + "/plans/pro"}, {"GET", v1 + "/models"}, {"GET", v1 + "/rate"},
		{"GET", v1 + "/accounts"}, {"GET", v1 + "/cluster"},
	}
	before := biSnapshot(t, n, reads)

	const (
		proBody  = `{"name":"Pro","price_usd":25,"window_5h_flows":50,"weekly_flows":213.37,"monthly_flows":914.443,"rpm":10,"burst":15}`
		echoBody = `{"id":"zenmux/echo","provider":"echo","upstream":"echo","input_usd_per_mtok":2,"output_usd_per_mtok":4,"plans":["free","pro","max","ultra"]}`
		nodeBody = `{"id":"n2","raft_addr":"127.0.0.1:1","admin_addr":"127.0.0.1:2"}`
		noAcct   = v1 + "/accounts/acct_0000000000000000"
	)
	// Every endpoint with a call that would change something were it let
	// through.
	endpoints := []biEndpoint{
		{"GET", v1 + "/cluster", ""},
		{"POST", v1 + "/cluster/nodes", nodeBody},
		{"DELETE", v1 + "/cluster/nodes/n9", ""},
		{"GET", v1 + "/rate", ""},
		{"PUT", v1 + "/rate", `{"usd_per_flow":0.05}`},
		{"GET", v1 + "/plans", ""},
		{"GET", v1 + "/plans/pro", ""},
		{"PUT", v1 + "/plans/pro", proBody},
		{"GET", v1 + "/models", ""},
		{"PUT", v1 + "/models", echoBody},
		{"GET", v1 + "/accounts", ""},
		{"POST", v1 + "/accounts", `{"email":"eve@example.com","name":"Eve"}`},
		{"GET", acctA, ""},
		{"PUT", acctA + "/flow-value", `{"tier":"insider","multiplier":1.5}`},
		{"POST", acctA + "/subscription", `{"plan":"pro"}`},
		{"POST", acctA + "/subscription/change", `{"plan":"max"}`},
		{"POST", acctA + "/subscription/cancel", "{}"},
		{"POST", acctA + "/keys", `{"kind":"subscription","name":"x"}`},
		{"GET", acctA + "/keys", ""},
		{"POST", rotate, "{}"},
		{"DELETE", v1 + "/keys/" + skA, ""},
		{"POST", acctA + "/balance", `{"add_usd":10}`},
		{"GET", acctA + "/extra-usage", ""},
		{"PUT", acctA + "/extra-usage", fmt.Sprintf(`{"enabled":true,"payg_key_id":%q}`, pkA)},
		{"GET", acctA + "/usage", ""},
		{"GET", acctA + "/requests", ""},
		{"POST", acctA + "/refunds/preview", "{}"},
		{"POST", acctA + "/refunds", "{}"},
		{"GET", refund, ""},
		{"POST", refund + "/status", `{"status":"succeeded"}`},
		{"POST", acctA + "/sign-in-links", "{}"},
		{"GET", acctA + "/billing", ""},
		{"GET", v1 + "/plan-requests", ""},
		{"POST", v1 + "/plan-requests/pr_0000000000000000/confirm", "{}"},
		{"POST", v1 + "/plan-requests/pr_0000000000000000/reject", "{}"},
		{"GET", v1 + "/clock", ""},
		{"POST", v1 + "/clock", `{"advance_seconds":3600}`},
		{"GET", "/metrics", ""},
	}

	var cases []biCase
	add := func(c biCase) { cases = append(cases, c) }
	bad := func(name, method, path, body string, status int, code string, headers ...string) {
		add(biCase{name: name, method: method, path: path, body: body, status: status, code: code, headers: headers})
	}

	// Authentication: no token, a wrong one, another scheme, on everything.
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+n.Token))
	for _, e := range endpoints {
		for _, auth := range []struct{ name, header string }{
			{"no token", ""},
			{"wrong token", "Authorization: Bearer wrong-token-0123456789abcdef0123456789abcdef"},
			{"token with a suffix", "Authorization: Bearer " + n.Token + "x"},
			{"token prefix", "Authorization: Bearer " + n.Token[:len(n.Token)-1]},
			{"basic auth", "Authorization: " + basic},
			{"no scheme", "Authorization: " + n.Token},
			{"empty bearer", "Authorization: Bearer"},
			{"x-api-key", "X-Api-Key: " + n.Token},
		} {
			c := biCase{name: auth.name, method: e.method, path: e.path, body: e.body, noAuth: true, status: 401, code: "unauthorized"}
			if auth.header != "" {
				c.headers = []string{auth.header}
			}
			add(c)
		}
	}

	// Bodies that are not one JSON object of the right fields, on every
	// endpoint that reads a body; each is a call that would succeed (or be
	// refused for a business reason) with its good body.
	for _, e := range endpoints {
		if e.body == "" || e.path == v1+"/clock" {
			continue
		}
		for _, v := range []struct{ name, body string }{
			{"malformed JSON", "{"},
			{"truncated JSON", e.body[:len(e.body)-1]},
			{"JSON array", "[]"},
			{"array of the good body", "[" + e.body + "]"},
			{"extra closing brace", e.body + "}"},
			{"extra closing bracket", e.body + "]"},
			{"two objects", e.body + " " + e.body},
			{"trailing garbage", e.body + " x"},
			{"unknown field", biWithUnknown(e.body)},
			{"only an unknown field", `{"bogus":1}`},
			{"null", "null"},
			{"string", `"text"`},
			{"number", "42"},
		} {
			if v.name == "only an unknown field" && e.body == "{}" {
				continue // the same as "unknown field"
			}
			bad(v.name, e.method, e.path, v.body, 400, "invalid_request")
		}
	}

	// Wrong method on every path.
	for _, c := range []struct{ method, path string }{
		{"PUT", v1 + "/cluster"}, {"POST", v1 + "/cluster"}, {"GET", v1 + "/cluster/nodes"}, {"DELETE", v1 + "/cluster/nodes"},
		{"GET", v1 + "/cluster/nodes/n9"}, {"PUT", v1 + "/cluster/nodes/n9"},
		{"POST", v1 + "/rate"}, {"DELETE", v1 + "/rate"}, {"PATCH", v1 + "/rate"},
		{"POST", v1 + "/plans"}, {"PUT", v1 + "/plans"}, {"DELETE", v1 + "/plans/pro"}, {"POST", v1 + "/plans/pro"},
		{"POST", v1 + "/models"}, {"DELETE", v1 + "/models"},
		{"PUT", v1 + "/accounts"}, {"DELETE", v1 + "/accounts"},
		{"POST", acctA}, {"PUT", acctA}, {"DELETE", acctA}, {"DELETE", noAcct},
		{"GET", acctA + "/flow-value"}, {"POST", acctA + "/flow-value"},
		{"GET", acctA + "/subscription"}, {"PUT", acctA + "/subscription"}, {"DELETE", acctA + "/subscription"},
		{"GET", acctA + "/subscription/change"}, {"GET", acctA + "/subscription/cancel"},
		{"PUT", acctA + "/keys"}, {"DELETE", acctA + "/keys"},
		{"GET", rotate}, {"PUT", rotate}, {"GET", v1 + "/keys/" + skA}, {"POST", v1 + "/keys/" + skA}, {"PUT", v1 + "/keys/" + skA},
		{"GET", acctA + "/balance"}, {"PUT", acctA + "/balance"},
		{"POST", acctA + "/extra-usage"}, {"DELETE", acctA + "/extra-usage"},
		{"POST", acctA + "/usage"}, {"PUT", acctA + "/usage"},
		{"POST", acctA + "/requests"},
		{"GET", acctA + "/refunds/preview"}, {"GET", acctA + "/refunds"}, {"DELETE", acctA + "/refunds"},
		{"POST", refund}, {"DELETE", refund}, {"GET", refund + "/status"}, {"PUT", refund + "/status"},
		{"POST", "/metrics"}, {"PUT", "/metrics"}, {"DELETE", "/metrics"},
	} {
		bad("wrong method", c.method, c.path, "", 405, "method_not_allowed")
	}

	// No such route, and the test clock on a node without test_clock.
	for _, c := range []struct{ method, path, body string }{
		{"GET", v1 + "/clock", ""}, {"POST", v1 + "/clock", `{"advance_seconds":3600}`},
		{"GET", v1 + "/nope", ""}, {"GET", "/admin/v2/plans", ""}, {"GET", "/admin/v1", ""}, {"GET", "/admin/v1/", ""},
		{"GET", v1 + "/keys", ""}, {"GET", v1 + "/refunds", ""},
		{"GET", acctA + "/bogus", ""}, {"GET", acctA + "/keys/" + skA, ""}, {"POST", acctA + "/subscription/upgrade", `{"plan":"max"}`},
		{"POST", rotate + "/x", ""}, {"DELETE", v1 + "/cluster/nodes/n9/x", ""}, {"GET", "/", ""},
	} {
		bad("no such route", c.method, c.path, c.body, 404, "not_found")
	}

	// Unknown ids.
	for _, c := range []struct{ method, path, body string }{
		{"GET", noAcct, ""}, {"GET", noAcct + "/keys", ""}, {"GET", noAcct + "/usage", ""},
		{"GET", noAcct + "/extra-usage", ""}, {"GET", noAcct + "/requests", ""},
		{"GET", v1 + "/accounts/" + strings.Repeat("a", 300), ""},
		{"PUT", noAcct + "/flow-value", `{"tier":"standard"}`},
		{"POST", noAcct + "/subscription", `{"plan":"pro"}`},
		{"POST", noAcct + "/subscription/change", `{"plan":"max"}`},
		{"POST", noAcct + "/subscription/cancel", ""},
		{"POST", noAcct + "/keys", `{"kind":"subscription","name":"x"}`},
		{"POST", noAcct + "/balance", `{"add_usd":10}`},
		{"PUT", noAcct + "/extra-usage", `{"enabled":false}`},
		{"POST", noAcct + "/refunds/preview", ""},
		{"POST", noAcct + "/refunds", ""},
		{"POST", v1 + "/keys/key_0000000000000000/rotate", ""},
		{"DELETE", v1 + "/keys/key_0000000000000000", ""},
		{"GET", v1 + "/refunds/rf_0000000000000000", ""},
		{"POST", v1 + "/refunds/rf_0000000000000000/status", `{"status":"succeeded"}`},
		{"GET", v1 + "/plans/nope", ""},
		{"POST", acctA + "/subscription", `{"plan":"nope"}`},
		{"POST", acctB + "/subscription/change", `{"plan":"nope"}`},
		{"PUT", v1 + "/models", `{"id":"zenmux/echo","provider":"echo","upstream":"echo","plans":["nope"]}`},
		{"PUT", acctA + "/extra-usage", `{"enabled":true,"payg_key_id":"key_0000000000000000"}`},
		{"PUT", acctA + "/extra-usage", fmt.Sprintf(`{"enabled":true,"payg_key_id":%q}`, pkB)},
		{"DELETE", v1 + "/cluster/nodes/n9", ""},
	} {
		bad("unknown id", c.method, c.path, c.body, 404, "not_found")
	}

	long := strings.Repeat("k", 256)
	for _, c := range []biCase{
		// Accounts.
		{name: "missing email", method: "POST", path: v1 + "/accounts", body: `{"name":"X"}`},
		{name: "empty body", method: "POST", path: v1 + "/accounts", body: `{}`},
		{name: "email of wrong type", method: "POST", path: v1 + "/accounts", body: `{"email":5,"name":"X"}`},
		{name: "not an email", method: "POST", path: v1 + "/accounts", body: `{"email":"not-an-email","name":"X"}`},
		{name: "display-name email", method: "POST", path: v1 + "/accounts", body: `{"email":"Eve <eve@example.com>"}`},
		{name: "name too long", method: "POST", path: v1 + "/accounts", body: `{"email":"eve@example.com","name":"` + strings.Repeat("n", 201) + `"}`},
		{name: "email too long", method: "POST", path: v1 + "/accounts", body: `{"email":"` + strings.Repeat("e", 250) + `@example.com"}`},
		{name: "duplicate email", method: "POST", path: v1 + "/accounts", body: `{"email":"ADA@example.com","name":"X"}`, status: 409, code: "conflict"},
		{name: "limit -1", method: "GET", path: v1 + "/accounts?limit=-1"},
		{name: "limit abc", method: "GET", path: v1 + "/accounts?limit=abc"},
		{name: "limit 0", method: "GET", path: v1 + "/accounts?limit=0"},
		{name: "limit 1.5", method: "GET", path: v1 + "/accounts?limit=1.5"},
		{name: "limit too big", method: "GET", path: v1 + "/accounts?limit=99999999999999999999"},

		// Rate.
		{name: "missing usd_per_flow", method: "PUT", path: v1 + "/rate", body: `{}`},
		{name: "usd_per_flow string", method: "PUT", path: v1 + "/rate", body: `{"usd_per_flow":"0.05"}`},
		{name: "usd_per_flow null", method: "PUT", path: v1 + "/rate", body: `{"usd_per_flow":null}`},
		{name: "usd_per_flow bool", method: "PUT", path: v1 + "/rate", body: `{"usd_per_flow":true}`},
		{name: "usd_per_flow 0", method: "PUT", path: v1 + "/rate", body: `{"usd_per_flow":0}`},
		{name: "usd_per_flow -5", method: "PUT", path: v1 + "/rate", body: `{"usd_per_flow":-5}`},
		{name: "usd_per_flow 1e9", method: "PUT", path: v1 + "/rate", body: `{"usd_per_flow":1e9}`},
		{name: "usd_per_flow 1000", method: "PUT", path: v1 + "/rate", body: `{"usd_per_flow":1000}`},
		{name: "usd_per_flow too small", method: "PUT", path: v1 + "/rate", body: `{"usd_per_flow":0.00001}`},
		{name: "usd_per_flow 10 decimals", method: "PUT", path: v1 + "/rate", body: `{"usd_per_flow":0.0328300001}`},
		{name: "usd_per_flow huge", method: "PUT", path: v1 + "/rate", body: `{"usd_per_flow":99999999999999999999}`},

		// Plans.
		{name: "plan fields missing", method: "PUT", path: v1 + "/plans/pro", body: `{"name":"Pro"}`},
		{name: "plan wrong field", method: "PUT", path: v1 + "/plans/pro", body: `{"plan":5}`},
		{name: "plan id mismatch", method: "PUT", path: v1 + "/plans/pro", body: strings.Replace(proBody, "{", `{"id":"max",`, 1)},
		{name: "plan bad id", method: "PUT", path: v1 + "/plans/BAD", body: proBody},
		{name: "plan price -5", method: "PUT", path: v1 + "/plans/pro", body: strings.Replace(proBody, `"price_usd":25`, `"price_usd":-5`, 1)},
		{name: "plan price 10.001", method: "PUT", path: v1 + "/plans/pro", body: strings.Replace(proBody, `"price_usd":25`, `"price_usd":10.001`, 1)},
		{name: "plan price 1e9", method: "PUT", path: v1 + "/plans/pro", body: strings.Replace(proBody, `"price_usd":25`, `"price_usd":1e9`, 1)},
		{name: "plan price huge", method: "PUT", path: v1 + "/plans/pro", body: strings.Replace(proBody, `"price_usd":25`, `"price_usd":99999999999999999999`, 1)},
		{name: "plan price string", method: "PUT", path: v1 + "/plans/pro", body: strings.Replace(proBody, `"price_usd":25`, `"price_usd":"25"`, 1)},
		{name: "plan 5h flows 0", method: "PUT", path: v1 + "/plans/pro", body: strings.Replace(proBody, `"window_5h_flows":50`, `"window_5h_flows":0`, 1)},
		{name: "plan monthly 7 decimals", method: "PUT", path: v1 + "/plans/pro", body: strings.Replace(proBody, `"monthly_flows":914.443`, `"monthly_flows":914.4430001`, 1)},
		{name: "plan rpm 0", method: "PUT", path: v1 + "/plans/pro", body: strings.Replace(proBody, `"rpm":10`, `"rpm":0`, 1)},
		{name: "plan rpm fraction", method: "PUT", path: v1 + "/plans/pro", body: strings.Replace(proBody, `"rpm":10`, `"rpm":10.5`, 1)},
		{name: "plan burst string", method: "PUT", path: v1 + "/plans/pro", body: strings.Replace(proBody, `"burst":15`, `"burst":"15"`, 1)},
		{name: "plan burst huge", method: "PUT", path: v1 + "/plans/pro", body: strings.Replace(proBody, `"burst":15`, `"burst":99999999999999999999`, 1)},
		{name: "free plan with a price", method: "PUT", path: v1 + "/plans/free", body: strings.Replace(proBody, `"name":"Pro"`, `"name":"Free"`, 1)},

		// Models.
		{name: "model empty", method: "PUT", path: v1 + "/models", body: `{}`},
		{name: "model bad id", method: "PUT", path: v1 + "/models", body: strings.Replace(echoBody, "zenmux/echo", "no slash", 1)},
		{name: "model no plans", method: "PUT", path: v1 + "/models", body: strings.Replace(echoBody, `["free","pro","max","ultra"]`, `[]`, 1)},
		{name: "model plans string", method: "PUT", path: v1 + "/models", body: strings.Replace(echoBody, `["free","pro","max","ultra"]`, `"pro"`, 1)},
		{name: "model plan twice", method: "PUT", path: v1 + "/models", body: strings.Replace(echoBody, `["free","pro","max","ultra"]`, `["pro","pro"]`, 1)},
		{name: "model price -1", method: "PUT", path: v1 + "/models", body: strings.Replace(echoBody, `"input_usd_per_mtok":2`, `"input_usd_per_mtok":-1`, 1)},
		{name: "model price 1001", method: "PUT", path: v1 + "/models", body: strings.Replace(echoBody, `"input_usd_per_mtok":2`, `"input_usd_per_mtok":1001`, 1)},
		{name: "model price 7 decimals", method: "PUT", path: v1 + "/models", body: strings.Replace(echoBody, `"input_usd_per_mtok":2`, `"input_usd_per_mtok":2.0000001`, 1)},
		{name: "model price string", method: "PUT", path: v1 + "/models", body: strings.Replace(echoBody, `"input_usd_per_mtok":2`, `"input_usd_per_mtok":"2"`, 1)},

		// Flow value.
		{name: "flow-value empty", method: "PUT", path: acctA + "/flow-value", body: `{}`},
		{name: "tier unknown", method: "PUT", path: acctA + "/flow-value", body: `{"tier":"gold","multiplier":2}`},
		{name: "tier wrong type", method: "PUT", path: acctA + "/flow-value", body: `{"tier":1,"multiplier":2}`},
		{name: "insider without multiplier", method: "PUT", path: acctA + "/flow-value", body: `{"tier":"insider"}`},
		{name: "insider 0.5", method: "PUT", path: acctA + "/flow-value", body: `{"tier":"insider","multiplier":0.5}`},
		{name: "insider 11", method: "PUT", path: acctA + "/flow-value", body: `{"tier":"insider","multiplier":11}`},
		{name: "insider 1e9", method: "PUT", path: acctA + "/flow-value", body: `{"tier":"insider","multiplier":1e9}`},
		{name: "insider huge", method: "PUT", path: acctA + "/flow-value", body: `{"tier":"insider","multiplier":99999999999999999999}`},
		{name: "insider string", method: "PUT", path: acctA + "/flow-value", body: `{"tier":"insider","multiplier":"2"}`},
		{name: "abuse 0.001", method: "PUT", path: acctA + "/flow-value", body: `{"tier":"abuse","multiplier":0.001}`},
		{name: "abuse -5", method: "PUT", path: acctA + "/flow-value", body: `{"tier":"abuse","multiplier":-5}`},
		{name: "abuse 0", method: "PUT", path: acctA + "/flow-value", body: `{"tier":"abuse","multiplier":0}`},
		{name: "standard 2", method: "PUT", path: acctA + "/flow-value", body: `{"tier":"standard","multiplier":2}`},

		// Subscription.
		{name: "plan missing", method: "POST", path: acctA + "/subscription", body: `{}`},
		{name: "plan empty", method: "POST", path: acctA + "/subscription", body: `{"plan":""}`},
		{name: "plan number", method: "POST", path: acctA + "/subscription", body: `{"plan":5}`},
		{name: "plan list", method: "POST", path: acctA + "/subscription", body: `{"plan":["pro"]}`},
		{name: "subscribe to free", method: "POST", path: acctA + "/subscription", body: `{"plan":"free"}`},
		{name: "idempotency key over 255", method: "POST", path: acctA + "/subscription", body: `{"plan":"pro"}`, headers: []string{"Idempotency-Key: " + long}},
		{name: "idempotency key with a space", method: "POST", path: acctA + "/subscription", body: `{"plan":"pro"}`, headers: []string{"Idempotency-Key: a b"}},
		{name: "idempotency key reused", method: "POST", path: acctA + "/subscription", body: `{"plan":"pro"}`, headers: []string{"Idempotency-Key: bi-topup-1"}, status: 409, code: "idempotency_key_reused"},
		{name: "subscribe while a refund is processing", method: "POST", path: acctB + "/subscription", body: `{"plan":"pro"}`, status: 409, code: "conflict"},
		{name: "change missing plan", method: "POST", path: acctA + "/subscription/change", body: `{}`},
		{name: "change plan number", method: "POST", path: acctA + "/subscription/change", body: `{"plan":5}`},
		{name: "change on Free", method: "POST", path: acctA + "/subscription/change", body: `{"plan":"max"}`, status: 409, code: "conflict"},
		{name: "change on Free after refund", method: "POST", path: acctB + "/subscription/change", body: `{"plan":"max"}`, status: 409, code: "conflict"},
		{name: "change idempotency key over 255", method: "POST", path: acctA + "/subscription/change", body: `{"plan":"max"}`, headers: []string{"Idempotency-Key: " + long}},
		{name: "change idempotency key reused", method: "POST", path: acctA + "/subscription/change", body: `{"plan":"max"}`, headers: []string{"Idempotency-Key: bi-sub-b"}, status: 409, code: "idempotency_key_reused"},
		{name: "cancel on Free", method: "POST", path: acctA + "/subscription/cancel", status: 409, code: "conflict"},

		// Keys.
		{name: "key kind missing", method: "POST", path: acctA + "/keys", body: `{}`},
		{name: "key kind unknown", method: "POST", path: acctA + "/keys", body: `{"kind":"admin","name":"x"}`},
		{name: "key kind number", method: "POST", path: acctA + "/keys", body: `{"kind":5,"name":"x"}`},
		{name: "key name number", method: "POST", path: acctA + "/keys", body: `{"kind":"subscription","name":5}`},
		{name: "key name too long", method: "POST", path: acctA + "/keys", body: `{"kind":"subscription","name":"` + strings.Repeat("n", 101) + `"}`},

		// Balance.
		{name: "add_usd missing", method: "POST", path: acctA + "/balance", body: `{}`},
		{name: "add_usd string", method: "POST", path: acctA + "/balance", body: `{"add_usd":"10"}`},
		{name: "add_usd null", method: "POST", path: acctA + "/balance", body: `{"add_usd":null}`},
		{name: "add_usd bool", method: "POST", path: acctA + "/balance", body: `{"add_usd":true}`},
		{name: "add_usd -5", method: "POST", path: acctA + "/balance", body: `{"add_usd":-5}`},
		{name: "add_usd 0", method: "POST", path: acctA + "/balance", body: `{"add_usd":0}`},
		{name: "add_usd -0", method: "POST", path: acctA + "/balance", body: `{"add_usd":-0}`},
		{name: "add_usd 1e9", method: "POST", path: acctA + "/balance", body: `{"add_usd":1e9}`},
		{name: "add_usd 1000000000", method: "POST", path: acctA + "/balance", body: `{"add_usd":1000000000}`},
		{name: "add_usd over the top-up max", method: "POST", path: acctA + "/balance", body: `{"add_usd":1000000.01}`},
		{name: "add_usd 10.001", method: "POST", path: acctA + "/balance", body: `{"add_usd":10.001}`},
		{name: "add_usd 0.001", method: "POST", path: acctA + "/balance", body: `{"add_usd":0.001}`},
		{name: "add_usd 7 decimals", method: "POST", path: acctA + "/balance", body: `{"add_usd":10.0000001}`},
		{name: "add_usd huge", method: "POST", path: acctA + "/balance", body: `{"add_usd":99999999999999999999}`},
		{name: "add_usd idempotency key over 255", method: "POST", path: acctA + "/balance", body: `{"add_usd":10}`, headers: []string{"Idempotency-Key: " + long}},
		{name: "add_usd key reused, other amount", method: "POST", path: acctA + "/balance", body: `{"add_usd":11}`, headers: []string{"Idempotency-Key: bi-topup-1"}, status: 409, code: "idempotency_key_reused"},
		{name: "add_usd key reused, other account", method: "POST", path: acctB + "/balance", body: `{"add_usd":10}`, headers: []string{"Idempotency-Key: bi-topup-1"}, status: 409, code: "idempotency_key_reused"},

		// Extra Usage.
		{name: "enabled missing", method: "PUT", path: acctA + "/extra-usage", body: `{}`},
		{name: "enabled string", method: "PUT", path: acctA + "/extra-usage", body: `{"enabled":"yes"}`},
		{name: "enabled number", method: "PUT", path: acctA + "/extra-usage", body: `{"enabled":1}`},
		{name: "payg_key_id number", method: "PUT", path: acctA + "/extra-usage", body: `{"enabled":true,"payg_key_id":5}`},
		{name: "enable without a key", method: "PUT", path: acctA + "/extra-usage", body: `{"enabled":true}`},
		{name: "enable with a subscription key", method: "PUT", path: acctA + "/extra-usage", body: fmt.Sprintf(`{"enabled":true,"payg_key_id":%q}`, skA)},

		// Request log.
		{name: "requests limit -1", method: "GET", path: acctA + "/requests?limit=-1"},
		{name: "requests limit abc", method: "GET", path: acctA + "/requests?limit=abc"},
		{name: "requests limit 0", method: "GET", path: acctA + "/requests?limit=0"},
		{name: "requests limit 1001", method: "GET", path: acctA + "/requests?limit=1001"},
		{name: "requests limit 1.5", method: "GET", path: acctA + "/requests?limit=1.5"},

		// Refunds.
		{name: "refund on Free", method: "POST", path: acctA + "/refunds", status: 409, code: "refund_not_eligible"},
		{name: "second refund", method: "POST", path: acctB + "/refunds", status: 409, code: "refund_not_eligible"},
		{name: "refund idempotency key over 255", method: "POST", path: acctB + "/refunds", headers: []string{"Idempotency-Key: " + long}},
		{name: "status missing", method: "POST", path: refund + "/status", body: `{}`},
		{name: "status processing", method: "POST", path: refund + "/status", body: `{"status":"processing"}`},
		{name: "status upper case", method: "POST", path: refund + "/status", body: `{"status":"SUCCEEDED"}`},
		{name: "status unknown", method: "POST", path: refund + "/status", body: `{"status":"refunded"}`},
		{name: "status number", method: "POST", path: refund + "/status", body: `{"status":5}`},
		{name: "status idempotency key over 255", method: "POST", path: refund + "/status", body: `{"status":"succeeded"}`, headers: []string{"Idempotency-Key: " + long}},
		{name: "status idempotency key reused", method: "POST", path: refund + "/status", body: `{"status":"succeeded"}`, headers: []string{"Idempotency-Key: bi-topup-1"}, status: 409, code: "idempotency_key_reused"},

		// Cluster.
		{name: "node empty", method: "POST", path: v1 + "/cluster/nodes", body: `{}`},
		{name: "node id only", method: "POST", path: v1 + "/cluster/nodes", body: `{"id":"n2"}`},
		{name: "node id number", method: "POST", path: v1 + "/cluster/nodes", body: `{"id":2,"raft_addr":"127.0.0.1:1","admin_addr":"127.0.0.1:2"}`},
		{name: "node id with a slash", method: "POST", path: v1 + "/cluster/nodes", body: `{"id":"n/2","raft_addr":"127.0.0.1:1","admin_addr":"127.0.0.1:2"}`},
		{name: "node garbage addresses", method: "POST", path: v1 + "/cluster/nodes", body: `{"id":"n2","raft_addr":"not an address","admin_addr":"nope"}`},
		{name: "node raft_addr without port", method: "POST", path: v1 + "/cluster/nodes", body: `{"id":"n2","raft_addr":"127.0.0.1","admin_addr":"127.0.0.1:2"}`},
		{name: "node raft_addr empty port", method: "POST", path: v1 + "/cluster/nodes", body: `{"id":"n2","raft_addr":"127.0.0.1:","admin_addr":"127.0.0.1:2"}`},
		{name: "node raft_addr port 99999", method: "POST", path: v1 + "/cluster/nodes", body: `{"id":"n2","raft_addr":"127.0.0.1:99999","admin_addr":"127.0.0.1:2"}`},
		{name: "node raft_addr port 0", method: "POST", path: v1 + "/cluster/nodes", body: `{"id":"n2","raft_addr":"127.0.0.1:0","admin_addr":"127.0.0.1:2"}`},
		{name: "node raft_addr on every interface", method: "POST", path: v1 + "/cluster/nodes", body: `{"id":"n2","raft_addr":"0.0.0.0:8300","admin_addr":"127.0.0.1:2"}`},
		{name: "node admin_addr on every IPv6 interface", method: "POST", path: v1 + "/cluster/nodes", body: `{"id":"n2","raft_addr":"127.0.0.1:1","admin_addr":"[::]:8081"}`},
		{name: "node raft_addr no host", method: "POST", path: v1 + "/cluster/nodes", body: `{"id":"n2","raft_addr":":8300","admin_addr":"127.0.0.1:2"}`},
		{name: "node admin_addr a URL", method: "POST", path: v1 + "/cluster/nodes", body: `{"id":"n2","raft_addr":"127.0.0.1:1","admin_addr":"http://127.0.0.1:2"}`},
	} {
		if c.status == 0 {
			c.status, c.code = 400, "invalid_request"
		}
		add(c)
	}

	for i, c := range cases {
		var r *Response
		if c.noAuth {
			r = Do(t, c.method, n.Admin+c.path, c.body, c.headers...)
		} else {
			r = n.AdminDo(c.method, c.path, c.body, c.headers...)
		}
		label := fmt.Sprintf("#%d %s: %s %s %.80q", i, c.name, c.method, c.path, c.body)
		if r.Status != c.status {
			t.Errorf("%s: status %d, want %d: %s", label, r.Status, c.status, r.Body)
			continue
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: Content-Type %q, want application/json", label, ct)
		}
		if err := biErrorShape(r.Body, c.code); err != nil {
			t.Errorf("%s: %v: %s", label, err, r.Body)
		}
		if bytes.Contains(r.Body, []byte(n.Token)) {
			t.Errorf("%s: the answer contains the admin token", label)
		}
	}
	t.Logf("%d bad calls", len(cases))

	// A replayed top-up answers as the first one did and changes nothing.
	if r := n.AdminDo("POST", acctA+"/balance", `{"add_usd":10}`, "Idempotency-Key: bi-topup-1"); r.Status != 200 || !bytes.Equal(r.Body, topUp.Body) {
		t.Errorf("top-up replay: %d %s, want 200 and %s", r.Status, r.Body, topUp.Body)
	}

	after := biSnapshot(t, n, reads)
	for _, r := range reads {
		if !bytes.Equal(before[r], after[r]) {
			t.Errorf("%s %s changed:\nbefore %s\nafter  %s", r.method, r.path, before[r], after[r])
		}
	}

	for _, base := range []string{n.Admin, n.Proxy} {
		for _, p := range []string{"/healthz", "/readyz"} {
			if r := Do(t, "GET", base+p, ""); r.Status != 200 {
				t.Errorf("%s%s: %d %s", base, p, r.Status, r.Body)
			}
		}
	}
	Expect(t, wtWant(t, n.AdminDo("POST", acctA+"/balance", `{"add_usd":5}`, "Idempotency-Key: bi-topup-2"), 200), "balance_usd", "15")
	Expect(t, wtWant(t, n.AdminDo("GET", acctA, ""), 200), "balance_usd", "15", "plan", "free")
	Expect(t, wtWant(t, n.AdminDo("PUT", acctA+"/extra-usage", fmt.Sprintf(`{"enabled":true,"payg_key_id":%q}`, pkA)), 200), "enabled", "true", "payg_key.id", pkA)
	wtWant(t, n.AdminDo("POST", v1+"/accounts", `{"email":"eve@example.com","name":"Eve"}`), 201)
}
