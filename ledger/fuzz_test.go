package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"testing"
	"time"
)

// FuzzDecodeApply feeds arbitrary bytes to Decode, as a follower's
// forwarded command or a log entry reaches it. Bytes Decode refuses get
// ErrBadCommand or ErrTooLarge. Bytes it accepts are a command some
// replica will apply: applying it, at the stamp it carries, to the state
// `script` builds must not panic (a committed entry that panics stops every
// replica on every restart), two replicas must write the same bytes and
// answer the same result, and the state must load back and go on like the
// ledger that wrote it (C2, the ledger's determinism).
func FuzzDecodeApply(f *testing.F) {
	base := memWriter{}
	script(f, New(), base, 1000)
	start, err := Load(base.scan, base)
	if err != nil {
		f.Fatal(err)
	}
	at := start.now
	h := HashSecret("fuzz")
	seeds := []Command{
		&Seed{NanoUSDPerFlow: 1, Plans: DefaultPlans()[:1], Models: DefaultModels()[:1], DedupeDays: 1, RequestLogDays: 1},
		&SetRate{NanoUSDPerFlow: 7},
		&PutPlan{Plan: Plan{ID: "p9", Name: "P9", PriceMicroUSD: 1, Window5hMicroFlows: 1, WeeklyMicroFlows: 1, MonthlyMicroFlows: 1, RPM: 1, Burst: 1}},
		&PutModel{Model: DefaultModels()[0]},
		&CreateAccount{ID: "a9", Email: "a9@x.io", Name: "a9"},
		&SetFlowValue{AccountID: "a0", Tier: TierInsider, MultiplierPPM: 2_000000},
		&Subscribe{Idem: Idem{IdemKey: "fs", Fingerprint: "f"}, AccountID: "a1", Plan: "max"},
		&ChangePlan{Idem: Idem{IdemKey: "fc", Fingerprint: "f"}, AccountID: "a0", Plan: "pro"},
		&Cancel{AccountID: "a0"},
		&CreateKey{AccountID: "a1", KeyID: "kf", Kind: KindPayg, Name: "f", Hash: h, Last4: "ffff"},
		&RotateKey{KeyID: "ksa0", Hash: h, Last4: "eeee"},
		&RevokeKey{KeyID: "ksa1"},
		&TopUp{Idem: Idem{IdemKey: "ft", Fingerprint: "f"}, AccountID: "a3", MicroUSD: math.MaxInt64},
		&SetExtra{AccountID: "a1", Enabled: true, KeyID: "kpa1"},
		&RefundSubmit{Idem: Idem{IdemKey: "fr", Fingerprint: "f"}, AccountID: "a4", RefundID: "rf4"},
		&RefundStatus{Idem: Idem{IdemKey: "frs", Fingerprint: "f"}, RefundID: "rf2", Status: RefundFailed},
		&AdvanceClock{Nanos: int64(31 * 24 * time.Hour)},
		&SetMember{Member: Member{ID: "n2", RaftAddr: "127.0.0.1:3", AdminAddr: "127.0.0.1:4"}},
		&RemoveMember{ID: "n1"},
		&Tick{},
		&ChargeBatch{Retry: true, Charges: []Charge{
			{ReqID: "f1", AccountID: "a0", KeyID: "ksa0", Node: "n1", Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: at, InputTokens: math.MaxInt64, Status: "ok"},
			{ReqID: "f2", AccountID: "a1", KeyID: "kpa1", Model: EchoModelID, Billing: BillingPayg, ViaExtra: true, Estimated: true, AdmittedAt: math.MinInt64, OutputTokens: 5, Images: 3, Status: "client_closed"},
		}},
		&LeaseTokens{Bucket: "a0", Want: 5, RPM: 60, Burst: 10},
		&ReturnTokens{Bucket: "payg:a1", N: 2, RPM: 60},
		&LeaseFlows{AccountID: "a0", Node: "n1", MicroFlows: math.MaxInt64},
		&ReturnFlows{AccountID: "a0", Node: "n1", MicroFlows: -1},
		&ResetNode{Node: "n1"},
		&OpenSession{TokenHash: h, AccountID: "a0", KeyID: "ksa0", CSRF: "c", ExpiresAt: at + int64(time.Hour)},
		&EndSession{TokenHash: HashSecret("sess1")},
		&CreateSignInLink{AccountID: "a0", LinkHash: h, ExpiresAt: at + int64(time.Minute)},
		&RedeemSignInLink{LinkHash: HashSecret("link1"), TokenHash: h, CSRF: "c", ExpiresAt: at + int64(time.Hour)},
		&RequestPlanChange{ID: "prf", AccountID: "a1", Action: ActionChange, Plan: "max"},
		&DecidePlanRequest{Idem: Idem{IdemKey: "fd", Fingerprint: "f"}, ID: "pr3", Confirm: true},
	}
	for _, c := range seeds {
		for _, ts := range []int64{at, at + int64(6*time.Hour), 0, MaxTime} {
			enc, err := Encode(c, ts)
			if err != nil {
				f.Fatalf("seed %T: %v", c, err)
			}
			f.Add(enc)
		}
		// Stamped past MaxTime, as a broken proposer could send it.
		enc, _ := Encode(c, at)
		binary.BigEndian.PutUint64(enc[2:], math.MaxInt64)
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, ts, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Decode refused with %v, want ErrBadCommand or ErrTooLarge", err)
			}
			return
		}
		// What a replica decoded, its proposer could have encoded.
		enc, err := Encode(cmd, ts)
		if err != nil {
			t.Fatalf("Decode accepts a %T that Encode refuses: %v", cmd, err)
		}
		again, ts2, err := Decode(enc)
		if err != nil || ts2 != ts || !reflect.DeepEqual(again, cmd) {
			t.Fatalf("%T does not survive Encode/Decode: %v", cmd, err)
		}
		var w [2]memWriter
		var res [2]Result
		var led [2]*Ledger
		for i, c := range []Command{cmd, again} {
			w[i] = maps.Clone(base)
			if led[i], err = Load(w[i].scan, w[i]); err != nil {
				t.Fatal(err)
			}
			res[i] = led[i].Apply(c, ts)
			if err := led[i].Flush(w[i]); err != nil {
				t.Fatal(err)
			}
		}
		if !sameResult(t, res[0], res[1]) {
			t.Fatalf("%T: replicas answered differently: %v / %v", cmd, res[0], res[1])
		}
		if stateHash(t, w[0]) != stateHash(t, w[1]) {
			t.Fatalf("%T: replicas wrote different state", cmd)
		}
		// The state loads back and goes on like the ledger that wrote it.
		loaded, err := Load(w[0].scan, w[0])
		if err != nil {
			t.Fatalf("%T: the state it left does not load: %v", cmd, err)
		}
		w2 := maps.Clone(w[0])
		next := led[0].now + 1
		for _, c := range []Command{
			&ChargeBatch{Charges: []Charge{{ReqID: "after", AccountID: "a0", KeyID: "ksa0", Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: next, InputTokens: 9, Status: "ok"}}},
			&Tick{},
		} {
			r1, r2 := led[0].Apply(c, next), loaded.Apply(c, next)
			if !sameResult(t, r1, r2) {
				t.Fatalf("after %T, a reloaded ledger answers %T differently: %v / %v", cmd, c, r1, r2)
			}
		}
		if err := led[0].Flush(w[0]); err != nil {
			t.Fatal(err)
		}
		if err := loaded.Flush(w2); err != nil {
			t.Fatal(err)
		}
		if stateHash(t, w[0]) != stateHash(t, w2) {
			t.Fatalf("after %T, a reloaded ledger diverged", cmd)
		}
	})
}

func sameResult(t *testing.T, a, b Result) bool {
	return fmt.Sprint(a.Err) == fmt.Sprint(b.Err) && reflect.DeepEqual(asMap(t, appliedOf(a).Value), asMap(t, appliedOf(b).Value))
}

// A command stamped past MaxTime never reaches the log: with the stamp
// of 2262 a CreateAccount's monthly period (Q3) looped for ever, since no
// int64 time is later than it, and a committed entry that hangs stops
// every replica on every restart. A stamp at MaxTime applies.
func TestStampPastMaxTimeRefused(t *testing.T) {
	c := &CreateAccount{ID: "late", Email: "late@x.io"}
	if _, err := Encode(c, MaxTime+1); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("Encode past MaxTime: %v, want ErrBadCommand", err)
	}
	enc, err := Encode(c, MaxTime)
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range []int64{MaxTime + 1, math.MaxInt64, -1} {
		bad := append([]byte(nil), enc...)
		binary.BigEndian.PutUint64(bad[2:], uint64(ts))
		if _, _, err := Decode(bad); !errors.Is(err, ErrBadCommand) {
			t.Errorf("Decode stamped %d: %v, want ErrBadCommand", ts, err)
		}
	}
	f := newFixture(t)
	f.now = MaxTime
	f.must(c)
	if v := f.must(&Subscribe{Idem: f.idem("late"), AccountID: "late", Plan: "pro"}); get(v, "cycle_end") != "2200-02-01T00:00:00Z" {
		t.Errorf("a subscription at MaxTime: %v", v)
	}
}
