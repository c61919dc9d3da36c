package responses

import (
	"encoding/json"
	"testing"

	"zenmux/translate"
)

// FuzzDecode feeds arbitrary bytes to every decoder: none may panic, and
// what decodes must encode back as valid JSON.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(codexRequest))
	f.Add([]byte(upstreamAnswer))
	f.Add([]byte(`{"error":{"message":"x","code":5}}`))
	f.Add([]byte(`{"model":"m","input":[{"type":"reasoning","encrypted_content":"zmx1:r:anthropic:x"}]}`))
	for _, e := range sse(f, upstreamStream) {
		f.Add([]byte(e[1]))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := Codec.DecodeRequest(b); err == nil {
			if out, err := Codec.EncodeRequest(nil, r, "up"); err == nil && !json.Valid(out) {
				t.Fatalf("request %s encodes as invalid JSON %s", b, out)
			}
		} else if _, ok := err.(*translate.Error); !ok {
			t.Fatalf("error %T", err)
		}
		if r, err := Codec.DecodeResponse(b); err == nil {
			if out := Codec.EncodeResponse(nil, r, opts); !json.Valid(out) {
				t.Fatalf("answer %s encodes as invalid JSON %s", b, out)
			}
		}
		if e := Codec.DecodeError(500, b); e.Message == "" {
			t.Fatal("error without a message")
		} else if out := Codec.EncodeError(nil, e); !json.Valid(out) {
			t.Fatalf("error encodes as invalid JSON %s", out)
		}
		d := Codec.NewDecoder()
		enc := Codec.NewEncoder(opts)
		var evs []translate.Event
		for i := 0; i < 3; i++ { // the same event thrice: repeated items and ends
			evs, _ = d.Decode(evs[:0], "", b)
			for j := range evs {
				enc.Encode(nil, &evs[j])
			}
		}
	})
}
