package responses

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"zenmux/translate"
)

// upstreamStream is an OpenAI Responses stream: reasoning with two summary
// parts and encrypted content, text, and a function call whose arguments
// come in pieces, then usage with cache tokens.
const upstreamStream = `event: response.created
data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","model":"gpt-5","output":[],"usage":null}}

event: response.in_progress
data: {"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_1","object":"response","status":"in_progress","model":"gpt-5","output":[]}}

event: response.output_item.added
data: {"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[]}}

event: response.reasoning_summary_part.added
data: {"type":"response.reasoning_summary_part.added","sequence_number":3,"item_id":"rs_1","output_index":0,"summary_index":0,"part":{"type":"summary_text","text":""}}

event: response.reasoning_summary_text.delta
data: {"type":"response.reasoning_summary_text.delta","sequence_number":4,"item_id":"rs_1","output_index":0,"summary_index":0,"delta":"Look"}

event: response.reasoning_summary_text.delta
data: {"type":"response.reasoning_summary_text.delta","sequence_number":5,"item_id":"rs_1","output_index":0,"summary_index":0,"delta":" around"}

event: response.reasoning_summary_text.done
data: {"type":"response.reasoning_summary_text.done","sequence_number":6,"item_id":"rs_1","output_index":0,"summary_index":0,"text":"Look around"}

event: response.reasoning_summary_part.done
data: {"type":"response.reasoning_summary_part.done","sequence_number":7,"item_id":"rs_1","output_index":0,"summary_index":0,"part":{"type":"summary_text","text":"Look around"}}

event: response.reasoning_summary_part.added
data: {"type":"response.reasoning_summary_part.added","sequence_number":8,"item_id":"rs_1","output_index":0,"summary_index":1,"part":{"type":"summary_text","text":""}}

event: response.reasoning_summary_text.delta
data: {"type":"response.reasoning_summary_text.delta","sequence_number":9,"item_id":"rs_1","output_index":0,"summary_index":1,"delta":"Then ls"}

event: response.output_item.done
data: {"type":"response.output_item.done","sequence_number":10,"output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[{"type":"summary_text","text":"Look around"},{"type":"summary_text","text":"Then ls"}],"encrypted_content":"gAAA=="}}

event: response.output_item.added
data: {"type":"response.output_item.added","sequence_number":11,"output_index":1,"item":{"id":"msg_1","type":"message","status":"in_progress","role":"assistant","content":[]}}

event: response.content_part.added
data: {"type":"response.content_part.added","sequence_number":12,"item_id":"msg_1","output_index":1,"content_index":0,"part":{"type":"output_text","annotations":[],"text":""}}

event: response.output_text.delta
data: {"type":"response.output_text.delta","sequence_number":13,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"Let me","logprobs":[]}

event: response.output_text.delta
data: {"type":"response.output_text.delta","sequence_number":14,"item_id":"msg_1","output_index":1,"content_index":0,"delta":" check.","logprobs":[]}

event: response.output_text.done
data: {"type":"response.output_text.done","sequence_number":15,"item_id":"msg_1","output_index":1,"content_index":0,"text":"Let me check.","logprobs":[]}

event: response.content_part.done
data: {"type":"response.content_part.done","sequence_number":16,"item_id":"msg_1","output_index":1,"content_index":0,"part":{"type":"output_text","annotations":[],"text":"Let me check."}}

event: response.output_item.done
data: {"type":"response.output_item.done","sequence_number":17,"output_index":1,"item":{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","annotations":[],"text":"Let me check."}]}}

event: response.output_item.added
data: {"type":"response.output_item.added","sequence_number":18,"output_index":2,"item":{"id":"fc_1","type":"function_call","status":"in_progress","arguments":"","call_id":"call_7","name":"ls"}}

event: response.function_call_arguments.delta
data: {"type":"response.function_call_arguments.delta","sequence_number":19,"item_id":"fc_1","output_index":2,"delta":"{\"dir\""}

event: response.function_call_arguments.delta
data: {"type":"response.function_call_arguments.delta","sequence_number":20,"item_id":"fc_1","output_index":2,"delta":":\"."}

event: response.function_call_arguments.delta
data: {"type":"response.function_call_arguments.delta","sequence_number":21,"item_id":"fc_1","output_index":2,"delta":"\"}"}

event: response.function_call_arguments.done
data: {"type":"response.function_call_arguments.done","sequence_number":22,"item_id":"fc_1","output_index":2,"arguments":"{\"dir\":\".\"}"}

event: response.output_item.done
data: {"type":"response.output_item.done","sequence_number":23,"output_index":2,"item":{"id":"fc_1","type":"function_call","status":"completed","arguments":"{\"dir\":\".\"}","call_id":"call_7","name":"ls"}}

event: response.completed
data: {"type":"response.completed","sequence_number":24,"response":{"id":"resp_1","object":"response","status":"completed","model":"gpt-5","output":[],"usage":{"input_tokens":100,"input_tokens_details":{"cached_tokens":60,"cache_write_tokens":10},"output_tokens":50,"output_tokens_details":{"reasoning_tokens":20},"total_tokens":150}}}

`

// sse splits an SSE transcript into events (name, data).
func sse(t testing.TB, s string) [][2]string {
	t.Helper()
	var out [][2]string
	for _, ev := range strings.Split(strings.TrimSpace(s), "\n\n") {
		var name, data string
		for _, line := range strings.Split(ev, "\n") {
			switch {
			case strings.HasPrefix(line, "event: "):
				name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				data = line[len("data: "):]
			default:
				t.Fatalf("bad SSE line %q", line)
			}
		}
		out = append(out, [2]string{name, data})
	}
	return out
}

// ev is an Event with its data copied, for comparison.
type ev struct {
	Type      translate.EventType
	ID, Model string
	Index     int
	Block     translate.Part
	Delta     translate.DeltaType
	Data      string
	Usage     translate.Usage
	Stop      translate.StopReason
	Err       *translate.Error
}

func decodeAll(t *testing.T, transcript string) []ev {
	t.Helper()
	d := Codec.NewDecoder()
	var out []ev
	var evs []translate.Event
	for _, e := range sse(t, transcript) {
		var err error
		evs, err = d.Decode(evs[:0], e[0], []byte(e[1]))
		if err != nil {
			t.Fatalf("%s: %v", e[1], err)
		}
		for _, x := range evs {
			out = append(out, ev{x.Type, x.ID, x.Model, x.Index, x.Block, x.Delta, string(x.Data), x.Usage, x.Stop, x.Err})
		}
	}
	return out
}

func TestDecodeStream(t *testing.T) {
	got := decodeAll(t, upstreamStream)
	want := []ev{
		{Type: translate.EvStart, ID: "resp_1", Model: "gpt-5"},
		{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartThinking, Origin: "responses"}},
		{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaThinking, Data: "Look"},
		{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaThinking, Data: " around"},
		{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaThinking, Data: "\n\n"},
		{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaThinking, Data: "Then ls"},
		{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaSignature, Data: "gAAA=="},
		{Type: translate.EvBlockStop, Index: 0},
		{Type: translate.EvBlockStart, Index: 1, Block: translate.Part{Type: translate.PartText}},
		{Type: translate.EvDelta, Index: 1, Delta: translate.DeltaText, Data: "Let me"},
		{Type: translate.EvDelta, Index: 1, Delta: translate.DeltaText, Data: " check."},
		{Type: translate.EvBlockStop, Index: 1},
		{Type: translate.EvBlockStart, Index: 2, Block: translate.Part{Type: translate.PartToolCall, ID: "call_7", Name: "ls"}},
		{Type: translate.EvDelta, Index: 2, Delta: translate.DeltaArgs, Data: `{"dir"`},
		{Type: translate.EvDelta, Index: 2, Delta: translate.DeltaArgs, Data: `:".`},
		{Type: translate.EvDelta, Index: 2, Delta: translate.DeltaArgs, Data: `"}`},
		{Type: translate.EvBlockStop, Index: 2},
		{Type: translate.EvUsage, Usage: translate.Usage{Input: 30, CacheRead: 60, CacheWrite: 10, Output: 50, Reasoning: 20}},
		{Type: translate.EvStop, Stop: translate.StopToolUse},
		{Type: translate.EvEnd},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", dump(got), dump(want))
	}
}

func dump(evs []ev) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%+v\n", e)
	}
	return b.String()
}

func TestDecodeStreamEdges(t *testing.T) {
	for _, c := range []struct {
		name, transcript string
		want             []ev
	}{
		{"done items only, incomplete", `event: response.output_item.done
data: {"type":"response.output_item.done","output_index":0,"item":{"type":"message","content":[{"type":"output_text","text":"hi"},{"type":"refusal","refusal":"no"}]}}

data: {"type":"response.output_item.done","output_index":1,"item":{"type":"function_call","call_id":"c","name":"f","arguments":"{}"}}

data: {"type":"response.output_item.done","output_index":2,"item":{"type":"reasoning","summary":[{"type":"summary_text","text":"a"},{"type":"summary_text","text":"b"}]}}

data: {"type":"response.incomplete","response":{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"}}}
`, []ev{
			{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartText}},
			{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaText, Data: "hi"},
			{Type: translate.EvBlockStop, Index: 0},
			{Type: translate.EvBlockStart, Index: 1, Block: translate.Part{Type: translate.PartText}},
			{Type: translate.EvDelta, Index: 1, Delta: translate.DeltaText, Data: "no"},
			{Type: translate.EvBlockStop, Index: 1},
			{Type: translate.EvBlockStart, Index: 2, Block: translate.Part{Type: translate.PartToolCall, ID: "c", Name: "f"}},
			{Type: translate.EvDelta, Index: 2, Delta: translate.DeltaArgs, Data: "{}"},
			{Type: translate.EvBlockStop, Index: 2},
			{Type: translate.EvBlockStart, Index: 3, Block: translate.Part{Type: translate.PartThinking, Origin: "responses"}},
			{Type: translate.EvDelta, Index: 3, Delta: translate.DeltaThinking, Data: "a"},
			{Type: translate.EvDelta, Index: 3, Delta: translate.DeltaThinking, Data: "\n\n"},
			{Type: translate.EvDelta, Index: 3, Delta: translate.DeltaThinking, Data: "b"},
			{Type: translate.EvBlockStop, Index: 3},
			{Type: translate.EvStop, Stop: translate.StopMaxTokens},
			{Type: translate.EvEnd},
		}},
		{"deltas without openings, then failed", `data: {"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":"x"}

data: {"type":"response.reasoning_text.delta","output_index":1,"content_index":0,"delta":"r"}

data: {"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"boom"},"usage":{"input_tokens":5,"output_tokens":1}}}

data: {"type":"response.completed","response":{}}
`, []ev{
			{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartText}},
			{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaText, Data: "x"},
			{Type: translate.EvBlockStop, Index: 0},
			{Type: translate.EvBlockStart, Index: 1, Block: translate.Part{Type: translate.PartThinking, Origin: "responses"}},
			{Type: translate.EvDelta, Index: 1, Delta: translate.DeltaThinking, Data: "r"},
			{Type: translate.EvBlockStop, Index: 1},
			{Type: translate.EvUsage, Usage: translate.Usage{Input: 5, Output: 1}},
			{Type: translate.EvError, Err: &translate.Error{Status: 500, Kind: translate.ErrServer, Message: "boom", Code: "server_error"}},
			{Type: translate.EvEnd},
		}},
		{"error event", `event: error
data: {"type":"error","code":"rate_limit_exceeded","message":"slow","param":null,"sequence_number":3}
`, []ev{
			{Type: translate.EvError, Err: &translate.Error{Status: 429, Kind: translate.ErrRateLimit, Message: "slow", Code: "rate_limit_exceeded"}},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := decodeAll(t, c.transcript); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got\n%s\nwant\n%s", dump(got), dump(c.want))
			}
		})
	}
	if _, err := Codec.NewDecoder().Decode(nil, "", []byte("not json")); err == nil {
		t.Fatal("data that is not JSON decoded")
	}
	for _, data := range []string{"", "[DONE]"} {
		if evs, err := Codec.NewDecoder().Decode(nil, "", []byte(data)); err != nil || len(evs) != 0 {
			t.Fatalf("%q: %v %v", data, evs, err)
		}
	}
}

// events is a neutral stream with every block type, as another format's
// decoder (here Anthropic's) would send it.
func events() []translate.Event {
	return []translate.Event{
		{Type: translate.EvStart, ID: "msg_up", Model: "claude"},
		{Type: translate.EvUsage, Usage: translate.Usage{Input: 30, CacheRead: 60, CacheWrite: 10}},
		{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartThinking, Origin: "anthropic"}},
		{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaThinking, Data: []byte("Hmm, ")},
		{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaThinking, Data: []byte("list.")},
		{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaSignature, Data: []byte("SIG")},
		{Type: translate.EvBlockStop, Index: 0},
		{Type: translate.EvBlockStart, Index: 1, Block: translate.Part{Type: translate.PartText}},
		{Type: translate.EvDelta, Index: 1, Delta: translate.DeltaText, Data: []byte("Let me ")},
		{Type: translate.EvDelta, Index: 1, Delta: translate.DeltaText, Data: []byte("check <a&b>.")},
		{Type: translate.EvBlockStop, Index: 1},
		{Type: translate.EvBlockStart, Index: 2, Block: translate.Part{Type: translate.PartToolCall, ID: "toolu_1", Name: "ls"}},
		{Type: translate.EvDelta, Index: 2, Delta: translate.DeltaArgs, Data: []byte(`{"dir"`)},
		{Type: translate.EvDelta, Index: 2, Delta: translate.DeltaArgs, Data: []byte(`:"."}`)},
		{Type: translate.EvBlockStop, Index: 2},
		{Type: translate.EvStop, Stop: translate.StopToolUse},
		{Type: translate.EvUsage, Usage: translate.Usage{Input: 30, CacheRead: 60, CacheWrite: 10, Output: 50, Reasoning: 20}},
		{Type: translate.EvEnd},
	}
}

func encodeAll(evs []translate.Event) []byte {
	e := Codec.NewEncoder(opts)
	var out []byte
	for i := range evs {
		out = e.Encode(out, &evs[i])
	}
	return out
}

func TestEncodeStreamText(t *testing.T) {
	got := encodeAll([]translate.Event{
		{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartText}},
		{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaText, Data: []byte("Hi")},
		{Type: translate.EvBlockStop, Index: 0},
		{Type: translate.EvStop, Stop: translate.StopEnd},
		{Type: translate.EvUsage, Usage: translate.Usage{Input: 3, Output: 1}},
		{Type: translate.EvEnd},
		{Type: translate.EvEnd},
	})
	resp := func(status, output, usage string) string {
		return `{"id":"req1","object":"response","created_at":1700000000,"status":"` + status + `","background":false,"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"metadata":{},"model":"zen-claude","output":[` + output +
			`],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":false,"temperature":1,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1,"truncation":"disabled","usage":` + usage + `,"user":null}`
	}
	item := `{"id":"msg_req1_0","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Hi"}]}`
	want := `event: response.created
data: {"type":"response.created","sequence_number":0,"response":` + resp("in_progress", "", "null") + `}

event: response.in_progress
data: {"type":"response.in_progress","sequence_number":1,"response":` + resp("in_progress", "", "null") + `}

event: response.output_item.added
data: {"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"msg_req1_0","type":"message","status":"in_progress","role":"assistant","content":[]}}

event: response.content_part.added
data: {"type":"response.content_part.added","sequence_number":3,"item_id":"msg_req1_0","output_index":0,"content_index":0,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":""}}

event: response.output_text.delta
data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_req1_0","output_index":0,"content_index":0,"delta":"Hi","logprobs":[]}

event: response.output_text.done
data: {"type":"response.output_text.done","sequence_number":5,"item_id":"msg_req1_0","output_index":0,"content_index":0,"text":"Hi","logprobs":[]}

event: response.content_part.done
data: {"type":"response.content_part.done","sequence_number":6,"item_id":"msg_req1_0","output_index":0,"content_index":0,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":"Hi"}}

event: response.output_item.done
data: {"type":"response.output_item.done","sequence_number":7,"output_index":0,"item":` + item + `}

event: response.completed
data: {"type":"response.completed","sequence_number":8,"response":` + resp("completed", item,
		`{"input_tokens":3,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":1,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":4}`) + `}

`
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if r := readStream(t, got); r.text != "Hi" || r.final.OutputText() != "Hi" || r.final.Usage.TotalTokens != 4 {
		t.Fatalf("the SDK read %v %s", r.types, r.final.RawJSON())
	}
}

// streamed is what a client builds from a stream's events.
type streamed struct {
	seq      []int64
	types    []string
	text     string
	summary  string
	args     string
	items    []responses.ResponseOutputItemUnion
	final    responses.Response
	terminal string
	errors   []string
}

func readStream(t *testing.T, body []byte) streamed {
	t.Helper()
	client := serve(t, "text/event-stream", body)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := client.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: "zen-claude", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	defer s.Close()
	var got streamed
	for n := 0; s.Next(); n++ {
		if n > 1000 {
			t.Fatal("stream does not end")
		}
		e := s.Current()
		got.seq = append(got.seq, e.SequenceNumber)
		got.types = append(got.types, e.Type)
		switch e.Type {
		case "response.output_text.delta":
			got.text += e.Delta
		case "response.reasoning_summary_text.delta":
			got.summary += e.Delta
		case "response.function_call_arguments.delta":
			got.args += e.Delta
		case "response.output_item.done":
			got.items = append(got.items, e.AsResponseOutputItemDone().Item)
		case "response.completed", "response.incomplete", "response.failed":
			got.terminal, got.final = e.Type, e.Response
		case "error":
			got.errors = append(got.errors, e.AsError().Code+": "+e.AsError().Message)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	for i, q := range got.seq {
		if q != int64(i) {
			t.Fatalf("sequence numbers %v", got.seq)
		}
	}
	return got
}

func TestSDKParsesStream(t *testing.T) {
	got := readStream(t, encodeAll(events()))
	wantTypes := []string{"response.created", "response.in_progress",
		"response.output_item.added", "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
		"response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
		"response.output_item.added", "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
		"response.output_text.done", "response.content_part.done", "response.output_item.done",
		"response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.delta",
		"response.function_call_arguments.done", "response.output_item.done", "response.completed"}
	if !reflect.DeepEqual(got.types, wantTypes) {
		t.Fatalf("event types %v", got.types)
	}
	if got.text != "Let me check <a&b>." || got.summary != "Hmm, list." || got.args != `{"dir":"."}` {
		t.Fatalf("deltas %q %q %q", got.text, got.summary, got.args)
	}
	f := got.final
	if got.terminal != "response.completed" || f.ID != "msg_up" || f.Model != "zen-claude" || f.Status != "completed" || len(f.Output) != 3 {
		t.Fatalf("final %s %s %s %s %d", got.terminal, f.ID, f.Model, f.Status, len(f.Output))
	}
	// The completed response holds what the deltas built, item for item.
	for i, it := range f.Output {
		if it.RawJSON() != got.items[i].RawJSON() {
			t.Errorf("output[%d] %s\ndone item %s", i, it.RawJSON(), got.items[i].RawJSON())
		}
	}
	rs := f.Output[0].AsReasoning()
	if len(rs.Summary) != 1 || rs.Summary[0].Text != got.summary || rs.EncryptedContent != "zmx1:t:anthropic:SIG" {
		t.Fatalf("reasoning %+v", rs)
	}
	if f.OutputText() != got.text {
		t.Fatalf("output text %q", f.OutputText())
	}
	fc := f.Output[2].AsFunctionCall()
	if fc.CallID != "toolu_1" || fc.Name != "ls" || fc.Arguments != got.args {
		t.Fatalf("function call %+v", fc)
	}
	u := f.Usage
	if u.InputTokens != 100 || u.InputTokensDetails.CachedTokens != 60 || u.InputTokensDetails.CacheWriteTokens != 10 ||
		u.OutputTokens != 50 || u.OutputTokensDetails.ReasoningTokens != 20 || u.TotalTokens != 150 {
		t.Fatalf("usage %+v", u)
	}
}

// TestStreamRoundTrip: an OpenAI stream decoded and encoded again gives
// the client what OpenAI sent, encrypted reasoning included.
func TestStreamRoundTrip(t *testing.T) {
	d := Codec.NewDecoder()
	e := Codec.NewEncoder(opts)
	var out []byte
	var evs []translate.Event
	for _, x := range sse(t, upstreamStream) {
		var err error
		if evs, err = d.Decode(evs[:0], x[0], []byte(x[1])); err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			out = e.Encode(out, &evs[i])
		}
	}
	got := readStream(t, out)
	f := got.final
	if f.ID != "resp_1" || got.text != "Let me check." || got.summary != "Look around\n\nThen ls" || got.args != `{"dir":"."}` || len(f.Output) != 3 {
		t.Fatalf("%+v", got)
	}
	if rs := f.Output[0].AsReasoning(); rs.EncryptedContent != "gAAA==" {
		t.Fatalf("reasoning %+v", rs)
	}
	if f.Usage.InputTokens != 100 || f.Usage.InputTokensDetails.CachedTokens != 60 || f.Usage.OutputTokens != 50 {
		t.Fatalf("usage %+v", f.Usage)
	}
}

func TestEncodeStreamEnds(t *testing.T) {
	// A lazy start, a max-tokens stop, and an error that fails the response.
	inc := readStream(t, encodeAll([]translate.Event{
		{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartText}},
		{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaText, Data: []byte("cut")},
		{Type: translate.EvStop, Stop: translate.StopMaxTokens},
		{Type: translate.EvEnd},
	}))
	if inc.terminal != "response.incomplete" || inc.final.Status != "incomplete" || inc.final.IncompleteDetails.Reason != "max_output_tokens" || inc.final.OutputText() != "cut" {
		t.Fatalf("incomplete: %v %s", inc.types, inc.final.RawJSON())
	}
	// An error with no end after it still ends the stream, with the usage
	// so far and the text streamed before it.
	failed := readStream(t, encodeAll([]translate.Event{
		{Type: translate.EvStart},
		{Type: translate.EvUsage, Usage: translate.Usage{Input: 7}},
		{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartText}},
		{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaText, Data: []byte("par")},
		{Type: translate.EvError, Err: &translate.Error{Status: 529, Kind: translate.ErrOverloaded, Message: "busy"}},
		{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaText, Data: []byte("tial")},
		{Type: translate.EvEnd},
	}))
	if failed.terminal != "response.failed" || failed.final.Error.Message != "busy" || string(failed.final.Error.Code) != "server_error" ||
		!reflect.DeepEqual(failed.errors, []string{"server_error: busy"}) || failed.final.OutputText() != "par" || failed.final.Usage.InputTokens != 7 ||
		failed.types[5] != "error" || failed.text != "par" {
		t.Fatalf("failed: %v %s", failed.types, failed.final.RawJSON())
	}
}
