package ledger

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func stateHash(t testing.TB, w memWriter) [32]byte {
	t.Helper()
	h := sha256.New()
	_ = w.scan(func(k, v []byte) error {
		fmt.Fprintf(h, "%q=%q\n", k, v)
		return nil
	})
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// script drives a ledger through every kind of command, encoding each one
// and decoding it back the way a replica receives it.
func script(t testing.TB, l *Ledger, w memWriter, flushEvery int) {
	t.Helper()
	now := t0
	n := 0
	apply := func(c Command) Result {
		now += int64(7 * time.Minute)
		enc, _ := Encode(c, now)
		dec, ts, err := Decode(enc)
		if err != nil {
			t.Fatalf("decode %T: %v", c, err)
		}
		r := l.Apply(dec, ts)
		n++
		if n%flushEvery == 0 {
			if err := l.Flush(w); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}
	apply(&Seed{NanoUSDPerFlow: DefaultNanoUSDPerFlow, Plans: DefaultPlans(), Models: DefaultModels(), DedupeDays: 7, RequestLogDays: 30,
		Members: []Member{{ID: "n1", RaftAddr: "127.0.0.1:1", AdminAddr: "127.0.0.1:2"}}})
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("a%d", i)
		apply(&CreateAccount{ID: id, Email: id + "@x.io", Name: id})
		apply(&CreateKey{AccountID: id, KeyID: "ks" + id, Kind: KindSubscription, Hash: HashSecret("s" + id), Last4: "aaaa"})
		apply(&CreateKey{AccountID: id, KeyID: "kp" + id, Kind: KindPayg, Hash: HashSecret("p" + id), Last4: "bbbb"})
		apply(&TopUp{Idem: Idem{IdemKey: "t" + id, Fingerprint: "f"}, AccountID: id, MicroUSD: 2_000000})
		apply(&SetExtra{AccountID: id, Enabled: true, KeyID: "kp" + id})
		if i%2 == 0 {
			apply(&Subscribe{Idem: Idem{IdemKey: "s" + id, Fingerprint: "f"}, AccountID: id, Plan: "pro"})
		}
	}
	apply(&SetRate{NanoUSDPerFlow: 40_000000})
	apply(&PutPlan{Plan: Plan{ID: "team", Name: "Team", PriceMicroUSD: 50_000000, Window5hMicroFlows: 1, WeeklyMicroFlows: 1, MonthlyMicroFlows: 1, RPM: 5, Burst: 5}})
	apply(&SetFlowValue{AccountID: "a1", Tier: TierInsider, MultiplierPPM: 1_250000})
	apply(&ChangePlan{Idem: Idem{IdemKey: "c0", Fingerprint: "f"}, AccountID: "a0", Plan: "max"})
	apply(&RefundSubmit{Idem: Idem{IdemKey: "r2", Fingerprint: "f"}, AccountID: "a2", RefundID: "rf2"})
	// Sessions and links (B2, B3): one session ends, one expires during the
	// charges below, one is ended by its key's rotation, two stay.
	for i, ttl := range []time.Duration{time.Hour, 30 * 24 * time.Hour, 24 * time.Hour, 2 * time.Hour} {
		apply(&OpenSession{TokenHash: HashSecret(fmt.Sprint("sess", i)), AccountID: "a3", KeyID: "ksa3", CSRF: "c", ExpiresAt: now + int64(ttl)})
	}
	apply(&EndSession{TokenHash: HashSecret("sess3")})
	apply(&CreateSignInLink{AccountID: "a1", LinkHash: HashSecret("link0"), ExpiresAt: now + int64(10*time.Minute)})
	apply(&CreateSignInLink{AccountID: "a1", LinkHash: HashSecret("link1"), ExpiresAt: now + int64(15*time.Minute)})
	apply(&RedeemSignInLink{LinkHash: HashSecret("link1"), TokenHash: HashSecret("sessl"), CSRF: "c", ExpiresAt: now + int64(24*time.Hour)})
	// Plan requests (B4): one confirmed, one rejected, one pending.
	apply(&RequestPlanChange{ID: "pr1", AccountID: "a1", Action: ActionSubscribe, Plan: "pro"})
	apply(&RequestPlanChange{ID: "pr2", AccountID: "a3", Action: ActionSubscribe, Plan: "max"})
	apply(&RequestPlanChange{ID: "pr3", AccountID: "a0", Action: ActionCancel})
	apply(&DecidePlanRequest{Idem: Idem{IdemKey: "pr1", Fingerprint: "f"}, ID: "pr1", Confirm: true})
	apply(&DecidePlanRequest{Idem: Idem{IdemKey: "pr2", Fingerprint: "f"}, ID: "pr2"})
	// Card payments (PAY1–PAY4): a subscribe and a top-up paid, an
	// anomaly, an intent left pending.
	apply(&CreatePaymentIntent{ID: "pi1", AccountID: "a3", Kind: IntentSubscribe, Plan: "max"})
	apply(&CreatePaymentIntent{ID: "pi2", AccountID: "a3", Kind: IntentTopUp, MicroUSD: 5_000000})
	apply(&CreatePaymentIntent{ID: "pi3", AccountID: "a4", Kind: IntentTopUp, MicroUSD: 7_000000})
	apply(&SetPaymentRef{ID: "pi1", ProviderRef: "cs_1"})
	apply(&ApplyPaymentEvent{EventID: "ev1", IntentID: "pi1", ProviderRef: "pi_1", MicroUSD: 100_000000, Currency: "usd", Outcome: OutcomeSucceeded, Customer: "cus_1"})
	apply(&ApplyPaymentEvent{EventID: "ev2", IntentID: "pi2", MicroUSD: 4_990000, Currency: "usd", Outcome: OutcomeSucceeded})
	apply(&ApplyPaymentEvent{EventID: "ev3", IntentID: "pi2", MicroUSD: 5_000000, Currency: "usd", Outcome: OutcomeSucceeded})
	apply(&RecordPaymentAnomaly{EventID: "ev4", Reason: "odd", Detail: "d"})
	for i := 0; i < 40; i++ {
		var batch []Charge
		for j := 0; j < 5; j++ {
			id := fmt.Sprintf("a%d", j)
			billing := BillingSubscription
			if (i+j)%7 == 0 {
				billing = BillingPayg
			}
			batch = append(batch, Charge{ReqID: fmt.Sprintf("r%d-%d", i, j), AccountID: id, KeyID: "ks" + id, Model: EchoModelID,
				Billing: billing, AdmittedAt: now, InputTokens: int64(1000 * (i + 1)), OutputTokens: int64(77 * j), CacheReadTokens: 5, Status: "ok"})
		}
		apply(&ChargeBatch{Charges: batch})
	}
	apply(&RefundStatus{Idem: Idem{IdemKey: "rs2", Fingerprint: "f"}, RefundID: "rf2", Status: RefundSucceeded})
	apply(&RotateKey{KeyID: "ksa3", Hash: HashSecret("rot"), Last4: "cccc"})
	apply(&RevokeKey{KeyID: "kpa4"})
	apply(&AdvanceClock{Nanos: int64(40 * 24 * time.Hour)})
	apply(&Tick{})
	if err := l.Flush(w); err != nil {
		t.Fatal(err)
	}
}

// Two replicas that apply the same commands hold the same bytes, however
// often they flush; and a ledger loaded from its durable form equals the
// one that wrote it.
func TestDeterministicAndReloadable(t *testing.T) {
	w1, w2 := memWriter{}, memWriter{}
	l1, l2 := New(), New()
	script(t, l1, w1, 1)
	script(t, l2, w2, 13)
	if stateHash(t, w1) != stateHash(t, w2) {
		t.Fatal("replicas diverged")
	}
	l1.SetDurable(w1)
	loaded, err := Load(w1.scan, w1)
	if err != nil {
		t.Fatal(err)
	}
	now := l1.now
	for _, id := range []string{"a0", "a1", "a2", "a3", "a4"} {
		for _, read := range []func(*Ledger) (any, error){
			func(l *Ledger) (any, error) { return l.Account(id, now) },
			func(l *Ledger) (any, error) { return l.Usage(id, now) },
			func(l *Ledger) (any, error) { return l.Keys(id) },
			func(l *Ledger) (any, error) { return l.PaymentIntents(id) },
			func(l *Ledger) (any, error) { return l.Billing(id) },
		} {
			a, _ := read(l1)
			b, _ := read(loaded)
			if !reflect.DeepEqual(asMap(t, a), asMap(t, b)) {
				t.Fatalf("reloaded %s differs:\n%v\n%v", id, asMap(t, a), asMap(t, b))
			}
		}
	}
	if a, b := l1.PaymentAnomalies(), loaded.PaymentAnomalies(); len(a) != 2 || !reflect.DeepEqual(a, b) {
		t.Fatalf("reloaded anomalies %v, want %v", b, a)
	}
	if !reflect.DeepEqual(l1.Rate(), loaded.Rate()) {
		t.Fatal("reloaded rate differs")
	}
	// The reloaded ledger continues identically.
	w3 := memWriter{}
	for k, v := range w1 {
		w3[k] = v
	}
	c := &ChargeBatch{Charges: []Charge{{ReqID: "after", AccountID: "a0", KeyID: "ksa0", Model: EchoModelID, Billing: BillingSubscription, AdmittedAt: now, InputTokens: 9}}}
	l1.Apply(c, now+1)
	loaded.Apply(c, now+1)
	_ = l1.Flush(w1)
	_ = loaded.Flush(w3)
	if stateHash(t, w1) != stateHash(t, w3) {
		t.Fatal("reloaded ledger diverged after one more command")
	}
}

// Every defined command survives Encode/Decode; garbage is refused.
func TestEncodeDecode(t *testing.T) {
	for typ, d := range defs {
		if d == nil {
			continue
		}
		enc, _ := Encode(d.new(), 42)
		got, ts, err := Decode(enc)
		if err != nil || ts != 42 || got.Type() != CmdType(typ) {
			t.Errorf("type %d: %v %d %v", typ, got, ts, err)
		}
	}
	cb := &ChargeBatch{Retry: true, Charges: []Charge{{ReqID: "r", AccountID: "a", KeyID: "k", Node: "n2", Model: "m/x", Billing: BillingPayg, ViaExtra: true, Estimated: true, Status: "client_closed",
		AdmittedAt: 123, InputTokens: 1, OutputTokens: 2, CacheReadTokens: 3, CacheWriteTokens: 4, Images: 5}}}
	enc, _ := Encode(cb, 7)
	if _, err := Encode(&ChargeBatch{Charges: []Charge{{ReqID: strings.Repeat("x", 2000)}}}, 1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize field encoded: %v", err)
	}
	got, _, err := Decode(enc)
	if err != nil || !reflect.DeepEqual(got, cb) {
		t.Fatalf("charge batch round trip: %+v %v", got, err)
	}
	for i := 0; i < len(enc); i++ {
		if _, _, err := Decode(enc[:i]); err == nil {
			t.Errorf("truncated at %d decoded", i)
		} else if !errors.Is(err, ErrBadCommand) {
			t.Errorf("truncated at %d: %v", i, err)
		}
	}
	for _, bad := range [][]byte{nil, {0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, {200, 1, 0, 0, 0, 0, 0, 0, 0, 0}, {byte((*SetRate)(nil).Type()), 9, 0, 0, 0, 0, 0, 0, 0, 0}, append(bytes.Clone(enc[:10]), 0xff, 0xff, 0xff)} {
		if _, _, err := Decode(bad); !errors.Is(err, ErrBadCommand) {
			t.Errorf("%v decoded: %v", bad, err)
		}
	}
}
