package anthropic

import (
	"reflect"
	"testing"

	"zenmux/translate"
)

// upstreamAnswer is a real API answer's shape: thinking, text, a tool call,
// a server-tool block (left out), usage with cache and thinking counts.
const upstreamAnswer = `{"id":"msg_01XF","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
 "content":[
  {"type":"thinking","thinking":"Let me look.","signature":"EqQBCkYI"},
  {"type":"redacted_thinking","data":"EmwKAhgB"},
  {"type":"text","text":"I'll check the weather.","citations":null},
  {"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"query":"x"}},
  {"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{"location":"Paris, FR","unit":"c"}}
 ],
 "stop_reason":"tool_use","stop_sequence":null,"stop_details":null,"container":null,
 "usage":{"input_tokens":11,"cache_creation_input_tokens":3,"cache_read_input_tokens":5,"output_tokens":70,
  "cache_creation":{"ephemeral_5m_input_tokens":3,"ephemeral_1h_input_tokens":0},
  "output_tokens_details":{"thinking_tokens":40},"server_tool_use":{"web_search_requests":1},"service_tier":"standard"}}`

func TestDecodeResponse(t *testing.T) {
	r, err := Codec.DecodeResponse([]byte(upstreamAnswer))
	if err != nil {
		t.Fatal(err)
	}
	want := &translate.Response{
		ID: "msg_01XF", Model: "claude-sonnet-4-5-20250929",
		Content: []translate.Part{
			{Type: translate.PartThinking, Text: "Let me look.", Signature: "EqQBCkYI", Origin: "anthropic"},
			{Type: translate.PartRedactedThinking, Signature: "EmwKAhgB", Origin: "anthropic"},
			{Type: translate.PartText, Text: "I'll check the weather."},
			{Type: translate.PartToolCall, ID: "toolu_01A", Name: "get_weather", Args: `{"location":"Paris, FR","unit":"c"}`},
		},
		Stop:     translate.StopToolUse,
		Usage:    translate.Usage{Input: 11, CacheWrite: 3, CacheRead: 5, Output: 70, Reasoning: 40},
		HasUsage: true,
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}
}

func TestDecodeResponseStops(t *testing.T) {
	for word, want := range map[string]translate.StopReason{
		"end_turn": translate.StopEnd, "pause_turn": translate.StopEnd, "max_tokens": translate.StopMaxTokens,
		"model_context_window_exceeded": translate.StopMaxTokens, "stop_sequence": translate.StopSequence,
		"tool_use": translate.StopToolUse, "refusal": translate.StopRefusal, "new_reason": translate.StopUnset,
	} {
		r, err := Codec.DecodeResponse([]byte(`{"id":"m","content":[],"stop_reason":"` + word + `","stop_sequence":"##"}`))
		if err != nil || r.Stop != want || r.StopSequence != "##" || r.HasUsage {
			t.Errorf("%s: got %+v, %v; want stop %d", word, r, err, want)
		}
	}
}

func TestDecodeResponseErrors(t *testing.T) {
	_, err := Codec.DecodeResponse([]byte(`<html>`))
	if e := translate.AsError(err); e.Status != 502 || e.Kind != translate.ErrServer {
		t.Errorf("not JSON: got %#v", e)
	}
	_, err = Codec.DecodeResponse([]byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`))
	if e := translate.AsError(err); e.Kind != translate.ErrOverloaded || e.Message != "Overloaded" {
		t.Errorf("error body: got %#v", e)
	}
}

func TestEncodeResponse(t *testing.T) {
	o := translate.EncoderOptions{Model: "anthropic/claude-sonnet-4.5", ID: "req_9"}
	for _, c := range []struct {
		name string
		r    translate.Response
		want string
	}{
		{"round trip of an Anthropic answer", translate.Response{}, `{"id":"msg_01XF","type":"message","role":"assistant","model":"anthropic/claude-sonnet-4.5",
			"content":[{"type":"thinking","thinking":"Let me look.","signature":"EqQBCkYI"},{"type":"redacted_thinking","data":"EmwKAhgB"},
				{"type":"text","text":"I'll check the weather."},{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{"location":"Paris, FR","unit":"c"}}],
			"stop_reason":"tool_use","stop_sequence":null,
			"usage":{"input_tokens":11,"cache_creation_input_tokens":3,"cache_read_input_tokens":5,"output_tokens":70,"output_tokens_details":{"thinking_tokens":40}}}`},
		{"another format's answer", translate.Response{ID: "chatcmpl-1", Content: []translate.Part{
			{Type: translate.PartThinking, Text: "hmm", Signature: "enc", Origin: "responses"},
			{Type: translate.PartRedactedThinking, Signature: "x", Origin: "gemini"},
			{Type: translate.PartText, Text: ""},
			{Type: translate.PartText, Text: "Hi"},
			{Type: translate.PartToolCall, Name: "f", Args: `{"a":`},
		}, Stop: translate.StopSequence, StopSequence: "END", Usage: translate.Usage{Input: 7, Output: 2}},
			`{"id":"msg_chatcmpl-1","type":"message","role":"assistant","model":"anthropic/claude-sonnet-4.5",
			"content":[{"type":"thinking","thinking":"hmm","signature":""},{"type":"text","text":"Hi"},
				{"type":"tool_use","id":"toolu_req_9_4","name":"f","input":{}}],
			"stop_reason":"stop_sequence","stop_sequence":"END",
			"usage":{"input_tokens":7,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2}}`},
		{"no id, no stop", translate.Response{Content: []translate.Part{{Type: translate.PartText, Text: "x"}}},
			`{"id":"msg_req_9","type":"message","role":"assistant","model":"anthropic/claude-sonnet-4.5","content":[{"type":"text","text":"x"}],
			"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &c.r
			if c.r.ID == "" && c.r.Content == nil {
				var err error
				if r, err = Codec.DecodeResponse([]byte(upstreamAnswer)); err != nil {
					t.Fatal(err)
				}
			}
			jsonEqual(t, Codec.EncodeResponse(nil, r, o), c.want)
		})
	}
}
