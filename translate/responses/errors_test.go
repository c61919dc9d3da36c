package responses

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"zenmux/translate"
)

func TestDecodeError(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		want   translate.Error
	}{
		{429, `{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}`,
			translate.Error{Status: 429, Kind: translate.ErrRateLimit, Message: "Rate limit reached", Code: "rate_limit_exceeded"}},
		{400, `{"error":{"message":"bad","type":"invalid_request_error","param":"input[0]","code":null}}`,
			translate.Error{Status: 400, Kind: translate.ErrInvalidRequest, Message: "bad", Param: "input[0]", Code: "invalid_request_error"}},
		{500, `{"error":{"message":"oops","type":"server_error","code":500}}`,
			translate.Error{Status: 500, Kind: translate.ErrServer, Message: "oops", Code: "500"}},
		{502, "<html><body>Bad Gateway</body></html>\n",
			translate.Error{Status: 502, Kind: translate.ErrServer, Message: "upstream answered 502: <html><body>Bad Gateway</body></html>"}},
		{503, ``, translate.Error{Status: 503, Kind: translate.ErrOverloaded, Message: "upstream answered 503 Service Unavailable"}},
		{401, `{"message":"no key"}`, translate.Error{Status: 401, Kind: translate.ErrAuthentication, Message: "no key"}},
		{200, `{"error":"weird"}`, translate.Error{Status: 502, Kind: translate.ErrServer, Message: "weird"}},
	} {
		if got := Codec.DecodeError(c.status, []byte(c.body)); !reflect.DeepEqual(*got, c.want) {
			t.Errorf("%d %s:\ngot  %+v\nwant %+v", c.status, c.body, *got, c.want)
		}
	}
	long := Codec.DecodeError(500, []byte(strings.Repeat("é", 300)))
	if len(long.Message) > 240 || !strings.HasSuffix(long.Message, "é") {
		t.Errorf("long body: %q", long.Message)
	}
}

func TestEncodeError(t *testing.T) {
	for _, c := range []struct {
		e    translate.Error
		want string
	}{
		{translate.Error{Status: 400, Kind: translate.ErrInvalidRequest, Message: "stop is not supported", Param: "stop"},
			`{"error":{"message":"stop is not supported","type":"invalid_request_error","param":"stop","code":null}}`},
		{translate.Error{Status: 429, Kind: translate.ErrRateLimit, Message: "slow"},
			`{"error":{"message":"slow","type":"requests","param":null,"code":"rate_limit_exceeded"}}`},
		{translate.Error{Status: 529, Kind: translate.ErrOverloaded, Message: "busy", Code: "overloaded_error"},
			`{"error":{"message":"busy","type":"server_error","param":null,"code":"overloaded_error"}}`},
		{translate.Error{Status: 401, Kind: translate.ErrAuthentication, Message: "who"},
			`{"error":{"message":"who","type":"authentication_error","param":null,"code":null}}`},
	} {
		got := Codec.EncodeError(nil, &c.e)
		jsonEqual(t, got, c.want)
		if back := Codec.DecodeError(c.e.Status, got); back.Message != c.e.Message || back.Param != c.e.Param {
			t.Errorf("%s decodes as %+v", got, back)
		}
	}
}

func TestSDKParsesError(t *testing.T) {
	body := Codec.EncodeError(nil, &translate.Error{Status: 400, Kind: translate.ErrInvalidRequest, Message: "top_k is not supported", Param: "top_k"})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("k"), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.Responses.New(ctx, responses.ResponseNewParams{Model: "m"})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Message != "top_k is not supported" || apiErr.Param != "top_k" || apiErr.Type != "invalid_request_error" {
		t.Fatalf("%#v", err)
	}
}
