package chat

import (
	"encoding/json"
	"reflect"
	"testing"

	"zenmux/translate"
)

func TestDecodeResponse(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       *translate.Response
	}{
		{"openai tool calls with cache", `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-5.5",
  "choices":[{"index":0,"message":{"role":"assistant","content":"Checking.","refusal":null,"tool_calls":[
    {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
    "logprobs":null,"finish_reason":"tool_calls"}],
  "usage":{"prompt_tokens":100,"completion_tokens":30,"total_tokens":130,
    "prompt_tokens_details":{"cached_tokens":60,"cache_write_tokens":10,"audio_tokens":0},
    "completion_tokens_details":{"reasoning_tokens":12}}}`,
			&translate.Response{ID: "chatcmpl-1", Model: "gpt-5.5",
				Content: []translate.Part{
					{Type: translate.PartText, Text: "Checking."},
					{Type: translate.PartToolCall, ID: "call_1", Name: "get_weather", Args: `{"city":"Paris"}`},
				},
				Stop: translate.StopToolUse, HasUsage: true,
				Usage: translate.Usage{Input: 30, Output: 30, CacheRead: 60, CacheWrite: 10, Reasoning: 12}}},
		{"deepseek reasoning and hit/miss", `{"id":"ds-1","model":"deepseek-v4-pro","choices":[{"index":0,"message":{"role":"assistant",
    "reasoning_content":"Think.","content":"Done."},"finish_reason":"length"}],
  "usage":{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70,"prompt_cache_hit_tokens":40,"prompt_cache_miss_tokens":10,
    "completion_tokens_details":{"reasoning_tokens":5}}}`,
			&translate.Response{ID: "ds-1", Model: "deepseek-v4-pro",
				Content: []translate.Part{
					{Type: translate.PartThinking, Text: "Think.", Origin: "chat"},
					{Type: translate.PartText, Text: "Done."},
				},
				Stop: translate.StopMaxTokens, HasUsage: true,
				Usage: translate.Usage{Input: 10, Output: 20, CacheRead: 40, Reasoning: 5}}},
		{"refusal, counts as floats", `{"id":"x","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I can't."},"finish_reason":"stop"}],
  "usage":{"prompt_tokens":1e1,"completion_tokens":3.0}}`,
			&translate.Response{ID: "x", Model: "m",
				Content: []translate.Part{{Type: translate.PartText, Text: "I can't."}},
				Stop:    translate.StopRefusal, HasUsage: true, Usage: translate.Usage{Input: 10, Output: 3}}},
		{"openrouter reasoning, no usage, filter", `{"id":"y","model":"m","choices":[{"index":0,"message":{"role":"assistant","reasoning":"Hm.","content":""},"finish_reason":"content_filter"}]}`,
			&translate.Response{ID: "y", Model: "m",
				Content: []translate.Part{{Type: translate.PartThinking, Text: "Hm.", Origin: "chat"}},
				Stop:    translate.StopRefusal}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Codec.DecodeResponse([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				g, _ := json.MarshalIndent(got, "", " ")
				w, _ := json.MarshalIndent(tc.want, "", " ")
				t.Fatalf("got %s\nwant %s", g, w)
			}
		})
	}
}

func TestDecodeResponseRefusesBadAnswers(t *testing.T) {
	for _, tc := range []struct {
		body   string
		status int
		msg    string
	}{
		{`<html>`, 502, "the upstream's answer is not a JSON object"},
		{`{"id":"x","choices":[]}`, 502, "the upstream's answer has no choices"},
		{`{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}`, 429, "slow down"},
	} {
		_, err := Codec.DecodeResponse([]byte(tc.body))
		e := translate.AsError(err)
		if e.Status != tc.status || e.Message != tc.msg {
			t.Errorf("%s: got %d %q, want %d %q", tc.body, e.Status, e.Message, tc.status, tc.msg)
		}
	}
}

var opts = translate.EncoderOptions{Model: "zenmux/gpt", ID: "chatcmpl-gw", Created: 1700000000, IncludeUsage: true}

func TestEncodeResponse(t *testing.T) {
	r := &translate.Response{ID: "msg_01", Model: "claude-x",
		Content: []translate.Part{
			{Type: translate.PartThinking, Text: "Weather needed.", Signature: "sig", Origin: "anthropic"},
			{Type: translate.PartText, Text: "Let me check."},
			{Type: translate.PartToolCall, ID: "toolu_1", Name: "get_weather", Args: `{"city":"Paris"}`},
			{Type: translate.PartToolCall, ID: "toolu_2", Name: "get_time"},
		},
		Stop: translate.StopToolUse, HasUsage: true,
		Usage: translate.Usage{Input: 30, Output: 30, CacheRead: 60, CacheWrite: 10, Reasoning: 12}}
	jsonEqual(t, Codec.EncodeResponse(nil, r, opts), `{"id":"msg_01","object":"chat.completion","created":1700000000,"model":"zenmux/gpt",
 "choices":[{"index":0,"message":{"role":"assistant","content":"Let me check.","reasoning_content":"Weather needed.",
   "tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                 {"id":"toolu_2","type":"function","function":{"name":"get_time","arguments":"{}"}}],"refusal":null},
   "logprobs":null,"finish_reason":"tool_calls"}],
 "usage":{"prompt_tokens":100,"completion_tokens":30,"total_tokens":130,"prompt_tokens_details":{"cached_tokens":60,"cache_write_tokens":10},
   "completion_tokens_details":{"reasoning_tokens":12}}}`)

	// Only tool calls, after a plain stop (as Gemini says it): content is
	// null and the finish reason tool_calls; no upstream id: the gateway's.
	r = &translate.Response{Content: []translate.Part{{Type: translate.PartToolCall, ID: "c", Name: "f", Args: "{}"}}, Stop: translate.StopEnd}
	jsonEqual(t, Codec.EncodeResponse(nil, r, opts), `{"id":"chatcmpl-gw","object":"chat.completion","created":1700000000,"model":"zenmux/gpt",
 "choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}],"refusal":null},
   "logprobs":null,"finish_reason":"tool_calls"}]}`)

	for stop, want := range map[translate.StopReason]string{translate.StopEnd: "stop", translate.StopSequence: "stop",
		translate.StopMaxTokens: "length", translate.StopRefusal: "content_filter", translate.StopUnset: "stop"} {
		r = &translate.Response{Content: []translate.Part{{Type: translate.PartText, Text: "x"}}, Stop: stop}
		var v struct {
			Choices []struct {
				FinishReason string `json:"finish_reason"`
			}
		}
		if err := json.Unmarshal(Codec.EncodeResponse(nil, r, opts), &v); err != nil || v.Choices[0].FinishReason != want {
			t.Errorf("stop %d: finish_reason %+v (%v), want %q", stop, v, err, want)
		}
	}
}

// TestResponseRoundTrip: an upstream's answer decoded and encoded for a
// chat client keeps every count: prompt_tokens again includes the cache.
func TestResponseRoundTrip(t *testing.T) {
	const body = `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"zenmux/gpt",
  "choices":[{"index":0,"message":{"role":"assistant","content":"Hi.","refusal":null},"logprobs":null,"finish_reason":"stop"}],
  "usage":{"prompt_tokens":100,"completion_tokens":30,"total_tokens":130,"prompt_tokens_details":{"cached_tokens":60},"completion_tokens_details":{"reasoning_tokens":0}}}`
	r, err := Codec.DecodeResponse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, Codec.EncodeResponse(nil, r, opts), body)
}
