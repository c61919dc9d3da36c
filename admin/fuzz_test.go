package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"zenmux/config"
	"zenmux/internal/apierr"
	"zenmux/ledger"
)

// fuzzToken is the admin token of the fuzzed server.
const fuzzToken = "0123456789abcdef"

// fuzzT0 is the fake store's clock: fixed, so that only commands move
// ledger time (2026-04-01T00:00:00Z).
var fuzzT0 = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// ledgerStore is a Store over an in-memory ledger, the way node runs one
// without Raft: Propose encodes the command, decodes it as a replica
// would, applies it, and answers the ledger's result; membership keeps
// node's checks and records members in the ledger. Its clock stands
// still but for the replicated test-clock offset.
type ledgerStore struct {
	l        *ledger.Ledger
	proposed int   // commands proposed
	broken   error // a command Encode took and Decode refused
}

func (s *ledgerStore) Ledger() *ledger.Ledger { return s.l }
func (s *ledgerStore) Now() int64             { return fuzzT0 + s.l.ClockOffset() }
func (s *ledgerStore) ReadBarrier() error     { return nil }
func (s *ledgerStore) NotReady() string       { return "" }
func (s *ledgerStore) Metrics(b []byte) []byte {
	return append(b, "zenmux_fuzz_store 1\n"...)
}

func (s *ledgerStore) Propose(cmd ledger.Command) (ledger.Result, error) {
	s.proposed++
	data, err := ledger.Encode(cmd, s.Now())
	if err != nil {
		return ledger.Result{}, fmt.Errorf("%w: %v", ledger.ErrInvalid, err)
	}
	dec, ts, err := ledger.Decode(data)
	if err != nil {
		// On a node the FSM would panic on this entry, on every replica.
		s.broken = fmt.Errorf("%T encoded but does not decode: %v", cmd, err)
		return ledger.Result{}, fmt.Errorf("%w: %v", apierr.ErrUnavailable, err)
	}
	return s.l.Apply(dec, ts), nil
}

// RequestLog refuses a malformed cursor as raftfsm's does; the log is
// empty.
func (s *ledgerStore) RequestLog(accountID, cursor string, limit int) ([]ledger.LogEntryView, string, error) {
	if cursor != "" {
		if _, _, err := ledger.ParseLogCursor(cursor); err != nil {
			return nil, "", err
		}
	}
	return []ledger.LogEntryView{}, "", nil
}

func (s *ledgerStore) Cluster() (any, error) {
	type node struct {
		ID        string `json:"id"`
		RaftAddr  string `json:"raft_addr"`
		AdminAddr string `json:"admin_addr"`
		State     string `json:"state"`
	}
	out := struct {
		LeaderID string `json:"leader_id"`
		Nodes    []node `json:"nodes"`
	}{LeaderID: "n1", Nodes: []node{}}
	for _, m := range s.l.Members() {
		state := "follower"
		if m.ID == "n1" {
			state = "leader"
		}
		out.Nodes = append(out.Nodes, node{m.ID, m.RaftAddr, m.AdminAddr, state})
	}
	return out, nil
}

var fuzzNodeID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// AddNode and RemoveNode make node's checks (node/store.go) before the
// membership commands; Raft's own change always succeeds here.
func (s *ledgerStore) AddNode(id, raftAddr, adminAddr string) error {
	if !fuzzNodeID.MatchString(id) {
		return fmt.Errorf("%w: node id %q must be 1-64 of [A-Za-z0-9._-]", ledger.ErrInvalid, id)
	}
	for _, a := range []string{raftAddr, adminAddr} {
		if config.WildcardHost(a) {
			return fmt.Errorf("%w: %q is not an address peers can dial", ledger.ErrInvalid, a)
		}
	}
	_, err := ledger.Propose(s, &ledger.SetMember{Member: ledger.Member{ID: id, RaftAddr: raftAddr, AdminAddr: adminAddr}})
	return err
}

func (s *ledgerStore) RemoveNode(id string) error {
	known := false
	for _, m := range s.l.Members() {
		known = known || m.ID == id
	}
	if !known {
		return fmt.Errorf("%w: node %q", ledger.ErrNotFound, id)
	}
	if _, err := ledger.Propose(s, &ledger.RemoveMember{ID: id}); err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return err
	}
	_, err := ledger.Propose(s, &ledger.ResetNode{Node: id})
	return err
}

// memState is the ledger's durable form, kept up to date by flush: the
// whole replicated state, as a node's Pebble holds it.
type memState map[string]string

func (m memState) Set(k, v []byte) error { m[string(k)] = string(v); return nil }
func (m memState) Delete(k []byte) error { delete(m, string(k)); return nil }
func (m memState) DeleteRange(start, end []byte) error {
	for k := range m {
		if k >= string(start) && k < string(end) {
			delete(m, k)
		}
	}
	return nil
}

// The fixture's ids: acct_a is on Pro with a subscription key, a
// pay-as-you-go key and a balance; acct_b is on Free with a refund
// processing (rf_b); acct_c is new, on Free; the cluster has member n1.
const (
	fuzzAcctA, fuzzAcctB  = "acct_a", "acct_b"
	fuzzAcctC             = "acct_c"
	fuzzSubKey, fuzzPaygK = "key_sa", "key_pa"
	fuzzRefund            = "rf_b"
	fuzzPlanReq           = "pr_c" // acct_c asks for Pro
)

// newFuzzStore builds the fixture, checkpointed into state.
func newFuzzStore(tb testing.TB) (*ledgerStore, memState) {
	tb.Helper()
	s := &ledgerStore{l: ledger.New()}
	idem := func(k string) ledger.Idem { return ledger.Idem{IdemKey: "setup-" + k, Fingerprint: k} }
	for _, cmd := range []ledger.Command{
		&ledger.Seed{NanoUSDPerFlow: ledger.DefaultNanoUSDPerFlow, Plans: ledger.DefaultPlans(), Models: ledger.DefaultModels(),
			DedupeDays: 7, RequestLogDays: 30, LogFormat: ledger.LogFormatCurrent, Members: []ledger.Member{{ID: "n1", RaftAddr: "127.0.0.1:8300", AdminAddr: "127.0.0.1:8081"}}},
		&ledger.CreateAccount{ID: fuzzAcctA, Email: "a@example.com", Name: "A"},
		&ledger.CreateAccount{ID: fuzzAcctB, Email: "b@example.com", Name: "B"},
		&ledger.CreateAccount{ID: fuzzAcctC, Email: "c@example.com", Name: "C"},
		&ledger.CreateKey{AccountID: fuzzAcctA, KeyID: fuzzSubKey, Kind: ledger.KindSubscription, Name: "s", Hash: ledger.HashSecret("s"), Last4: "aaaa"},
		&ledger.CreateKey{AccountID: fuzzAcctA, KeyID: fuzzPaygK, Kind: ledger.KindPayg, Name: "p", Hash: ledger.HashSecret("p"), Last4: "bbbb"},
		&ledger.Subscribe{Idem: idem("sub-a"), AccountID: fuzzAcctA, Plan: "pro"},
		&ledger.TopUp{Idem: idem("top-a"), AccountID: fuzzAcctA, MicroUSD: 10_000000},
		&ledger.Subscribe{Idem: idem("sub-b"), AccountID: fuzzAcctB, Plan: "pro"},
		&ledger.RefundSubmit{Idem: idem("rf-b"), AccountID: fuzzAcctB, RefundID: fuzzRefund},
		&ledger.RequestPlanChange{ID: fuzzPlanReq, AccountID: fuzzAcctC, Action: ledger.ActionSubscribe, Plan: "pro"},
	} {
		if r, err := s.Propose(cmd); err != nil || r.Err != nil {
			tb.Fatalf("fixture %T: %v %v", cmd, err, r.Err)
		}
	}
	state := memState{}
	if err := s.l.Flush(state); err != nil {
		tb.Fatal(err)
	}
	s.proposed = 0
	return s, state
}

// endpoint is one route of the admin table in docs/api.md; {} in path takes the
// fuzzed path argument, or def when it is empty.
type endpoint struct {
	method, path, def string
	money             bool // honours Idempotency-Key
	read              bool // answers without changing state, whatever the body
}

// fuzzMethods are the methods the fuzzed method byte picks from; 0 and
// values past the list keep the endpoint's own.
var fuzzMethods = []string{"", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get"}

var fuzzEndpoints = []endpoint{
	{"GET", "/admin/v1/cluster", "", false, true},
	{"POST", "/admin/v1/cluster/nodes", "", false, false},
	{"DELETE", "/admin/v1/cluster/nodes/{}", "n1", false, false},
	{"GET", "/admin/v1/rate", "", false, true},
	{"PUT", "/admin/v1/rate", "", false, false},
	{"GET", "/admin/v1/plans", "", false, true},
	{"GET", "/admin/v1/plans/{}", "pro", false, true},
	{"PUT", "/admin/v1/plans/{}", "pro", false, false},
	{"GET", "/admin/v1/models", "", false, true},
	{"PUT", "/admin/v1/models", "", false, false},
	{"GET", "/admin/v1/accounts", "", false, true},
	{"POST", "/admin/v1/accounts", "", false, false},
	{"GET", "/admin/v1/accounts/{}", fuzzAcctA, false, true},
	{"PUT", "/admin/v1/accounts/{}/flow-value", fuzzAcctA, false, false},
	{"POST", "/admin/v1/accounts/{}/subscription", fuzzAcctC, true, false},
	{"POST", "/admin/v1/accounts/{}/subscription/change", fuzzAcctA, true, false},
	{"POST", "/admin/v1/accounts/{}/subscription/cancel", fuzzAcctA, false, false},
	{"POST", "/admin/v1/accounts/{}/keys", fuzzAcctA, false, false},
	{"GET", "/admin/v1/accounts/{}/keys", fuzzAcctA, false, true},
	{"POST", "/admin/v1/keys/{}/rotate", fuzzSubKey, false, false},
	{"DELETE", "/admin/v1/keys/{}", fuzzPaygK, false, false},
	{"POST", "/admin/v1/accounts/{}/balance", fuzzAcctA, true, false},
	{"GET", "/admin/v1/accounts/{}/extra-usage", fuzzAcctA, false, true},
	{"PUT", "/admin/v1/accounts/{}/extra-usage", fuzzAcctA, false, false},
	{"GET", "/admin/v1/accounts/{}/usage", fuzzAcctA, false, true},
	{"GET", "/admin/v1/accounts/{}/requests", fuzzAcctA, false, true},
	{"POST", "/admin/v1/accounts/{}/refunds/preview", fuzzAcctA, false, true},
	{"POST", "/admin/v1/accounts/{}/refunds", fuzzAcctA, true, false},
	{"GET", "/admin/v1/refunds/{}", fuzzRefund, false, true},
	{"POST", "/admin/v1/refunds/{}/status", fuzzRefund, true, false},
	{"POST", "/admin/v1/accounts/{}/sign-in-links", fuzzAcctA, false, false},
	{"GET", "/admin/v1/accounts/{}/billing", fuzzAcctA, false, true},
	{"GET", "/admin/v1/accounts/{}/payment-intents", fuzzAcctA, false, true},
	{"GET", "/admin/v1/payments/anomalies", "", false, true},
	{"GET", "/admin/v1/plan-requests", "", false, true},
	{"POST", "/admin/v1/plan-requests/{}/confirm", fuzzPlanReq, true, false},
	{"POST", "/admin/v1/plan-requests/{}/reject", fuzzPlanReq, true, false},
	{"GET", "/admin/v1/clock", "", false, true},
	{"POST", "/admin/v1/clock", "", false, false},
	{"GET", "/metrics", "", false, true},
	{"GET", "/healthz", "", false, true},
	{"GET", "/readyz", "", false, true},
}

// statusCodes are the error codes apierr.Status and TransportError answer, by
// status (docs/api.md, "Errors on the admin API": errors are {"error":{"code","message"}}).
var statusCodes = map[int][]string{
	400: {"invalid_request"},
	401: {"unauthorized"},
	404: {"not_found"},
	405: {"method_not_allowed"},
	409: {"idempotency_key_reused", "refund_not_eligible", "conflict"},
	413: {"request_too_large"},
}

// fuzzRequest is one fuzzed admin call.
type fuzzRequest struct {
	method, uri, idemKey, auth string
	body                       []byte
}

type fuzzResponse struct {
	status                      int
	body                        []byte
	contentType, allow, wwwAuth string
}

func (r fuzzRequest) do(s *Server) fuzzResponse {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(r.method)
	ctx.Request.SetRequestURI(r.uri)
	if r.auth == "" {
		ctx.Request.Header.Set("Authorization", "Bearer "+fuzzToken)
	} else {
		ctx.Request.Header.Set("Authorization", r.auth)
	}
	if r.idemKey != "" {
		ctx.Request.Header.Set("Idempotency-Key", r.idemKey)
	}
	ctx.Request.Header.SetContentType("application/json")
	ctx.Request.SetBody(r.body)
	s.Handler(&ctx)
	h := &ctx.Response.Header
	return fuzzResponse{ctx.Response.StatusCode(), bytes.Clone(ctx.Response.Body()),
		string(h.ContentType()), string(h.Peek("Allow")), string(h.Peek("WWW-Authenticate"))}
}

// FuzzAdminHTTP sends one call with a fuzzed body, path argument, query
// string, method (methodByte picks one of fuzzMethods), Idempotency-Key and
// Authorization to an endpoint of the admin API (route picks it; past the
// table, the argument is the whole path) of a Server over a ledger
// fixture, as http_test.go drives the handler: in process, without a
// listener. Whatever the input:
//   - the handler does not panic (Handler's recover would answer 500) and
//     answers no 5xx: the store is always available, so every refusal is
//     the caller's and a 4xx;
//   - every non-2xx answer is exactly {"error":{"code","message"}} as JSON,
//     with a code that belongs to its status; 401 carries
//     WWW-Authenticate and 405 Allow; a 2xx body is JSON (but 204 and
//     /metrics);
//   - a refused call, any GET and a refund preview leave the replicated
//     state as it was (compared over the ledger's whole durable form); a
//     refused money call may only add its own idempotency record (ledger
//     DESIGN.md);
//   - no command the API proposes fails to decode;
//   - a money call sent again with the same Idempotency-Key answers the
//     same status and bytes and changes nothing.
//
// Seeds: the valid bodies of docs/api.md and http_test.go on each endpoint, and
// http_test.go's refused bodies.
//
//	go test ./admin -run '^$' -fuzz '^FuzzAdminHTTP$' -fuzztime 3m -parallel 1
func FuzzAdminHTTP(f *testing.F) {
	valid := map[string][]string{
		"POST /admin/v1/cluster/nodes": {`{"id":"n2","raft_addr":"127.0.0.1:8301","admin_addr":"127.0.0.1:8082"}`},
		"PUT /admin/v1/rate":           {`{"usd_per_flow":0.03283}`, `{"usd_per_flow":0.05}`},
		"PUT /admin/v1/plans/{}": {`{"id":"pro","name":"Pro","price_usd":20,"window_5h_flows":50,"weekly_flows":213.37,"monthly_flows":914.443,"rpm":10,"burst":15}`,
			`{"name":"Team","price_usd":30,"window_5h_flows":60,"weekly_flows":250,"monthly_flows":1000,"rpm":20,"burst":30}`},
		"PUT /admin/v1/models":                             {`{"id":"openai/gpt-5.4","provider":"echo","upstream":"gpt-5.4","input_usd_per_mtok":1.25,"output_usd_per_mtok":10.0,"cache_read_usd_per_mtok":0.125,"cache_write_usd_per_mtok":0.0,"image_usd":0.0,"request_usd":0.0,"plans":["pro","max","ultra"]}`},
		"POST /admin/v1/accounts":                          {`{"email":"c@example.com","name":"C"}`},
		"PUT /admin/v1/accounts/{}/flow-value":             {`{"tier":"insider","multiplier":1.5}`, `{"tier":"standard"}`, `{"tier":"abuse","multiplier":3}`},
		"POST /admin/v1/accounts/{}/subscription":          {`{"plan":"pro"}`, `{"plan":"max"}`},
		"POST /admin/v1/accounts/{}/subscription/change":   {`{"plan":"max"}`, `{"plan":"free"}`},
		"POST /admin/v1/accounts/{}/subscription/cancel":   {``, `{}`},
		"POST /admin/v1/accounts/{}/keys":                  {`{"kind":"payg","name":"ci"}`, `{"kind":"subscription","name":"laptop"}`},
		"POST /admin/v1/keys/{}/rotate":                    {`{}`},
		"POST /admin/v1/accounts/{}/balance":               {`{"add_usd":10}`, `{"add_usd":0.000001}`},
		"PUT /admin/v1/accounts/{}/extra-usage":            {`{"enabled":true,"payg_key_id":"key_pa"}`, `{"enabled":false}`},
		"POST /admin/v1/accounts/{}/refunds/preview":       {`{}`},
		"POST /admin/v1/accounts/{}/refunds":               {`{}`},
		"POST /admin/v1/refunds/{}/status":                 {`{"status":"succeeded"}`, `{"status":"failed"}`, `{"status":"canceled"}`},
		"POST /admin/v1/clock":                             {`{"advance_seconds":86400}`},
		"POST /admin/v1/accounts/{}/sign-in-links":         {``, `{}`},
		"POST /admin/v1/plan-requests/{}/confirm":          {``, `{}`},
		"POST /admin/v1/plan-requests/{}/reject":           {``, `{}`},
		"GET /admin/v1/plan-requests?status=pending":       nil,
		"GET /admin/v1/accounts?limit=1":                   nil,
		"GET /admin/v1/accounts/{}/requests?limit=5":       nil,
		"GET /admin/v1/accounts?limit=1000&cursor=acct_a0": nil,
	}
	refused := []string{ // http_test.go's TestDecodeBodyRefusesTrailingData
		`{"add_usd":10}}`, `{"add_usd":10}]`, `{"add_usd":10} {"add_usd":10}`, `{"add_usd":10} x`,
		`{"add_usd":10},`, `{}}`, `{}]`, `{`, `[]`, `null`, `{"add_usd":10,"x":1}`, `{"add_usd":"10"}`,
	}
	for i, e := range fuzzEndpoints {
		r := uint8(i)
		for m := range fuzzMethods {
			f.Add(r, uint8(m), "", "", "", "", []byte(nil))
		}
		for _, b := range valid[e.method+" "+e.path] {
			f.Add(r, uint8(0), "", "", "", "", []byte(b))
			if e.money {
				f.Add(r, uint8(0), "", "", "retry-1", "", []byte(b))
			}
		}
		for _, b := range refused {
			if e.method != "GET" && e.method != "DELETE" {
				f.Add(r, uint8(0), "", "", "", "", []byte(b))
			}
		}
	}
	for k := range valid {
		if method, uri, ok := strings.Cut(k, " "); ok && strings.Contains(uri, "?") {
			path, query, _ := strings.Cut(uri, "?")
			for i, e := range fuzzEndpoints {
				if e.method == method && e.path == path {
					f.Add(uint8(i), uint8(0), "", query, "", "", []byte(nil))
				}
			}
		}
	}
	route := func(path string) uint8 {
		for i, e := range fuzzEndpoints {
			if e.path == path {
				return uint8(i)
			}
		}
		f.Fatalf("no endpoint %s", path)
		return 0
	}
	bal, clock := route("/admin/v1/accounts/{}/balance"), route("/admin/v1/clock")
	f.Add(bal, uint8(0), "", "", strings.Repeat("k", 256), "", []byte(`{"add_usd":10}`))
	f.Add(bal, uint8(0), "", "", "bad key", "", []byte(`{"add_usd":10}`))
	f.Add(bal, uint8(0), "", "", "", "Bearer wrong", []byte(`{"add_usd":10}`))
	f.Add(bal, uint8(0), "acct_zz", "", "k", "", []byte(`{"add_usd":10}`))
	f.Add(bal, uint8(5), "", "", "", "", []byte(`{"add_usd":10}`))
	f.Add(bal, uint8(0), "", "", "", "", []byte(`{"add_usd":1e400}`))
	f.Add(bal, uint8(0), "", "", "", "", []byte(`{"add_usd":-5}`))
	f.Add(clock, uint8(0), "", "", "", "", []byte(`{"advance_seconds":315360000000}`))
	f.Add(route("/admin/v1/accounts"), uint8(0), "", "limit=0", "", "", []byte(nil))
	f.Add(route("/admin/v1/accounts/{}/requests"), uint8(0), "", "limit=x&cursor=%00", "", "", []byte(nil))
	f.Add(route("/admin/v1/cluster/nodes"), uint8(0), "", "", "", "", []byte(`{"id":"n2","raft_addr":"0.0.0.0:1","admin_addr":"h:2"}`))
	f.Add(uint8(len(fuzzEndpoints)), uint8(1), "/admin/v1//accounts", "", "", "", []byte(nil))
	f.Add(uint8(len(fuzzEndpoints)), uint8(1), "/admin/v1/accounts/acct_a/keys/x", "", "", "", []byte(nil))

	f.Fuzz(func(t *testing.T, route, methodByte uint8, arg, query, idemKey, auth string, body []byte) {
		req := fuzzRequest{idemKey: idemKey, auth: auth, body: body}
		var method string
		if int(methodByte) < len(fuzzMethods) {
			method = fuzzMethods[methodByte]
		}
		var e endpoint
		if int(route) < len(fuzzEndpoints) {
			e = fuzzEndpoints[route]
			req.uri = strings.ReplaceAll(e.path, "{}", cmpOr(arg, e.def))
			req.method = cmpOr(method, e.method)
		} else {
			req.uri = "/" + strings.TrimPrefix(arg, "/")
			req.method = cmpOr(method, "GET")
		}
		if query != "" {
			req.uri += "?" + query
		}
		store, state := newFuzzStore(t)
		srv := New(store, Options{Token: []byte(fuzzToken), TestClock: true})
		before := cloneState(state)

		resp := req.do(srv)
		checkResponse(t, req, resp)
		if store.broken != nil {
			t.Fatalf("%s %s: %v", req.method, req.uri, store.broken)
		}
		if err := store.l.Flush(state); err != nil {
			t.Fatal(err)
		}
		refused := resp.status < 200 || resp.status > 299
		read := req.method == "GET" || e.read && req.method == e.method
		if refused || read {
			for _, k := range changedKeys(before, state) {
				// A money command the ledger refused keeps its refusal under
				// its idempotency key (ledger DESIGN.md), and nothing else.
				if refused && e.money && store.proposed > 0 && strings.HasPrefix(k, "idem/") {
					continue
				}
				t.Fatalf("%s %s answered %d %s but changed %q: %q -> %q",
					req.method, req.uri, resp.status, resp.body, k, before[k], state[k])
			}
		}

		if !e.money || idemKey == "" {
			return
		}
		// The same key again: the first answer, byte for byte, and no change.
		after := cloneState(state)
		again := req.do(srv)
		if again.status != resp.status || !bytes.Equal(again.body, resp.body) {
			t.Fatalf("%s %s with Idempotency-Key %q: first %d %s, replay %d %s",
				req.method, req.uri, idemKey, resp.status, resp.body, again.status, again.body)
		}
		if err := store.l.Flush(state); err != nil {
			t.Fatal(err)
		}
		if k := changedKeys(after, state); len(k) > 0 {
			t.Fatalf("%s %s replayed with Idempotency-Key %q changed %q", req.method, req.uri, idemKey, k)
		}
	})
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func cloneState(m memState) memState {
	out := make(memState, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// changedKeys lists the keys whose value differs between a and b, sorted.
func changedKeys(a, b memState) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// checkResponse checks one answer's status and shape.
func checkResponse(t *testing.T, req fuzzRequest, resp fuzzResponse) {
	t.Helper()
	where := fmt.Sprintf("%s %q (Idempotency-Key %q, Authorization %q, body %q)", req.method, req.uri, req.idemKey, req.auth, req.body)
	if resp.status >= 500 {
		t.Fatalf("%s: %d %s — a bad request must be a 4xx", where, resp.status, resp.body)
	}
	if resp.status >= 200 && resp.status <= 299 {
		switch {
		case resp.status == 204:
			if len(resp.body) != 0 {
				t.Fatalf("%s: 204 with a body %q", where, resp.body)
			}
		case strings.HasPrefix(req.uri, "/metrics"):
		default:
			if !json.Valid(resp.body) {
				t.Fatalf("%s: %d with a body that is not JSON: %q", where, resp.status, resp.body)
			}
		}
		return
	}
	codes, ok := statusCodes[resp.status]
	if !ok {
		t.Fatalf("%s: unexpected status %d %s", where, resp.status, resp.body)
	}
	var e struct {
		Error *struct {
			Code    *string `json:"code"`
			Message *string `json:"message"`
		} `json:"error"`
	}
	d := json.NewDecoder(bytes.NewReader(resp.body))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil || d.More() || e.Error == nil || e.Error.Code == nil || e.Error.Message == nil {
		t.Fatalf("%s: %d body %q is not {\"error\":{\"code\",\"message\"}} (%v)", where, resp.status, resp.body, err)
	}
	known := false
	for _, c := range codes {
		known = known || c == *e.Error.Code
	}
	if !known || *e.Error.Message == "" {
		t.Fatalf("%s: %d with code %q, message %q; want one of %v and a message", where, resp.status, *e.Error.Code, *e.Error.Message, codes)
	}
	if resp.contentType != "application/json" {
		t.Fatalf("%s: error answer with Content-Type %q", where, resp.contentType)
	}
	if resp.status == 401 && !strings.HasPrefix(resp.wwwAuth, "Bearer ") {
		t.Fatalf("%s: 401 with WWW-Authenticate %q", where, resp.wwwAuth)
	}
	if resp.status == 405 && resp.allow == "" {
		t.Fatalf("%s: 405 without Allow", where)
	}
}

// FuzzAdminHTTP found /metrics answering another method 405 without the
// Allow header (RFC 9110) every other 405 of the API carries: it built its
// error itself instead of through methodNotAllowed.
func TestMetricsWrongMethodAllow(t *testing.T) {
	s := New(nilStore{}, Options{Token: []byte(fuzzToken)})
	for _, m := range []string{"POST", "PUT", "DELETE", "HEAD", "get"} {
		resp := fuzzRequest{method: m, uri: "/metrics"}.do(s)
		if resp.status != fasthttp.StatusMethodNotAllowed || resp.allow != "GET" {
			t.Errorf("%s /metrics: %d, Allow %q; want 405 with Allow GET", m, resp.status, resp.allow)
		}
		checkResponse(t, fuzzRequest{method: m, uri: "/metrics"}, resp)
	}
}
