package proxy

import (
	"bufio"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"zenmux/ledger"
)

// The body scanner accepts exactly what encoding/json accepts as one
// object, and finds the top-level fields.
func TestScanTopLevel(t *testing.T) {
	good := []string{
		`{}`, ` {"model":"a"} `, `{"model":"a\"b","stream":true,"x":[1,2,{"model":"nested"}],"n":-1.5e+3}`,
		`{"messages":[{"role":"user","content":"h\u00e9"}],"model":"m","stream_options":{"include_usage":false}}`,
		`{"model":"first","model":"second"}`,
	}
	for _, s := range good {
		if !json.Valid([]byte(s)) {
			t.Fatalf("bad fixture %s", s)
		}
		if _, err := scanTopLevel([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := []string{``, `[]`, `"x"`, `{`, `{"a":1}}`, `{"a":1,}`, `{"a" 1}`, `{"a":01}`, `{"a":1.}`, `{"a":"\x"}`, `{"a":tru}`, "{\"a\":\"\n\"}", `{"a":1} {}`, `{"a":-}`}
	for _, s := range bad {
		if _, err := scanTopLevel([]byte(s)); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	body := []byte(`{"x":{"model":"nested"},"model":"first","model":"second","stream":true}`)
	top, _ := scanTopLevel(body)
	if m, _ := stringValue(body[top.model.start:top.model.end]); m != "second" {
		t.Errorf("model = %q", m)
	}
	if string(body[top.stream.start:top.stream.end]) != "true" {
		t.Error("stream span")
	}
}

func FuzzScanTopLevel(f *testing.F) {
	for _, s := range []string{`{"model":"a"}`, `{"a":[1,{"b":null}]}`, `{}`, `[`, `{"a":"\u12"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := scanTopLevel(b)
		var obj map[string]json.RawMessage
		valid := json.Valid(b) && json.Unmarshal(b, &obj) == nil && obj != nil
		if (err == nil) != valid {
			t.Fatalf("%q: scanner err %v, encoding/json object %v", b, err, valid)
		}
	})
}

// upstreamBody rewrites the model and forces include_usage, touching
// nothing else.
func TestUpstreamBody(t *testing.T) {
	body := []byte(`{"stream":true,"model":"test/gpt","store":false,"include":["reasoning.encrypted_content"],"x":1.50}`)
	top, _ := scanTopLevel(body)
	out, asked := upstreamBody(body, top, "gpt-5.4", true)
	if asked || string(out) != `{"stream_options":{"include_usage":true},"stream":true,"model":"gpt-5.4","store":false,"include":["reasoning.encrypted_content"],"x":1.50}` {
		t.Errorf("%s %v", out, asked)
	}
	body = []byte(`{"model":"test/gpt","stream_options":{"include_usage":true},"stream":true}`)
	top, _ = scanTopLevel(body)
	out, asked = upstreamBody(body, top, "up", true)
	if !asked || string(out) != `{"model":"up","stream_options":{"include_usage":true},"stream":true}` {
		t.Errorf("%s %v", out, asked)
	}
	body = []byte(`{"stream_options":{"include_usage":false,"other":1},"model":"m","stream":true}`)
	top, _ = scanTopLevel(body)
	out, asked = upstreamBody(body, top, "up", true)
	if asked || string(out) != `{"stream_options":{"include_usage":true,"other":1},"model":"up","stream":true}` {
		t.Errorf("%s %v", out, asked)
	}
}

// rule Q8: a bucket of 15 refilling 10 a minute.
func TestQ8_Limiter(t *testing.T) {
	l := NewLimiter()
	now := int64(0)
	for i := 0; i < 15; i++ {
		if d := l.Take("a", 10, 15, now); !d.Allowed || d.Remaining != int64(14-i) {
			t.Fatalf("request %d: %+v", i, d)
		}
	}
	d := l.Take("a", 10, 15, now)
	if d.Allowed || d.Reset != 6*time.Second {
		t.Fatalf("16th: %+v", d)
	}
	if l.Take("b", 10, 15, now); !l.Take("b", 10, 15, now).Allowed {
		t.Fatal("buckets are not per key")
	}
	now += int64(6 * time.Second)
	if !l.Take("a", 10, 15, now).Allowed || l.Take("a", 10, 15, now).Allowed {
		t.Fatal("after 6 s exactly one more")
	}
	allowed := 0
	for i := 0; i < 60; i++ {
		now += int64(time.Second)
		if l.Take("a", 10, 15, now).Allowed {
			allowed++
		}
	}
	if allowed != 10 {
		t.Fatalf("%d in a minute, want 10", allowed)
	}
}

type recordingProposer struct {
	mu      sync.Mutex
	batches [][]string
	fail    int // fail this many proposals first
}

func (p *recordingProposer) ProposeCharges(b *ledger.ChargeBatch) ([]ledger.ChargeResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail > 0 {
		p.fail--
		return nil, errors.New("leadership lost")
	}
	var ids []string
	for _, c := range b.Charges {
		ids = append(ids, c.ReqID)
	}
	p.batches = append(p.batches, ids)
	return make([]ledger.ChargeResult, len(b.Charges)), nil
}

// The batcher proposes a failed batch again, unchanged (C2), and reports
// every charge's outcome.
func TestBatcherRetriesSameIDs(t *testing.T) {
	p := &recordingProposer{fail: 2}
	b := NewBatcher(p, BatcherOptions{MaxCharges: 10})
	var wg sync.WaitGroup
	for i := 0; i < 25; i++ {
		wg.Add(1)
		if err := b.Submit(ledger.Charge{ReqID: string(rune('a' + i))}, func(o ChargeOutcome) {
			if o.Err != nil {
				t.Error(o.Err)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	b.Close()
	seen := map[string]int{}
	for _, batch := range p.batches {
		if len(batch) > 10 {
			t.Errorf("batch of %d", len(batch))
		}
		for _, id := range batch {
			seen[id]++
		}
	}
	if len(seen) != 25 {
		t.Fatalf("%d distinct charges committed", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s committed %d times", id, n)
		}
	}
	if err := b.Submit(ledger.Charge{ReqID: "late"}, nil); !errors.Is(err, ErrBatcherClosed) {
		t.Fatalf("after close: %v", err)
	}
}

// The SSE reader keeps each event's raw bytes, joins data lines and
// tolerates CRLF and events larger than its buffer.
func TestSSEReader(t *testing.T) {
	long := strings.Repeat("x", 70000)
	in := "event: a\r\ndata: 1\r\ndata: 2\r\n\r\n\n: comment\ndata: " + long + "\n\nevent: last\ndata: end"
	r := sseReader{br: bufio.NewReaderSize(strings.NewReader(in), 4096)}
	raw, name, data, err := r.next()
	if err != nil || name != "a" || string(data) != "1\n2" || string(raw) != "event: a\r\ndata: 1\r\ndata: 2\r\n\r\n" {
		t.Fatalf("first: %q %q %q %v", raw, name, data, err)
	}
	raw, name, data, err = r.next()
	if err != nil || name != "" || string(data) != long || !strings.HasPrefix(string(raw), ": comment\n") {
		t.Fatalf("second: %q %d %v", name, len(data), err)
	}
	raw, name, data, err = r.next()
	if err == nil || name != "last" || string(data) != "end" || string(raw) != "event: last\ndata: end" {
		t.Fatalf("unterminated last: %q %q %q %v", raw, name, data, err)
	}
}
