package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func codecAccounts() []Account {
	return []Account{{}, {ID: "a\u2028", Email: "x<y>@z&\"q\"", Name: "Zoë \\ \n", CreatedAt: -1, Plan: "pro",
		Sub: Subscription{CycleAnchor: 1, CycleIndex: 2, CycleStart: 3, CycleEnd: 4, PendingPlan: "free", Canceled: true, SubscribedAt: 5,
			PaidMicroUSD: 6, UsageMicroUSD: 7, RefundedMicroUSD: 8,
			Billing: BilledByStripe, Customer: "cus_\"1", PaymentMethod: "pm_<1>", RenewalIntent: "ren_1", RenewalDeadline: 13},
		Tier: "insider", MultiplierPPM: 9, BalanceMicroUSD: -10, ExtraEnabled: true, ExtraKeyID: "k", ExtraSpentMicroUSD: 11, ExtraPeriodStart: 12,
		W5h: Window{1, 2, 3}, Weekly: Window{4, 5, 6}, Monthly: Window{7, 8, 1 << 62}, KeyIDs: []string{"k1", "k\"2"}, PendingRefund: "rf",
		LastLog: "0000000000000001/r", Allowances: map[string]int64{"n3": 1, "n1": -2, "n\u00e92": 3}, AllowanceAt: map[string]int64{"n1": 4}},
		{KeyIDs: []string{}, Allowances: map[string]int64{}}}
}

// An account or totals record reads back as written, and as the same
// account its JSON form (an earlier build's) reads as; a binary record
// never starts with '{'; a cut or padded one is refused.
func TestRecordCodecRoundTrip(t *testing.T) {
	for i, a := range codecAccounts() {
		bin := a.appendBinary(nil)
		if bin[0] == '{' {
			t.Fatal("binary record starts with '{'")
		}
		got, err := decodeAccount(bin)
		if err != nil {
			t.Fatalf("account %d: %v", i, err)
		}
		fromJSON, err := decodeAccount(a.appendJSON(nil))
		if err != nil {
			t.Fatalf("account %d JSON: %v", i, err)
		}
		if i == 1 && !reflect.DeepEqual(*got, a) {
			t.Errorf("account %d:\n got  %+v\n want %+v", i, *got, a)
		}
		if again := got.appendBinary(nil); !bytes.Equal(again, bin) {
			t.Errorf("account %d re-encodes to %x, want %x", i, again, bin)
		}
		if fj := fromJSON.appendBinary(nil); !bytes.Equal(fj, bin) {
			t.Errorf("account %d from JSON encodes to %x, want %x", i, fj, bin)
		}
		for n := 0; n < len(bin); n++ {
			if _, err := decodeAccount(bin[:n]); !errors.Is(err, ErrBadCommand) {
				t.Errorf("account %d cut at %d: %v", i, n, err)
			}
		}
		if _, err := decodeAccount(append(bin, 0)); !errors.Is(err, ErrBadCommand) {
			t.Errorf("account %d with a trailing byte: %v", i, err)
		}
	}
	tot := Totals{Requests: 3, InputTokens: 1 << 40, OutputTokens: -1, CacheWriteTokens: 7, MicroFlows: 123456789, MicroUSD: -42}
	for _, v := range [][]byte{tot.appendBinary(nil), tot.appendJSON(nil)} {
		var got Totals
		if err := decodeTotals(v, &got); err != nil || got != tot {
			t.Errorf("totals %q: %+v %v", v, got, err)
		}
	}
	if v := tot.appendBinary(nil); len(v) > 20 {
		t.Errorf("totals record of %d bytes", len(v))
	}
	for _, bad := range [][]byte{nil, {recordV1}, {2, 0, 0, 0, 0, 0, 0, 0}, append(tot.appendBinary(nil), 0)} {
		var got Totals
		if err := decodeTotals(bad, &got); !errors.Is(err, ErrBadCommand) {
			t.Errorf("totals %x: %v", bad, err)
		}
	}
}

// A request-log entry reads back as written in version 2, and one written
// in version 1 by an earlier build reads as the same entry.
func TestLogEntryVersions(t *testing.T) {
	at := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC).UnixNano()
	entries := []LogEntry{
		{ID: "n1-100", AccountID: "a1", KeyID: "k1", Model: EchoModelID, Billing: BillingSubscription, Status: "ok",
			At: at + 5e6, AdmittedAt: at, InputTokens: 1200, OutputTokens: 300, MicroFlows: 777, MicroUSD: 42, Prev: logSuffix(at-3e6, "n1-99")},
		{ID: "x", AccountID: "a2", Billing: BillingPayg, Status: "client_closed", Estimated: true, At: at - 1, AdmittedAt: at,
			CacheReadTokens: 5, CacheWriteTokens: 6, Images: 7, Prev: logSuffix(at+1, "unrelated")},
		{ID: "y", Billing: "other", Status: "", At: -1 << 63, AdmittedAt: 1<<63 - 1, Prev: "not a suffix"},
		{ID: "z", Prev: logSuffix(at, "z")},
		{ID: "w", AdmittedAt: at, At: at, Prev: strings.ToUpper(logSuffix(at, "w"))},
	}
	for i, e := range entries {
		e.suffix = logSuffix(e.AdmittedAt, e.ID)
		v2 := e.appendBinary(nil)
		got, err := DecodeLogEntry(v2)
		if err != nil || !reflect.DeepEqual(got, e) {
			t.Fatalf("entry %d v2:\n got  %+v %v\n want %+v", i, got, err, e)
		}
		v1 := e.appendBinaryV1(nil)
		got, err = DecodeLogEntry(v1)
		if err != nil || !reflect.DeepEqual(got, e) {
			t.Fatalf("entry %d v1:\n got  %+v %v\n want %+v", i, got, err, e)
		}
		if rec, changed, err := Recode([]byte(LogPrefix+e.suffix), v1); err != nil || !changed || !bytes.Equal(rec, v2) {
			t.Errorf("entry %d: recoded %x %v %v, want %x", i, rec, changed, err, v2)
		}
		if _, changed, _ := Recode([]byte(LogPrefix+e.suffix), v2); changed {
			t.Errorf("entry %d: a version-2 entry recoded", i)
		}
		for n := 0; n < len(v2); n++ {
			if _, err := DecodeLogEntry(v2[:n]); !errors.Is(err, ErrBadCommand) {
				t.Errorf("entry %d cut at %d: %v", i, n, err)
			}
		}
	}
	if v1, v2 := entries[0].appendBinaryV1(nil), entries[0].appendBinary(nil); len(v2) > 64 || len(v2) >= len(v1)*3/4 {
		t.Errorf("a typical entry takes %d bytes in version 2, %d in version 1", len(v2), len(v1))
	}
}

// Migration: state an earlier build wrote (JSON accounts and totals,
// version-1 log entries) recodes record by record to exactly the bytes
// this build writes for the same state, and loads as the same ledger.
func TestOldStateRecodesToNative(t *testing.T) {
	native := memWriter{}
	l := New()
	script(t, l, native, 5)
	old := legacyRecords(t, native)
	recoded := 0
	for k, v := range old {
		got, changed, err := Recode([]byte(k), v)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if changed {
			recoded++
		}
		if !bytes.Equal(got, native[k]) {
			t.Fatalf("%s recodes to %q, want %q", k, got, native[k])
		}
	}
	if recoded < 10 {
		t.Fatalf("only %d records were in the old encoding", recoded)
	}
	fromOld, err := Load(old.scan, old)
	if err != nil {
		t.Fatal(err)
	}
	fromNative, err := Load(native.scan, native)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a0", "a1", "a2", "a3", "a4"} {
		a, _ := fromOld.Account(id, l.now)
		b, _ := fromNative.Account(id, l.now)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("%s loads differently:\n%s\n%s", id, ja, jb)
		}
	}
	// A record of another kind, and one already recoded, are left alone.
	for k, v := range map[string][]byte{"plan/pro": []byte(`{"id":"pro"}`), "acct/a0": native["acct/a0"]} {
		if got, changed, err := Recode([]byte(k), v); changed || err != nil || !bytes.Equal(got, v) {
			t.Errorf("%s recoded: %v %v", k, changed, err)
		}
	}
	if _, _, err := Recode([]byte("acct/bad"), []byte(`{"id":`)); err == nil {
		t.Error("a broken JSON account recoded")
	}
}

// Decoding a stored record never panics (Load runs it at every start),
// and whatever decodes encodes back to bytes that decode the same.
func FuzzRecordDecode(f *testing.F) {
	for _, a := range codecAccounts() {
		f.Add(a.appendBinary(nil))
		f.Add(a.appendJSON(nil))
	}
	tot := Totals{Requests: 1, MicroUSD: 2}
	f.Add(tot.appendBinary(nil))
	e := LogEntry{ID: "n1-2", AccountID: "a", Billing: BillingPayg, Status: "ok", AdmittedAt: 5, At: 9, Prev: logSuffix(3, "n1-1")}
	f.Add(e.appendBinary(nil))
	f.Add(e.appendBinaryV1(nil))
	e2 := LogEntry{ID: "n2-7", AccountID: "b", Billing: BillingSubscription, Status: "upstream_cut", AdmittedAt: 6, At: 6, Prev: logSuffix(2, "n1-0") + "/3"}
	f.Add(appendLogBlock(nil, []*LogEntry{&e, &e2}))
	f.Add(appendDedupeBlock(nil, []*LogEntry{&e, &e2}))
	f.Fuzz(func(t *testing.T, v []byte) {
		if a, err := decodeAccount(v); err == nil {
			bin := a.appendBinary(nil)
			b, err := decodeAccount(bin)
			if err != nil || !bytes.Equal(b.appendBinary(nil), bin) {
				t.Fatalf("account %x re-encodes to %x: %v", v, bin, err)
			}
		}
		var tot Totals
		if err := decodeTotals(v, &tot); err == nil {
			var again Totals
			if err := decodeTotals(tot.appendBinary(nil), &again); err != nil || again != tot {
				t.Fatalf("totals %x: %+v, %+v %v", v, tot, again, err)
			}
		}
		if e, err := DecodeLogEntry(v); err == nil {
			again, err := DecodeLogEntry(e.appendBinary(nil))
			if err != nil || !reflect.DeepEqual(again, e) {
				t.Fatalf("entry %x: %+v, %+v %v", v, e, again, err)
			}
		}
		// A request-log block: every place that decodes re-encodes to a
		// block that decodes the same there; a refused place never panics.
		var entries []*LogEntry
		for i := 0; i < 64; i++ {
			e, err := DecodeLogAt(v, i)
			if err != nil {
				break
			}
			entries = append(entries, &e)
		}
		if len(entries) > 0 {
			block := appendLogBlock(nil, entries)
			for i, want := range entries {
				if got, err := DecodeLogAt(block, i); err != nil || !reflect.DeepEqual(&got, want) {
					t.Fatalf("block %x, place %d: %+v, %+v %v", v, i, got, want, err)
				}
			}
			if _, err := blockSuffixes(true, block); err != nil {
				t.Fatalf("block %x: suffixes: %v", v, err)
			}
		}
		_, _ = blockSuffixes(false, v)
	})
}
