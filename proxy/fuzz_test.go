package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// Fuzz targets for the two parsers that face the outside world:
//
//   - an upstream's answer, which the gateway meters (Server.unary and
//     Server.relayStream over sseReader and meter): FuzzMeterUnary,
//     FuzzMeterStream, FuzzMeterReportedUsage;
//   - a client's body, which the gateway reads and rewrites before
//     forwarding it (scanTopLevel, stringValue, upstreamBody, the handler):
//     FuzzClientBody. FuzzScanTopLevel (units_test.go) holds the scanner
//     to encoding/json's verdict; it is not repeated here.
//
// Every target runs the gateway's own code on bytes held in memory; nothing
// listens or dials except newGateway's idle upstreams on 127.0.0.1.

// ---- Upstream answers --------------------------------------------------------

// fuzzRecorder commits every charge batch at once and keeps the charges.
type fuzzRecorder struct {
	mu      sync.Mutex
	charges []ledger.Charge
}

func (r *fuzzRecorder) ProposeCharges(b *ledger.ChargeBatch) ([]ledger.ChargeResult, error) {
	r.mu.Lock()
	r.charges = append(r.charges, b.Charges...)
	r.mu.Unlock()
	return make([]ledger.ChargeResult, len(b.Charges)), nil
}

// meterRig runs Server.unary and Server.relayStream on an answer held in
// memory, through a real Batcher with ack = "quorum", and collects the
// charges they submit.
type meterRig struct {
	s   *Server
	b   *Batcher
	rec *fuzzRecorder
}

const fuzzMarkerID = "req_fuzz_marker"

func newMeterRig(tb testing.TB) *meterRig {
	rec := &fuzzRecorder{}
	b := NewBatcher(rec, BatcherOptions{MaxCharges: 64})
	tb.Cleanup(func() { b.Close() })
	s, err := New(Options{NodeID: "fuzz", Charges: b, AckQuorum: true, Log: zerolog.New(io.Discard), CommitTimeout: 10 * time.Second,
		PaygRPM: 600, PaygBurst: 600, CountTokensRPM: 100, CountTokensBurst: 20})
	if err != nil {
		tb.Fatal(err)
	}
	return &meterRig{s: s, b: b, rec: rec}
}

// drain returns the charges submitted since the last drain. The batcher
// commits in order, so once a marker charge submitted now is committed,
// every charge submitted before it is too.
func (r *meterRig) drain(tb testing.TB) []ledger.Charge {
	tb.Helper()
	done := make(chan struct{})
	if err := r.b.Submit(ledger.Charge{ReqID: fuzzMarkerID}, func(ChargeOutcome) { close(done) }); err != nil {
		tb.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		tb.Fatal("marker charge not committed in 10 s")
	}
	r.rec.mu.Lock()
	defer r.rec.mu.Unlock()
	var out []ledger.Charge
	for _, c := range r.rec.charges {
		if c.ReqID != fuzzMarkerID {
			out = append(out, c)
		}
	}
	r.rec.charges = r.rec.charges[:0]
	return out
}

func (r *meterRig) inflight(f Format) *inflight {
	return &inflight{s: r.s, id: "req_fuzz", format: f, upFormat: f, requestBytes: 400,
		ad: ledger.Admission{AccountID: "acct", KeyID: "key", Billing: ledger.BillingSubscription, Model: ledger.Model{ID: "fuzz/model"}}}
}

// unary meters a non-streamed 200 answer as the handler does and returns
// what the client got and what was charged.
func (r *meterRig) unary(tb testing.TB, f Format, body, splits []byte) (status int, out []byte, charges []ledger.Charge) {
	var ctx fasthttp.RequestCtx
	r.s.unary(&ctx, r.inflight(f), &Response{Status: 200, ContentType: "application/json", Body: io.NopCloser(&splitReader{b: body, sizes: splits})})
	return ctx.Response.StatusCode(), append([]byte(nil), ctx.Response.Body()...), r.drain(tb)
}

// stream relays and meters a streamed 200 answer as the handler does and
// returns what the client got and what was charged.
func (r *meterRig) stream(tb testing.TB, f Format, body, splits []byte, clientWantsUsage bool) (out []byte, charges []ledger.Charge) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	r.s.relayStream(w, r.inflight(f), &Response{Status: 200, ContentType: "text/event-stream", Body: io.NopCloser(&splitReader{b: body, sizes: splits})}, clientWantsUsage)
	_ = w.Flush()
	return buf.Bytes(), r.drain(tb)
}

// splitReader hands out b in reads whose sizes cycle through sizes (each
// byte a read of 1 to 64 bytes), as TCP segments and HTTP chunks cut an
// answer; with no sizes it hands out everything in one read.
type splitReader struct {
	b     []byte
	sizes []byte
	i     int
}

func (r *splitReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := len(r.b)
	if len(r.sizes) > 0 {
		n = int(r.sizes[r.i%len(r.sizes)])%64 + 1
		r.i++
	}
	n = min(n, len(p), len(r.b))
	copy(p, r.b[:n])
	r.b = r.b[n:]
	return n, nil
}

var chargeStatuses = map[string]bool{"ok": true, "incomplete": true, "failed": true, "upstream_cut": true, "upstream_error": true}

// checkCharge holds a charge to what the ledger accepts (validateCharge)
// and to the statuses the meter can produce.
func checkCharge(t *testing.T, c ledger.Charge) {
	t.Helper()
	for _, n := range [...]int64{c.InputTokens, c.OutputTokens, c.CacheReadTokens, c.CacheWriteTokens} {
		if n < 0 || n > ledger.MaxTokensPerKind {
			t.Fatalf("token count out of range: %+v", c)
		}
	}
	if c.Images < 0 || c.Images > ledger.MaxImagesPerRequest {
		t.Fatalf("image count out of range: %+v", c)
	}
	if !chargeStatuses[c.Status] {
		t.Fatalf("status %q: %+v", c.Status, c)
	}
}

type chargeView struct {
	In, Out, CacheRead, CacheWrite, Images int64
	Status                                 string
	Estimated                              bool
}

func viewCharges(cs []ledger.Charge) []chargeView {
	var out []chargeView
	for _, c := range cs {
		out = append(out, chargeView{c.InputTokens, c.OutputTokens, c.CacheReadTokens, c.CacheWriteTokens, c.Images, c.Status, c.Estimated})
	}
	return out
}

var (
	unaryFormats  = []Format{FormatChat, FormatResponses, FormatEmbeddings, FormatImages, FormatMessages}
	streamFormats = []Format{FormatChat, FormatResponses, FormatMessages}
)

func formatIndex(formats []Format, f Format) uint8 {
	for i, g := range formats {
		if g == f {
			return uint8(i)
		}
	}
	panic("format not listed")
}

// Realistic answers, in the shapes of docs/wire.md and upstreams_test.go.
const (
	fzChatUsage      = `{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":5,"audio_tokens":0,"image_tokens":0,"text_tokens":0,"cache_write_tokens":0},"completion_tokens_details":{"reasoning_tokens":2,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0,"text_tokens":0}}`
	fzDeepSeekUsage  = `{"prompt_tokens":1204,"completion_tokens":30,"total_tokens":1234,"prompt_cache_hit_tokens":1024,"prompt_cache_miss_tokens":180,"completion_tokens_details":{"reasoning_tokens":12}}`
	fzRespUsage      = `{"input_tokens":11,"input_tokens_details":{"cached_tokens":5,"cache_write_tokens":0,"cache_write_tokens_details":{"ttl_30m_tokens":0,"ttl_12h_tokens":0}},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":2},"total_tokens":18}`
	fzAnthUsage      = `{"input_tokens":11,"cache_creation_input_tokens":3,"cache_read_input_tokens":5,"output_tokens":7,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens_details":{"thinking_tokens":0},"server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},"service_tier":"standard","speed":"standard","inference_geo":""}`
	fzAnthStartUsage = `{"cache_creation_input_tokens":3,"cache_read_input_tokens":5,"input_tokens":11,"output_tokens":1}`
)

func unarySeeds() []struct {
	f    Format
	body string
} {
	return []struct {
		f    Format
		body string
	}{
		{FormatChat, chatCompletion("Hello from stub.", fzChatUsage)},
		{FormatChat, chatCompletion("Hello", fzDeepSeekUsage)},
		{FormatChat, chatCompletion("no usage", "null")},
		{FormatChat, `{"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}`},
		{FormatResponses, respObject("completed", "Hello", fzRespUsage)},
		{FormatResponses, respObject("incomplete", "Hel", fzRespUsage)},
		{FormatResponses, respObject("failed", "", "")},
		{FormatEmbeddings, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":"up-gpt","usage":{"prompt_tokens":4,"total_tokens":4}}`},
		{FormatImages, `{"created":1,"data":[{"b64_json":"AA=="},{"b64_json":"AA=="}]}`},
		{FormatImages, `{"created":1,"data":[{"b64_json":"AA=="}],"usage":{"input_tokens":50,"input_tokens_details":{"text_tokens":50,"image_tokens":0},"output_tokens":4160,"output_tokens_details":{"text_tokens":0,"image_tokens":4160},"total_tokens":4210}}`},
		{FormatMessages, anthMessage("Hello", fzAnthUsage)},
		{FormatMessages, anthMessage("Hello", `{"input_tokens":-5,"output_tokens":99999999999999999999}`)},
		{FormatChat, "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"},\"index\":0}]}\n\ndata: [DONE]\n\n"},
		{FormatChat, `<html>502 Bad Gateway</html>`},
		{FormatChat, ``},
	}
}

// FuzzMeterUnary feeds arbitrary non-streamed answers, cut into arbitrary
// reads, to Server.unary. Properties: no panic; at most one charge, within
// the ledger's ranges (never negative); the same bytes read in other pieces
// give the same charge and the same answer; a 200 answer is relayed byte
// for byte; and a non-empty answer the client receives is charged (Q7:
// only a request that fails before any output goes free).
func FuzzMeterUnary(f *testing.F) {
	for _, s := range unarySeeds() {
		f.Add(formatIndex(unaryFormats, s.f), []byte(s.body), []byte{3, 17, 1})
	}
	rig := newMeterRig(f)
	f.Fuzz(func(t *testing.T, format uint8, body, splits []byte) {
		fm := unaryFormats[int(format)%len(unaryFormats)]
		st1, out1, c1 := rig.unary(t, fm, body, nil)
		st2, out2, c2 := rig.unary(t, fm, body, splits)
		if st1 != st2 || !bytes.Equal(out1, out2) || !reflect.DeepEqual(viewCharges(c1), viewCharges(c2)) {
			t.Fatalf("read whole: %d %q %+v; read in pieces: %d %q %+v", st1, out1, viewCharges(c1), st2, out2, viewCharges(c2))
		}
		if len(c1) > 1 {
			t.Fatalf("%d charges for one answer", len(c1))
		}
		for _, c := range c1 {
			checkCharge(t, c)
		}
		if st1 != 200 || !bytes.Equal(out1, body) {
			t.Fatalf("answer not relayed as is: %d %q", st1, out1)
		}
		if len(bytes.TrimSpace(body)) > 0 && len(c1) == 0 {
			t.Fatalf("format %d: the client got a %d-byte answer and nothing was charged: %q", fm, len(body), body)
		}
	})
}

func streamSeeds() []struct {
	f     Format
	body  string
	wants bool
} {
	join := strings.Join
	vllmUsage := `data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":null,"usage":` + fzChatUsage + "}\n\n"
	noChoices := `data: {"id":"c","object":"chat.completion.chunk","model":"m","usage":` + fzDeepSeekUsage + "}\n\n"
	return []struct {
		f     Format
		body  string
		wants bool
	}{
		{FormatChat, join(chatStream([]string{"Hello", " from", " stub."}, fzChatUsage), ""), false},
		{FormatChat, join(chatStream([]string{"Hello"}, fzChatUsage), ""), true},
		{FormatChat, join(chatStream([]string{"Hi"}, ""), ""), false},
		{FormatChat, chatRoleChunk() + chatChunk("Hel") + chatFinishChunk() + vllmUsage + chatDone, false},
		{FormatChat, chatRoleChunk() + chatChunk("Hel") + noChoices + chatDone, true},
		{FormatChat, chatRoleChunk() + chatChunk("Hel") + chatChunk("lo"), false}, // cut
		{FormatChat, `data: {"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}` + "\n\n", false},
		{FormatChat, strings.ReplaceAll(join(chatStream([]string{"a\r\nb"}, fzChatUsage), ""), "\n", "\r\n"), true},
		{FormatChat, ": keep-alive\n\n" + chatChunk("x") + "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]},\"index\":0}]}\n\n" + "data: [DONE]", false},
		{FormatResponses, join(respStream([]string{"Hel", "lo"}, "completed", fzRespUsage), ""), true},
		{FormatResponses, join(respStream([]string{"Hel"}, "incomplete", fzRespUsage), ""), true},
		{FormatResponses, join(respStream([]string{"Hel"}, "failed", ""), ""), true},
		{FormatResponses, join(respStream([]string{"Hel", "lo"}, "completed", fzRespUsage)[:5], ""), true}, // cut
		{FormatResponses, sse("error", `{"type":"error","code":"server_error","message":"boom","param":null}`), true},
		{FormatMessages, anthStart(fzAnthStartUsage) + anthBlockStart(0) + anthPing() + anthTextDelta(0, "Hello from stub.") + anthBlockStop(0) +
			anthDelta(`"end_turn"`, `{"cache_creation_input_tokens":3,"cache_read_input_tokens":5,"input_tokens":11,"output_tokens":7}`) + anthStop(), true},
		{FormatMessages, anthStart(fzAnthStartUsage) + anthTextDelta(0, "Hel") + anthDelta(`null`, `{"output_tokens":4}`) + anthDelta(`"end_turn"`, `{"output_tokens":9}`) + anthStop(), true},
		{FormatMessages, anthStart(fzAnthStartUsage) + anthError("overloaded_error", "Overloaded"), true},
		{FormatMessages, anthStart(fzAnthStartUsage) + anthTextDelta(0, "Hel"), true}, // cut
		{FormatMessages, "event: message_start\ndata: {\"type\":\"message_start\",\ndata: \"message\":{\"usage\":{\"input_tokens\":3}}}\n\n" + anthStop(), true},
	}
}

// sseEvents reads body with the gateway's SSE reader over a bufio buffer of
// size bytes and renders every event it returns.
func sseEvents(body []byte, size int) []string {
	r := sseReader{br: bufio.NewReaderSize(bytes.NewReader(body), size)}
	var out []string
	for i := 0; i <= len(body)+1; i++ {
		raw, name, data, err := r.next()
		out = append(out, fmt.Sprintf("%q %q %q %v", raw, name, data, err != nil))
		if err != nil {
			return out
		}
	}
	panic("sseReader did not reach the end of its input")
}

// FuzzMeterStream feeds arbitrary SSE answers, cut into arbitrary reads, to
// Server.relayStream. The design relays "event by event" over a buffered
// reader, so where the TCP reads fall must not matter. Properties: no panic,
// no hang; the SSE reader returns the same events whatever its buffer size
// (16 bytes forces every line through its long-line path); the same bytes
// in other pieces give the same relayed output and the same charge; at most
// one charge, within the ledger's ranges (never negative).
func FuzzMeterStream(f *testing.F) {
	for _, s := range streamSeeds() {
		f.Add(formatIndex(streamFormats, s.f), []byte(s.body), []byte{5, 1, 40, 2}, s.wants)
	}
	rig := newMeterRig(f)
	f.Fuzz(func(t *testing.T, format uint8, body, splits []byte, clientWantsUsage bool) {
		fm := streamFormats[int(format)%len(streamFormats)]
		if small, big := sseEvents(body, 16), sseEvents(body, 64<<10); !reflect.DeepEqual(small, big) {
			t.Fatalf("SSE events depend on the buffer size:\n16 B:  %q\n64 KiB: %q", small, big)
		}
		out1, c1 := rig.stream(t, fm, body, nil, clientWantsUsage)
		out2, c2 := rig.stream(t, fm, body, splits, clientWantsUsage)
		if !bytes.Equal(out1, out2) {
			t.Fatalf("relayed output depends on the reads:\nwhole:  %q\npieces: %q", out1, out2)
		}
		if !reflect.DeepEqual(viewCharges(c1), viewCharges(c2)) {
			t.Fatalf("charge depends on the reads: whole %+v, pieces %+v", viewCharges(c1), viewCharges(c2))
		}
		if len(c1) > 1 {
			t.Fatalf("%d charges for one stream", len(c1))
		}
		for _, c := range c1 {
			checkCharge(t, c)
		}
	})
}

// Usage kinds FuzzMeterReportedUsage builds.
const (
	usageOpenAIChat = iota
	usageDeepSeek
	usageResponses
	usageAnthropic
	usageEmbeddings
	usageKinds
)

// tokenCount maps a fuzzed integer to a count a provider could report,
// across the ledger's per-kind bound (1e9) so that clamping is exercised.
func tokenCount(x int64) int64 { return int64(uint64(x) % 1_500_000_001) }

// wellFormedAnswer builds, in the wire shapes of W2.3, W2.4, W3.3,
// W3.4, a complete answer reporting the given counts, and the charge the
// metering rules of W5 give for it. flags: bit 0 streamed, bit 1 a
// shape variant (usage chunk with "choices":null or none; response
// incomplete; client asked for usage), bits 2-7 for Anthropic's stream,
// two bits per input field of the first message_delta: absent, null, the
// same count again, or a grown count (cumulative totals overwrite, W3.4,
// and a null or absent field keeps the earlier count, as the
// Anthropic SDK's Accumulate does).
func wellFormedAnswer(kind uint8, in, cacheRead, cacheWrite, out int64, flags uint8) (f Format, body string, streamed, wantsUsage bool, want chargeView) {
	streamed, variant := flags&1 != 0, flags&2 != 0
	wantsUsage = variant
	itoa := func(n int64) string { return strconv.FormatInt(n, 10) }
	want = chargeView{In: in, Out: out, CacheRead: cacheRead, CacheWrite: cacheWrite, Status: "ok"}
	switch kind % usageKinds {
	case usageOpenAIChat, usageDeepSeek:
		f = FormatChat
		usage := `{"prompt_tokens":` + itoa(in+cacheRead+cacheWrite) + `,"completion_tokens":` + itoa(out) + `,"total_tokens":` + itoa(in+cacheRead+cacheWrite+out) +
			`,"prompt_tokens_details":{"cached_tokens":` + itoa(cacheRead) + `,"audio_tokens":0,"cache_write_tokens":` + itoa(cacheWrite) + `},"completion_tokens_details":{"reasoning_tokens":` + itoa(out/2) + `}}`
		if kind%usageKinds == usageDeepSeek {
			usage = `{"prompt_tokens":` + itoa(in+cacheRead) + `,"completion_tokens":` + itoa(out) + `,"total_tokens":` + itoa(in+cacheRead+out) +
				`,"prompt_cache_hit_tokens":` + itoa(cacheRead) + `,"prompt_cache_miss_tokens":` + itoa(in) + `}`
			want.CacheWrite = 0
		}
		if !streamed {
			body = chatCompletion("Hello from stub.", usage)
			break
		}
		last := chatUsageChunk(usage)
		if variant { // vLLM and others: "choices": null, or no choices at all
			last = `data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":null,"usage":` + usage + "}\n\n"
			if out%2 == 0 {
				last = `data: {"id":"c","object":"chat.completion.chunk","model":"m","usage":` + usage + "}\n\n"
			}
		}
		body = chatRoleChunk() + chatChunk("Hello") + chatChunk(" from stub.") + chatFinishChunk() + last + chatDone
	case usageResponses:
		f = FormatResponses
		usage := `{"input_tokens":` + itoa(in+cacheRead+cacheWrite) + `,"input_tokens_details":{"cached_tokens":` + itoa(cacheRead) + `,"cache_write_tokens":` + itoa(cacheWrite) +
			`},"output_tokens":` + itoa(out) + `,"output_tokens_details":{"reasoning_tokens":` + itoa(out/2) + `},"total_tokens":` + itoa(in+cacheRead+cacheWrite+out) + `}`
		final := "completed"
		if variant {
			final, want.Status = "incomplete", "incomplete"
		}
		if streamed {
			body = strings.Join(respStream([]string{"Hel", "lo"}, final, usage), "")
		} else {
			body = respObject(final, "Hello", usage)
		}
	case usageAnthropic:
		f = FormatMessages
		full := func(in, cw, cr, out int64) string {
			return `{"input_tokens":` + itoa(in) + `,"cache_creation_input_tokens":` + itoa(cw) + `,"cache_read_input_tokens":` + itoa(cr) + `,"output_tokens":` + itoa(out) + `}`
		}
		if !streamed {
			body = anthMessage("Hello", full(in, cacheWrite, cacheRead, out))
			break
		}
		// The first message_delta restates (or not) each input field.
		fields := []struct {
			name string
			n    *int64
		}{{"input_tokens", &want.In}, {"cache_creation_input_tokens", &want.CacheWrite}, {"cache_read_input_tokens", &want.CacheRead}}
		delta := `{"output_tokens":` + itoa(out/2)
		for i, fd := range fields {
			switch (flags >> (2 + 2*i)) & 3 {
			case 1:
				delta += `,"` + fd.name + `":null`
			case 2:
				delta += `,"` + fd.name + `":` + itoa(*fd.n)
			case 3:
				*fd.n++
				delta += `,"` + fd.name + `":` + itoa(*fd.n)
			}
		}
		delta += "}"
		body = anthStart(full(in, cacheWrite, cacheRead, 1)) + anthBlockStart(0) + anthPing() + anthTextDelta(0, "Hello") + anthTextDelta(0, " from stub.") +
			anthBlockStop(0) + anthDelta(`null`, delta) + anthDelta(`"end_turn"`, `{"output_tokens":`+itoa(out)+`}`) + anthStop()
	case usageEmbeddings:
		f, streamed = FormatEmbeddings, false
		body = `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":"up-emb","usage":{"prompt_tokens":` + itoa(in) + `,"total_tokens":` + itoa(in) + `}}`
		want = chargeView{In: in, Status: "ok"}
	}
	want.In, want.Out, want.CacheRead, want.CacheWrite = clampTokens(want.In), clampTokens(want.Out), clampTokens(want.CacheRead), clampTokens(want.CacheWrite)
	return f, body, streamed, wantsUsage, want
}

// FuzzMeterReportedUsage builds well-formed answers, streamed or not, in
// every wire format the gateway meters, reporting fuzzed counts, and holds
// the charge to exactly the counts reported (Q7: "upstream usage as
// the provider reports it"; W5), not estimated, whatever the reads.
func FuzzMeterReportedUsage(f *testing.F) {
	for kind := uint8(0); kind < usageKinds; kind++ {
		for _, flags := range []uint8{0, 1, 2, 3, 0b01_10_01_01, 0b11_11_11_01, 0b10_01_00_01} {
			f.Add(kind, int64(11), int64(5), int64(3), int64(7), flags, []byte{9, 2})
		}
	}
	f.Add(uint8(usageAnthropic), int64(32830), int64(328300), int64(26264), int64(16415), uint8(0b01_01_01_01), []byte{})
	f.Add(uint8(usageOpenAIChat), int64(1_000_000_000), int64(0), int64(1), int64(1_400_000_000), uint8(1), []byte{63})
	rig := newMeterRig(f)
	f.Fuzz(func(t *testing.T, kind uint8, in, cacheRead, cacheWrite, out int64, flags uint8, splits []byte) {
		fm, body, streamed, wantsUsage, want := wellFormedAnswer(kind, tokenCount(in), tokenCount(cacheRead), tokenCount(cacheWrite), tokenCount(out), flags)
		var charges []ledger.Charge
		if streamed {
			_, charges = rig.stream(t, fm, []byte(body), splits, wantsUsage)
		} else {
			_, _, charges = rig.unary(t, fm, []byte(body), splits)
		}
		if got := viewCharges(charges); len(got) != 1 || got[0] != want {
			t.Fatalf("charged %+v, want %+v for\n%s", got, want, body)
		}
	})
}

// ---- Client bodies -----------------------------------------------------------

// captureProvider records the call the gateway makes and answers it in the
// call's format.
type captureProvider struct{ last *Call }

func (p *captureProvider) Speaks(f Format) bool { return true }

func (p *captureProvider) Do(call *Call) (*Response, error) {
	c := *call
	c.Body = append([]byte(nil), call.Body...)
	p.last = &c
	var body string
	switch call.Format {
	case FormatChat:
		body = chatCompletion("Hello", fzChatUsage)
		if call.Stream {
			body = strings.Join(chatStream([]string{"Hello"}, fzChatUsage), "")
		}
	case FormatResponses:
		body = respObject("completed", "Hello", fzRespUsage)
		if call.Stream {
			body = strings.Join(respStream([]string{"Hello"}, "completed", fzRespUsage), "")
		}
	case FormatMessages:
		body = anthMessage("Hello", fzAnthUsage)
		if call.Stream {
			body = anthStart(fzAnthStartUsage) + anthTextDelta(0, "Hello") + anthDelta(`"end_turn"`, `{"output_tokens":7}`) + anthStop()
		}
	case FormatEmbeddings:
		body = `{"object":"list","data":[],"model":"up","usage":{"prompt_tokens":4,"total_tokens":4}}`
	case FormatImages:
		body = `{"created":1,"data":[{"b64_json":"AA=="}]}`
	case FormatCountTokens:
		body = `{"input_tokens":42}`
	}
	return &Response{Status: 200, ContentType: "application/json", Body: io.NopCloser(strings.NewReader(body))}, nil
}

const (
	fuzzModel    = "fuzz/model"
	fuzzUpstream = "up-fuzz"
)

// readMembers are the top-level members the gateway reads; each may appear
// once (topLevel.repeated).
var readMembers = map[string]bool{"model": true, "stream": true, "stream_options": true, "max_tokens": true, "max_output_tokens": true, "input": true, "messages": true}

// clientPaths are the routes a client body reaches, aliases included.
var clientPaths = []string{"/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/embeddings", "/v1/images/generations",
	"/v1/messages/count_tokens", "/api/v1/chat/completions", "/api/anthropic/v1/messages", "/messages"}

// clientRig is a gateway whose one provider captures calls in process:
// a plan with the largest rate bucket and quotas, its charges committed
// nowhere, and a clock that moves a millisecond a request so the bucket
// never empties.
type clientRig struct {
	g   *gateway
	s   *Server
	cap *captureProvider
	key string
}

func newClientRig(tb testing.TB) *clientRig {
	g := newGateway(tb, gatewayOptions{async: true})
	g.apply(&ledger.PutPlan{Plan: ledger.Plan{ID: "fuzz", Name: "Fuzz", PriceMicroUSD: 1_000000, Window5hMicroFlows: ledger.MaxPlanMicroFlows,
		WeeklyMicroFlows: ledger.MaxPlanMicroFlows, MonthlyMicroFlows: ledger.MaxPlanMicroFlows, RPM: ledger.MaxRateLimit, Burst: ledger.MaxRateLimit}})
	m := testPrices
	m.ID, m.Provider, m.Upstream, m.Plans = fuzzModel, "capture", fuzzUpstream, []string{"fuzz"}
	g.apply(&ledger.PutModel{Model: m})
	_, key, _ := g.account("fuzz")
	b := NewBatcher(nopProposer{}, BatcherOptions{MaxCharges: 1000})
	tb.Cleanup(func() { b.Close() })
	cp := &captureProvider{}
	s, err := New(Options{NodeID: "fuzz", Ledger: func() *ledger.Ledger { return g.L }, Now: g.now.Load, Charges: b,
		Providers: map[string]Provider{"capture": cp}, PaygRPM: 600, PaygBurst: 600, CountTokensRPM: ledger.MaxRateLimit, CountTokensBurst: ledger.MaxRateLimit,
		Ready: func() bool { return true }, Log: zerolog.New(io.Discard)})
	if err != nil {
		tb.Fatal(err)
	}
	return &clientRig{g: g, s: s, cap: cp, key: key}
}

// do sends body to path through the handler and returns the status, the
// answer (a stream read to its end) and the upstream call, if any.
func (r *clientRig) do(path string, body []byte) (int, []byte, *Call) {
	r.g.advance(time.Millisecond)
	r.cap.last = nil
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI(path)
	ctx.Request.Header.Set("Authorization", "Bearer "+r.key)
	ctx.Request.SetBody(body)
	r.s.Handler(&ctx)
	return ctx.Response.StatusCode(), append([]byte(nil), ctx.Response.Body()...), r.cap.last
}

// topLevelValues returns every top-level member of the JSON object b, in
// order, duplicates included, with keys decoded as a JSON parser upstream
// decodes them.
func topLevelValues(b []byte) ([]string, []json.RawMessage, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, errors.New("not a JSON object")
	}
	var keys []string
	var vals []json.RawMessage
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return nil, nil, err
		}
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return nil, nil, err
		}
		keys, vals = append(keys, tok.(string)), append(vals, v)
	}
	return keys, vals, nil
}

// checkForwarded holds an upstream body to what the gateway promises
// (DESIGN.md "Read the body once"; docs/api.md, "Requests": the upstream gets its own model
// name): it is one JSON object; every model member, duplicates included,
// names the upstream model; on a streamed chat every stream_options member
// asks for usage; every other member is the client's, byte for byte, and
// nothing else is added. asked, when not nil, must say whether the client
// had asked for usage itself (always true outside a streamed chat).
func checkForwarded(t *testing.T, body, forwarded []byte, upstream string, chatStream bool, asked *bool) {
	t.Helper()
	var orig map[string]json.RawMessage
	if err := json.Unmarshal(body, &orig); err != nil {
		t.Fatalf("accepted body does not decode: %v: %q", err, body)
	}
	var fwd map[string]json.RawMessage
	if err := json.Unmarshal(forwarded, &fwd); err != nil || fwd == nil {
		t.Fatalf("forwarded body is not a JSON object (%v):\nclient:    %q\nforwarded: %q", err, body, forwarded)
	}
	keys, vals, err := topLevelValues(forwarded)
	if err != nil {
		t.Fatalf("forwarded body: %v: %q", err, forwarded)
	}
	for i, k := range keys {
		switch {
		case k == "model":
			var m string
			if json.Unmarshal(vals[i], &m) != nil || m != upstream {
				t.Fatalf("forwarded body has model %s besides %q:\nclient:    %q\nforwarded: %q", vals[i], upstream, body, forwarded)
			}
		case k == "stream_options" && chatStream:
			var o struct {
				IncludeUsage bool `json:"include_usage"`
			}
			if json.Unmarshal(vals[i], &o) != nil || !o.IncludeUsage {
				t.Fatalf("forwarded stream_options %s does not ask for usage:\nclient:    %q\nforwarded: %q", vals[i], body, forwarded)
			}
		}
	}
	for k, v := range orig {
		if k == "model" || k == "stream_options" && chatStream {
			continue
		}
		if !bytes.Equal(fwd[k], v) {
			t.Fatalf("member %q changed: %s -> %s\nclient:    %q\nforwarded: %q", k, v, fwd[k], body, forwarded)
		}
	}
	for k := range fwd {
		if _, ok := orig[k]; !ok && !(k == "stream_options" && chatStream) {
			t.Fatalf("member %q added:\nclient:    %q\nforwarded: %q", k, body, forwarded)
		}
	}
	if !chatStream {
		if asked != nil && !*asked {
			t.Fatal("asked = false outside a streamed chat")
		}
		return
	}
	// The client's own stream_options, other than include_usage, survive
	// (re-encoded, so compared as values).
	var before, after map[string]any
	wantAsked := false
	if raw, ok := orig["stream_options"]; ok && json.Unmarshal(raw, &before) == nil && before != nil {
		wantAsked = before["include_usage"] == true
		if json.Unmarshal(fwd["stream_options"], &after) != nil {
			t.Fatalf("forwarded stream_options %s", fwd["stream_options"])
		}
		delete(before, "include_usage")
		delete(after, "include_usage")
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("stream_options changed: %v -> %v", before, after)
		}
	}
	if asked != nil && *asked != wantAsked {
		t.Fatalf("asked = %v, the client's stream_options say %v: %q", *asked, wantAsked, body)
	}
}

func clientSeeds() []struct {
	path int
	body string
} {
	// The shapes of W6 (OpenCode, Cline, Codex, Claude Code) and
	// of the existing tests, shortened, with the fuzz model.
	return []struct {
		path int
		body string
	}{
		{0, `{"model":"fuzz/model","messages":[{"role":"user","content":"Say hello in five words."}],"temperature":0.2}`},
		{0, `{"model":"fuzz/model","max_tokens":32000,"messages":[{"role":"system","content":"You are opencode"},{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"tools":[{"type":"function","function":{"name":"bash","parameters":{"type":"object","properties":{"command":{"type":"string"}}}}}]}`},
		{0, `{"stream_options":{"include_usage":false,"other":1.50},"model":"fuzz/model","stream":true}`},
		{6, `{"stream":true,"model":"fuzz\/model","store":false,"include":["reasoning.encrypted_content"],"x":1.50}`},
		{0, `{"model":"fuzz/model","stream":true,"stream_options":null,"messages":[{"role":"user","content":"h\u00e9"}]}`},
		{0, `{"model":"fuzz/model","stream":"true","messages":[]}`},
		{1, `{"model":"fuzz/model","stream":true,"input":[{"role":"developer","content":"env"},{"role":"user","content":[{"type":"input_text","text":"hi"}]}],"tools":[{"type":"web_search","external_web_access":false}],"tool_choice":"auto","parallel_tool_calls":true,"reasoning":{"summary":"auto"},"store":false,"include":["reasoning.encrypted_content"],"prompt_cache_key":"0f6c","max_output_tokens":4096}`},
		{2, `{"model":"fuzz/model","max_tokens":64000,"stream":true,"thinking":{"type":"adaptive"},"context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]},"output_config":{"effort":"high"},"metadata":{"user_id":"{\"device_id\":\"d\"}"},"system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.197"},{"type":"text","text":"You are Claude Code","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]},{"role":"system","content":"mid-conversation"}]}`},
		{7, `{"model":"fuzz/model","max_tokens":1024,"messages":[{"role":"user","content":"hi"}]}`},
		{8, `{"model":"fuzz/model","max_tokens":32000,"messages":[{"role":"user","content":"hi"}],"stream":true}`},
		{3, `{"model":"fuzz/model","input":"hi","encoding_format":"base64"}`},
		{4, `{"model":"fuzz/model","prompt":"a cat","n":2,"size":"1024x1024"}`},
		{5, `{"model":"fuzz/model","messages":[{"role":"user","content":"foo"}],"tools":[]}`},
		{0, `{"x":{"model":"nested"},"model":"fuzz/model","me\u0074adata":{"k":"v"},"n":-1.5e+3}`},
		{0, ` {"model" : "fuzz/model" , "messages" : [ ] } `},
		{0, `{"model":"other/model","messages":[]}`},
		{0, `{"model":5}`},
		{0, `{"messages":[]}`},
		{3, `{"model":"fuzz/model","input":"hi","stream":true}`},
		{0, `{"model":"fuzz/model"`},
		{0, `[{"model":"fuzz/model"}]`},
	}
}

// FuzzClientBody feeds arbitrary client bodies to the gateway's body
// reader and rewrite, and then to the whole handler with a capturing
// provider. Properties: no panic (the handler's recover would answer 500);
// a refusal is a 4xx JSON error and nothing goes upstream; the members
// read, their values and their repeats are what encoding/json reads; an
// accepted body reaches the upstream with only the model rewritten (and
// include_usage forced on a streamed chat), with no model but the
// upstream's and no stream member that disagrees with the gateway.
func FuzzClientBody(f *testing.F) {
	for _, s := range clientSeeds() {
		f.Add(uint8(s.path), []byte(s.body))
	}
	rig := newClientRig(f)
	f.Fuzz(func(t *testing.T, path uint8, body []byte) {
		p := clientPaths[int(path)%len(clientPaths)]
		fm := formats[route([]byte(p))]

		// The reader, against encoding/json.
		top, scanErr := scanTopLevel(body)
		var obj map[string]json.RawMessage
		if scanErr == nil && (json.Unmarshal(body, &obj) != nil || obj == nil) {
			t.Fatalf("scanner accepted what encoding/json refuses: %q", body)
		}
		model, streamed, repeated, twin := "", false, "", ""
		if scanErr == nil {
			keys, _, err := topLevelValues(body)
			if err != nil {
				t.Fatalf("%v: %q", err, body)
			}
			seen := map[string]bool{}
			for _, k := range keys {
				if readMembers[k] && seen[k] && repeated == "" {
					repeated = k
				}
				seen[k] = true
				for m := range readMembers {
					if !readMembers[k] && strings.EqualFold(k, m) && twin == "" {
						twin = k
					}
				}
			}
			if top.repeated != repeated || top.caseTwin != twin {
				t.Fatalf("repeated member %q, case twin %q; encoding/json's tokens say %q, %q: %q", top.repeated, top.caseTwin, repeated, twin, body)
			}
			for name, sp := range map[string]span{"model": top.model, "stream": top.stream, "stream_options": top.streamOptions,
				"max_tokens": top.maxTokens, "max_output_tokens": top.maxOutputTokens, "input": top.input, "messages": top.messages} {
				raw, has := obj[name]
				if has != sp.ok() || has && !bytes.Equal(body[sp.start:sp.end], raw) {
					t.Fatalf("%s: span %q, encoding/json %q (present %v): %q", name, body[sp.start:sp.end], raw, has, body)
				}
			}
			if raw, ok := obj["model"]; ok {
				var want string
				isString := raw[0] == '"' && json.Unmarshal(raw, &want) == nil
				got, ok := stringValue(raw)
				if ok != isString || ok && utf8.Valid(raw) && got != want {
					t.Fatalf("model %s read as %q (%v), encoding/json reads %q (%v)", raw, got, ok, want, isString)
				}
				model = got
			}
			streamed = string(obj["stream"]) == "true"
			if price := estimate(&testPrices, body, top, ledger.DefaultNanoUSDPerFlow, 1_000_000); price.MicroUSD < 0 || price.MicroFlows < 0 {
				t.Fatalf("negative estimate %+v: %q", price, body)
			}
			if model != "" && repeated == "" && twin == "" {
				// An upstream name that needs escaping now and then.
				name := "up/" + strings.Repeat("é\"", int(path)%3)
				for _, chat := range []bool{false, true} {
					out, asked := upstreamBody(body, top, name, chat)
					checkForwarded(t, body, out, name, chat, &asked)
				}
			}
		}

		// The handler.
		status, answer, call := rig.do(p, body)
		noStream := fm == FormatEmbeddings || fm == FormatImages || fm == FormatCountTokens
		wantOK := scanErr == nil && repeated == "" && twin == "" && model == fuzzModel && !(streamed && noStream)
		if status != 200 {
			if wantOK || status != 400 && status != 404 || call != nil || !json.Valid(answer) {
				t.Fatalf("%s answered %d %s (upstream called: %v) for %q", p, status, answer, call != nil, body)
			}
			return
		}
		if !wantOK || call == nil {
			t.Fatalf("%s answered 200 (upstream called: %v) for %q", p, call != nil, body)
		}
		if call.Format != fm || call.Stream != streamed {
			t.Fatalf("call format %d stream %v, want %d %v: %q", call.Format, call.Stream, fm, streamed, body)
		}
		keys, vals, err := topLevelValues(call.Body)
		if err != nil {
			t.Fatalf("forwarded body: %v: %q", err, call.Body)
		}
		for i, k := range keys {
			if k == "stream" && (string(vals[i]) == "true") != call.Stream {
				t.Fatalf("forwarded body says stream %s, the gateway decided %v:\nclient:    %q\nforwarded: %q", vals[i], call.Stream, body, call.Body)
			}
		}
		checkForwarded(t, body, call.Body, fuzzUpstream, fm == FormatChat && streamed, nil)
	})
}

// ---- Regressions found by the targets above ----------------------------------

// rule Q7, W3.4: a message_delta whose input counts are null (the
// API types them nullable) keeps message_start's counts. Broke: null was
// read as 0, so the request was charged no input and no cache at all.
// Found by FuzzMeterReportedUsage.
func TestMeterAnthropicNullDeltaCountsKept(t *testing.T) {
	rig := newMeterRig(t)
	body := anthStart(`{"input_tokens":32830,"cache_creation_input_tokens":26264,"cache_read_input_tokens":328300,"output_tokens":1}`) +
		anthTextDelta(0, "Hello") +
		anthDelta(`"end_turn"`, `{"input_tokens":null,"cache_creation_input_tokens":null,"cache_read_input_tokens":null,"output_tokens":16415}`) +
		anthStop()
	_, charges := rig.stream(t, FormatMessages, []byte(body), nil, true)
	want := chargeView{In: 32830, Out: 16415, CacheRead: 328300, CacheWrite: 26264, Status: "ok"}
	if got := viewCharges(charges); len(got) != 1 || got[0] != want {
		t.Fatalf("charged %+v, want %+v", got, want)
	}
}

// rule Q7: a 200 non-streamed answer that is not JSON still reaches the
// client, so it is charged an estimate (input from the request, output
// from the bytes delivered). Broke: it was charged nothing, so a client
// whose "stream":"true" (a string) a lenient upstream took for true got a
// whole SSE answer, relayed as a non-streamed body, for free. Found by
// FuzzMeterUnary.
func TestMeterUnparsableAnswerCharged(t *testing.T) {
	rig := newMeterRig(t)
	body := strings.Join(chatStream([]string{"Hello"}, fzChatUsage), "")
	status, out, charges := rig.unary(t, FormatChat, []byte(body), nil)
	if status != 200 || string(out) != body {
		t.Fatalf("answer not relayed: %d %q", status, out)
	}
	want := chargeView{In: estimateTokens(400), Out: estimateTokens(int64(len(body))), Status: "ok", Estimated: true}
	if got := viewCharges(charges); len(got) != 1 || got[0] != want {
		t.Fatalf("charged %+v, want %+v", got, want)
	}
	if _, _, charges := rig.unary(t, FormatChat, nil, nil); len(charges) != 0 {
		t.Fatalf("an empty answer was charged: %+v", viewCharges(charges))
	}
}

// rule P3, M2 (docs/api.md, "Requests": the upstream gets its own model name): a body
// that repeats a member the gateway reads is refused. Broke: the gateway
// read and rewrote only the last occurrence and forwarded the first as
// the client wrote it, so a provider whose parser keeps the first
// occurrence would run the client's own model (or stream flag) instead of
// the one admitted and charged. Found by FuzzClientBody.
func TestClientBodyRepeatedMemberRefused(t *testing.T) {
	rig := newClientRig(t)
	for _, body := range []string{
		`{"model":"gpt-5-pro","model":"fuzz/model","messages":[]}`,
		`{"stream":{},"model":"fuzz/model","stream":true}`,
		`{"model":"fuzz/model","stream":true,"stream_options":{"include_usage":false},"stream_options":{}}`,
		`{"model":"fuzz/model","max_tokens":100000000,"max_tokens":1}`,
		// Names another parser may match ignoring case, as Go's
		// encoding/json does: "Model" would run gpt-5-pro there.
		`{"model":"fuzz/model","Model":"gpt-5-pro","messages":[]}`,
		`{"model":"fuzz/model","ſtream":true,"messages":[]}`,
		`{"model":"fuzz/model","MESSAGES":[],"messages":[]}`,
	} {
		status, answer, call := rig.do("/v1/chat/completions", []byte(body))
		if status != 400 || call != nil || !strings.Contains(string(answer), "invalid_request") {
			t.Errorf("%s: %d %s (upstream called: %v)", body, status, answer, call != nil)
		}
	}
}

// rule P3, M2: a member name written with escapes ("mod\u0065l") is the
// member itself, to the gateway as to every parser upstream. Broke: the
// scanner compared raw names, so {"model":"cheap","mod\u0065l":"other"}
// was admitted and charged as "cheap" while the upstream (last occurrence
// wins) ran "other", and "str\u0065am":true streamed an answer the
// gateway metered as a non-streamed one. Found by reading scanTopLevel
// with FuzzClientBody's round-trip check in mind (which flags it).
func TestClientBodyEscapedMemberName(t *testing.T) {
	rig := newClientRig(t)
	status, answer, call := rig.do("/v1/chat/completions", []byte(`{"model":"fuzz/model","mod\u0065l":"gpt-5-pro","messages":[]}`))
	if status != 400 || call != nil {
		t.Errorf("repeated escaped model: %d %s (upstream called: %v)", status, answer, call != nil)
	}
	body := []byte(`{"mod\u0065l":"fuzz/model","str\u0065am":true,"messages":[]}`)
	status, answer, call = rig.do("/v1/chat/completions", body)
	if status != 200 || call == nil || !call.Stream {
		t.Fatalf("escaped names: %d %s (call %+v)", status, answer, call)
	}
	checkForwarded(t, body, call.Body, fuzzUpstream, true, nil)
}
