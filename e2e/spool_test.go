package e2e

import (
	bin "encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zenmux/ledger"
)

// rule C5 through the binary: a charge spool left in the data dir by a
// stop without quorum is committed by the next start, before new
// charges, and removed; its charge is in the request log once, after one
// more restart too. A spool that does not read stops the start, naming
// the file.
func TestC5_StartCommitsTheSpool(t *testing.T) {
	n := StartNode(t, NodeOptions{})
	acct := wtAccount(t, n, "spool@example.com")
	key := wtWant(t, n.AdminDo("POST", "/admin/v1/accounts/"+acct+"/keys", `{"kind":"subscription","name":"s"}`), 201)
	n.Stop()

	cb := &ledger.ChargeBatch{Retry: true, Charges: []ledger.Charge{{ReqID: "req_spooled_0001", Node: "n1", AccountID: acct, KeyID: Get(key, "id"),
		Model: ledger.EchoModelID, Billing: ledger.BillingSubscription, Status: "ok", AdmittedAt: time.Now().UnixNano(), InputTokens: 12, OutputTokens: 34}}}
	enc, err := ledger.Encode(cb, 0)
	if err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(n.Dir, "charges.spool")
	file := bin.AppendUvarint([]byte("zenmux-charge-spool\x00\x01"), uint64(len(enc)))
	if err := os.WriteFile(spool, append(file, enc...), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second start finds no spool and charges nothing again
		n.Start()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(spool); os.IsNotExist(err) {
				break // removed once its batches committed
			}
			if time.Now().After(deadline) {
				t.Fatal("the spool is still there 10 s after the start")
			}
		}
		logs := wtWant(t, n.AdminDo("GET", "/admin/v1/accounts/"+acct+"/requests", ""), 200)
		if entries, _ := logs["data"].([]any); len(entries) != 1 || Get(logs, "data.0.id") != "req_spooled_0001" || Get(logs, "data.0.output_tokens") != "34" {
			t.Fatalf("request log after the start: %v", logs)
		}
		n.Stop()
	}
	log, _ := os.ReadFile(n.logPath)
	if got := strings.Count(string(log), "committing the charges the last run could not commit"); got != 1 {
		t.Errorf("the log says %d times that it commits a spool, want 1:\n%s", got, tail(string(log), 2000))
	}

	if err := os.WriteFile(spool, []byte("not a spool"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.start(); err == nil || !strings.Contains(err.Error(), "charge spool "+spool+": not a spool this build reads") {
		t.Fatalf("a damaged spool: start error %v", err)
	}
	if err := os.Remove(spool); err != nil {
		t.Fatal(err)
	}
	n.Start()
}
