package responses

import (
	"strconv"
	"strings"
	"testing"

	"zenmux/translate"
)

// benchRequest is a typical 2 KB request with a tool definition.
var benchRequest = []byte(`{"model":"zen-claude","instructions":"You are a careful coding assistant. ` + strings.Repeat("Follow the repository's conventions. ", 25) + `",
 "input":[{"role":"user","content":"Show me the files in the current directory and explain the layout."},
  {"type":"function_call","call_id":"call_1","name":"exec_command","arguments":"{\"cmd\":\"ls -la\"}"},
  {"type":"function_call_output","call_id":"call_1","output":"total 8\ndrwxr-xr-x 2 u u 4096 .\n-rw-r--r-- 1 u u 120 main.go\n-rw-r--r-- 1 u u 80 go.mod"}],
 "tools":[{"type":"function","name":"exec_command","description":"Run a shell command and return its output.","strict":false,
  "parameters":{"type":"object","properties":{"cmd":{"type":"string","description":"The command line"},"workdir":{"type":"string"},"timeout_ms":{"type":"integer"}},"required":["cmd"],"additionalProperties":false}}],
 "tool_choice":"auto","parallel_tool_calls":true,"reasoning":{"effort":"medium","summary":"auto"},"max_output_tokens":4096,"stream":false,"store":false,
 "include":["reasoning.encrypted_content"],"prompt_cache_key":"0b7c2d6e-3a51-4f0e-9a55-1d2f3c4b5a69"}`)

func BenchmarkDecodeRequest(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRequest)))
	for b.Loop() {
		if _, err := Codec.DecodeRequest(benchRequest); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeRequest(b *testing.B) {
	r, err := Codec.DecodeRequest(benchRequest)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var dst []byte
	for b.Loop() {
		if dst, err = Codec.EncodeRequest(dst[:0], r, "gpt-5"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeResponse(b *testing.B) {
	body := []byte(upstreamAnswer)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Codec.DecodeResponse(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeResponse(b *testing.B) {
	b.ReportAllocs()
	var dst []byte
	for b.Loop() {
		dst = Codec.EncodeResponse(dst[:0], &answer, opts)
	}
}

// BenchmarkStream100 decodes an upstream stream of 100 text deltas and
// encodes it for a client.
func BenchmarkStream100(b *testing.B) {
	type sseEvent struct {
		name string
		data []byte
	}
	evs := []sseEvent{
		{"response.created", []byte(`{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","model":"gpt-5","status":"in_progress","output":[]}}`)},
		{"response.output_item.added", []byte(`{"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"id":"msg_1","type":"message","status":"in_progress","role":"assistant","content":[]}}`)},
		{"response.content_part.added", []byte(`{"type":"response.content_part.added","sequence_number":2,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","annotations":[],"text":""}}`)},
	}
	for i := range 100 {
		evs = append(evs, sseEvent{"response.output_text.delta", []byte(`{"type":"response.output_text.delta","sequence_number":` + strconv.Itoa(i+3) +
			`,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"word ","logprobs":[]}`)})
	}
	evs = append(evs,
		sseEvent{"response.content_part.done", []byte(`{"type":"response.content_part.done","sequence_number":103,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":"…"}}`)},
		sseEvent{"response.output_item.done", []byte(`{"type":"response.output_item.done","sequence_number":104,"output_index":0,"item":{"id":"msg_1","type":"message","content":[]}}`)},
		sseEvent{"response.completed", []byte(`{"type":"response.completed","sequence_number":105,"response":{"id":"resp_1","status":"completed","output":[],"usage":{"input_tokens":10,"output_tokens":100}}}`)})
	b.ReportAllocs()
	var out []byte
	var nev []translate.Event
	for b.Loop() {
		d := Codec.NewDecoder()
		e := Codec.NewEncoder(opts)
		for _, x := range evs {
			var err error
			if nev, err = d.Decode(nev[:0], x.name, x.data); err != nil {
				b.Fatal(err)
			}
			for i := range nev {
				out = e.Encode(out[:0], &nev[i])
			}
		}
	}
}
