package ledger

import (
	"encoding/json"
	"testing"
)

// The hand-written encoders write exactly what encoding/json writes, so
// records are the same bytes whichever wrote them (replicas must agree).
func TestFastJSONMatchesEncodingJSON(t *testing.T) {
	tot := Totals{Requests: 3, InputTokens: 1 << 40, OutputTokens: -1, CacheReadTokens: 0, CacheWriteTokens: 7, MicroFlows: 123456789, MicroUSD: -42}
	e := LogEntry{ID: "req_\"x\"<&>\u2028", AccountID: "acct", KeyID: "", At: 1, AdmittedAt: -5, Model: "vendor/m\\odel", InputTokens: 9,
		OutputTokens: 8, CacheReadTokens: 7, CacheWriteTokens: 6, Images: 5, MicroFlows: 4, MicroUSD: 3, Billing: "payg", Status: "ok\n", Estimated: true}
	for _, c := range []struct {
		got  []byte
		want any
	}{{tot.appendJSON(nil), &tot}, {e.appendJSON(nil), &e}} {
		want, _ := json.Marshal(c.want)
		if string(c.got) != string(want) {
			t.Errorf("\n got  %s\n want %s", c.got, want)
		}
	}
}
