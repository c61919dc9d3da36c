package chat

import (
	"reflect"
	"testing"

	"zenmux/translate"
)

func TestDecodeError(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   translate.Error
	}{
		{400, `{"error":{"message":"Invalid 'messages[1]'","type":"invalid_request_error","param":"messages","code":"invalid_value"}}`,
			translate.Error{Status: 400, Kind: translate.ErrInvalidRequest, Message: "Invalid 'messages[1]'", Param: "messages", Code: "invalid_value"}},
		{401, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`,
			translate.Error{Status: 401, Kind: translate.ErrAuthentication, Message: "Incorrect API key provided", Code: "invalid_api_key"}},
		{429, `{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}`,
			translate.Error{Status: 429, Kind: translate.ErrRateLimit, Message: "Rate limit reached for requests", Code: "rate_limit_exceeded"}},
		{503, `{"error":"busy"}`, translate.Error{Status: 503, Kind: translate.ErrOverloaded, Message: "busy"}},
		{400, `{"object":"error","message":"bad field","type":"BadRequestError","param":null,"code":400}`,
			translate.Error{Status: 400, Kind: translate.ErrInvalidRequest, Message: "bad field", Code: "400"}},
		{404, `[{"error":{"code":404,"message":"models/x is not found","status":"NOT_FOUND"}}]`,
			translate.Error{Status: 404, Kind: translate.ErrNotFound, Message: "models/x is not found", Code: "404"}},
		{502, `<html><body>Bad Gateway</body></html>`,
			translate.Error{Status: 502, Kind: translate.ErrServer, Message: "the upstream answered 502 Bad Gateway"}},
		{500, ``, translate.Error{Status: 500, Kind: translate.ErrServer, Message: "the upstream answered 500 Internal Server Error"}},
		{200, `{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}`,
			translate.Error{Status: 429, Kind: translate.ErrRateLimit, Message: "quota", Code: "insufficient_quota"}},
		{599, `{}`, translate.Error{Status: 599, Kind: translate.ErrServer, Message: "the upstream answered 599"}},
	} {
		if got := Codec.DecodeError(tc.status, []byte(tc.body)); !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%d %s:\n got %+v\nwant %+v", tc.status, tc.body, *got, tc.want)
		}
	}
}

func TestEncodeError(t *testing.T) {
	for _, tc := range []struct {
		e    translate.Error
		want string
	}{
		{translate.Error{Status: 400, Kind: translate.ErrInvalidRequest, Message: "n is not supported", Param: "n"},
			`{"error":{"message":"n is not supported","type":"invalid_request_error","param":"n","code":null}}`},
		{translate.Error{Status: 401, Kind: translate.ErrAuthentication, Message: "bad key", Code: "invalid_api_key"},
			`{"error":{"message":"bad key","type":"authentication_error","param":null,"code":"invalid_api_key"}}`},
		{translate.Error{Status: 403, Kind: translate.ErrPermission, Message: "no"},
			`{"error":{"message":"no","type":"permission_error","param":null,"code":null}}`},
		{translate.Error{Status: 404, Kind: translate.ErrNotFound, Message: "no model", Code: "model_not_found"},
			`{"error":{"message":"no model","type":"invalid_request_error","param":null,"code":"model_not_found"}}`},
		{translate.Error{Status: 413, Kind: translate.ErrTooLarge, Message: "too big"},
			`{"error":{"message":"too big","type":"invalid_request_error","param":null,"code":null}}`},
		{translate.Error{Status: 429, Kind: translate.ErrRateLimit, Message: "slow"},
			`{"error":{"message":"slow","type":"requests","param":null,"code":"rate_limit_exceeded"}}`},
		{translate.Error{Status: 429, Kind: translate.ErrRateLimit, Message: "quota", Code: "insufficient_quota"},
			`{"error":{"message":"quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`},
		{translate.Error{Status: 500, Kind: translate.ErrServer, Message: "boom"},
			`{"error":{"message":"boom","type":"server_error","param":null,"code":null}}`},
		{translate.Error{Status: 529, Kind: translate.ErrOverloaded, Message: "Overloaded"},
			`{"error":{"message":"Overloaded","type":"server_error","param":null,"code":"overloaded"}}`},
		{translate.Error{Status: 403, Message: "kind from status"},
			`{"error":{"message":"kind from status","type":"permission_error","param":null,"code":null}}`},
	} {
		if got := string(Codec.EncodeError(nil, &tc.e)); got != tc.want {
			t.Errorf("%+v:\n got %s\nwant %s", tc.e, got, tc.want)
		}
	}
}

// TestErrorRoundTrip: an error encoded and decoded again is the same.
func TestErrorRoundTrip(t *testing.T) {
	e := translate.Error{Status: 400, Kind: translate.ErrInvalidRequest, Message: "bad <input>", Param: "messages", Code: "invalid_value"}
	if got := Codec.DecodeError(400, Codec.EncodeError(nil, &e)); !reflect.DeepEqual(*got, e) {
		t.Fatalf("got %+v", *got)
	}
}
