package responses

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"zenmux/translate"
)

const upstreamAnswer = `{
 "id":"resp_abc","object":"response","created_at":1700000000,"status":"completed","error":null,"incomplete_details":null,
 "model":"gpt-5-2025","output":[
  {"id":"rs_1","type":"reasoning","summary":[{"type":"summary_text","text":"First"},{"type":"summary_text","text":"Second"}],"encrypted_content":"ENC=="},
  {"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Let me look.","annotations":[]}]},
  {"id":"fc_1","type":"function_call","status":"completed","call_id":"call_9","name":"ls","arguments":"{\"dir\":\".\"}"},
  {"id":"ws_1","type":"web_search_call","status":"completed"}
 ],
 "usage":{"input_tokens":100,"input_tokens_details":{"cached_tokens":60,"cache_write_tokens":10},"output_tokens":50,"output_tokens_details":{"reasoning_tokens":20},"total_tokens":150}
}`

func TestDecodeResponse(t *testing.T) {
	got, err := Codec.DecodeResponse([]byte(upstreamAnswer))
	if err != nil {
		t.Fatal(err)
	}
	want := &translate.Response{ID: "resp_abc", Model: "gpt-5-2025",
		Content: []translate.Part{
			{Type: translate.PartThinking, Text: "First\n\nSecond", Signature: "ENC==", Origin: "responses"},
			{Type: translate.PartText, Text: "Let me look."},
			{Type: translate.PartToolCall, ID: "call_9", Name: "ls", Args: `{"dir":"."}`},
		},
		Stop:     translate.StopToolUse,
		Usage:    translate.Usage{Input: 30, CacheRead: 60, CacheWrite: 10, Output: 50, Reasoning: 20},
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
		{`{"status":"completed","output":[{"type":"message","content":[{"type":"output_text","text":"hi"}]}]}`, translate.StopEnd},
		{`{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"output":[]}`, translate.StopMaxTokens},
		{`{"status":"incomplete","incomplete_details":{"reason":"content_filter"},"output":[]}`, translate.StopRefusal},
		{`{"status":"completed","output":[{"type":"message","content":[{"type":"refusal","refusal":"no"}]}]}`, translate.StopRefusal},
	} {
		got, err := Codec.DecodeResponse([]byte(c.body))
		if err != nil {
			t.Fatal(err)
		}
		if got.Stop != c.stop || got.HasUsage {
			t.Errorf("%s: stop %d usage %v, want %d and no usage", c.body, got.Stop, got.HasUsage, c.stop)
		}
	}
	_, err := Codec.DecodeResponse([]byte(`{"status":"failed","error":{"code":"rate_limit_exceeded","message":"slow down"}}`))
	if e, ok := err.(*translate.Error); !ok || e.Status != 429 || e.Kind != translate.ErrRateLimit || e.Message != "slow down" || e.Code != "rate_limit_exceeded" {
		t.Fatalf("failed response: %#v", err)
	}
	if _, err := Codec.DecodeResponse([]byte(`<html>`)); err == nil {
		t.Fatal("a body that is not JSON decoded")
	}
}

// answer is a neutral answer with every kind of output item.
var answer = translate.Response{
	ID: "msg_up", Model: "claude-x",
	Content: []translate.Part{
		{Type: translate.PartThinking, Text: "Think", Signature: "SIG", Origin: "anthropic"},
		{Type: translate.PartText, Text: "Calling."},
		{Type: translate.PartToolCall, ID: "toolu_1", Name: "ls", Args: `{"dir":"."}`},
		{Type: translate.PartThinking, Text: "again", Signature: "ENC", Origin: "responses"},
		{Type: translate.PartRedactedThinking, Signature: "RED", Origin: "anthropic"},
		{Type: translate.PartThinking, Text: "unsigned"},
	},
	Stop:     translate.StopToolUse,
	Usage:    translate.Usage{Input: 30, CacheRead: 60, CacheWrite: 10, Output: 50, Reasoning: 20},
	HasUsage: true,
}

var opts = translate.EncoderOptions{Model: "zen-claude", ID: "req1", Created: 1700000000}

func TestEncodeResponse(t *testing.T) {
	got := Codec.EncodeResponse(nil, &answer, opts)
	jsonEqual(t, got, `{"id":"msg_up","object":"response","created_at":1700000000,"status":"completed","background":false,"error":null,"incomplete_details":null,
	 "instructions":null,"max_output_tokens":null,"metadata":{},"model":"zen-claude","output":[
	  {"id":"rs_req1_0","type":"reasoning","summary":[{"type":"summary_text","text":"Think"}],"encrypted_content":"zmx1:t:anthropic:SIG","status":"completed"},
	  {"id":"msg_req1_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Calling."}]},
	  {"id":"fc_req1_2","type":"function_call","status":"completed","arguments":"{\"dir\":\".\"}","call_id":"toolu_1","name":"ls"},
	  {"id":"rs_req1_3","type":"reasoning","summary":[{"type":"summary_text","text":"again"}],"encrypted_content":"ENC","status":"completed"},
	  {"id":"rs_req1_4","type":"reasoning","summary":[],"encrypted_content":"zmx1:r:anthropic:RED","status":"completed"},
	  {"id":"rs_req1_5","type":"reasoning","summary":[{"type":"summary_text","text":"unsigned"}],"status":"completed"}
	 ],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":false,"temperature":1,
	 "text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1,"truncation":"disabled",
	 "usage":{"input_tokens":100,"input_tokens_details":{"cached_tokens":60,"cache_write_tokens":10},"output_tokens":50,"output_tokens_details":{"reasoning_tokens":20},"total_tokens":150},
	 "user":null}`)

	inc := translate.Response{Content: []translate.Part{{Type: translate.PartText, Text: "cut"}}, Stop: translate.StopMaxTokens}
	got = Codec.EncodeResponse(nil, &inc, opts)
	jsonEqual(t, got, `{"id":"req1","object":"response","created_at":1700000000,"status":"incomplete","background":false,"error":null,"incomplete_details":{"reason":"max_output_tokens"},
	 "instructions":null,"max_output_tokens":null,"metadata":{},"model":"zen-claude","output":[
	  {"id":"msg_req1_0","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"cut"}]}
	 ],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":false,"temperature":1,
	 "text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1,"truncation":"disabled","usage":null,"user":null}`)
}

// TestEncodeResponseRoundTrip: an answer encoded for a client and sent
// back in its next request keeps its signatures and their origins.
func TestEncodeResponseRoundTrip(t *testing.T) {
	body := Codec.EncodeResponse(nil, &answer, opts)
	back, err := Codec.DecodeResponse(body)
	if err != nil {
		t.Fatal(err)
	}
	var input []byte
	input = append(input, `{"model":"m","input":[`...)
	for i, p := range back.Content {
		if i > 0 {
			input = append(input, ',')
		}
		switch p.Type {
		case translate.PartThinking:
			input = appendReasoningItem(input, "x", i, p.Text, p.Signature, true)
		case translate.PartText:
			input = appendMessageItem(input, "x", i, statusCompleted, p.Text, true)
		case translate.PartToolCall:
			input = appendCallItem(input, "x", i, statusCompleted, p.ID, p.Name, p.Args, nil)
		}
	}
	input = append(input, "]}"...)
	req, err := Codec.DecodeRequest(input)
	if err != nil {
		t.Fatalf("%v\n%s", err, input)
	}
	want := append([]translate.Part(nil), answer.Content...)
	want[5].Origin = "responses" // an unsigned reasoning item is this format's
	if got := req.Messages[0].Parts; !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

// serve answers every request with body, as the gateway would.
func serve(t *testing.T, contentType string, body []byte) openai.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("sk-test"), option.WithMaxRetries(0))
}

func TestSDKParsesResponse(t *testing.T) {
	client := serve(t, "application/json", Codec.EncodeResponse(nil, &answer, opts))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := client.Responses.New(ctx, responses.ResponseNewParams{Model: "zen-claude", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "msg_up" || r.Model != "zen-claude" || r.Status != "completed" || r.CreatedAt != 1700000000 || r.OutputText() != "Calling." || len(r.Output) != 6 {
		t.Fatalf("response %s %s %s %v %q %d", r.ID, r.Model, r.Status, r.CreatedAt, r.OutputText(), len(r.Output))
	}
	rs := r.Output[0].AsReasoning()
	if rs.ID != "rs_req1_0" || len(rs.Summary) != 1 || rs.Summary[0].Text != "Think" || rs.EncryptedContent != "zmx1:t:anthropic:SIG" {
		t.Fatalf("reasoning %+v", rs)
	}
	fc := r.Output[2].AsFunctionCall()
	if fc.ID != "fc_req1_2" || fc.CallID != "toolu_1" || fc.Name != "ls" || fc.Arguments != `{"dir":"."}` || fc.Status != "completed" {
		t.Fatalf("function call %+v", fc)
	}
	u := r.Usage
	if u.InputTokens != 100 || u.InputTokensDetails.CachedTokens != 60 || u.InputTokensDetails.CacheWriteTokens != 10 ||
		u.OutputTokens != 50 || u.OutputTokensDetails.ReasoningTokens != 20 || u.TotalTokens != 150 {
		t.Fatalf("usage %+v", u)
	}
}

func TestDecodeUsageCounts(t *testing.T) {
	r, err := Codec.DecodeResponse([]byte(`{"status":"completed","output":[],"usage":{"input_tokens":11.0,"input_tokens_details":{"cached_tokens":"5","cache_write_tokens":-3},
		"output_tokens":1e3,"output_tokens_details":{"reasoning_tokens":1e300}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := (translate.Usage{Input: 11, Output: 1000, Reasoning: maxCount}); r.Usage != want {
		t.Fatalf("usage %+v, want %+v", r.Usage, want)
	}
}
