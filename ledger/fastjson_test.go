package ledger

import (
	"encoding/json"
	"testing"
)

// The hand-written encoders write exactly what encoding/json writes, so
// records are the same bytes whichever wrote them (replicas must agree).
func TestFastJSONMatchesEncodingJSON(t *testing.T) {
	tot := Totals{Requests: 3, InputTokens: 1 << 40, OutputTokens: -1, CacheReadTokens: 0, CacheWriteTokens: 7, MicroFlows: 123456789, MicroUSD: -42}
	for _, c := range []struct {
		got  []byte
		want any
	}{{tot.appendJSON(nil), &tot}} {
		want, _ := json.Marshal(c.want)
		if string(c.got) != string(want) {
			t.Errorf("\n got  %s\n want %s", c.got, want)
		}
	}
}
