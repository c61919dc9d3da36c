package gemini

import (
	"reflect"
	"testing"

	"zenmux/translate"
)

func TestDecodeResponse(t *testing.T) {
	body := `{"candidates":[{"content":{"role":"model","parts":[
	  {"text":"Thinking about it.","thought":true},
	  {"text":"Let me check.","thoughtSignature":"c2ln"},
	  {"functionCall":{"name":"weather","args":{"city":"Paris"}},"thoughtSignature":"Y2FsbA=="},
	  {"functionCall":{"id":"abc","name":"clock"}},
	  {"executableCode":{"language":"PYTHON","code":"1"}}]},
	  "finishReason":"STOP","index":0,"safetyRatings":[]}],
	 "usageMetadata":{"promptTokenCount":120,"candidatesTokenCount":30,"totalTokenCount":175,"cachedContentTokenCount":100,"thoughtsTokenCount":20,"toolUsePromptTokenCount":5},
	 "modelVersion":"gemini-2.5-flash","responseId":"resp/1+x"}`
	got, err := Codec.DecodeResponse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := &translate.Response{
		ID: "resp/1+x", Model: "gemini-2.5-flash",
		Content: []translate.Part{
			{Type: translate.PartThinking, Text: "Thinking about it.", Origin: "gemini"},
			{Type: translate.PartThinking, Signature: "c2ln", Origin: "gemini"},
			{Type: translate.PartText, Text: "Let me check."},
			{Type: translate.PartThinking, Signature: "Y2FsbA==", Origin: "gemini"},
			{Type: translate.PartToolCall, ID: "gemini_call_resp1x_1", Name: "weather", Args: `{"city":"Paris"}`},
			{Type: translate.PartToolCall, ID: "abc", Name: "clock", Args: `{}`},
		},
		Stop:     translate.StopToolUse,
		Usage:    translate.Usage{Input: 25, CacheRead: 100, Output: 50, Reasoning: 20},
		HasUsage: true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestDecodeResponseStops(t *testing.T) {
	for _, c := range []struct {
		body string
		stop translate.StopReason
	}{
		{`{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"STOP"}]}`, translate.StopEnd},
		{`{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"MAX_TOKENS"}]}`, translate.StopMaxTokens},
		{`{"candidates":[{"finishReason":"SAFETY"}]}`, translate.StopRefusal},
		{`{"candidates":[{"finishReason":"RECITATION"}]}`, translate.StopRefusal},
		{`{"candidates":[{"finishReason":"PROHIBITED_CONTENT"}]}`, translate.StopRefusal},
		{`{"candidates":[{"finishReason":"MALFORMED_FUNCTION_CALL"}]}`, translate.StopEnd},
		{`{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":7,"totalTokenCount":7}}`, translate.StopRefusal},
	} {
		got, err := Codec.DecodeResponse([]byte(c.body))
		if err != nil || got.Stop != c.stop {
			t.Errorf("%s: stop %v, err %v; want %v", c.body, got.Stop, err, c.stop)
		}
	}
	for _, body := range []string{`not json`, `[1]`, `{"error":{"code":500,"message":"x"}}`} {
		if _, err := Codec.DecodeResponse([]byte(body)); err == nil {
			t.Errorf("%s: no error", body)
		}
	}
}

func TestEncodeResponse(t *testing.T) {
	r := &translate.Response{
		ID: "msg_1", Model: "claude-x",
		Content: []translate.Part{
			{Type: translate.PartThinking, Text: "I should call.", Signature: "anthropic-sig", Origin: "anthropic"},
			{Type: translate.PartRedactedThinking, Signature: "zz"},
			{Type: translate.PartText, Text: "Checking."},
			{Type: translate.PartToolCall, ID: "toolu_1", Name: "weather", Args: `{"city":"Paris"}`},
			{Type: translate.PartToolCall, ID: "gemini_call_r_2", Name: "clock", Args: `not json`},
		},
		Stop:     translate.StopToolUse,
		Usage:    translate.Usage{Input: 10, CacheRead: 90, CacheWrite: 5, Output: 40, Reasoning: 15},
		HasUsage: true,
	}
	got := Codec.EncodeResponse(nil, r, translate.EncoderOptions{Model: "my-model", ID: "req-1"})
	jsonEqual(t, got, `{"candidates":[{"content":{"role":"model","parts":[
	  {"text":"I should call.","thought":true},
	  {"text":"Checking."},
	  {"functionCall":{"id":"toolu_1","name":"weather","args":{"city":"Paris"}}},
	  {"functionCall":{"name":"clock","args":{}}}]},
	  "finishReason":"STOP","index":0}],
	 "usageMetadata":{"promptTokenCount":105,"candidatesTokenCount":25,"cachedContentTokenCount":90,"thoughtsTokenCount":15,"totalTokenCount":145},
	 "modelVersion":"my-model","responseId":"msg_1"}`)

	// No id from the upstream: the gateway's; no usage: none written.
	got = Codec.EncodeResponse(nil, &translate.Response{Stop: translate.StopMaxTokens, Content: []translate.Part{{Type: translate.PartText, Text: "cut"}}},
		translate.EncoderOptions{Model: "m", ID: "req-2"})
	jsonEqual(t, got, `{"candidates":[{"content":{"role":"model","parts":[{"text":"cut"}]},"finishReason":"MAX_TOKENS","index":0}],"modelVersion":"m","responseId":"req-2"}`)
}

// TestResponseRoundTrip: a Gemini answer decoded and encoded again keeps
// its parts, signatures where they were, and its usage.
func TestResponseRoundTrip(t *testing.T) {
	body := `{"candidates":[{"content":{"role":"model","parts":[
	  {"text":"think","thought":true,"thoughtSignature":"dA=="},
	  {"text":"answer","thoughtSignature":"YQ=="},
	  {"functionCall":{"id":"c1","name":"f","args":{"x":[1,{"y":null}]}},"thoughtSignature":"Zg=="},
	  {"text":"","thoughtSignature":"ZW5k"}]},"finishReason":"STOP","index":0}],
	 "usageMetadata":{"promptTokenCount":50,"candidatesTokenCount":7,"cachedContentTokenCount":20,"thoughtsTokenCount":3,"totalTokenCount":60},
	 "modelVersion":"gemini-x","responseId":"r1"}`
	r, err := Codec.DecodeResponse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, Codec.EncodeResponse(nil, r, translate.EncoderOptions{Model: "gemini-x"}), body)
}

func TestCountTokensResponse(t *testing.T) {
	if got := string(CountTokensResponse([]byte("x"), 1234)); got != `x{"totalTokens":1234}` {
		t.Fatalf("got %s", got)
	}
}

func TestDecodeError(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		want   translate.Error
	}{
		{429, `{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"20s"}]}}`,
			translate.Error{Status: 429, Kind: translate.ErrRateLimit, Message: "Resource has been exhausted", Code: "RESOURCE_EXHAUSTED"}},
		{400, `{"error":{"code":400,"message":"Invalid value at 'contents[0]'","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"contents[0].parts","description":"x"}]}]}}`,
			translate.Error{Status: 400, Kind: translate.ErrInvalidRequest, Message: "Invalid value at 'contents[0]'", Param: "contents[0].parts", Code: "INVALID_ARGUMENT"}},
		{403, `[{"error":{"code":403,"message":"denied","status":"PERMISSION_DENIED"}}]`,
			translate.Error{Status: 403, Kind: translate.ErrPermission, Message: "denied", Code: "PERMISSION_DENIED"}},
		{503, `{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}`,
			translate.Error{Status: 503, Kind: translate.ErrOverloaded, Message: "The model is overloaded.", Code: "UNAVAILABLE"}},
		{502, "<html><body>Bad Gateway</body></html>\n",
			translate.Error{Status: 502, Kind: translate.ErrServer, Message: "<html><body>Bad Gateway</body></html>"}},
		{500, ``, translate.Error{Status: 500, Kind: translate.ErrServer, Message: "Internal Server Error"}},
		{200, `{"error":{"code":401,"message":"bad key","status":"UNAUTHENTICATED"}}`,
			translate.Error{Status: 502, Kind: translate.ErrServer, Message: "bad key", Code: "UNAUTHENTICATED"}},
	} {
		if got := Codec.DecodeError(c.status, []byte(c.body)); *got != c.want {
			t.Errorf("%d %s:\n got %+v\nwant %+v", c.status, c.body, *got, c.want)
		}
	}
}

func TestEncodeError(t *testing.T) {
	for _, c := range []struct {
		e    translate.Error
		want string
	}{
		{translate.Error{Status: 429, Kind: translate.ErrRateLimit, Message: "slow down", Code: "rate_limit_exceeded"},
			`{"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}}`},
		{*translate.Unsupported("tools[0].googleSearch", "gemini"),
			`{"error":{"code":400,"message":"tools[0].googleSearch is not supported when the model is served in the gemini format","status":"INVALID_ARGUMENT",
			  "details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"tools[0].googleSearch","description":"tools[0].googleSearch is not supported when the model is served in the gemini format"}]}]}}`},
		{translate.Error{Kind: translate.ErrOverloaded, Message: "busy"}, `{"error":{"code":503,"message":"busy","status":"UNAVAILABLE"}}`},
		{translate.Error{Status: 504, Kind: translate.ErrServer, Message: "late", Code: "DEADLINE_EXCEEDED"}, `{"error":{"code":504,"message":"late","status":"DEADLINE_EXCEEDED"}}`},
		{translate.Error{Status: 529, Kind: translate.ErrOverloaded, Message: "overloaded"}, `{"error":{"code":529,"message":"overloaded","status":"UNAVAILABLE"}}`},
	} {
		jsonEqual(t, Codec.EncodeError(nil, &c.e), c.want)
	}
}
