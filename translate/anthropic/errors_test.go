package anthropic

import (
	"reflect"
	"testing"

	"zenmux/translate"
)

func TestDecodeError(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   string
		want   translate.Error
	}{
		{"invalid request", 400, `{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"},"request_id":"req_1"}`,
			translate.Error{Status: 400, Kind: translate.ErrInvalidRequest, Message: "max_tokens: Field required"}},
		{"overloaded", 529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
			translate.Error{Status: 529, Kind: translate.ErrOverloaded, Message: "Overloaded"}},
		{"rate limit", 429, `{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}`,
			translate.Error{Status: 429, Kind: translate.ErrRateLimit, Message: "slow"}},
		{"too large", 413, `{"type":"error","error":{"type":"request_too_large","message":"big"}}`,
			translate.Error{Status: 413, Kind: translate.ErrTooLarge, Message: "big"}},
		{"billing keeps its word", 402, `{"type":"error","error":{"type":"billing_error","message":"pay"}}`,
			translate.Error{Status: 402, Kind: translate.ErrPermission, Message: "pay", Code: "billing_error"}},
		{"unknown type goes by status", 500, `{"type":"error","error":{"type":"new_error","message":"?"}}`,
			translate.Error{Status: 500, Kind: translate.ErrServer, Message: "?", Code: "new_error"}},
		{"HTML page", 502, "<html><body>Bad Gateway</body></html>",
			translate.Error{Status: 502, Kind: translate.ErrServer, Message: "upstream answered HTTP 502 Bad Gateway"}},
		{"short text", 503, "upstream connect error\n",
			translate.Error{Status: 503, Kind: translate.ErrOverloaded, Message: "upstream answered HTTP 503 Service Unavailable: upstream connect error"}},
		{"empty", 500, "", translate.Error{Status: 500, Kind: translate.ErrServer, Message: "upstream answered HTTP 500 Internal Server Error"}},
		{"another format's JSON", 404, `{"detail":"Not Found"}`,
			translate.Error{Status: 404, Kind: translate.ErrNotFound, Message: `upstream answered HTTP 404 Not Found: {"detail":"Not Found"}`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Codec.DecodeError(c.status, []byte(c.body)); !reflect.DeepEqual(*got, c.want) {
				t.Errorf("got %#v\nwant %#v", *got, c.want)
			}
		})
	}
}

func TestEncodeError(t *testing.T) {
	for _, c := range []struct {
		e    translate.Error
		want string
	}{
		{translate.Error{Status: 400, Kind: translate.ErrInvalidRequest, Message: `bad "x"`}, `{"type":"error","error":{"type":"invalid_request_error","message":"bad \"x\""}}`},
		{translate.Error{Status: 401, Kind: translate.ErrAuthentication, Message: "m"}, `{"type":"error","error":{"type":"authentication_error","message":"m"}}`},
		{translate.Error{Status: 403, Kind: translate.ErrPermission, Message: "m"}, `{"type":"error","error":{"type":"permission_error","message":"m"}}`},
		{translate.Error{Status: 404, Kind: translate.ErrNotFound, Message: "m"}, `{"type":"error","error":{"type":"not_found_error","message":"m"}}`},
		{translate.Error{Status: 413, Kind: translate.ErrTooLarge, Message: "m"}, `{"type":"error","error":{"type":"request_too_large","message":"m"}}`},
		{translate.Error{Status: 429, Kind: translate.ErrRateLimit, Message: "m", Code: "rate_limit_exceeded"}, `{"type":"error","error":{"type":"rate_limit_error","message":"m"}}`},
		{translate.Error{Status: 500, Kind: translate.ErrServer, Message: "m"}, `{"type":"error","error":{"type":"api_error","message":"m"}}`},
		{translate.Error{Status: 529, Kind: translate.ErrOverloaded, Message: "m"}, `{"type":"error","error":{"type":"overloaded_error","message":"m"}}`},
		{translate.Error{Status: 503, Message: "no kind"}, `{"type":"error","error":{"type":"overloaded_error","message":"no kind"}}`},
		{translate.Error{Status: 402, Kind: translate.ErrPermission, Message: "pay", Code: "billing_error"}, `{"type":"error","error":{"type":"billing_error","message":"pay"}}`},
	} {
		if got := string(Codec.EncodeError(nil, &c.e)); got != c.want {
			t.Errorf("%+v: got %s, want %s", c.e, got, c.want)
		}
	}
}
