package anthropic

import (
	"reflect"
	"strings"
	"testing"

	"zenmux/translate"
)

// upstreamStream is an Anthropic stream: thinking with its signature, text,
// a tool call whose input comes in pieces, a server-tool block (left out),
// pings, and usage that message_delta overwrites field by field.
const upstreamStream = `event: message_start
data: {"type":"message_start","message":{"id":"msg_01S","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":11,"cache_creation_input_tokens":3,"cache_read_input_tokens":5,"output_tokens":1}}}

event: ping
data: {"type": "ping"}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me "}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"think."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCkYI"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"Checking \"Paris\"."}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: content_block_start
data: {"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"Par"}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"is\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":3}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":12,"cache_creation_input_tokens":null,"output_tokens":89,"output_tokens_details":{"thinking_tokens":30}}}

event: message_stop
data: {"type":"message_stop"}

`

// sseEvents splits an SSE text into its events' names and data.
func sseEvents(t *testing.T, s string) (names []string, datas []string) {
	t.Helper()
	for _, ev := range strings.Split(strings.TrimSpace(s), "\n\n") {
		name, data := "", ""
		for _, line := range strings.Split(ev, "\n") {
			switch {
			case strings.HasPrefix(line, "event: "):
				name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				data += line[len("data: "):]
			default:
				t.Fatalf("bad SSE line %q", line)
			}
		}
		names, datas = append(names, name), append(datas, data)
	}
	return names, datas
}

// decodeAll feeds an SSE transcript to a decoder, copying each event out
// of the decoder's buffers.
func decodeAll(t *testing.T, s string) []translate.Event {
	t.Helper()
	d := Codec.NewDecoder()
	var all, evs []translate.Event
	names, datas := sseEvents(t, s)
	for i := range names {
		var err error
		if evs, err = d.Decode(evs[:0], names[i], []byte(datas[i])); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		for _, e := range evs {
			e.Data = append([]byte(nil), e.Data...)
			e.Block.ID, e.Block.Name = strings.Clone(e.Block.ID), strings.Clone(e.Block.Name)
			all = append(all, e)
		}
	}
	return all
}

// streamEvents is upstreamStream in neutral events.
var streamEvents = []translate.Event{
	{Type: translate.EvStart, ID: "msg_01S", Model: "claude-sonnet-4-5"},
	{Type: translate.EvUsage, Usage: translate.Usage{Input: 11, CacheWrite: 3, CacheRead: 5, Output: 1}},
	{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartThinking, Origin: "anthropic"}},
	{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaThinking, Data: []byte("Let me ")},
	{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaThinking, Data: []byte("think.")},
	{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaSignature, Data: []byte("EqQBCkYI")},
	{Type: translate.EvBlockStop, Index: 0},
	{Type: translate.EvBlockStart, Index: 1, Block: translate.Part{Type: translate.PartText}},
	{Type: translate.EvDelta, Index: 1, Delta: translate.DeltaText, Data: []byte(`Checking "Paris".`)},
	{Type: translate.EvBlockStop, Index: 1},
	{Type: translate.EvBlockStart, Index: 2, Block: translate.Part{Type: translate.PartToolCall, ID: "toolu_01A", Name: "get_weather"}},
	{Type: translate.EvDelta, Index: 2, Delta: translate.DeltaArgs, Data: []byte(`{"location": "Par`)},
	{Type: translate.EvDelta, Index: 2, Delta: translate.DeltaArgs, Data: []byte(`is"}`)},
	{Type: translate.EvBlockStop, Index: 2},
	{Type: translate.EvStop, Stop: translate.StopToolUse},
	{Type: translate.EvUsage, Usage: translate.Usage{Input: 12, CacheWrite: 3, CacheRead: 5, Output: 89, Reasoning: 30}},
	{Type: translate.EvEnd},
}

func TestStreamDecode(t *testing.T) {
	got := decodeAll(t, upstreamStream)
	if len(got) != len(streamEvents) {
		t.Fatalf("got %d events, want %d:\n%+v", len(got), len(streamEvents), got)
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], streamEvents[i]) {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], streamEvents[i])
		}
	}
}

func TestStreamDecodeEdges(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     []translate.Event
	}{
		{"no event names, redacted thinking, blocks left open", `data: {"type":"message_start","message":{"id":"m","model":"x","usage":{"input_tokens":2,"output_tokens":0}}}

data: {"type":"content_block_start","index":0,"content_block":{"type":"redacted_thinking","data":"RED"}}

data: {"type":"content_block_delta","index":7,"delta":{"type":"text_delta","text":"lost"}}

data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":4}}

data: {"type":"message_stop"}

data: {"type":"message_stop"}
`, []translate.Event{
			{Type: translate.EvStart, ID: "m", Model: "x"},
			{Type: translate.EvUsage, Usage: translate.Usage{Input: 2}},
			{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartRedactedThinking, Origin: "anthropic"}},
			{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaSignature, Data: []byte("RED")},
			{Type: translate.EvBlockStop, Index: 0},
			{Type: translate.EvStop, Stop: translate.StopEnd},
			{Type: translate.EvUsage, Usage: translate.Usage{Input: 2, Output: 4}},
			{Type: translate.EvEnd},
		}},
		{"stop sequence and a mid-stream error", `event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"##"},"usage":{"output_tokens":4}}

event: error
data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}
`, []translate.Event{
			{Type: translate.EvStop, Stop: translate.StopSequence, StopSequence: "##"},
			{Type: translate.EvUsage, Usage: translate.Usage{Output: 4}},
			{Type: translate.EvError, Err: &translate.Error{Status: 529, Kind: translate.ErrOverloaded, Message: "Overloaded"}},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := decodeAll(t, c.in); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
	if _, err := Codec.NewDecoder().Decode(nil, "message_start", []byte("{")); err == nil {
		t.Error("bad JSON: no error")
	}
}

// clientStream is streamEvents as a Claude client receives it.
const clientStream = `event: message_start
data: {"type":"message_start","message":{"id":"msg_01S","type":"message","role":"assistant","model":"my/claude","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":11,"cache_creation_input_tokens":3,"cache_read_input_tokens":5,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me "}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"think."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCkYI"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Checking \"Paris\"."}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"Par"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"is\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":12,"cache_creation_input_tokens":3,"cache_read_input_tokens":5,"output_tokens":89,"output_tokens_details":{"thinking_tokens":30}}}

event: message_stop
data: {"type":"message_stop"}

`

func encodeAll(o translate.EncoderOptions, evs []translate.Event) string {
	e := Codec.NewEncoder(o)
	var out []byte
	for i := range evs {
		out = e.Encode(out, &evs[i])
	}
	return string(out)
}

func TestStreamEncode(t *testing.T) {
	got := encodeAll(translate.EncoderOptions{Model: "my/claude", ID: "req_1"}, streamEvents)
	if got != clientStream {
		t.Errorf("got\n%s\nwant\n%s", got, clientStream)
	}
}

func TestStreamEncodeEdges(t *testing.T) {
	o := translate.EncoderOptions{Model: "m", ID: "req_1"}
	for _, c := range []struct {
		name string
		evs  []translate.Event
		want string
	}{
		{"no start, usage only at the end, foreign thinking, a block never stopped", []translate.Event{
			{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartThinking, Origin: "responses"}},
			{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaThinking, Data: []byte("hm")},
			{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaSignature, Data: []byte("encrypted")},
			{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaText, Data: []byte("wrong kind")},
			{Type: translate.EvDelta, Index: 5, Delta: translate.DeltaText, Data: []byte("no block")},
			{Type: translate.EvBlockStart, Index: 1, Block: translate.Part{Type: translate.PartToolCall, Name: "f"}},
			{Type: translate.EvDelta, Index: 1, Delta: translate.DeltaArgs, Data: []byte(`{}`)},
			{Type: translate.EvUsage, Usage: translate.Usage{Input: 9, CacheRead: 1, Output: 3}},
			{Type: translate.EvEnd},
			{Type: translate.EvEnd},
		}, `event: message_start
data: {"type":"message_start","message":{"id":"msg_req_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_req_1_1","name":"f","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":9,"cache_creation_input_tokens":0,"cache_read_input_tokens":1,"output_tokens":3}}

event: message_stop
data: {"type":"message_stop"}

`},
		{"redacted thinking is written whole, foreign redacted left out, stop sequence", []translate.Event{
			{Type: translate.EvStart, ID: "msg_x"},
			{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartRedactedThinking, Origin: "gemini"}},
			{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaSignature, Data: []byte("no")},
			{Type: translate.EvBlockStop, Index: 0},
			{Type: translate.EvBlockStart, Index: 1, Block: translate.Part{Type: translate.PartRedactedThinking, Origin: "anthropic"}},
			{Type: translate.EvDelta, Index: 1, Delta: translate.DeltaSignature, Data: []byte("RE")},
			{Type: translate.EvDelta, Index: 1, Delta: translate.DeltaSignature, Data: []byte("D")},
			{Type: translate.EvBlockStop, Index: 1},
			{Type: translate.EvStop, Stop: translate.StopSequence, StopSequence: "##"},
			{Type: translate.EvEnd},
		}, `event: message_start
data: {"type":"message_start","message":{"id":"msg_x","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"redacted_thinking","data":"RED"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"##"},"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}

event: message_stop
data: {"type":"message_stop"}

`},
		{"an error mid-stream", []translate.Event{
			{Type: translate.EvStart, ID: "msg_x"},
			{Type: translate.EvError, Err: &translate.Error{Status: 429, Kind: translate.ErrRateLimit, Message: "slow down"}},
		}, `event: error
data: {"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}

`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := encodeAll(o, c.evs); got != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}
