package anthropic

import (
	"testing"

	"zenmux/translate"
)

// FuzzDecoders feeds arbitrary bytes to every decoder, and what they make
// to the encoders: none may panic.
func FuzzDecoders(f *testing.F) {
	f.Add([]byte(claudeCodeRequest))
	f.Add([]byte(upstreamAnswer))
	f.Add([]byte(`{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"n","input":{"a":1}}}`))
	f.Add([]byte(`{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}`))
	f.Add([]byte(`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":null}}`))
	f.Add([]byte(`{"type":"error","error":{"type":"overloaded_error","message":"x"}}`))
	f.Add([]byte(`{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"b","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":[{"type":"image","source":{"type":"url","url":"data:x;base64,"}}]}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := Codec.DecodeRequest(b); err == nil {
			Codec.EncodeRequest(nil, r, "up")
		}
		if r, err := Codec.DecodeResponse(b); err == nil {
			Codec.EncodeResponse(nil, r, translate.EncoderOptions{})
		}
		Codec.EncodeError(nil, Codec.DecodeError(500, b))
		d, e := Codec.NewDecoder(), Codec.NewEncoder(translate.EncoderOptions{})
		var evs []translate.Event
		var out []byte
		for _, name := range []string{"", "message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"} {
			evs, _ = d.Decode(evs[:0], name, b)
			for i := range evs {
				out = e.Encode(out[:0], &evs[i])
			}
		}
	})
}
