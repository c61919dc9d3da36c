// Package fakeup runs strict fake upstreams on 127.0.0.1 for the gateway's
// tests: OpenAI Chat Completions, OpenAI Responses, Anthropic Messages and
// Gemini generateContent. Each refuses what the real API refuses, with the
// real error shape and status, so a test cannot pass by sending a request
// the real provider would reject; each answers by a script the test picks
// (plain text, a get_weather tool call then an answer quoting its result,
// a description of the image it received, or an error), whole or streamed
// in the real framing, with usage including cache tokens. Every request
// received is recorded. See DESIGN.md.
package fakeup

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Kind is the wire format an upstream speaks.
type Kind string

// Upstream kinds.
const (
	Chat      Kind = "chat"      // POST /v1/chat/completions
	Responses Kind = "responses" // POST /v1/responses
	Anthropic Kind = "anthropic" // POST /v1/messages, /v1/messages/count_tokens
	Gemini    Kind = "gemini"    // POST /v1beta|v1/models/{m}:generateContent, :streamGenerateContent, :countTokens
)

// Script is how an upstream answers a valid request.
type Script uint8

// Scripts.
const (
	// Text answers AnswerText.
	Text Script = iota + 1
	// ToolCall asks for ToolName with ToolArgs while the conversation has
	// no tool result, and answers ToolResultPrefix + the result's text once
	// the last turn carries one.
	ToolCall
	// Image describes the images of the last user turn: "I see a PNG
	// image of WxH pixels" for bytes, "I see the image at URL" for a URL.
	Image
	// Fail answers the status Set gave with the provider's real error body.
	Fail
)

// Scripted words.
const (
	AnswerText       = "Hello from the fake upstream."
	ToolName         = "get_weather"
	ToolArgs         = `{"city":"Paris"}`
	ToolResultPrefix = "The tool said: "
	ImagePrefix      = "I see "
	// CountedTokens is every count_tokens answer.
	CountedTokens = 42
)

// Usage is what an answer reports, in Anthropic's meaning: Input excludes
// cache reads and writes; Output includes reasoning.
type Usage struct {
	Input, CacheRead, CacheWrite, Output int64
}

// UsageOf is the usage every answer of kind reports. Only Anthropic
// reports cache writes; OpenAI and Gemini report cache reads as part of
// their prompt count (and Gemini 7 of the 50 output tokens as thoughts).
func UsageOf(k Kind) Usage {
	u := Usage{Input: 1000, CacheRead: 300, Output: 50}
	if k == Anthropic {
		u.CacheWrite = 200
	}
	return u
}

// Received is one request the upstream got and how it answered.
type Received struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
	Status              int
	// Refusal is the message of a refusal (empty for a 200 or a scripted
	// failure).
	Refusal string
	// IncludeUsage: a streamed chat request asked for
	// stream_options.include_usage.
	IncludeUsage bool
}

// Upstream is one running fake.
type Upstream struct {
	Kind  Kind
	URL   string // http://127.0.0.1:port, no path
	Key   string // the provider key it requires
	Model string // the only model it serves

	srv *httptest.Server

	mu       sync.Mutex
	script   Script
	status   int
	received []Received
	serial   int
}

// Start runs a fake of kind serving model to holders of key; it stops when
// tb's test ends. Its script is Text until Set.
func Start(tb testing.TB, kind Kind, key, model string) *Upstream {
	u := &Upstream{Kind: kind, Key: key, Model: model, script: Text}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	u.URL = u.srv.URL
	tb.Cleanup(u.srv.Close)
	return u
}

// Set picks the script of the next answers; status is Fail's (400, 429,
// 500, 503, 529…) and ignored by the others.
func (u *Upstream) Set(s Script, status int) {
	u.mu.Lock()
	u.script, u.status = s, status
	u.mu.Unlock()
}

// Requests returns a copy of what the upstream received, oldest first.
func (u *Upstream) Requests() []Received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Received(nil), u.received...)
}

// Reset forgets the requests received.
func (u *Upstream) Reset() {
	u.mu.Lock()
	u.received = nil
	u.mu.Unlock()
}

func (u *Upstream) nextID() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.serial++
	return u.serial
}

// refusal is an error answer, neutral of format until written.
type refusal struct {
	status int
	// typ is the OpenAI or Anthropic error type, or Gemini's status.
	typ   string
	msg   string
	param string
	code  string
}

// convo is what a valid request asks, as the scripts need it.
type convo struct {
	stream       bool
	includeUsage bool
	tools        []string
	// toolResult is the text of a tool result in the last user turn.
	toolResult *string
	// images describe the images of the last user turn.
	images []string
	// count: a count_tokens call.
	count bool
}

// answer is what the script says: text, or a call of ToolName.
type answer struct {
	text   string
	call   bool
	callID string
}

func (u *Upstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	rec := Received{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}
	var c *convo
	var ref *refusal
	var gm geminiCall
	switch u.Kind {
	case Chat:
		c, ref = u.chatRequest(r, body)
	case Responses:
		c, ref = u.responsesRequest(r, body)
	case Anthropic:
		c, ref = u.anthropicRequest(r, body)
	case Gemini:
		gm, c, ref = u.geminiRequest(r, body)
	}
	if c != nil {
		rec.IncludeUsage = c.includeUsage
	}
	u.mu.Lock()
	script, status := u.script, u.status
	u.mu.Unlock()
	if ref == nil && script == Fail && !(c != nil && c.count) {
		ref = u.scriptedFailure(status)
	} else if ref != nil {
		rec.Refusal = ref.msg
	}
	if ref != nil {
		rec.Status = ref.status
		u.record(rec)
		u.writeRefusal(w, ref)
		return
	}
	rec.Status = 200
	u.record(rec)
	if c.count {
		u.writeCount(w)
		return
	}
	a := u.decide(script, c)
	switch u.Kind {
	case Chat:
		u.chatAnswer(w, c, a)
	case Responses:
		u.responsesAnswer(w, c, a)
	case Anthropic:
		u.anthropicAnswer(w, c, a)
	case Gemini:
		u.geminiAnswer(w, c, a, gm)
	}
}

func (u *Upstream) record(rec Received) {
	u.mu.Lock()
	u.received = append(u.received, rec)
	u.mu.Unlock()
}

func (u *Upstream) decide(s Script, c *convo) answer {
	switch s {
	case ToolCall:
		if c.toolResult != nil {
			return answer{text: ToolResultPrefix + *c.toolResult}
		}
		for _, t := range c.tools {
			if t == ToolName {
				return answer{call: true}
			}
		}
		return answer{text: "no " + ToolName + " tool was declared"}
	case Image:
		if len(c.images) == 0 {
			return answer{text: "no image arrived"}
		}
		return answer{text: ImagePrefix + strings.Join(c.images, " and ")}
	}
	return answer{text: AnswerText}
}

func (u *Upstream) writeCount(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	if u.Kind == Gemini {
		fmt.Fprintf(w, `{"totalTokens":%d,"promptTokensDetails":[{"modality":"TEXT","tokenCount":%d}]}`, CountedTokens, CountedTokens)
		return
	}
	fmt.Fprintf(w, `{"input_tokens":%d}`, CountedTokens)
}

// FailureMessage is the message of the error a Fail script answers with
// status on an upstream of kind serving model.
func FailureMessage(kind Kind, model string, status int) string {
	return (&Upstream{Kind: kind, Model: model}).scriptedFailure(status).msg
}

// scriptedFailure is the real body of each provider's usual error at
// status.
func (u *Upstream) scriptedFailure(status int) *refusal {
	switch u.Kind {
	case Anthropic:
		switch {
		case status == 429:
			return &refusal{status: 429, typ: "rate_limit_error", msg: "This request would exceed the rate limit for your organization of 50 requests per minute."}
		case status == 529:
			return &refusal{status: 529, typ: "overloaded_error", msg: "Overloaded"}
		case status >= 500:
			return &refusal{status: status, typ: "api_error", msg: "Internal server error"}
		}
		return &refusal{status: status, typ: "invalid_request_error", msg: "messages.0.content: scripted refusal"}
	case Gemini:
		switch {
		case status == 429:
			return &refusal{status: 429, typ: "RESOURCE_EXHAUSTED", msg: "Resource has been exhausted (e.g. check quota)."}
		case status == 503:
			return &refusal{status: 503, typ: "UNAVAILABLE", msg: "The model is overloaded. Please try again later."}
		case status >= 500:
			return &refusal{status: status, typ: "INTERNAL", msg: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"}
		}
		return &refusal{status: status, typ: "INVALID_ARGUMENT", msg: "Request contains an invalid argument."}
	}
	switch {
	case status == 429:
		return &refusal{status: 429, typ: "requests", code: "rate_limit_exceeded", msg: "Rate limit reached for " + u.Model + " on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s."}
	case status >= 500:
		return &refusal{status: status, typ: "server_error", msg: "The server had an error while processing your request. Sorry about that!"}
	}
	return &refusal{status: status, typ: "invalid_request_error", param: "messages", code: "invalid_value", msg: "Invalid 'messages': scripted refusal."}
}

func (u *Upstream) writeRefusal(w http.ResponseWriter, e *refusal) {
	w.Header().Set("Content-Type", "application/json")
	if e.status == 429 {
		w.Header().Set("Retry-After", "20")
	}
	var b []byte
	switch u.Kind {
	case Anthropic:
		id := fmt.Sprintf("req_fake%d", u.nextID())
		w.Header().Set("request-id", id)
		b, _ = json.Marshal(map[string]any{"type": "error", "error": map[string]any{"type": e.typ, "message": e.msg}, "request_id": id})
	case Gemini:
		b, _ = json.Marshal(map[string]any{"error": map[string]any{"code": e.status, "message": e.msg, "status": e.typ}})
	default:
		b, _ = json.Marshal(map[string]any{"error": map[string]any{"message": e.msg, "type": e.typ, "param": nullable(e.param), "code": nullable(e.code)}})
	}
	w.WriteHeader(e.status)
	w.Write(b)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ---- JSON helpers ----------------------------------------------------------

type obj = map[string]any

func decode(b []byte) (obj, bool) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m obj
	if d.Decode(&m) != nil || m == nil {
		return nil, false
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, false
	}
	return m, true
}

func str(v any) (string, bool) {
	s, ok := v.(string)
	return s, ok
}

func arr(v any) ([]any, bool) {
	a, ok := v.([]any)
	return a, ok
}

func object(v any) (obj, bool) {
	o, ok := v.(obj)
	return o, ok && o != nil
}

func integer(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

// unknownKey returns the first member of o (in sorted order, so refusals
// are stable) not in allowed.
func unknownKey(o obj, allowed ...string) string {
	var bad []string
	for k := range o {
		found := false
		for _, a := range allowed {
			if k == a {
				found = true
				break
			}
		}
		if !found {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return ""
	}
	first := bad[0]
	for _, k := range bad[1:] {
		if k < first {
			first = k
		}
	}
	return first
}

// objectSchema reports whether s is a JSON Schema of type object (or
// absent, meaning no parameters).
func objectSchema(s any) bool {
	if s == nil {
		return true
	}
	o, ok := object(s)
	if !ok {
		return false
	}
	t, _ := str(o["type"])
	return t == "object"
}

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// describeImage checks base64 image bytes of mediaType and describes them;
// ok is false when the bytes are not valid base64 or not the type said.
func describeImage(mediaType, data string) (string, bool) {
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil || len(b) == 0 {
		return "", false
	}
	if bytes.HasPrefix(b, pngMagic) && len(b) >= 24 && string(b[12:16]) == "IHDR" {
		if mediaType != "" && mediaType != "image/png" {
			return "", false
		}
		return fmt.Sprintf("a PNG image of %dx%d pixels", binary.BigEndian.Uint32(b[16:20]), binary.BigEndian.Uint32(b[20:24])), true
	}
	if mediaType == "image/png" {
		return "", false
	}
	return fmt.Sprintf("an image of %d bytes", len(b)), true
}

// dataURL splits a data: URL of an image into its media type and base64
// data.
func dataURL(s string) (mediaType, data string, ok bool) {
	rest, found := strings.CutPrefix(s, "data:")
	if !found {
		return "", "", false
	}
	head, data, found := strings.Cut(rest, ",")
	if !found {
		return "", "", false
	}
	mediaType, found = strings.CutSuffix(head, ";base64")
	if !found || !strings.HasPrefix(mediaType, "image/") {
		return "", "", false
	}
	return mediaType, data, true
}

func httpURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}

// textOf joins the text of a string or of an array of parts whose text is
// under key "text" (tool results of every OpenAI and Anthropic shape).
func textOf(v any) string {
	if s, ok := str(v); ok {
		return s
	}
	var b strings.Builder
	a, _ := arr(v)
	for _, p := range a {
		if o, ok := object(p); ok {
			if s, ok := str(o["text"]); ok {
				b.WriteString(s)
			}
		}
	}
	return b.String()
}

// pieces splits s into n parts for streaming (some may be short).
func pieces(s string, n int) []string {
	out := make([]string, 0, n)
	step := (len(s) + n - 1) / n
	for i := 0; i < len(s); i += step {
		out = append(out, s[i:min(i+step, len(s))])
	}
	return out
}

// sse writes server-sent events and flushes after each.
type sse struct {
	w http.ResponseWriter
	f http.Flusher
}

func startSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(200)
	f, _ := w.(http.Flusher)
	return &sse{w: w, f: f}
}

// event writes one event; name "" writes a data-only event. sep is the
// line ending ("\n", or Gemini's "\r\n").
func (s *sse) event(name string, v any, sep string) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	s.raw(name, b, sep)
}

func (s *sse) raw(name string, data []byte, sep string) {
	var buf bytes.Buffer
	if name != "" {
		buf.WriteString("event: " + name + sep)
	}
	buf.WriteString("data: ")
	buf.Write(data)
	buf.WriteString(sep + sep)
	s.w.Write(buf.Bytes())
	if s.f != nil {
		s.f.Flush()
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(200)
	w.Write(b)
}
