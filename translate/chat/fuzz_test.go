package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"zenmux/translate"
)

// FuzzDecoders feeds arbitrary bytes to every decoder: none may panic,
// and what decodes as a request encodes again.
func FuzzDecoders(f *testing.F) {
	f.Add([]byte(fullRequest))
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":"data:;base64,"}]}]}`))
	f.Add([]byte(`{"id":"x","choices":[{"index":0,"message":{"content":[{"type":"text","text":"a"}],"tool_calls":[{}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":-1}}`))
	f.Add([]byte(`[{"error":{"code":"x"}}]`))
	for _, l := range upstream {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := Codec.DecodeRequest(b); err == nil {
			out, err := Codec.EncodeRequest(nil, r, "gpt-5")
			var e *translate.Error
			if err != nil && (!errors.As(err, &e) || e.Status != 400) {
				t.Fatalf("EncodeRequest: %v", err)
			}
			if err == nil && !json.Valid(out) {
				t.Fatalf("EncodeRequest wrote invalid JSON: %s", out)
			}
		} else if e := translate.AsError(err); e.Status != 400 || e.Param == "" && e.Message == "" {
			t.Fatalf("DecodeRequest: %+v", e)
		}
		if r, err := Codec.DecodeResponse(b); err == nil {
			if out := Codec.EncodeResponse(nil, r, opts); !json.Valid(out) {
				t.Fatalf("EncodeResponse wrote invalid JSON: %s", out)
			}
		}
		if out := Codec.EncodeError(nil, Codec.DecodeError(500, b)); !json.Valid(out) {
			t.Fatalf("EncodeError wrote invalid JSON: %s", out)
		}
		d, e := Codec.NewDecoder(), Codec.NewEncoder(opts)
		var evs []translate.Event
		for _, line := range bytes.Split(b, []byte("\n")) {
			evs, _ = d.Decode(evs[:0], "", line)
			for i := range evs {
				e.Encode(nil, &evs[i])
			}
		}
	})
}
