package anthropic

import (
	"strconv"
	"strings"
	"testing"

	"zenmux/translate"
)

// benchRequest is a typical 2 KB request: a system prompt, a short
// conversation with a tool round trip and one tool definition.
var benchRequest = []byte(`{"model":"claude-sonnet-4-5","max_tokens":4096,"stream":false,
"system":[{"type":"text","text":"You are a helpful assistant that answers questions about the weather. Be concise and precise, and use the tools when you need live data.","cache_control":{"type":"ephemeral"}}],
"messages":[
 {"role":"user","content":"What is the weather like in Paris today, and should I take an umbrella when I go out this afternoon for a walk along the river?"},
 {"role":"assistant","content":[{"type":"text","text":"Let me check the current weather in Paris for you."},{"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","input":{"location":"Paris, France","unit":"celsius"}}]},
 {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01A09q90qw90lq917835lq9","content":"{\"temperature\":14,\"conditions\":\"light rain\",\"precipitation_probability\":0.8,\"wind_kph\":12}"}]},
 {"role":"assistant","content":"It is 14°C with light rain in Paris, and an 80% chance of more rain this afternoon, so yes, take an umbrella."},
 {"role":"user","content":"Thanks! And what about tomorrow morning? I might go to the market at around eight o'clock."}],
"tools":[{"name":"get_weather","description":"Get the current weather, or the forecast for a given day, in a given location. Returns temperature, conditions, precipitation probability and wind speed.",
 "input_schema":{"type":"object","properties":{"location":{"type":"string","description":"The city and country, e.g. Paris, France"},"unit":{"type":"string","enum":["celsius","fahrenheit"],"description":"The temperature unit"},"day":{"type":"string","description":"The day, as an ISO date; today when absent"}},"required":["location"]}}],
"tool_choice":{"type":"auto"},"temperature":0.7,"metadata":{"user_id":"user-1234"}}`)

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
		if dst, err = Codec.EncodeRequest(dst[:0], r, "claude-sonnet-4-5-20250929"); err != nil {
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
	r, err := Codec.DecodeResponse([]byte(upstreamAnswer))
	if err != nil {
		b.Fatal(err)
	}
	o := translate.EncoderOptions{Model: "anthropic/claude-sonnet-4.5", ID: "req_1"}
	b.ReportAllocs()
	var dst []byte
	for b.Loop() {
		dst = Codec.EncodeResponse(dst[:0], r, o)
	}
}

// BenchmarkStream100 decodes an upstream stream of 100 text deltas and
// encodes it for a client, event by event.
func BenchmarkStream100(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":11,"cache_creation_input_tokens":0,"cache_read_input_tokens":5,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

`)
	for i := range 100 {
		sb.WriteString("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"word " + strconv.Itoa(i) + " \"}}\n\n")
	}
	sb.WriteString(`event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":200}}

event: message_stop
data: {"type":"message_stop"}

`)
	var names []string
	var datas [][]byte
	for _, ev := range strings.Split(strings.TrimSpace(sb.String()), "\n\n") {
		name, data, _ := strings.Cut(ev, "\n")
		names = append(names, strings.TrimPrefix(name, "event: "))
		datas = append(datas, []byte(strings.TrimPrefix(data, "data: ")))
	}
	o := translate.EncoderOptions{Model: "my/claude", ID: "req_1"}
	b.ReportAllocs()
	var evs []translate.Event
	var out []byte
	for b.Loop() {
		d, e := Codec.NewDecoder(), Codec.NewEncoder(o)
		for i := range names {
			var err error
			if evs, err = d.Decode(evs[:0], names[i], datas[i]); err != nil {
				b.Fatal(err)
			}
			for j := range evs {
				out = e.Encode(out[:0], &evs[j])
			}
		}
	}
}
