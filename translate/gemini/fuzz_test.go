package gemini

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"zenmux/translate"
)

// FuzzCodec feeds arbitrary bytes to every decoder: none may panic, and
// what decodes must encode to valid JSON (or to a 400 naming the field).
func FuzzCodec(f *testing.F) {
	f.Add([]byte(fullRequest))
	for _, s := range upstreamStream {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"error":{"code":429,"message":"x","status":"RESOURCE_EXHAUSTED"}}`))
	f.Add([]byte(`[{"error":{"code":"x"}}]`))
	f.Add([]byte(`{"contents":[{"role":"model","parts":[{"functionCall":{"name":"f","args":{"a":"\u2028"}},"thoughtSignature":"x"}]},{"parts":[{"functionResponse":{"name":"f","response":{"error":1},"parts":[{"inlineData":{"mimeType":"image/png","data":"x"}}]}}]}],"generationConfig":{"responseMimeType":"application/json","responseSchema":{"type":"OBJECT","nullable":true,"anyOf":[{"type":"STRING"}]}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := Codec.DecodeRequest(b); err == nil {
			out, err := Codec.EncodeRequest(nil, r, "m")
			var e *translate.Error
			if err != nil && (!errors.As(err, &e) || e.Status != 400) {
				t.Fatalf("EncodeRequest: %v", err)
			}
			if err == nil && !json.Valid(out) {
				t.Fatalf("EncodeRequest wrote invalid JSON: %s", out)
			}
		} else if e := translate.AsError(err); e.Status != 400 {
			t.Fatalf("DecodeRequest: %v", err)
		}
		if r, err := Codec.DecodeResponse(b); err == nil {
			if out := Codec.EncodeResponse(nil, r, translate.EncoderOptions{Model: "m", ID: "i"}); !json.Valid(out) {
				t.Fatalf("EncodeResponse wrote invalid JSON: %s", out)
			}
		}
		e := Codec.DecodeError(500, b)
		if e.Status < 400 || e.Status > 599 || !json.Valid(Codec.EncodeError(nil, e)) {
			t.Fatalf("DecodeError: %+v", e)
		}
		d := Codec.NewDecoder()
		enc := Codec.NewEncoder(translate.EncoderOptions{Model: "m", ID: "i"})
		for _, chunk := range [][]byte{b, b} {
			evs, _ := d.Decode(nil, "", chunk)
			for i := range evs {
				out := enc.Encode(nil, &evs[i])
				for _, ev := range bytes.Split(out, []byte("\r\n\r\n")) {
					if len(ev) > 0 && (!bytes.HasPrefix(ev, []byte("data: ")) || !json.Valid(ev[len("data: "):])) {
						t.Fatalf("stream encoder wrote %q", out)
					}
				}
			}
		}
	})
}
