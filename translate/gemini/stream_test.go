package gemini

import (
	"fmt"
	"strings"
	"testing"

	"zenmux/translate"
)

// render writes an event as one line, for exact comparison (Data is only
// valid until the decoder's next call).
func render(ev *translate.Event) string {
	switch ev.Type {
	case translate.EvStart:
		return fmt.Sprintf("start id=%s model=%s", ev.ID, ev.Model)
	case translate.EvBlockStart:
		b := ev.Block
		return fmt.Sprintf("block %d type=%d id=%s name=%s origin=%s", ev.Index, b.Type, b.ID, b.Name, b.Origin)
	case translate.EvDelta:
		return fmt.Sprintf("delta %d %d %s", ev.Index, ev.Delta, ev.Data)
	case translate.EvBlockStop:
		return fmt.Sprintf("stop %d", ev.Index)
	case translate.EvUsage:
		return fmt.Sprintf("usage %+v", ev.Usage)
	case translate.EvStop:
		return fmt.Sprintf("finish %d", ev.Stop)
	case translate.EvEnd:
		return "end"
	case translate.EvError:
		return fmt.Sprintf("error %+v", *ev.Err)
	}
	return "?"
}

// upstreamStream is a gemini-2.5-flash streamGenerateContent transcript
// with thoughts, text, two function calls and cached tokens, as Google
// sends it (usage on every chunk, running).
var upstreamStream = []string{
	`{"candidates":[{"content":{"parts":[{"text":"**Planning** the","thought":true}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":120,"totalTokenCount":120,"cachedContentTokenCount":100,"promptTokensDetails":[{"modality":"TEXT","tokenCount":120}]},"modelVersion":"gemini-2.5-flash","responseId":"Hq5KabC"}`,
	`{"candidates":[{"content":{"parts":[{"text":" answer","thought":true}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":120,"totalTokenCount":130,"cachedContentTokenCount":100,"thoughtsTokenCount":10},"modelVersion":"gemini-2.5-flash","responseId":"Hq5KabC"}`,
	`{"candidates":[{"content":{"parts":[{"text":"Let me","thoughtSignature":"c2lnLXRleHQ="}],"role":"model"},"index":0}],"modelVersion":"gemini-2.5-flash","responseId":"Hq5KabC"}`,
	`{"candidates":[{"content":{"parts":[{"text":" check."}],"role":"model"},"index":0}],"modelVersion":"gemini-2.5-flash","responseId":"Hq5KabC"}`,
	`{"candidates":[{"content":{"parts":[{"functionCall":{"name":"weather","args":{"city":"Paris","days":[1,2]}},"thoughtSignature":"c2lnLWNhbGw="},{"functionCall":{"id":"fc2","name":"clock","args":{}}}],"role":"model"},"index":0}],"modelVersion":"gemini-2.5-flash","responseId":"Hq5KabC"}`,
	`{"candidates":[{"content":{"parts":[{"text":""}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":120,"candidatesTokenCount":30,"totalTokenCount":170,"cachedContentTokenCount":100,"thoughtsTokenCount":20,"toolUsePromptTokenCount":4},"modelVersion":"gemini-2.5-flash","responseId":"Hq5KabC"}`,
}

func TestStreamDecode(t *testing.T) {
	d := Codec.NewDecoder()
	var got []string
	var evs []translate.Event
	for _, data := range upstreamStream {
		var err error
		evs, err = d.Decode(evs[:0], "", []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			got = append(got, render(&evs[i]))
		}
	}
	// Anything after the end is ignored.
	if evs, _ = d.Decode(evs[:0], "", []byte(upstreamStream[0])); len(evs) != 0 {
		t.Fatalf("events after the end: %v", evs)
	}
	want := []string{
		"start id=Hq5KabC model=gemini-2.5-flash",
		"block 0 type=5 id= name= origin=gemini",
		"delta 0 2 **Planning** the",
		"delta 0 2  answer",
		"stop 0",
		"block 1 type=5 id= name= origin=gemini",
		"delta 1 4 c2lnLXRleHQ=",
		"stop 1",
		"block 2 type=1 id= name= origin=",
		"delta 2 1 Let me",
		"delta 2 1  check.",
		"stop 2",
		"block 3 type=5 id= name= origin=gemini",
		"delta 3 4 c2lnLWNhbGw=",
		"stop 3",
		"block 4 type=3 id=gemini_call_Hq5KabC_1 name=weather origin=",
		`delta 4 3 {"city":"Paris","days":[1,2]}`,
		"stop 4",
		"block 5 type=3 id=fc2 name=clock origin=",
		"delta 5 3 {}",
		"stop 5",
		"usage {Input:24 Output:50 CacheRead:100 CacheWrite:0 Reasoning:20}",
		"finish 3",
		"end",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestStreamDecodeErrorsAndRefusal(t *testing.T) {
	for _, c := range []struct {
		chunks []string
		want   []string
	}{
		{[]string{`{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"}}],"responseId":"r"}`,
			`{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}`},
			[]string{"start id=r model=", "block 0 type=1 id= name= origin=", "delta 0 1 Hi",
				"error {Status:503 Kind:8 Message:The model is overloaded. Param: Code:UNAVAILABLE}"}},
		{[]string{`{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9},"responseId":"b"}`},
			[]string{"start id=b model=", "usage {Input:9 Output:0 CacheRead:0 CacheWrite:0 Reasoning:0}", "finish 5", "end"}},
		{[]string{`{"candidates":[{"content":{"parts":[{"text":"cut"}]},"finishReason":"MAX_TOKENS"}]}`},
			[]string{"start id= model=", "block 0 type=1 id= name= origin=", "delta 0 1 cut", "stop 0", "finish 2", "end"}},
		{[]string{`{"candidates":[{"content":{"parts":[{"text":"a","thought":true,"thoughtSignature":"cw=="},{"text":"b","thought":true}]}}]}`,
			`{"candidates":[{"finishReason":"STOP"}]}`},
			[]string{"start id= model=", "block 0 type=5 id= name= origin=gemini", "delta 0 2 a", "delta 0 4 cw==", "stop 0",
				"block 1 type=5 id= name= origin=gemini", "delta 1 2 b", "stop 1", "finish 1", "end"}},
	} {
		d := Codec.NewDecoder()
		var got []string
		for _, data := range c.chunks {
			evs, err := d.Decode(nil, "", []byte(data))
			if err != nil {
				t.Fatal(err)
			}
			for i := range evs {
				got = append(got, render(&evs[i]))
			}
		}
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%v:\n%s\nwant:\n%s", c.chunks, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}
	if _, err := Codec.NewDecoder().Decode(nil, "", []byte("{oops")); err == nil {
		t.Error("a chunk that is not JSON: no error")
	}
}

// clientEvents is what an Anthropic upstream's decoder would send: no
// start, thinking with a foreign signature, text, a tool call whose
// arguments come in pieces, usage only at the end.
func clientEvents() []translate.Event {
	return []translate.Event{
		{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartThinking, Origin: "anthropic"}},
		{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaThinking, Data: []byte("Need weather.")},
		{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaSignature, Data: []byte("anthropic-sig")},
		{Type: translate.EvBlockStop, Index: 0},
		{Type: translate.EvBlockStart, Index: 1, Block: translate.Part{Type: translate.PartText}},
		{Type: translate.EvDelta, Index: 1, Delta: translate.DeltaText, Data: []byte("Checking ")},
		{Type: translate.EvDelta, Index: 1, Delta: translate.DeltaText, Data: []byte("now.")},
		{Type: translate.EvBlockStop, Index: 1},
		{Type: translate.EvBlockStart, Index: 2, Block: translate.Part{Type: translate.PartToolCall, ID: "toolu_01", Name: "weather"}},
		{Type: translate.EvDelta, Index: 2, Delta: translate.DeltaArgs, Data: []byte(`{"city":`)},
		{Type: translate.EvDelta, Index: 2, Delta: translate.DeltaArgs, Data: []byte(` "Paris", "days": [1`)},
		{Type: translate.EvDelta, Index: 2, Delta: translate.DeltaArgs, Data: []byte(`,2]}`)},
		{Type: translate.EvBlockStop, Index: 2},
		{Type: translate.EvStop, Stop: translate.StopToolUse},
		{Type: translate.EvUsage, Usage: translate.Usage{Input: 20, CacheRead: 100, CacheWrite: 30, Output: 45, Reasoning: 12}},
		{Type: translate.EvEnd},
	}
}

const clientSSE = `data: {"candidates":[{"content":{"role":"model","parts":[{"text":"Need weather.","thought":true}]},"index":0}],"modelVersion":"my-model","responseId":"req-1"}` + "\r\n\r\n" +
	`data: {"candidates":[{"content":{"role":"model","parts":[{"text":"Checking "}]},"index":0}],"modelVersion":"my-model","responseId":"req-1"}` + "\r\n\r\n" +
	`data: {"candidates":[{"content":{"role":"model","parts":[{"text":"now."}]},"index":0}],"modelVersion":"my-model","responseId":"req-1"}` + "\r\n\r\n" +
	`data: {"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"id":"toolu_01","name":"weather","args":{"city": "Paris", "days": [1,2]}}}]},"index":0}],"modelVersion":"my-model","responseId":"req-1"}` + "\r\n\r\n" +
	`data: {"candidates":[{"content":{"role":"model","parts":[{"text":""}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":150,"candidatesTokenCount":33,"cachedContentTokenCount":100,"thoughtsTokenCount":12,"totalTokenCount":195},"modelVersion":"my-model","responseId":"req-1"}` + "\r\n\r\n"

func TestStreamEncode(t *testing.T) {
	enc := Codec.NewEncoder(translate.EncoderOptions{Model: "my-model", ID: "req-1"})
	var out []byte
	evs := clientEvents()
	for i := range evs {
		out = enc.Encode(out, &evs[i])
	}
	if string(out) != clientSSE {
		t.Fatalf("got:\n%s\nwant:\n%s", out, clientSSE)
	}
	// Nothing after the end.
	if more := enc.Encode(nil, &evs[5]); len(more) != 0 {
		t.Fatalf("bytes after the end: %s", more)
	}
}

func TestStreamEncodeError(t *testing.T) {
	enc := Codec.NewEncoder(translate.EncoderOptions{Model: "m", ID: "r"})
	out := enc.Encode(nil, &translate.Event{Type: translate.EvError, Err: &translate.Error{Status: 429, Kind: translate.ErrRateLimit, Message: "slow"}})
	if want := `data: {"error":{"code":429,"message":"slow","status":"RESOURCE_EXHAUSTED"}}` + "\r\n\r\n"; string(out) != want {
		t.Fatalf("got %s", out)
	}
}

// TestStreamRoundTrip: a Gemini stream decoded and encoded again carries
// the same parts, with each signature on the part that carried it.
func TestStreamRoundTrip(t *testing.T) {
	d := Codec.NewDecoder()
	enc := Codec.NewEncoder(translate.EncoderOptions{Model: "gemini-2.5-flash"})
	var out []byte
	var evs []translate.Event
	for _, data := range upstreamStream {
		var err error
		if evs, err = d.Decode(evs[:0], "", []byte(data)); err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			out = enc.Encode(out, &evs[i])
		}
	}
	chunks := strings.Split(strings.TrimSuffix(string(out), "\r\n\r\n"), "\r\n\r\n")
	want := []string{
		`{"candidates":[{"content":{"role":"model","parts":[{"text":"**Planning** the","thought":true}]},"index":0}],"modelVersion":"gemini-2.5-flash","responseId":"Hq5KabC"}`,
		`{"candidates":[{"content":{"role":"model","parts":[{"text":" answer","thought":true}]},"index":0}],"modelVersion":"gemini-2.5-flash","responseId":"Hq5KabC"}`,
		`{"candidates":[{"content":{"role":"model","parts":[{"text":"Let me","thoughtSignature":"c2lnLXRleHQ="}]},"index":0}],"modelVersion":"gemini-2.5-flash","responseId":"Hq5KabC"}`,
		`{"candidates":[{"content":{"role":"model","parts":[{"text":" check."}]},"index":0}],"modelVersion":"gemini-2.5-flash","responseId":"Hq5KabC"}`,
		`{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"weather","args":{"city":"Paris","days":[1,2]}},"thoughtSignature":"c2lnLWNhbGw="}]},"index":0}],"modelVersion":"gemini-2.5-flash","responseId":"Hq5KabC"}`,
		`{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"id":"fc2","name":"clock","args":{}}}]},"index":0}],"modelVersion":"gemini-2.5-flash","responseId":"Hq5KabC"}`,
		`{"candidates":[{"content":{"role":"model","parts":[{"text":""}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":124,"candidatesTokenCount":30,"cachedContentTokenCount":100,"thoughtsTokenCount":20,"totalTokenCount":174},"modelVersion":"gemini-2.5-flash","responseId":"Hq5KabC"}`,
	}
	if len(chunks) != len(want) {
		t.Fatalf("%d chunks, want %d:\n%s", len(chunks), len(want), out)
	}
	for i := range want {
		if chunks[i] != "data: "+want[i] {
			t.Errorf("chunk %d:\n got %s\nwant data: %s", i, chunks[i], want[i])
		}
	}
}

// TestStreamEncodeCopiesEventStrings: an event's strings may point into
// the decoder's buffer, reused by its next event; the encoder keeps its
// own copies of what it writes later (the call's id and name, the answer
// id).
func TestStreamEncodeCopiesEventStrings(t *testing.T) {
	buf := []byte("resp-9toolu_7weather")
	s := view(buf)
	enc := Codec.NewEncoder(translate.EncoderOptions{Model: "m"})
	out := enc.Encode(nil, &translate.Event{Type: translate.EvStart, ID: s[:6]})
	out = enc.Encode(out, &translate.Event{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartToolCall, ID: s[6:13], Name: s[13:]}})
	copy(buf, "XXXXXXXXXXXXXXXXXXXX")
	out = enc.Encode(out, &translate.Event{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaArgs, Data: []byte(`{}`)})
	out = enc.Encode(out, &translate.Event{Type: translate.EvBlockStop, Index: 0})
	want := `data: {"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"id":"toolu_7","name":"weather","args":{}}}]},"index":0}],"modelVersion":"m","responseId":"resp-9"}` + "\r\n\r\n"
	if string(out) != want {
		t.Fatalf("got %s", out)
	}
}
