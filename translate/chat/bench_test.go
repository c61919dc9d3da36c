package chat

import (
	"strings"
	"testing"

	"zenmux/translate"
)

// benchRequest is a typical 2 KB request: a system prompt, a few turns and
// one tool with a JSON Schema.
var benchRequest = []byte(`{"model":"zenmux/gpt","stream":false,"max_tokens":1024,"temperature":0.2,
 "messages":[
  {"role":"system","content":"You are a helpful assistant for a software team. Answer briefly, cite files by path, and prefer running tools over guessing. ` + strings.Repeat("Keep answers short. ", 20) + `"},
  {"role":"user","content":"What does the build script in the repository root do, and which Go version does it need?"},
  {"role":"assistant","content":null,"tool_calls":[{"id":"call_abc123","type":"function","function":{"name":"read_file","arguments":"{\"path\":\"build.sh\"}"}}]},
  {"role":"tool","tool_call_id":"call_abc123","content":"#!/bin/sh\nset -e\ngo version\ngo build -o bin/app ./cmd/app\n` + strings.Repeat("echo step\\n", 30) + `"},
  {"role":"user","content":"Thanks. Now summarise it in two sentences."}
 ],
 "tools":[{"type":"function","function":{"name":"read_file","description":"Read a file of the repository and return its text.",
   "parameters":{"type":"object","properties":{"path":{"type":"string","description":"Path relative to the repository root"},
   "max_bytes":{"type":"integer","description":"Stop after this many bytes","minimum":1}},"required":["path"],"additionalProperties":false}}}],
 "tool_choice":"auto"}`)

var benchResponse = []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-5.5",
 "choices":[{"index":0,"message":{"role":"assistant","content":"The script prints the Go version and builds ./cmd/app into bin/app, then echoes each step. It needs whatever Go version go.mod names.","refusal":null},"logprobs":null,"finish_reason":"stop"}],
 "usage":{"prompt_tokens":812,"completion_tokens":41,"total_tokens":853,"prompt_tokens_details":{"cached_tokens":512},"completion_tokens_details":{"reasoning_tokens":0}}}`)

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
	buf := make([]byte, 0, 4096)
	for b.Loop() {
		if buf, err = Codec.EncodeRequest(buf[:0], r, "deepseek-v4-pro"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeResponse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Codec.DecodeResponse(benchResponse); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeResponse(b *testing.B) {
	r, err := Codec.DecodeResponse(benchResponse)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	buf := make([]byte, 0, 4096)
	for b.Loop() {
		buf = Codec.EncodeResponse(buf[:0], r, opts)
	}
}

// BenchmarkStream100 decodes and encodes a 100-delta stream, chunk by
// chunk, as the gateway relays it.
func BenchmarkStream100(b *testing.B) {
	chunks := make([][]byte, 0, 104)
	chunks = append(chunks, []byte(upstream[0]))
	for range 100 {
		chunks = append(chunks, []byte(`{"id":"ds-1","object":"chat.completion.chunk","created":1,"model":"deepseek-v4-pro","choices":[{"index":0,"delta":{"content":"word "},"logprobs":null,"finish_reason":null}]}`))
	}
	chunks = append(chunks, []byte(upstream[9]), []byte(upstream[10]), []byte(upstream[11]))
	b.ReportAllocs()
	var evs []translate.Event
	out := make([]byte, 0, 1024)
	for b.Loop() {
		d, e := Codec.NewDecoder(), Codec.NewEncoder(opts)
		for _, c := range chunks {
			var err error
			if evs, err = d.Decode(evs[:0], "", c); err != nil {
				b.Fatal(err)
			}
			out = out[:0]
			for i := range evs {
				out = e.Encode(out, &evs[i])
			}
		}
	}
}
