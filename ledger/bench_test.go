package ledger

import (
	"fmt"
	"strconv"
	"testing"
)

type discardWriter struct{ bytes int }

func (d *discardWriter) Set(k, v []byte) error         { d.bytes += len(k) + len(v); return nil }
func (d *discardWriter) Delete(k []byte) error         { return nil }
func (d *discardWriter) DeleteRange(a, b []byte) error { return nil }

// BenchmarkApplyChargeBatch measures the ledger alone: decode a Raft entry
// of 1,000 charges spread over 1,000 accounts, apply it, and encode the
// changed records (Flush), as the FSM does per entry.
func BenchmarkApplyChargeBatch(b *testing.B) {
	f := newFixture(b)
	const accounts, batch = 1000, 1000
	keys := make([]string, accounts)
	for i := 0; i < accounts; i++ {
		_, h := f.account()
		keys[i] = f.keyID(h)
	}
	_ = f.l.Flush(&discardWriter{})
	accts := make([]string, accounts)
	for i := range accts {
		accts[i] = f.l.keys[keys[i]].AccountID
	}
	w := &discardWriter{}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		charges := make([]Charge, batch)
		for i := range charges {
			charges[i] = Charge{ReqID: fmt.Sprintf("req-%d-%d", n, i), AccountID: accts[i%accounts], KeyID: keys[i%accounts],
				Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: f.now, InputTokens: 1200, OutputTokens: 300, CacheReadTokens: 800}
		}
		enc, _ := Encode(&ChargeBatch{Charges: charges}, f.now)
		cmd, ts, err := Decode(enc)
		if err != nil {
			b.Fatal(err)
		}
		f.l.Apply(cmd, ts)
		if err := f.l.Flush(w); err != nil {
			b.Fatal(err)
		}
		f.now += 1_000_000
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "charges/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/charge")
}

// BenchmarkEncodeChargeBatch encodes a 100-charge batch, as a node does
// for every entry it proposes.
func BenchmarkEncodeChargeBatch(b *testing.B) {
	cb := &ChargeBatch{Charges: make([]Charge, 100)}
	for i := range cb.Charges {
		cb.Charges[i] = Charge{ReqID: fmt.Sprintf("req_0844ecd6_18eefea3f1ac6851_%d", i), Node: "n1", AccountID: "acct_0123456789abcdef",
			KeyID: "key_0123456789abcdef", Model: "openai/gpt-5.4", Billing: BillingSubscription, Status: "ok", AdmittedAt: t0 + int64(i),
			InputTokens: 1200, OutputTokens: 340, CacheReadTokens: 1000}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(cb, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAdmit is the ledger's part of admitting one request: a key with
// a free-plan subscription whose 5-hour and weekly windows are running, as on every
// proxied request.
func BenchmarkAdmit(b *testing.B) {
	f := newFixture(b)
	acct, h := f.account()
	if r := f.charge(acct, h, 3, BillingSubscription); r.Status != "charged" {
		b.Fatalf("charge: %+v", r)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := f.l.Admit(h, EchoModelID, f.now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTakeChanges measures what a checkpoint holds the ledger for:
// taking 100 ms of bench -commit's load (5,500 charges over 1,000
// accounts). Applies wait for it, so it is on the commit path.
func BenchmarkTakeChanges(b *testing.B) {
	f := newFixture(b)
	const accounts, perCheckpoint = 1000, 5500
	keys := make([]string, accounts)
	for i := range keys {
		_, h := f.account()
		keys[i] = f.keyID(h)
	}
	_ = f.l.Flush(&discardWriter{})
	sent := 0
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		batch := &ChargeBatch{}
		for range perCheckpoint {
			k := keys[(sent*7)%accounts]
			batch.Charges = append(batch.Charges, Charge{ReqID: "req-" + strconv.Itoa(sent), AccountID: f.l.keys[k].AccountID, KeyID: k,
				Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: f.now, InputTokens: 1200, OutputTokens: 300})
			sent++
		}
		if r := f.l.Apply(batch, f.now); r.Err != nil {
			b.Fatal(r.Err)
		}
		f.now += 1_000_000
		b.StartTimer()
		f.l.TakeChanges()
	}
}
