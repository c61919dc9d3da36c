package admin

import (
	"errors"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

func TestDecodeBodyRefusesTrailingData(t *testing.T) {
	type in struct {
		AddUSD *number `json:"add_usd"`
	}
	for _, body := range []string{
		`{"add_usd":10}}`, `{"add_usd":10}]`, `{"add_usd":10} {"add_usd":10}`, `{"add_usd":10} x`,
		`{"add_usd":10},`, `{}}`, `{}]`, `{`, `[]`, `null`, `{"add_usd":10,"x":1}`, `{"add_usd":"10"}`,
	} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetBodyString(body)
		var v in
		if err := decodeBody(&ctx, &v); !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("decodeBody(%s) = %v, want invalid_request", body, err)
		}
	}
	for _, body := range []string{``, `  `, `{}`, `{"add_usd":10}`, " {\"add_usd\":10} \n\t"} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetBodyString(body)
		var v in
		if err := decodeBody(&ctx, &v); err != nil {
			t.Errorf("decodeBody(%q) = %v, want ok", body, err)
		}
	}
}

func TestHostPort(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:8300", "10.0.0.1:1", "node-2.example.com:65535", "[::1]:8300"} {
		if err := hostPort("raft_addr", ok); err != nil {
			t.Errorf("hostPort(%q) = %v, want ok", ok, err)
		}
	}
	for _, bad := range []string{"", "not an address", "nope", "127.0.0.1", "127.0.0.1:", ":8300", "127.0.0.1:0",
		"127.0.0.1:99999", "127.0.0.1:+80", "127.0.0.1:port", "http://127.0.0.1:2", "a b:80", "a/b:80"} {
		if err := hostPort("raft_addr", bad); !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("hostPort(%q) = %v, want invalid_request", bad, err)
		}
	}
}

// nilStore fails the test through a nil-interface panic if any store
// method is reached.
type nilStore struct{ Store }

func TestMetricsWrongMethod(t *testing.T) {
	s := New(nilStore{}, Options{Token: []byte("0123456789abcdef")})
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(m)
		ctx.Request.SetRequestURI("/metrics")
		ctx.Request.Header.Set("Authorization", "Bearer 0123456789abcdef")
		s.Handler(&ctx)
		if got := ctx.Response.StatusCode(); got != fasthttp.StatusMethodNotAllowed {
			t.Errorf("%s /metrics: %d %s, want 405", m, got, ctx.Response.Body())
		}
	}
}

// docs/api.md, "Admin API": unknown fields are refused, and a field name is its json name
// letter for letter. encoding/json matched names ignoring case, so
// {"ADD_USD":10} topped up and {"add_usd":1,"Add_USD":1000} topped up
// 1000.
func TestDecodeBodyNamesAreExact(t *testing.T) {
	type in struct {
		AddUSD *number  `json:"add_usd"`
		Plans  []string `json:"plans"`
		Inner  []struct {
			ID string `json:"id"`
		} `json:"inner"`
	}
	for _, body := range []string{`{"ADD_USD":10}`, `{"add_usd":1,"Add_USD":1000}`, `{"\u0041dd_usd":10}`, `{"inner":[{"ID":"x"}]}`} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetBodyString(body)
		var v in
		if err := decodeBody(&ctx, &v); !errors.Is(err, ledger.ErrInvalid) || !strings.Contains(err.Error(), "unknown field") {
			t.Errorf("decodeBody(%s) = %v, want invalid_request naming the unknown field", body, err)
		}
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.SetBodyString(`{"add_usd":10,"plans":["a"],"inner":[{"id":"x"}]}`)
	var v in
	if err := decodeBody(&ctx, &v); err != nil || v.Inner[0].ID != "x" {
		t.Errorf("exact names refused: %v", err)
	}
}
