package e2e

// The real developer tools against the real binary: Claude Code on a model
// an openai-kind provider serves, and Codex on a model an anthropic-kind
// provider serves, each finishing a task that needs one tool call. The
// upstreams are scripted fakes on 127.0.0.1: the first call (no tool result
// in the conversation) asks for the tool that reads a file, the second (with
// the result) answers with the secret the file holds. scripts/realtools.sh
// installs the CLIs and runs this test; it is skipped otherwise.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// rtSecret is what the work dir's file holds; the fake's final answer
// quotes what it finds in the tool result, so the CLI can print it only
// when the whole loop went through.
const rtSecret = "ZENMUX-RT-7f3a9c51e2"

var rtSecretRE = regexp.MustCompile(`ZENMUX-RT-[0-9a-f]{10}`)

// The tool names the real APIs accept.
var (
	rtOpenAIName    = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	rtAnthropicName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)
)

// rtUsage is what a fake reports for one call, in its wire's own terms:
// input excludes cache reads and writes (the ledger's meaning; chat and
// responses report input + cached as their input total).
type rtUsage struct{ input, cacheRead, cacheWrite, output int64 }

// rtFirst and rtSecond are the usages of the tool-call and the final call.
// openai upstreams report no cache writes.
var (
	rtUsageOpenAI    = [2]rtUsage{{input: 800, cacheRead: 400, output: 31}, {input: 500, cacheRead: 1000, output: 17}}
	rtUsageAnthropic = [2]rtUsage{{input: 810, cacheWrite: 300, output: 29}, {input: 61, cacheRead: 1100, cacheWrite: 20, output: 13}}
)

// rtPrice is a model's price in micro-USD per million tokens.
type rtPrice struct{ input, output, cacheRead, cacheWrite int64 }

var (
	rtPriceGPT    = rtPrice{input: 2_000_000, output: 8_000_000, cacheRead: 500_000}
	rtPriceClaude = rtPrice{input: 3_000_000, output: 15_000_000, cacheRead: 300_000, cacheWrite: 3_750_000}
)

// microUSD is M2 for one request, rounded half-up once (M1).
func (p rtPrice) microUSD(u rtUsage) int64 {
	sum := u.input*p.input + u.output*p.output + u.cacheRead*p.cacheRead + u.cacheWrite*p.cacheWrite
	return (sum + 500_000) / 1_000_000
}

// microFlows converts at the default rate of 0.03283 USD a Flow (M3, M4
// standard tier), rounded half-up.
func rtMicroFlows(microUSD int64) int64 {
	const microUSDPerFlow = 32_830
	return (microUSD*1_000_000*2 + microUSDPerFlow) / (2 * microUSDPerFlow)
}

// rtMicro renders a micro-unit amount as the admin API's JSON number does.
func rtMicro(v int64) string {
	s := fmt.Sprintf("%d.%06d", v/1_000_000, v%1_000_000)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// rtExchange is one recorded HTTP call: the request as it arrived and the
// status answered.
type rtExchange struct {
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Header http.Header `json:"header"`
	Body   string      `json:"body"`
	Status int         `json:"status"`
	// Note is what a fake concluded about the call (its phase, or why it
	// refused it).
	Note string `json:"note,omitempty"`
}

// rtLog is a list of exchanges, safe for the servers' goroutines.
type rtLog struct {
	mu  sync.Mutex
	all []rtExchange
}

func (l *rtLog) add(e rtExchange) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.Header.Get("Authorization") != "" {
		e.Header = e.Header.Clone()
		e.Header.Set("Authorization", "<redacted>")
	}
	if e.Header.Get("X-Api-Key") != "" {
		e.Header = e.Header.Clone()
		e.Header.Set("X-Api-Key", "<redacted>")
	}
	l.all = append(l.all, e)
}

func (l *rtLog) list() []rtExchange {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.all)
}

// rtFake is a scripted upstream of one kind ("openai": Chat Completions
// and Responses; "anthropic": Messages). It checks its key and refuses, in
// its API's own error shape, the requests the real API refuses that this
// script can meet: no messages, an Anthropic request without max_tokens, a
// tool result whose call the conversation does not hold.
type rtFake struct {
	kind, key, file string
	usage           [2]rtUsage
	log             rtLog
	srv             *http.Server
	url             string
	// results are the tool results it was given, in order.
	mu      sync.Mutex
	results []string
}

func newRTFake(t *testing.T, kind, key, file string, usage [2]rtUsage) *rtFake {
	t.Helper()
	f := &rtFake{kind: kind, key: key, file: file, usage: usage}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.url = "http://" + ln.Addr().String()
	f.srv = &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	go f.srv.Serve(ln)
	t.Cleanup(func() { f.srv.Close() })
	return f
}

// rtCall is what a fake reads from a request, whatever its wire.
type rtCall struct {
	tools   []string // declared function tool names
	results []rtResult
	calls   map[string]bool // tool call ids the conversation's assistant turns hold
	// refusal is the real API's complaint about the request, if any.
	refusal string
	// thinking: an Anthropic request with extended thinking on, answered
	// with a signed thinking block first, as the API does.
	thinking bool
}

// rtSignature signs the fake's thinking blocks; the API refuses a block
// whose signature it did not issue.
const rtSignature = "rt-signature-EqQBCgIYAhIM"

type rtResult struct{ id, text string }

func (f *rtFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	ex := rtExchange{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: string(body)}
	status, note := f.serve(w, r, body)
	ex.Status, ex.Note = status, note
	f.log.add(ex)
}

func (f *rtFake) serve(w http.ResponseWriter, r *http.Request, body []byte) (int, string) {
	var format string
	switch {
	case f.kind == "openai" && r.Method == "POST" && r.URL.Path == "/v1/chat/completions":
		format = "chat"
	case f.kind == "openai" && r.Method == "POST" && r.URL.Path == "/v1/responses":
		format = "responses"
	case f.kind == "anthropic" && r.Method == "POST" && r.URL.Path == "/v1/messages":
		format = "messages"
	default:
		return f.refuse(w, "", 404, "not_found_error", "no route "+r.Method+" "+r.URL.Path)
	}
	if f.kind == "openai" && r.Header.Get("Authorization") != "Bearer "+f.key ||
		f.kind == "anthropic" && r.Header.Get("X-Api-Key") != f.key {
		return f.refuse(w, format, 401, "authentication_error", "invalid upstream key")
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		return f.refuse(w, format, 400, "invalid_request_error", "body is not JSON: "+err.Error())
	}
	if req["stream"] != true {
		return f.refuse(w, format, 400, "invalid_request_error", "this script answers streamed requests only")
	}
	var c rtCall
	switch format {
	case "chat":
		c = rtReadChat(req)
	case "responses":
		c = rtReadResponses(req)
	default:
		c = rtReadMessages(req)
	}
	if c.refusal != "" {
		return f.refuse(w, format, 400, "invalid_request_error", c.refusal)
	}
	for _, res := range c.results {
		if !c.calls[res.id] {
			return f.refuse(w, format, 400, "invalid_request_error", fmt.Sprintf("tool result %q answers no tool call of the conversation", res.id))
		}
	}
	includeUsage := format != "chat"
	if so, ok := req["stream_options"].(map[string]any); ok && so["include_usage"] == true {
		includeUsage = true
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	if len(c.results) == 0 {
		name, args, ok := rtPickTool(c.tools, f.file)
		if !ok {
			return f.refuse(w, format, 400, "invalid_request_error", fmt.Sprintf("no file-reading tool among %v", c.tools))
		}
		rtStream(w, format, f.usage[0], includeUsage, c.thinking, "", &rtToolCall{id: "call_rt_1", name: name, args: args})
		return 200, "tool call " + name + " " + args
	}
	last := c.results[len(c.results)-1]
	f.mu.Lock()
	f.results = append(f.results, last.text)
	f.mu.Unlock()
	text := "The file holds no secret."
	if s := rtSecretRE.FindString(last.text); s != "" {
		text = "The secret is " + s + "."
	}
	rtStream(w, format, f.usage[1], includeUsage, c.thinking, text, nil)
	return 200, "final answer after tool result " + last.id
}

// refuse answers the real API's error shape for the format.
func (f *rtFake) refuse(w http.ResponseWriter, format string, status int, typ, msg string) (int, string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if f.kind == "anthropic" {
		json.NewEncoder(w).Encode(map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
	} else {
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
	}
	return status, "refused: " + msg
}

// rtPickTool chooses the declared tool that reads a file, with the
// argument shape the CLI declares for it.
func rtPickTool(tools []string, file string) (name, args string, ok bool) {
	enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	switch {
	case slices.Contains(tools, "Read"): // Claude Code
		return "Read", enc(map[string]any{"file_path": file}), true
	case slices.Contains(tools, "exec_command"): // Codex
		return "exec_command", enc(map[string]any{"cmd": "cat " + file}), true
	case slices.Contains(tools, "shell"): // older Codex
		return "shell", enc(map[string]any{"command": []string{"cat", file}}), true
	}
	return "", "", false
}

// rtText flattens a content value (a string, or a list of parts with
// "text" or nested "content") to its text.
func rtText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []any:
		var b strings.Builder
		for i, p := range x {
			if i > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(rtText(p))
		}
		return b.String()
	case map[string]any:
		if s, ok := x["text"].(string); ok {
			return s
		}
		if c, ok := x["content"]; ok {
			return rtText(c)
		}
		if s, ok := x["output"].(string); ok {
			return s
		}
	}
	return ""
}

func rtReadChat(req map[string]any) (c rtCall) {
	c = rtCall{calls: map[string]bool{}}
	for i, t := range rtList(req["tools"]) {
		tm := rtMap(t)
		fn, ok := tm["function"].(map[string]any)
		if tm["type"] != "function" || !ok {
			c.refusal = fmt.Sprintf("Invalid value: '%v'. Supported values are: 'function' and 'custom'. (tools[%d].type)", tm["type"], i)
			return c
		}
		name, _ := fn["name"].(string)
		if !rtOpenAIName.MatchString(name) {
			c.refusal = fmt.Sprintf("Invalid 'tools[%d].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.", i)
			return c
		}
		c.tools = append(c.tools, name)
	}
	if u, ok := req["user"].(string); ok && len(u) > 64 {
		c.refusal = fmt.Sprintf("Invalid 'user': string too long. Expected a string with maximum length 64, but got a string with length %d instead.", len(u))
		return c
	}
	msgs := rtList(req["messages"])
	if len(msgs) == 0 {
		c.refusal = "[] is too short - 'messages'"
		return c
	}
	var open []string // tool calls of the last assistant turn not yet answered
	defer func() {
		if c.refusal == "" && len(open) > 0 {
			c.refusal = "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: " + strings.Join(open, ", ")
		}
	}()
	if _, ok := req["tool_choice"]; ok && len(c.tools) == 0 {
		c.refusal = "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
		return c
	}
	for i, m := range msgs {
		mm := rtMap(m)
		if mm["role"] != "tool" && len(open) > 0 {
			return c // the deferred check names them
		}
		switch mm["role"] {
		case "assistant":
			for j, tc := range rtList(mm["tool_calls"]) {
				id := fmt.Sprint(rtMap(tc)["id"])
				if len(id) > 64 {
					c.refusal = fmt.Sprintf("Invalid 'messages[%d].tool_calls[%d].id': string too long. Expected a string with maximum length 64, but got a string with length %d instead.", i, j, len(id))
					return c
				}
				c.calls[id] = true
				open = append(open, id)
			}
		case "tool":
			id := fmt.Sprint(mm["tool_call_id"])
			if !slices.Contains(open, id) {
				c.refusal = fmt.Sprintf("Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'. (messages[%d])", i)
				return c
			}
			open = slices.DeleteFunc(open, func(o string) bool { return o == id })
			c.results = append(c.results, rtResult{id: id, text: rtText(mm["content"])})
		case "system", "developer", "user":
		default:
			c.refusal = fmt.Sprintf("Invalid value: '%v'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'. (messages[%d].role)", mm["role"], i)
			return c
		}
	}
	return c
}

func rtReadResponses(req map[string]any) rtCall {
	c := rtCall{calls: map[string]bool{}}
	for _, t := range rtList(req["tools"]) {
		if tm := rtMap(t); tm["type"] == "function" {
			c.tools = append(c.tools, fmt.Sprint(tm["name"]))
		}
	}
	for _, it := range rtList(req["input"]) {
		im := rtMap(it)
		switch im["type"] {
		case "function_call":
			c.calls[fmt.Sprint(im["call_id"])] = true
		case "function_call_output":
			id := fmt.Sprint(im["call_id"])
			if !c.calls[id] {
				c.refusal = fmt.Sprintf("No tool call found for function call output with call_id %s.", id)
				return c
			}
			c.results = append(c.results, rtResult{id: id, text: rtText(im["output"])})
		}
	}
	return c
}

func rtReadMessages(req map[string]any) rtCall {
	c := rtCall{calls: map[string]bool{}}
	maxTokens, ok := req["max_tokens"].(float64)
	if !ok {
		c.refusal = "max_tokens: Field required"
		return c
	}
	th := rtMap(req["thinking"])
	if th["type"] == "enabled" {
		if b, _ := th["budget_tokens"].(float64); b < 1024 || b >= maxTokens {
			c.refusal = "`max_tokens` must be greater than `thinking.budget_tokens`, and `thinking.budget_tokens` at least 1024"
			return c
		}
	}
	c.thinking = th["type"] == "enabled" || th["type"] == "adaptive"
	seen := map[string]bool{}
	for i, t := range rtList(req["tools"]) {
		tm := rtMap(t)
		name, _ := tm["name"].(string)
		if typ, ok := tm["type"].(string); ok && typ != "custom" {
			c.tools = append(c.tools, name) // a server tool, checked by its own schema
			continue
		}
		if !rtAnthropicName.MatchString(name) {
			c.refusal = fmt.Sprintf("tools.%d.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'", i)
			return c
		}
		if rtMap(tm["input_schema"])["type"] != "object" {
			c.refusal = fmt.Sprintf("tools.%d.custom.input_schema.type: Input should be 'object'", i)
			return c
		}
		if seen[name] {
			c.refusal = "tools: Tool names must be unique."
			return c
		}
		seen[name] = true
		c.tools = append(c.tools, name)
	}
	msgs := rtList(req["messages"])
	if len(msgs) == 0 {
		c.refusal = "messages: at least one message is required"
		return c
	}
	prev := map[string]bool{} // tool_use ids of the assistant turn just before
	for i, m := range msgs {
		mm := rtMap(m)
		role := mm["role"]
		// Claude Code's mid-conversation "system" turns are a beta the
		// API accepts (W3.8).
		if role != "user" && role != "assistant" && role != "system" {
			c.refusal = fmt.Sprintf("messages.%d.role: Input should be 'user' or 'assistant'", i)
			return c
		}
		uses := map[string]bool{}
		for j, b := range rtList(mm["content"]) {
			bm := rtMap(b)
			switch bm["type"] {
			case "thinking":
				if bm["signature"] != rtSignature {
					c.refusal = fmt.Sprintf("messages.%d.content.%d: Invalid `signature` in `thinking` block", i, j)
					return c
				}
			case "tool_use":
				if role == "assistant" {
					id := fmt.Sprint(bm["id"])
					uses[id], c.calls[id] = true, true
				}
			case "tool_result":
				id := fmt.Sprint(bm["tool_use_id"])
				if !prev[id] {
					c.refusal = fmt.Sprintf("messages.%d.content: unexpected `tool_use_id` found in `tool_result` blocks: %s. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.", i, id)
					return c
				}
				delete(prev, id)
				c.results = append(c.results, rtResult{id: id, text: rtText(bm["content"])})
			}
		}
		if c.thinking && role == "assistant" && len(uses) > 0 && i == rtLastToolTurn(msgs) {
			if first := rtMap(rtList(mm["content"])[0])["type"]; first != "thinking" && first != "redacted_thinking" {
				c.refusal = fmt.Sprintf("messages.%d.content.0.type: Expected `thinking` or `redacted_thinking`, but found `%v`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking", i, first)
				return c
			}
		}
		if len(prev) > 0 {
			var ids []string
			for id := range prev {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			c.refusal = fmt.Sprintf("messages.%d: `tool_use` ids were found without `tool_result` blocks immediately after: %s. Each `tool_use` block must have a corresponding `tool_result` block in the next message.", i, strings.Join(ids, ", "))
			return c
		}
		prev = uses
	}
	return c
}

// rtLastToolTurn is the index of the last assistant message holding a
// tool_use, -1 if none.
func rtLastToolTurn(msgs []any) int {
	for i := len(msgs) - 1; i >= 0; i-- {
		m := rtMap(msgs[i])
		if m["role"] != "assistant" {
			continue
		}
		for _, b := range rtList(m["content"]) {
			if rtMap(b)["type"] == "tool_use" {
				return i
			}
		}
	}
	return -1
}

func rtList(v any) []any { l, _ := v.([]any); return l }

func rtMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

// rtToolCall is the call a fake's first answer makes.
type rtToolCall struct{ id, name, args string }

// rtStream writes an answer as the format's real API streams it: text, or
// one tool call whose arguments arrive in two pieces; then usage.
func rtStream(w http.ResponseWriter, format string, u rtUsage, includeUsage, thinking bool, text string, call *rtToolCall) {
	fl, _ := w.(http.Flusher)
	w.WriteHeader(200)
	send := func(event string, v any) {
		b, _ := json.Marshal(v)
		if event != "" {
			fmt.Fprintf(w, "event: %s\n", event)
		}
		fmt.Fprintf(w, "data: %s\n\n", b)
		if fl != nil {
			fl.Flush()
		}
	}
	var parts []string
	if call != nil {
		cut := len(call.args) / 2
		parts = []string{call.args[:cut], call.args[cut:]}
	} else {
		cut := len(text) / 2
		parts = []string{text[:cut], text[cut:]}
	}
	const model = "upstream-model"
	switch format {
	case "chat":
		chunk := func(delta map[string]any, finish any) map[string]any {
			return map[string]any{"id": "chatcmpl-rt", "object": "chat.completion.chunk", "created": 1767225600, "model": model,
				"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}}
		}
		if call != nil {
			send("", chunk(map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{
				"index": 0, "id": call.id, "type": "function", "function": map[string]any{"name": call.name, "arguments": ""}}}}, nil))
			for _, p := range parts {
				send("", chunk(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "function": map[string]any{"arguments": p}}}}, nil))
			}
			send("", chunk(map[string]any{}, "tool_calls"))
		} else {
			send("", chunk(map[string]any{"role": "assistant", "content": ""}, nil))
			for _, p := range parts {
				send("", chunk(map[string]any{"content": p}, nil))
			}
			send("", chunk(map[string]any{}, "stop"))
		}
		if includeUsage {
			send("", map[string]any{"id": "chatcmpl-rt", "object": "chat.completion.chunk", "created": 1767225600, "model": model, "choices": []any{},
				"usage": map[string]any{"prompt_tokens": u.input + u.cacheRead, "completion_tokens": u.output, "total_tokens": u.input + u.cacheRead + u.output,
					"prompt_tokens_details": map[string]any{"cached_tokens": u.cacheRead}, "completion_tokens_details": map[string]any{"reasoning_tokens": 0}}})
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	case "responses":
		seq := 0
		ev := func(typ string, v map[string]any) {
			v["type"], v["sequence_number"] = typ, seq
			seq++
			send(typ, v)
		}
		resp := func(status string, output []any, usage any) map[string]any {
			return map[string]any{"id": "resp_rt", "object": "response", "created_at": 1767225600, "status": status, "model": model,
				"output": output, "parallel_tool_calls": true, "tool_choice": "auto", "tools": []any{}, "usage": usage}
		}
		ev("response.created", map[string]any{"response": resp("in_progress", []any{}, nil)})
		ev("response.in_progress", map[string]any{"response": resp("in_progress", []any{}, nil)})
		var item map[string]any
		if call != nil {
			item = map[string]any{"type": "function_call", "id": "fc_rt", "call_id": call.id, "name": call.name, "arguments": "", "status": "in_progress"}
			ev("response.output_item.added", map[string]any{"output_index": 0, "item": item})
			for _, p := range parts {
				ev("response.function_call_arguments.delta", map[string]any{"item_id": "fc_rt", "output_index": 0, "delta": p})
			}
			ev("response.function_call_arguments.done", map[string]any{"item_id": "fc_rt", "output_index": 0, "arguments": call.args})
			item = map[string]any{"type": "function_call", "id": "fc_rt", "call_id": call.id, "name": call.name, "arguments": call.args, "status": "completed"}
		} else {
			ev("response.output_item.added", map[string]any{"output_index": 0, "item": map[string]any{"type": "message", "id": "msg_rt", "status": "in_progress", "role": "assistant", "content": []any{}}})
			ev("response.content_part.added", map[string]any{"item_id": "msg_rt", "output_index": 0, "content_index": 0, "part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}})
			for _, p := range parts {
				ev("response.output_text.delta", map[string]any{"item_id": "msg_rt", "output_index": 0, "content_index": 0, "delta": p})
			}
			ev("response.output_text.done", map[string]any{"item_id": "msg_rt", "output_index": 0, "content_index": 0, "text": text})
			part := map[string]any{"type": "output_text", "text": text, "annotations": []any{}}
			ev("response.content_part.done", map[string]any{"item_id": "msg_rt", "output_index": 0, "content_index": 0, "part": part})
			item = map[string]any{"type": "message", "id": "msg_rt", "status": "completed", "role": "assistant", "content": []any{part}}
		}
		ev("response.output_item.done", map[string]any{"output_index": 0, "item": item})
		ev("response.completed", map[string]any{"response": resp("completed", []any{item}, map[string]any{
			"input_tokens": u.input + u.cacheRead, "input_tokens_details": map[string]any{"cached_tokens": u.cacheRead},
			"output_tokens": u.output, "output_tokens_details": map[string]any{"reasoning_tokens": 0}, "total_tokens": u.input + u.cacheRead + u.output})})
	default:
		send("message_start", map[string]any{"type": "message_start", "message": map[string]any{"id": "msg_rt", "type": "message", "role": "assistant", "model": model,
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": u.input, "cache_creation_input_tokens": u.cacheWrite, "cache_read_input_tokens": u.cacheRead, "output_tokens": 1}}})
		stop, i := "end_turn", 0
		if thinking {
			send("content_block_start", map[string]any{"type": "content_block_start", "index": i, "content_block": map[string]any{"type": "thinking", "thinking": "", "signature": ""}})
			send("content_block_delta", map[string]any{"type": "content_block_delta", "index": i, "delta": map[string]any{"type": "thinking_delta", "thinking": "The file holds the answer."}})
			send("content_block_delta", map[string]any{"type": "content_block_delta", "index": i, "delta": map[string]any{"type": "signature_delta", "signature": rtSignature}})
			send("content_block_stop", map[string]any{"type": "content_block_stop", "index": i})
			i++
		}
		if call != nil {
			stop = "tool_use"
			send("content_block_start", map[string]any{"type": "content_block_start", "index": i, "content_block": map[string]any{"type": "tool_use", "id": call.id, "name": call.name, "input": map[string]any{}}})
			for _, p := range parts {
				send("content_block_delta", map[string]any{"type": "content_block_delta", "index": i, "delta": map[string]any{"type": "input_json_delta", "partial_json": p}})
			}
		} else {
			send("content_block_start", map[string]any{"type": "content_block_start", "index": i, "content_block": map[string]any{"type": "text", "text": ""}})
			for _, p := range parts {
				send("content_block_delta", map[string]any{"type": "content_block_delta", "index": i, "delta": map[string]any{"type": "text_delta", "text": p}})
			}
		}
		send("content_block_stop", map[string]any{"type": "content_block_stop", "index": i})
		send("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
			"usage": map[string]any{"input_tokens": u.input, "cache_creation_input_tokens": u.cacheWrite, "cache_read_input_tokens": u.cacheRead, "output_tokens": u.output}})
		send("message_stop", map[string]any{"type": "message_stop"})
	}
}

// rtRecorder stands between a CLI and zenmuxd and keeps what the CLI sent
// (the gateway's fakes see only what it forwards).
func rtRecorder(t *testing.T, target string) (string, *rtLog) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	log := &rtLog{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		sw := &rtStatusWriter{ResponseWriter: w, status: 200}
		rp.ServeHTTP(sw, r)
		log.add(rtExchange{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: string(body), Status: sw.status, Note: rtTail(sw.body.String(), 2000)})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), log
}

// rtStatusWriter keeps the status and the start of a refusal's body.
type rtStatusWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *rtStatusWriter) WriteHeader(s int) { w.status = s; w.ResponseWriter.WriteHeader(s) }

func (w *rtStatusWriter) Write(b []byte) (int, error) {
	if w.status >= 300 && w.body.Len() < 4000 {
		w.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *rtStatusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func rtTail(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// rtSummary describes a recorded request: path, headers and top-level
// body keys, tool names and message roles.
func rtSummary(e rtExchange) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s → %d (%d bytes)", e.Method, e.Path, e.Status, len(e.Body))
	if e.Note != "" {
		fmt.Fprintf(&b, " [%s]", rtTail(e.Note, 600))
	}
	var names []string
	for k := range e.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := strings.Join(e.Header[k], ", ")
		fmt.Fprintf(&b, "\n    %s: %s", k, rtTail(v, 200))
	}
	var body map[string]any
	if json.Unmarshal([]byte(e.Body), &body) == nil {
		var keys []string
		for k := range body {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "\n    body keys: %s", strings.Join(keys, ", "))
		var tools []string
		for _, t := range rtList(body["tools"]) {
			tm := rtMap(t)
			name := tm["name"]
			if fn, ok := tm["function"].(map[string]any); ok {
				name = fn["name"]
			}
			if typ, ok := tm["type"].(string); ok {
				name = typ + ":" + fmt.Sprint(name)
			}
			tools = append(tools, fmt.Sprint(name))
		}
		if tools != nil {
			fmt.Fprintf(&b, "\n    tools: %s", strings.Join(tools, " "))
		}
		for _, k := range []string{"messages", "input"} {
			var roles []string
			for _, m := range rtList(body[k]) {
				mm := rtMap(m)
				var what []string
				for _, f := range []string{"type", "role"} {
					if v, ok := mm[f].(string); ok {
						what = append(what, v)
					}
				}
				roles = append(roles, strings.Join(what, ":"))
			}
			if roles != nil {
				fmt.Fprintf(&b, "\n    %s: %s", k, strings.Join(roles, " "))
			}
		}
		for _, k := range keys {
			switch k {
			case "tools", "messages", "input", "system", "instructions", "metadata", "client_metadata":
				continue
			}
			v, _ := json.Marshal(body[k])
			fmt.Fprintf(&b, "\n    %s = %s", k, rtTail(string(v), 300))
		}
	}
	return b.String()
}

// rtRun runs a CLI in its own process group with a deadline; at the end
// the whole group is killed, so nothing it started outlives the test.
func rtRun(t *testing.T, dir string, env []string, stdin io.Reader, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env, cmd.Stdin = dir, env, stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	if cmd.Process != nil {
		if kerr := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); kerr != nil && !errors.Is(kerr, syscall.ESRCH) {
			t.Errorf("kill the process group of %s: %v", name, kerr)
		}
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%s did not finish within 180 s: %w", filepath.Base(name), ctx.Err())
	}
	rtKillOrphans(t, dir)
	return out.String(), errb.String(), err
}

// rtKillOrphans kills, and reports, any process still working in dir
// after its CLI ended: one that left the CLI's process group (a shell in
// a PTY of its own, a daemon) escapes the group kill.
func rtKillOrphans(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return // no procfs: nothing to look at
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil || cwd != dir && !strings.HasPrefix(cwd, dir+"/") {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		t.Errorf("process %d (%s) outlived its CLI; killed", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// rtBaseEnv is the CLIs' environment: a fresh home, PATH (the Codex
// launcher is a node script), and nothing of the caller's keys.
func rtBaseEnv(home string) []string {
	return []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8", "TERM=dumb", "NO_COLOR=1", "TMPDIR=" + os.TempDir()}
}

func TestRealTools(t *testing.T) {
	if os.Getenv("ZENMUX_REALTOOLS") != "1" {
		t.Skip("set ZENMUX_REALTOOLS=1, ZENMUX_CLAUDE_BIN and ZENMUX_CODEX_BIN (scripts/realtools.sh does)")
	}
	bins := map[string]string{"claude-code": os.Getenv("ZENMUX_CLAUDE_BIN"), "codex": os.Getenv("ZENMUX_CODEX_BIN")}
	for tool, bin := range bins {
		if bin == "" {
			t.Fatalf("%s: no binary given (ZENMUX_CLAUDE_BIN, ZENMUX_CODEX_BIN)", tool)
		}
	}
	// ZENMUX_REALTOOLS_ROUTE=same puts each CLI on a provider of its own
	// format (pass-through), the baseline when the cross pair fails.
	// ZENMUX_REALTOOLS_CODEX_CONFIG is TOML put in Codex's config.toml
	// before its tables (top-level keys, then tables of its own), to see
	// past a refusal of one of the tools Codex declares by default.
	same := os.Getenv("ZENMUX_REALTOOLS_ROUTE") == "same"

	work := t.TempDir()
	file := filepath.Join(work, "secret.txt")
	if err := os.WriteFile(file, []byte(rtSecret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	oa := newRTFake(t, "openai", "up-openai-key-0123456789", file, rtUsageOpenAI)
	an := newRTFake(t, "anthropic", "up-anthropic-key-0123456789", file, rtUsageAnthropic)
	t.Setenv("ZENMUX_RT_OPENAI_KEY", oa.key)
	t.Setenv("ZENMUX_RT_ANTHROPIC_KEY", an.key)
	n := StartNode(t, NodeOptions{Extra: fmt.Sprintf(`
[[providers]]
name = "fake-openai"
kind = "openai"
base_url = "%s/v1"
api_key_env = "ZENMUX_RT_OPENAI_KEY"
first_byte_timeout = "30s"

[[providers]]
name = "fake-anthropic"
kind = "anthropic"
base_url = %q
api_key_env = "ZENMUX_RT_ANTHROPIC_KEY"
first_byte_timeout = "30s"

[[models]]
id = "test/gpt-tools"
provider = "fake-openai"
upstream = "gpt-upstream"
input_usd_per_mtok = 2
output_usd_per_mtok = 8
cache_read_usd_per_mtok = 0.5
plans = ["pro"]

[[models]]
id = "test/claude-tools"
provider = "fake-anthropic"
upstream = "claude-upstream"
input_usd_per_mtok = 3
output_usd_per_mtok = 15
cache_read_usd_per_mtok = 0.3
cache_write_usd_per_mtok = 3.75
plans = ["pro"]
`, oa.url, an.url)})
	acct := wtAccount(t, n, "realtools@example.com")
	wtWant(t, n.AdminDo("POST", "/admin/v1/accounts/"+acct+"/subscription", `{"plan":"pro"}`, "Idempotency-Key: rt-sub"), 200)
	key := Get(wtWant(t, n.AdminDo("POST", "/admin/v1/accounts/"+acct+"/keys", `{"kind":"subscription","name":"realtools"}`), 201), "key")

	type cliCase struct {
		tool, model string
		fake        *rtFake
		price       rtPrice
		run         func(t *testing.T, gateway string) (string, string, error)
	}
	claude := cliCase{tool: "claude-code", model: "test/gpt-tools", fake: oa, price: rtPriceGPT}
	codex := cliCase{tool: "codex", model: "test/claude-tools", fake: an, price: rtPriceClaude}
	if same {
		claude.model, claude.fake, claude.price = "test/claude-tools", an, rtPriceClaude
		codex.model, codex.fake, codex.price = "test/gpt-tools", oa, rtPriceGPT
	}
	prompt := "Read the file " + file + " with your file tool and tell me the secret it holds."
	claude.run = func(t *testing.T, gateway string) (string, string, error) {
		home := t.TempDir()
		env := append(rtBaseEnv(home),
			"ANTHROPIC_BASE_URL="+gateway,
			"ANTHROPIC_AUTH_TOKEN="+key,
			"ANTHROPIC_MODEL="+claude.model,
			"ANTHROPIC_SMALL_FAST_MODEL="+claude.model,
			"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
			"DISABLE_AUTOUPDATER=1",
			"DISABLE_TELEMETRY=1",
			"DISABLE_ERROR_REPORTING=1",
			"CLAUDE_CODE_MAX_RETRIES=0",
		)
		return rtRun(t, work, env, nil, bins["claude-code"], "-p", prompt, "--allowedTools", "Read")
	}
	codex.run = func(t *testing.T, gateway string) (string, string, error) {
		home := t.TempDir()
		codexHome := filepath.Join(home, ".codex")
		if err := os.MkdirAll(codexHome, 0o700); err != nil {
			t.Fatal(err)
		}
		// OpenAI's hosted web search runs only on OpenAI: on a model
		// another provider serves, Codex is told to leave it out
		// (docs/wire.md W6.2); the gateway refuses it naming the field.
		webSearch := ""
		if !same {
			webSearch = `web_search = "disabled"` + "\n"
		}
		cfg := fmt.Sprintf(`model = %q
model_provider = "zenmux"
check_for_update_on_startup = false
%s
%s
[analytics]
enabled = false

[model_providers.zenmux]
name = "ZenMux gateway"
base_url = "%s/v1"
env_key = "ZENMUX_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
supports_websockets = false
`, codex.model, webSearch, os.Getenv("ZENMUX_REALTOOLS_CODEX_CONFIG"), gateway)
		if err := os.WriteFile(filepath.Join(codexHome, "config.toml"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		env := append(rtBaseEnv(home), "CODEX_HOME="+codexHome, "ZENMUX_API_KEY="+key)
		return rtRun(t, work, env, strings.NewReader(""), bins["codex"], "exec", "--skip-git-repo-check", "-s", "read-only", prompt)
	}

	for _, c := range []cliCase{claude, codex} {
		t.Run(c.tool, func(t *testing.T) {
			gateway, sent := rtRecorder(t, n.Proxy)
			upBefore := len(c.fake.log.list())
			c.fake.mu.Lock()
			resultsBefore := len(c.fake.results)
			c.fake.mu.Unlock()
			stdout, stderr, err := c.run(t, gateway)
			t.Logf("%s → %s (%s upstream): exit %v\n--- stdout ---\n%s\n--- stderr ---\n%s", c.tool, c.model, c.fake.kind, err, stdout, rtTail(stderr, 6000))
			for i, e := range sent.list() {
				t.Logf("%s request %d, as the CLI sent it:\n  %s", c.tool, i+1, rtSummary(e))
			}
			up := c.fake.log.list()[upBefore:]
			for i, e := range up {
				t.Logf("%s upstream request %d, as zenmuxd forwarded it:\n  %s", c.tool, i+1, rtSummary(e))
			}
			rtDump(t, c.tool, sent.list(), up)
			if err != nil {
				t.Errorf("%s failed: %v", c.tool, err)
			}
			if want := "The secret is " + rtSecret + "."; !strings.Contains(stdout, want) {
				t.Errorf("%s's output does not contain %q", c.tool, want)
			}
			c.fake.mu.Lock()
			results := slices.Clone(c.fake.results[resultsBefore:])
			c.fake.mu.Unlock()
			if len(results) != 1 || !strings.Contains(results[0], rtSecret) {
				t.Errorf("the upstream got tool results %q, want one holding %q", results, rtSecret)
			}
			var served []rtExchange
			for _, e := range up {
				if e.Status == 200 {
					served = append(served, e)
				}
			}
			if len(served) != 2 || len(up) != 2 {
				t.Fatalf("the upstream answered %d of %d calls; want exactly 2 of 2 (the tool call, then the final answer)", len(served), len(up))
			}
			rtCheckCharges(t, n, acct, c.model, c.fake.usage, c.price)
		})
	}
}

// rtCheckCharges checks the request log's two newest entries for the model:
// the upstream's usage, priced (M2) and converted (M3) exactly, not
// estimated (Q7).
func rtCheckCharges(t *testing.T, n *Node, acct, model string, usage [2]rtUsage, price rtPrice) {
	t.Helper()
	logs := wtWant(t, n.AdminDo("GET", "/admin/v1/accounts/"+acct+"/requests?limit=50", ""), 200)
	var mine []any
	for _, e := range rtList(logs["data"]) {
		if Get(e, "model") == model {
			mine = append(mine, e)
		}
	}
	if len(mine) < 2 {
		t.Fatalf("request log has %d entries for %s, want 2: %v", len(mine), model, logs["data"])
	}
	for i, u := range usage {
		e := mine[1-i] // newest first
		usd := price.microUSD(u)
		want := []string{"input_tokens", fmt.Sprint(u.input), "output_tokens", fmt.Sprint(u.output),
			"cache_read_tokens", fmt.Sprint(u.cacheRead), "cache_write_tokens", fmt.Sprint(u.cacheWrite),
			"usd_value", rtMicro(usd), "flows", rtMicro(rtMicroFlows(usd)),
			"status", "ok", "estimated", "false", "billing", "subscription"}
		for j := 0; j < len(want); j += 2 {
			if got := Get(e, want[j]); got != want[j+1] {
				t.Errorf("%s call %d: %s = %s, want %s (entry %v)", model, i+1, want[j], got, want[j+1], e)
			}
		}
	}
}

// rtDump writes the recorded requests, whole, under
// $ZENMUX_REALTOOLS_RECORD/<tool>/ when that is set.
func rtDump(t *testing.T, tool string, sent, up []rtExchange) {
	dir := os.Getenv("ZENMUX_REALTOOLS_RECORD")
	if dir == "" {
		return
	}
	dir = filepath.Join(dir, tool)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Error(err)
		return
	}
	for _, set := range []struct {
		name string
		ex   []rtExchange
	}{{"cli", sent}, {"upstream", up}} {
		for i, e := range set.ex {
			b, _ := json.MarshalIndent(e, "", " ")
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.json", set.name, i+1)), b, 0o644); err != nil {
				t.Error(err)
			}
		}
	}
}

// The fakes refuse what the real APIs refuse, so TestRealTools cannot pass
// on a request that a real upstream would turn away.
func TestRealToolsFakesRefuse(t *testing.T) {
	dec := func(s string) map[string]any {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	const use = `{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"Read","input":{}}]}`
	const result = `{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"ZENMUX-RT-0123456789"}]}`
	const call = `{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"Read","arguments":"{}"}}]}`
	const tool = `{"role":"tool","tool_call_id":"c1","content":"ZENMUX-RT-0123456789"}`
	for _, c := range []struct {
		format, body, refusal string
	}{
		{"messages", `{"messages":[{"role":"user","content":"hi"}]}`, "max_tokens: Field required"},
		{"messages", `{"max_tokens":10,"messages":[{"role":"user","content":"hi"},` + result + `]}`, "unexpected `tool_use_id`"},
		{"messages", `{"max_tokens":10,"messages":[{"role":"user","content":"hi"},` + use + `,{"role":"user","content":"no result"}]}`, "`tool_use` ids were found without `tool_result` blocks"},
		{"messages", `{"max_tokens":10,"tools":[{"name":"ns.tool","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"hi"}]}`, "tools.0.custom.name"},
		{"messages", `{"max_tokens":10,"thinking":{"type":"enabled","budget_tokens":2000},"messages":[{"role":"user","content":"hi"}]}`, "thinking.budget_tokens"},
		{"messages", `{"max_tokens":10,"messages":[{"role":"user","content":"hi"},` + use + `,` + result + `]}`, ""},
		{"messages", `{"max_tokens":10,"thinking":{"type":"adaptive"},"messages":[{"role":"user","content":"hi"},` + use + `,` + result + `]}`, "Expected `thinking` or `redacted_thinking`, but found `tool_use`"},
		{"messages", `{"max_tokens":10,"thinking":{"type":"adaptive"},"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"x","signature":"forged"}]}]}`, "Invalid `signature`"},
		{"messages", `{"max_tokens":10,"thinking":{"type":"adaptive"},"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"x","signature":"` + rtSignature + `"},{"type":"tool_use","id":"t1","name":"Read","input":{}}]},` + result + `]}`, ""},
		{"chat", `{"messages":[]}`, "too short"},
		{"chat", `{"user":"` + strings.Repeat("u", 65) + `","messages":[{"role":"user","content":"hi"}]}`, "Invalid 'user': string too long"},
		{"chat", `{"messages":[{"role":"user","content":"hi"},` + tool + `]}`, "must be a response to a preceeding message with 'tool_calls'"},
		{"chat", `{"messages":[{"role":"user","content":"hi"},` + call + `,{"role":"user","content":"x"}]}`, "did not have response messages: c1"},
		{"chat", `{"tool_choice":"auto","messages":[{"role":"user","content":"hi"}]}`, "only allowed when 'tools' are specified"},
		{"chat", `{"tools":[{"type":"function","function":{"name":"a.b"}}],"messages":[{"role":"user","content":"hi"}]}`, "tools[0].function.name"},
		{"chat", `{"messages":[{"role":"user","content":"hi"},` + call + `,` + tool + `]}`, ""},
		{"responses", `{"input":[{"type":"function_call_output","call_id":"c9","output":"x"}]}`, "No tool call found"},
	} {
		var got rtCall
		switch c.format {
		case "messages":
			got = rtReadMessages(dec(c.body))
		case "chat":
			got = rtReadChat(dec(c.body))
		default:
			got = rtReadResponses(dec(c.body))
		}
		if c.refusal == "" && (got.refusal != "" || len(got.results) != 1 || got.results[0].text != "ZENMUX-RT-0123456789") {
			t.Errorf("%s %s: refusal %q, results %v; want it accepted with one result", c.format, c.body, got.refusal, got.results)
		}
		if c.refusal != "" && !strings.Contains(got.refusal, c.refusal) {
			t.Errorf("%s %s: refusal %q, want one containing %q", c.format, c.body, got.refusal, c.refusal)
		}
	}
}
