package chat

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"zenmux/translate"
)

// ev is an Event with its borrowed bytes copied, for comparison.
type ev struct {
	Type      translate.EventType
	ID, Model string
	Index     int
	Block     translate.PartType
	BlockID   string
	BlockName string
	Delta     translate.DeltaType
	Data      string
	Usage     translate.Usage
	Stop      translate.StopReason
	Err       *translate.Error
}

func own(evs []translate.Event) []ev {
	out := make([]ev, len(evs))
	for i, e := range evs {
		out[i] = ev{e.Type, e.ID, e.Model, e.Index, e.Block.Type, strings.Clone(e.Block.ID), strings.Clone(e.Block.Name), e.Delta, string(e.Data), e.Usage, e.Stop, e.Err}
	}
	return out
}

// decodeAll feeds each data line to a fresh decoder.
func decodeAll(t *testing.T, lines []string) ([]ev, error) {
	t.Helper()
	d := Codec.NewDecoder()
	var out []ev
	var evs []translate.Event
	for _, l := range lines {
		var err error
		evs, err = d.Decode(evs[:0], "", []byte(l))
		out = append(out, own(evs)...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// upstream is a DeepSeek-style stream: reasoning, text, two tool calls
// with their arguments in pieces, the finish, the usage chunk with cache
// hits, [DONE].
var upstream = []string{
	`{"id":"ds-1","object":"chat.completion.chunk","created":1,"model":"deepseek-v4-pro","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
	`{"id":"ds-1","object":"chat.completion.chunk","created":1,"model":"deepseek-v4-pro","choices":[{"index":0,"delta":{"content":null,"reasoning_content":"The user "},"finish_reason":null}]}`,
	`{"id":"ds-1","object":"chat.completion.chunk","created":1,"model":"deepseek-v4-pro","choices":[{"index":0,"delta":{"reasoning_content":"wants weather."},"finish_reason":null}]}`,
	`{"id":"ds-1","object":"chat.completion.chunk","created":1,"model":"deepseek-v4-pro","choices":[{"index":0,"delta":{"content":"Checking "},"finish_reason":null}]}`,
	`{"id":"ds-1","object":"chat.completion.chunk","created":1,"model":"deepseek-v4-pro","choices":[{"index":0,"delta":{"content":"now."},"finish_reason":null}]}`,
	`{"id":"ds-1","object":"chat.completion.chunk","created":1,"model":"deepseek-v4-pro","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}`,
	`{"id":"ds-1","object":"chat.completion.chunk","created":1,"model":"deepseek-v4-pro","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]}`,
	`{"id":"ds-1","object":"chat.completion.chunk","created":1,"model":"deepseek-v4-pro","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"finish_reason":null}]}`,
	`{"id":"ds-1","object":"chat.completion.chunk","created":1,"model":"deepseek-v4-pro","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{}"}}]},"finish_reason":null}]}`,
	`{"id":"ds-1","object":"chat.completion.chunk","created":1,"model":"deepseek-v4-pro","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
	`{"id":"ds-1","object":"chat.completion.chunk","created":1,"model":"deepseek-v4-pro","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":30,"total_tokens":130,"prompt_cache_hit_tokens":60,"prompt_cache_miss_tokens":40,"completion_tokens_details":{"reasoning_tokens":12}}}`,
	`[DONE]`,
}

var upstreamEvents = []ev{
	{Type: translate.EvStart, ID: "ds-1", Model: "deepseek-v4-pro"},
	{Type: translate.EvBlockStart, Index: 0, Block: translate.PartThinking},
	{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaThinking, Data: "The user "},
	{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaThinking, Data: "wants weather."},
	{Type: translate.EvBlockStop, Index: 0},
	{Type: translate.EvBlockStart, Index: 1, Block: translate.PartText},
	{Type: translate.EvDelta, Index: 1, Delta: translate.DeltaText, Data: "Checking "},
	{Type: translate.EvDelta, Index: 1, Delta: translate.DeltaText, Data: "now."},
	{Type: translate.EvBlockStop, Index: 1},
	{Type: translate.EvBlockStart, Index: 2, Block: translate.PartToolCall, BlockID: "call_1", BlockName: "get_weather"},
	{Type: translate.EvDelta, Index: 2, Delta: translate.DeltaArgs, Data: `{"city":`},
	{Type: translate.EvDelta, Index: 2, Delta: translate.DeltaArgs, Data: `"Paris"}`},
	{Type: translate.EvBlockStop, Index: 2},
	{Type: translate.EvBlockStart, Index: 3, Block: translate.PartToolCall, BlockID: "call_2", BlockName: "get_time"},
	{Type: translate.EvDelta, Index: 3, Delta: translate.DeltaArgs, Data: `{}`},
	{Type: translate.EvBlockStop, Index: 3},
	{Type: translate.EvStop, Stop: translate.StopToolUse},
	{Type: translate.EvUsage, Usage: translate.Usage{Input: 40, Output: 30, CacheRead: 60, Reasoning: 12}},
	{Type: translate.EvEnd},
}

func TestStreamDecode(t *testing.T) {
	got, err := decodeAll(t, upstream)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, upstreamEvents) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, upstreamEvents)
	}
}

func TestStreamDecodeEdges(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  []ev
		err   error
	}{
		{"cut before [DONE]: no end", []string{
			`{"id":"a","model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}`},
			[]ev{{Type: translate.EvStart, ID: "a", Model: "m"}, {Type: translate.EvBlockStart, Block: translate.PartText},
				{Type: translate.EvDelta, Delta: translate.DeltaText, Data: "Hi"}}, nil},
		{"[DONE] closes an open block; later lines ignored", []string{
			`{"id":"a","model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}`, `[DONE]`, `{"x":1}`},
			[]ev{{Type: translate.EvStart, ID: "a", Model: "m"}, {Type: translate.EvBlockStart, Block: translate.PartText},
				{Type: translate.EvDelta, Delta: translate.DeltaText, Data: "Hi"}, {Type: translate.EvBlockStop}, {Type: translate.EvEnd}}, nil},
		{"finish and usage in one chunk, openai cache", []string{
			`{"id":"a","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"length"}],"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4,"cache_write_tokens":1}}}`},
			[]ev{{Type: translate.EvStart, ID: "a", Model: "m"}, {Type: translate.EvStop, Stop: translate.StopMaxTokens},
				{Type: translate.EvUsage, Usage: translate.Usage{Input: 5, Output: 2, CacheRead: 4, CacheWrite: 1}}}, nil},
		{"refusal", []string{
			`{"id":"a","model":"m","choices":[{"index":0,"delta":{"refusal":"No."},"finish_reason":"stop"}]}`},
			[]ev{{Type: translate.EvStart, ID: "a", Model: "m"}, {Type: translate.EvBlockStart, Block: translate.PartText},
				{Type: translate.EvDelta, Delta: translate.DeltaText, Data: "No."}, {Type: translate.EvBlockStop}, {Type: translate.EvStop, Stop: translate.StopRefusal}}, nil},
		{"whole calls in one chunk, no index", []string{
			`{"id":"a","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"id":"x","function":{"name":"f","arguments":"{}"}},{"id":"y","function":{"name":"g","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"}]}`},
			[]ev{{Type: translate.EvStart, ID: "a", Model: "m"},
				{Type: translate.EvBlockStart, Block: translate.PartToolCall, BlockID: "x", BlockName: "f"},
				{Type: translate.EvDelta, Delta: translate.DeltaArgs, Data: "{}"}, {Type: translate.EvBlockStop},
				{Type: translate.EvBlockStart, Index: 1, Block: translate.PartToolCall, BlockID: "y", BlockName: "g"},
				{Type: translate.EvDelta, Index: 1, Delta: translate.DeltaArgs, Data: `{"a":1}`}, {Type: translate.EvBlockStop, Index: 1},
				{Type: translate.EvStop, Stop: translate.StopToolUse}}, nil},
		{"error chunk", []string{
			`{"id":"a","model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}`,
			`{"error":{"message":"overloaded","type":"server_error","code":null}}`},
			[]ev{{Type: translate.EvStart, ID: "a", Model: "m"}, {Type: translate.EvBlockStart, Block: translate.PartText},
				{Type: translate.EvDelta, Delta: translate.DeltaText, Data: "Hi"},
				{Type: translate.EvError, Err: &translate.Error{Status: 500, Kind: translate.ErrServer, Message: "overloaded"}}}, nil},
		{"interleaved tool arguments", []string{
			`{"id":"a","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"x","function":{"name":"f","arguments":"{"}}]}}]}`,
			`{"id":"a","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"y","function":{"name":"g","arguments":"{"}}]}}]}`,
			`{"id":"a","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"}"}}]}}]}`},
			[]ev{{Type: translate.EvStart, ID: "a", Model: "m"},
				{Type: translate.EvBlockStart, Block: translate.PartToolCall, BlockID: "x", BlockName: "f"},
				{Type: translate.EvDelta, Delta: translate.DeltaArgs, Data: "{"}, {Type: translate.EvBlockStop},
				{Type: translate.EvBlockStart, Index: 1, Block: translate.PartToolCall, BlockID: "y", BlockName: "g"},
				{Type: translate.EvDelta, Index: 1, Delta: translate.DeltaArgs, Data: "{"}}, ErrToolCallInterleaved},
		{"not JSON", []string{`<html>`}, nil, ErrBadChunk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeAll(t, tc.lines)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// neutral is an answer as another format's decoder gives it: no EvStart,
// a redacted thinking block and a signature (no place in chat), usage
// before the stop.
var neutral = []translate.Event{
	{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartThinking}},
	{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaThinking, Data: []byte("Weather needed.")},
	{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaSignature, Data: []byte("sig")},
	{Type: translate.EvBlockStop, Index: 0},
	{Type: translate.EvBlockStart, Index: 1, Block: translate.Part{Type: translate.PartRedactedThinking}},
	{Type: translate.EvDelta, Index: 1, Delta: translate.DeltaSignature, Data: []byte("opaque")},
	{Type: translate.EvBlockStop, Index: 1},
	{Type: translate.EvBlockStart, Index: 2, Block: translate.Part{Type: translate.PartText}},
	{Type: translate.EvDelta, Index: 2, Delta: translate.DeltaText, Data: []byte("Let me \"check\".")},
	{Type: translate.EvBlockStop, Index: 2},
	{Type: translate.EvBlockStart, Index: 3, Block: translate.Part{Type: translate.PartToolCall, ID: "toolu_1", Name: "get_weather"}},
	{Type: translate.EvDelta, Index: 3, Delta: translate.DeltaArgs, Data: []byte(`{"city":`)},
	{Type: translate.EvDelta, Index: 3, Delta: translate.DeltaArgs, Data: []byte(`"Paris"}`)},
	{Type: translate.EvBlockStop, Index: 3},
	{Type: translate.EvBlockStart, Index: 4, Block: translate.Part{Type: translate.PartToolCall, ID: "toolu_2", Name: "get_time"}},
	{Type: translate.EvBlockStop, Index: 4},
	{Type: translate.EvUsage, Usage: translate.Usage{Input: 30, Output: 30, CacheRead: 60, CacheWrite: 10, Reasoning: 12}},
	{Type: translate.EvStop, Stop: translate.StopToolUse},
	{Type: translate.EvEnd},
}

const head = `data: {"id":"chatcmpl-gw","object":"chat.completion.chunk","created":1700000000,"model":"zenmux/gpt","choices":[`

var neutralSSE = head + `{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

` + head + `{"index":0,"delta":{"reasoning_content":"Weather needed."},"logprobs":null,"finish_reason":null}]}

` + head + `{"index":0,"delta":{"content":"Let me \"check\"."},"logprobs":null,"finish_reason":null}]}

` + head + `{"index":0,"delta":{"tool_calls":[{"index":0,"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]}

` + head + `{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"logprobs":null,"finish_reason":null}]}

` + head + `{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"logprobs":null,"finish_reason":null}]}

` + head + `{"index":0,"delta":{"tool_calls":[{"index":1,"id":"toolu_2","type":"function","function":{"name":"get_time","arguments":""}}]},"logprobs":null,"finish_reason":null}]}

` + head + `{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}

` + head + `],"usage":{"prompt_tokens":100,"completion_tokens":30,"total_tokens":130,"prompt_tokens_details":{"cached_tokens":60,"cache_write_tokens":10},"completion_tokens_details":{"reasoning_tokens":12}}}

data: [DONE]

`

func encodeAll(o translate.EncoderOptions, evs []translate.Event) []byte {
	e := Codec.NewEncoder(o)
	var b []byte
	for i := range evs {
		b = e.Encode(b, &evs[i])
	}
	return b
}

func TestStreamEncode(t *testing.T) {
	if got := string(encodeAll(opts, neutral)); got != neutralSSE {
		t.Fatalf("got\n%s\nwant\n%s", got, neutralSSE)
	}
	// Without include_usage the usage chunk stays out.
	o := opts
	o.IncludeUsage = false
	want := strings.Replace(neutralSSE, head+`],"usage":{"prompt_tokens":100,"completion_tokens":30,"total_tokens":130,"prompt_tokens_details":{"cached_tokens":60,"cache_write_tokens":10},"completion_tokens_details":{"reasoning_tokens":12}}}

`, "", 1)
	if got := string(encodeAll(o, neutral)); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// streamSDK reads sse with openai-go's stream and accumulator.
func streamSDK(t *testing.T, sse []byte) (openai.ChatCompletionAccumulator, error) {
	t.Helper()
	client := serve(t, 200, "text/event-stream", sse)
	s := client.Chat.Completions.NewStreaming(context.Background(), sdkParams)
	var acc openai.ChatCompletionAccumulator
	for i := 0; i < 1000 && s.Next(); i++ {
		if !acc.AddChunk(s.Current()) {
			t.Fatalf("the accumulator refused chunk %d: %s", i, s.Current().RawJSON())
		}
	}
	return acc, s.Err()
}

// TestSDKReadsStream: openai-go's stream and accumulator read the
// encoder's output and see the text, the calls and the usage exactly.
func TestSDKReadsStream(t *testing.T) {
	acc, err := streamSDK(t, []byte(neutralSSE))
	if err != nil {
		t.Fatal(err)
	}
	c := acc.ChatCompletion
	m := c.Choices[0].Message
	if c.ID != "chatcmpl-gw" || c.Model != "zenmux/gpt" || m.Content != `Let me "check".` || c.Choices[0].FinishReason != "tool_calls" ||
		len(m.ToolCalls) != 2 || m.ToolCalls[0].ID != "toolu_1" || m.ToolCalls[0].Function.Name != "get_weather" ||
		m.ToolCalls[0].Function.Arguments != `{"city":"Paris"}` || m.ToolCalls[1].ID != "toolu_2" || m.ToolCalls[1].Function.Arguments != "" {
		t.Fatalf("SDK accumulated %+v", c)
	}
	u := c.Usage
	if u.PromptTokens != 100 || u.CompletionTokens != 30 || u.TotalTokens != 130 || u.PromptTokensDetails.CachedTokens != 60 ||
		u.CompletionTokensDetails.ReasoningTokens != 12 {
		t.Fatalf("SDK read usage %+v", u)
	}
}

// TestStreamRoundTrip: the upstream transcript decoded and encoded for a
// chat client reaches the SDK whole.
func TestStreamRoundTrip(t *testing.T) {
	d, e := Codec.NewDecoder(), Codec.NewEncoder(opts)
	var sse []byte
	var evs []translate.Event
	for _, l := range upstream {
		var err error
		if evs, err = d.Decode(evs[:0], "", []byte(l)); err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			sse = e.Encode(sse, &evs[i])
		}
	}
	acc, err := streamSDK(t, sse)
	if err != nil {
		t.Fatal(err)
	}
	m := acc.Choices[0].Message
	if acc.ID != "ds-1" || m.Content != "Checking now." || len(m.ToolCalls) != 2 || m.ToolCalls[0].Function.Arguments != `{"city":"Paris"}` ||
		m.ToolCalls[1].Function.Name != "get_time" || acc.Usage.PromptTokens != 100 || acc.Usage.PromptTokensDetails.CachedTokens != 60 {
		t.Fatalf("SDK accumulated %+v", acc.ChatCompletion)
	}
	if !bytes.Contains(sse, []byte(`"reasoning_content":"The user "`)) {
		t.Fatalf("reasoning lost:\n%s", sse)
	}
}

// TestSDKReadsStreamError: an error mid-stream reaches the SDK as one.
func TestSDKReadsStreamError(t *testing.T) {
	evs := []translate.Event{
		{Type: translate.EvStart, ID: "x"},
		{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartText}},
		{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaText, Data: []byte("Hi")},
		{Type: translate.EvError, Err: &translate.Error{Status: 529, Kind: translate.ErrOverloaded, Message: "Overloaded"}},
		{Type: translate.EvEnd},
	}
	sse := encodeAll(opts, evs)
	if !bytes.HasSuffix(sse, []byte(`data: {"error":{"message":"Overloaded","type":"server_error","param":null,"code":"overloaded"}}`+"\n\n")) {
		t.Fatalf("stream ends\n%s", sse)
	}
	acc, err := streamSDK(t, sse)
	if err == nil || !strings.Contains(err.Error(), "Overloaded") || acc.Choices[0].Message.Content != "Hi" {
		t.Fatalf("err = %v, content %q", err, acc.Choices[0].Message.Content)
	}
}
