package gemini

import (
	"strings"
	"testing"

	"zenmux/translate"
)

// benchRequest is a typical 2 KB Gemini body: a system prompt, three
// turns with a function call and its response, one tool.
var benchRequest = []byte(`{"systemInstruction":{"parts":[{"text":"You are a helpful assistant for a travel agency. Answer briefly, cite the tools you used, and never invent prices. ` + strings.Repeat("Keep answers short. ", 20) + `"}]},
"contents":[
 {"role":"user","parts":[{"text":"What is the weather in Paris this weekend, and should I pack an umbrella? ` + strings.Repeat("Details matter. ", 20) + `"}]},
 {"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris","days":2,"units":"metric"}},"thoughtSignature":"Q2lRQjBlMnZ5dVpxZzRrQWJ0bE9EZ0hRbXU2ZmRYbWx3"}]},
 {"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"forecast":[{"day":"Sat","rain_mm":4.2,"temp_c":17},{"day":"Sun","rain_mm":0,"temp_c":21}]}}}]},
 {"role":"model","parts":[{"text":"Saturday brings some rain (4 mm) at 17°C; Sunday is dry at 21°C. Pack a light umbrella."}]},
 {"role":"user","parts":[{"text":"And in Rome?"}]}],
"tools":[{"functionDeclarations":[{"name":"get_weather","description":"Weather forecast for a city over the next days.","parametersJsonSchema":{"type":"object","properties":{"city":{"type":"string","description":"City name"},"days":{"type":"integer","minimum":1,"maximum":7},"units":{"type":"string","enum":["metric","imperial"]}},"required":["city"]}}]}],
"toolConfig":{"functionCallingConfig":{"mode":"AUTO"}},
"generationConfig":{"maxOutputTokens":1024,"temperature":0.7,"thinkingConfig":{"thinkingBudget":1024,"includeThoughts":true}}}`)

var benchResponse = []byte(`{"candidates":[{"content":{"parts":[{"text":"Rome will be sunny all weekend, 24°C on Saturday and 26°C on Sunday. No umbrella needed.","thoughtSignature":"Q2lRQjBlMnZ5dVpxZzRrQWJ0bE9EZ0hRbXU2ZmRYbWx3"},{"functionCall":{"name":"get_weather","args":{"city":"Rome","days":2}}}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":412,"candidatesTokenCount":31,"totalTokenCount":480,"cachedContentTokenCount":256,"thoughtsTokenCount":37},"modelVersion":"gemini-2.5-flash","responseId":"Hq5KabCdEf"}`)

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
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		if dst, err = Codec.EncodeRequest(dst[:0], r, "gemini-2.5-flash"); err != nil {
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
	o := translate.EncoderOptions{Model: "gemini-2.5-flash", ID: "req-1"}
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		dst = Codec.EncodeResponse(dst[:0], r, o)
	}
}

// BenchmarkStream decodes and re-encodes a 100-chunk text stream.
func BenchmarkStream(b *testing.B) {
	chunks := make([][]byte, 0, 101)
	for range 100 {
		chunks = append(chunks, []byte(`{"candidates":[{"content":{"parts":[{"text":"some words of the answer "}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":412,"totalTokenCount":412},"modelVersion":"gemini-2.5-flash","responseId":"Hq5KabCdEf"}`))
	}
	chunks = append(chunks, []byte(`{"candidates":[{"content":{"parts":[{"text":""}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":412,"candidatesTokenCount":500,"totalTokenCount":912},"modelVersion":"gemini-2.5-flash","responseId":"Hq5KabCdEf"}`))
	o := translate.EncoderOptions{Model: "gemini-2.5-flash", ID: "req-1"}
	var evs []translate.Event
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		d, enc := Codec.NewDecoder(), Codec.NewEncoder(o)
		for _, c := range chunks {
			var err error
			if evs, err = d.Decode(evs[:0], "", c); err != nil {
				b.Fatal(err)
			}
			for i := range evs {
				dst = enc.Encode(dst[:0], &evs[i])
			}
		}
	}
}
