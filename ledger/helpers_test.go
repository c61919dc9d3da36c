package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// t0 is 2026-04-01T00:00:00Z: April has 30 days, which makes the seed's
// "15 of 30 days left" example exact.
var t0 = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// oneFlowInput is the number of input tokens of zenmux/echo ($1 per million)
// that cost exactly one Flow at the default rate: 32,830 µUSD.
const oneFlowInput = 32_830

type fixture struct {
	t      testing.TB
	l      *Ledger
	now    int64
	serial int
}

func newFixture(t testing.TB) *fixture { return newFixtureAt(t, t0) }

func newFixtureAt(t testing.TB, start int64) *fixture {
	return newFixtureLog(t, start, LogFormatCurrent, 30)
}

// newFixtureLog seeds a ledger that logs charges in format, keeping the
// request log for logDays (dedupe_days 7).
func newFixtureLog(t testing.TB, start int64, format, logDays int) *fixture {
	t.Helper()
	f := &fixture{t: t, l: New(), now: start}
	f.must(&Seed{NanoUSDPerFlow: DefaultNanoUSDPerFlow, Plans: DefaultPlans(), Models: DefaultModels(), DedupeDays: 7, RequestLogDays: logDays,
		LogFormat: format})
	return f
}

func (f *fixture) id(prefix string) string {
	f.serial++
	return fmt.Sprintf("%s%d", prefix, f.serial)
}

func (f *fixture) advance(d time.Duration) { f.now += int64(d) }

// applied is a Result with its answer as a plain value, for assertions.
type applied struct {
	Value any
	Err   error
}

func (a value[R]) testValue() any { return a.v }
func (a raw) testValue() any      { return json.RawMessage(a) }

func appliedOf(r Result) applied {
	if r.ans == nil {
		return applied{Err: r.Err}
	}
	return applied{Value: r.ans.(interface{ testValue() any }).testValue(), Err: r.Err}
}

// do applies cmd, and checks that its answer reaches a follower intact:
// encoded by the leader, read back as its answer type.
func (f *fixture) do(cmd Command) applied {
	f.t.Helper()
	r := f.l.Apply(cmd, f.now)
	if r.Err == nil {
		raw, err := r.EncodeAnswer()
		if err != nil {
			f.t.Fatalf("%T: encode answer: %v", cmd, err)
		}
		orig := appliedOf(r).Value
		back := reflect.New(reflect.TypeOf(orig))
		if err := json.Unmarshal(raw, back.Interface()); err != nil || !reflect.DeepEqual(back.Elem().Interface(), orig) {
			f.t.Fatalf("%T: the answer %s reads on a follower as %+v (%v), not %+v", cmd, raw, back.Elem().Interface(), err, orig)
		}
	}
	return appliedOf(r)
}

func (f *fixture) must(cmd Command) map[string]any {
	f.t.Helper()
	r := f.do(cmd)
	if r.Err != nil {
		f.t.Fatalf("%T: %v", cmd, r.Err)
	}
	return asMap(f.t, r.Value)
}

func (f *fixture) fails(cmd Command, want error) {
	f.t.Helper()
	r := f.do(cmd)
	if r.Err == nil || !errors.Is(r.Err, want) {
		f.t.Fatalf("%T: got err %v, want %v", cmd, r.Err, want)
	}
}

func (f *fixture) idem(tag string) Idem {
	return Idem{IdemKey: f.id("idem-" + tag + "-"), Fingerprint: "fp"}
}

// account creates an account with a subscription key; it returns the
// account id and the key's secret hash.
func (f *fixture) account() (string, [32]byte) {
	f.t.Helper()
	id := f.id("acct")
	f.must(&CreateAccount{ID: id, Email: id + "@example.com", Name: "User " + id})
	return id, f.key(id, KindSubscription)
}

func (f *fixture) key(acct, kind string) [32]byte {
	f.t.Helper()
	kid := f.id("key")
	h := HashSecret("secret-" + kid)
	f.must(&CreateKey{AccountID: acct, KeyID: kid, Kind: kind, Name: kid, Hash: h, Last4: "abcd"})
	return h
}

func (f *fixture) keyID(h [32]byte) string { return f.l.keyHash[h].ID }

// charge meters a subscription request of exactly `flows` Flows at the
// default rate and multiplier 1.
func (f *fixture) charge(acct string, key [32]byte, flows int64, billing string) ChargeResult {
	f.t.Helper()
	c := Charge{ReqID: f.id("req"), AccountID: acct, KeyID: f.keyID(key), Model: EchoModelID,
		Billing: billing, AdmittedAt: f.now, InputTokens: flows * oneFlowInput}
	res := f.do(&ChargeBatch{Charges: []Charge{c}})
	return res.Value.([]ChargeResult)[0]
}

func asMap(t testing.TB, v any) map[string]any {
	t.Helper()
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return map[string]any{"_": string(b)}
	}
	return m
}

// get walks a decoded JSON object by dotted path and renders the leaf.
func get(m map[string]any, path string) string {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return "<missing>"
		}
		cur = mm[p]
	}
	if cur == nil {
		return "null"
	}
	return fmt.Sprint(cur)
}

func expect(t *testing.T, m map[string]any, pairs ...string) {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if got := get(m, pairs[i]); got != pairs[i+1] {
			t.Errorf("%s = %s, want %s", pairs[i], got, pairs[i+1])
		}
	}
}

func (f *fixture) usage(acct string) map[string]any {
	f.t.Helper()
	v, err := f.l.Usage(acct, f.now)
	if err != nil {
		f.t.Fatal(err)
	}
	return asMap(f.t, v)
}

func (f *fixture) acct(acct string) map[string]any {
	f.t.Helper()
	v, err := f.l.Account(acct, f.now)
	if err != nil {
		f.t.Fatal(err)
	}
	return asMap(f.t, v)
}

// memWriter is a Writer over a map, for persistence tests.
type memWriter map[string][]byte

func (w memWriter) Set(k, v []byte) error { w[string(k)] = append([]byte(nil), v...); return nil }
func (w memWriter) Delete(k []byte) error { delete(w, string(k)); return nil }
func (w memWriter) DeleteRange(a, b []byte) error {
	for k := range w {
		if k >= string(a) && k < string(b) {
			delete(w, k)
		}
	}
	return nil
}

func (w memWriter) Get(k []byte) ([]byte, bool, error) {
	v, ok := w[string(k)]
	return append([]byte(nil), v...), ok, nil
}

func (w memWriter) scan(fn func(k, v []byte) error) error {
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn([]byte(k), w[k]); err != nil {
			return err
		}
	}
	return nil
}

// keysOf is the account's keys as their JSON views.
func (f *fixture) keysOf(acct string) []map[string]any {
	f.t.Helper()
	keys, err := f.l.Keys(acct)
	if err != nil {
		f.t.Fatal(err)
	}
	out := make([]map[string]any, len(keys))
	for i := range keys {
		out[i] = asMap(f.t, keys[i])
	}
	return out
}
