package proxy

import (
	"strings"
	"testing"

	"zenmux/ledger"
)

// modelsGateway is a gateway whose catalog also holds a named model the
// node's routes serve (no provider), an unpriced one (M5) and a Doubao
// model, to list and look up.
func modelsGateway(t *testing.T) *gateway {
	g := newGateway(t, gatewayOptions{})
	all := []string{"free", "pro", "max", "ultra"}
	named := testPrices
	named.ID, named.Name, named.Modality, named.Plans = "acme/named", "Acme Named", "text", all
	doubao := testPrices
	doubao.ID, doubao.Name, doubao.Plans = "bytedance/doubao-x", "Doubao X", all
	g.apply(&ledger.PutModel{Model: named})
	g.apply(&ledger.PutModel{Model: doubao})
	g.apply(&ledger.PutModel{Model: ledger.Model{ID: "acme/unpriced", Name: "Acme Unpriced", Unpriced: true, Plans: all}})
	return g
}

// GET /v1/models shows display names: the Anthropic shape's display_name
// and the OpenAI shape's "name" (the id when the catalog gives none);
// owned_by is the model's provider, or its vendor when routes serve it;
// an unpriced model is not listed in either shape (M5).
func TestModelsListDisplayNames(t *testing.T) {
	g := modelsGateway(t)
	_, key, _ := g.account("free")
	r := limDo(t, "GET", g.URL+"/v1/models", "", limBearer(key))
	for _, want := range []string{
		`{"id":"acme/named","object":"model","created":1767225600,"owned_by":"acme","name":"Acme Named"}`,
		`{"id":"zenmux/echo","object":"model","created":1767225600,"owned_by":"echo","name":"zenmux/echo"}`,
		`{"id":"test/gpt","object":"model","created":1767225600,"owned_by":"oai","name":"test/gpt"}`,
	} {
		if r.Status != 200 || !strings.Contains(string(r.Body), want) {
			t.Errorf("OpenAI list lacks %s: %s", want, r)
		}
	}
	r2 := limDo(t, "GET", g.URL+"/v1/models", "", limAnth(key))
	if want := `{"type":"model","id":"acme/named","display_name":"Acme Named","created_at":"2026-01-01T00:00:00Z"}`; r2.Status != 200 || !strings.Contains(string(r2.Body), want) {
		t.Errorf("Anthropic list lacks %s: %s", want, r2)
	}
	for _, b := range [][]byte{r.Body, r2.Body} {
		if strings.Contains(string(b), "acme/unpriced") {
			t.Errorf("an unpriced model is listed: %s", b)
		}
	}
}

// GET /v1/models/{id} (the id keeps its slash) answers one model in the
// shape of a list entry, under every path prefix the list has, for an
// alias too (named as asked); a model the key cannot call — unknown,
// unpriced or outside its plan — is 404 in the client's error shape, and
// a missing key 401.
func TestModelsGetOne(t *testing.T) {
	g := modelsGateway(t)
	_, freeKey, paygKey := g.account("free")
	for _, c := range []struct{ path, want string }{
		{"/v1/models/acme/named", `{"id":"acme/named","object":"model","created":1767225600,"owned_by":"acme","name":"Acme Named"}`},
		{"/api/v1/models/acme/named", `{"id":"acme/named","object":"model","created":1767225600,"owned_by":"acme","name":"Acme Named"}`},
		{"/v1/models/test/gpt", `{"id":"test/gpt","object":"model","created":1767225600,"owned_by":"oai","name":"test/gpt"}`},
		{"/v1/models/volcengine/doubao-x", `{"id":"volcengine/doubao-x","object":"model","created":1767225600,"owned_by":"volcengine","name":"Doubao X"}`},
	} {
		if r := limDo(t, "GET", g.URL+c.path, "", limBearer(freeKey)); r.Status != 200 || string(r.Body) != c.want {
			t.Errorf("GET %s: %s, want 200 %s", c.path, r, c.want)
		}
	}
	want := `{"type":"model","id":"acme/named","display_name":"Acme Named","created_at":"2026-01-01T00:00:00Z"}`
	for _, path := range []string{"/v1/models/acme/named", "/api/anthropic/v1/models/acme/named"} {
		if r := limDo(t, "GET", g.URL+path, "", limAnth(freeKey)); r.Status != 200 || string(r.Body) != want {
			t.Errorf("GET %s (Anthropic): %s, want 200 %s", path, r, want)
		}
	}
	// A pay-as-you-go key calls every priced model, the Max one too.
	if r := limDo(t, "GET", g.URL+"/v1/models/"+modelMax, "", limBearer(paygKey)); r.Status != 200 {
		t.Errorf("pay-as-you-go GET %s: %s", modelMax, r)
	}
	for _, id := range []string{"acme/nope", "acme/unpriced", modelMax, "acme"} {
		r := limDo(t, "GET", g.URL+"/v1/models/"+id, "", limBearer(freeKey))
		if msg := limOpenAIError(t, r, 404, "model_not_found"); msg != "model "+id+" is not available to this key" {
			t.Errorf("GET %s: message %q", id, msg)
		}
		limAnthError(t, limDo(t, "GET", g.URL+"/v1/models/"+id, "", limAnth(freeKey)), 404, "not_found_error", "model_not_found")
	}
	if r := limDo(t, "GET", g.URL+"/v1/models/acme/unpriced", "", limBearer(paygKey)); r.Status != 404 {
		t.Errorf("pay-as-you-go GET of an unpriced model: %s", r)
	}
	limOpenAIError(t, limDo(t, "GET", g.URL+"/v1/models/acme/named", "", nil), 401, "invalid_api_key")
	limOpenAIError(t, limDo(t, "GET", g.URL+"/v1/models/acme/named", "", limBearer("sk-ss-v1-unknown")), 401, "invalid_api_key")
	if r := limDo(t, "POST", g.URL+"/v1/models/acme/named", "{}", limBearer(freeKey)); r.Status != 405 || r.Header.Get("Allow") != "GET" {
		t.Errorf("POST /v1/models/acme/named: %s (Allow %q)", r, r.Header.Get("Allow"))
	}
}

// rule M5: a request for an unpriced model is refused with 503
// model_unavailable naming the missing price, x-should-retry false,
// nothing charged; the public pricing lists priced models only.
func TestUnpricedModelRefused(t *testing.T) {
	g := modelsGateway(t)
	acct, key, _ := g.account("free")
	r := limChat(t, g, key, "acme/unpriced")
	if msg := limOpenAIError(t, r, 503, "model_unavailable"); msg != "model acme/unpriced has no price on this gateway yet; the operator must set one" {
		t.Errorf("message %q", msg)
	}
	if r.Header.Get("x-should-retry") != "false" {
		t.Errorf("x-should-retry %q, want false", r.Header.Get("x-should-retry"))
	}
	limAnthError(t, limMsg(t, g, key, "acme/unpriced"), 503, "api_error", "model_unavailable")
	g.settle()
	if n := len(g.requests(acct)); n != 0 {
		t.Errorf("%d requests logged for refused calls", n)
	}
	p := limDo(t, "GET", g.URL+"/api/v1/pricing", "", nil)
	if p.Status != 200 || strings.Contains(string(p.Body), "acme/unpriced") ||
		!strings.Contains(string(p.Body), `{"id":"acme/named","name":"Acme Named","modality":"text","input_usd_per_mtok":1,"output_usd_per_mtok":4,`) {
		t.Errorf("pricing: %s", p)
	}
}
