package anthropic

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"zenmux/translate"
)

func ptr[T any](v T) *T { return &v }

// jsonEqual compares two JSON texts as parsed values: member order is free.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("JSON differs\n got: %s\nwant: %s", got, want)
	}
}

// claudeCodeRequest is shaped like what Claude Code sends: system blocks
// with cache_control, adaptive thinking with an effort, a mid-conversation
// system message, a tool round trip with thinking and an image.
const claudeCodeRequest = `{
  "model": "claude-opus-4-8", "max_tokens": 64000, "stream": true,
  "thinking": {"type": "adaptive", "display": "omitted"},
  "output_config": {"effort": "high"},
  "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
  "metadata": {"user_id": "{\"device_id\":\"d1\"}"},
  "system": [
    {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197"},
    {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
  ],
  "messages": [
    {"role": "user", "content": [
      {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
      {"type": "text", "text": "what is in a.txt?", "cache_control": {"type": "ephemeral"}},
      {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
      {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    ]},
    {"role": "system", "content": "Be brief."},
    {"role": "assistant", "content": [
      {"type": "thinking", "thinking": "I should read it.", "signature": "sig-1"},
      {"type": "redacted_thinking", "data": "opaque"},
      {"type": "text", "text": "Reading."},
      {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"path": "a.txt", "limit": 10}}
    ]},
    {"role": "user", "content": [
      {"type": "tool_result", "tool_use_id": "toolu_01", "content": [{"type": "text", "text": "hello"}, {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}}]},
      {"type": "tool_result", "tool_use_id": "toolu_01", "content": "no such file", "is_error": true}
    ]}
  ],
  "tools": [
    {"name": "Read", "description": "Reads a file", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}, "cache_control": {"type": "ephemeral"}},
    {"type": "custom", "name": "Bash", "input_schema": {"type": "object"}}
  ],
  "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
  "stop_sequences": ["STOP"], "temperature": 0.5, "top_p": 0.9, "top_k": 40
}`

func TestDecodeRequestClaudeCode(t *testing.T) {
	r, err := Codec.DecodeRequest([]byte(claudeCodeRequest))
	if err != nil {
		t.Fatal(err)
	}
	want := &translate.Request{
		Model: "claude-opus-4-8",
		System: []translate.Part{
			{Type: translate.PartText, Text: "x-anthropic-billing-header: cc_version=2.1.197"},
			{Type: translate.PartText, Text: "You are Claude Code."},
		},
		Messages: []translate.Message{
			{Role: translate.RoleUser, Parts: []translate.Part{
				{Type: translate.PartText, Text: "<system-reminder>ctx</system-reminder>"},
				{Type: translate.PartText, Text: "what is in a.txt?"},
				{Type: translate.PartImage, MediaType: "image/png", Data: "iVBORw0KGgo="},
				{Type: translate.PartImage, URL: "https://example.com/a.png"},
			}},
			{Role: translate.RoleSystem, Parts: []translate.Part{{Type: translate.PartText, Text: "Be brief."}}},
			{Role: translate.RoleAssistant, Parts: []translate.Part{
				{Type: translate.PartThinking, Text: "I should read it.", Signature: "sig-1", Origin: "anthropic"},
				{Type: translate.PartRedactedThinking, Signature: "opaque", Origin: "anthropic"},
				{Type: translate.PartText, Text: "Reading."},
				{Type: translate.PartToolCall, ID: "toolu_01", Name: "Read", Args: `{"path":"a.txt","limit":10}`},
			}},
			{Role: translate.RoleUser, Parts: []translate.Part{
				{Type: translate.PartToolResult, ID: "toolu_01", Name: "Read", Content: []translate.Part{
					{Type: translate.PartText, Text: "hello"},
					{Type: translate.PartImage, MediaType: "image/jpeg", Data: "/9j/"},
				}},
				{Type: translate.PartToolResult, ID: "toolu_01", Name: "Read", IsError: true,
					Content: []translate.Part{{Type: translate.PartText, Text: "no such file"}}},
			}},
		},
		Tools: []translate.Tool{
			{Name: "Read", Description: "Reads a file", Schema: `{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}`},
			{Name: "Bash", Schema: `{"type":"object"}`},
		},
		ToolChoice:        translate.ToolChoice{Mode: translate.ToolAuto},
		ParallelToolCalls: ptr(false),
		MaxTokens:         64000,
		Temperature:       ptr(0.5),
		TopP:              ptr(0.9),
		TopK:              ptr(int64(40)),
		Stop:              []string{"STOP"},
		Stream:            true,
		Reasoning:         &translate.Reasoning{Effort: "high"},
		User:              `{"device_id":"d1"}`,
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}
}

func TestDecodeRequestFields(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	for _, c := range []struct {
		name, body string
		check      func(*translate.Request) bool
	}{
		{"thinking enabled", `{"model":"m","max_tokens":5000,` + msgs + `,"thinking":{"type":"enabled","budget_tokens":2048}}`,
			func(r *translate.Request) bool { return *r.Reasoning == translate.Reasoning{BudgetTokens: 2048} }},
		{"thinking enabled with effort", `{"model":"m","max_tokens":5000,` + msgs + `,"thinking":{"type":"enabled","budget_tokens":2048},"output_config":{"effort":"max"}}`,
			func(r *translate.Request) bool {
				return *r.Reasoning == translate.Reasoning{BudgetTokens: 2048, Effort: "high"}
			}},
		{"adaptive defaults to medium", `{"model":"m","max_tokens":5,` + msgs + `,"thinking":{"type":"adaptive"}}`,
			func(r *translate.Request) bool { return *r.Reasoning == translate.Reasoning{Effort: "medium"} }},
		{"effort alone", `{"model":"m","max_tokens":5,` + msgs + `,"output_config":{"effort":"low"}}`,
			func(r *translate.Request) bool { return *r.Reasoning == translate.Reasoning{Effort: "low"} }},
		{"thinking disabled", `{"model":"m","max_tokens":5,` + msgs + `,"thinking":{"type":"disabled"}}`,
			func(r *translate.Request) bool { return *r.Reasoning == translate.Reasoning{Disabled: true} }},
		{"structured output", `{"model":"m","max_tokens":5,` + msgs + `,"output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}}}`,
			func(r *translate.Request) bool {
				return *r.ResponseFormat == translate.ResponseFormat{Type: "json_schema", Schema: `{"type":"object"}`, Strict: true}
			}},
		{"tool choices", `{"model":"m","max_tokens":5,` + msgs + `,"tool_choice":{"type":"tool","name":"f","disable_parallel_tool_use":false}}`,
			func(r *translate.Request) bool {
				return r.ToolChoice == translate.ToolChoice{Mode: translate.ToolNamed, Name: "f"} && *r.ParallelToolCalls
			}},
		{"any", `{"model":"m","max_tokens":5,` + msgs + `,"tool_choice":{"type":"any"}}`,
			func(r *translate.Request) bool {
				return r.ToolChoice.Mode == translate.ToolRequired && r.ParallelToolCalls == nil
			}},
		{"none", `{"model":"m","max_tokens":5,` + msgs + `,"tool_choice":{"type":"none"}}`,
			func(r *translate.Request) bool { return r.ToolChoice.Mode == translate.ToolNone }},
		{"system string and nulls and hints", `{"model":"m","max_tokens":5,` + msgs + `,"system":"S","temperature":null,"service_tier":"auto","cache_control":{"type":"ephemeral"},"speed":"fast","inference_geo":"us","diagnostics":{}}`,
			func(r *translate.Request) bool {
				return len(r.System) == 1 && r.System[0].Text == "S" && r.Temperature == nil
			}},
		{"escapes", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"a\"b\\c\u00e9\n"}]}`,
			func(r *translate.Request) bool { return r.Messages[0].Parts[0].Text == "a\"b\\c\u00e9\n" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := Codec.DecodeRequest([]byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(r) {
				t.Errorf("got %+v (reasoning %+v, format %+v)", r, r.Reasoning, r.ResponseFormat)
			}
		})
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	for _, c := range []struct{ name, body, param, msg string }{
		{"not json", `{`, "", "the request body is not valid JSON"},
		{"not an object", `[]`, "", "the request body must be a JSON object"},
		{"no max_tokens", `{"model":"m",` + msgs + `}`, "max_tokens", "max_tokens: Field required"},
		{"no model", `{"max_tokens":5,` + msgs + `}`, "model", "model: Field required"},
		{"no messages", `{"model":"m","max_tokens":5}`, "messages", "messages: Field required"},
		{"max_tokens a string", `{"model":"m","max_tokens":"5",` + msgs + `}`, "max_tokens", "max_tokens: Input should be a valid integer"},
		{"max_tokens 0", `{"model":"m","max_tokens":0,` + msgs + `}`, "max_tokens", "max_tokens 0 (prompt cache pre-warming) is not supported"},
		{"bad role", `{"model":"m","max_tokens":5,"messages":[{"role":"tool","content":"x"}]}`, "messages.0.role", "messages.0.role: Input should be"},
		{"no content", `{"model":"m","max_tokens":5,"messages":[{"role":"user"}]}`, "messages.0.content", "messages.0.content: Field required"},
		{"document block", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{}}]}]}`,
			"messages.0.content.0 (a document block)", "messages.0.content.0 (a document block) is not supported"},
		{"server tool use block", `{"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"server_tool_use","id":"s","name":"web_search","input":{}}]}]}`,
			"messages.0.content.0 (a server_tool_use block)", "is not supported"},
		{"search result in a tool result", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"search_result"}]}]}]}`,
			"messages.0.content.0.content.0 (a search_result block)", "is not supported"},
		{"file image", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}`,
			`messages.0.content.0.source (type "file")`, "is not supported"},
		{"tool input not an object", `{"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":"x"}]}]}`,
			"messages.0.content.0.input", "messages.0.content.0.input: Input should be a valid dictionary"},
		{"image in a system message", `{"model":"m","max_tokens":5,"messages":[{"role":"system","content":[{"type":"image","source":{}}]}]}`,
			"messages.0.content.0.type", "a system message holds text blocks only"},
		{"server tool", `{"model":"m","max_tokens":5,` + msgs + `,"tools":[{"type":"web_search_20250305","name":"web_search"}]}`,
			"tools.0 (the web_search_20250305 tool)", "tools.0 (the web_search_20250305 tool) is not supported"},
		{"bash tool", `{"model":"m","max_tokens":5,` + msgs + `,"tools":[{"type":"bash_20250124","name":"bash"}]}`,
			"tools.0 (the bash_20250124 tool)", "is not supported"},
		{"tool without schema", `{"model":"m","max_tokens":5,` + msgs + `,"tools":[{"name":"f"}]}`, "tools.0.input_schema", "tools.0.input_schema: Field required"},
		{"mcp servers", `{"model":"m","max_tokens":5,` + msgs + `,"mcp_servers":[{"type":"url","url":"https://x","name":"x"}]}`, "mcp_servers", "mcp_servers is not supported"},
		{"container", `{"model":"m","max_tokens":5,` + msgs + `,"container":"c1"}`, "container", "container is not supported"},
		{"unknown field", `{"model":"m","max_tokens":5,` + msgs + `,"frequency_penalty":1}`, "frequency_penalty", "frequency_penalty is not supported"},
		{"small budget", `{"model":"m","max_tokens":5,` + msgs + `,"thinking":{"type":"enabled","budget_tokens":100}}`,
			"thinking.enabled.budget_tokens", "greater than or equal to 1024"},
		{"unknown thinking", `{"model":"m","max_tokens":5,` + msgs + `,"thinking":{"type":"between_tools"}}`, `thinking.type "between_tools"`, "is not supported"},
		{"bad effort", `{"model":"m","max_tokens":5,` + msgs + `,"output_config":{"effort":"huge"}}`, "output_config.effort", "output_config.effort: Input should be"},
		{"bad tool choice", `{"model":"m","max_tokens":5,` + msgs + `,"tool_choice":{"type":"some"}}`, "tool_choice.type", "tool_choice.type: Input should be"},
		{"named choice without name", `{"model":"m","max_tokens":5,` + msgs + `,"tool_choice":{"type":"tool"}}`, "tool_choice.name", "tool_choice.name: Field required"},
		{"system not text", `{"model":"m","max_tokens":5,` + msgs + `,"system":[{"type":"image"}]}`, "system.0.type", "system.0.type: Input should be 'text'"},
		{"stop sequences not strings", `{"model":"m","max_tokens":5,` + msgs + `,"stop_sequences":[1]}`, "stop_sequences.0", "stop_sequences.0: Input should be a valid string"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Codec.DecodeRequest([]byte(c.body))
			e := translate.AsError(err)
			if err == nil || e.Status != 400 || e.Kind != translate.ErrInvalidRequest || e.Param != c.param || !strings.Contains(e.Message, c.msg) {
				t.Errorf("got %#v, want 400 param %q with %q", e, c.param, c.msg)
			}
		})
	}
}

func TestEncodeRequest(t *testing.T) {
	text := func(s string) translate.Part { return translate.Part{Type: translate.PartText, Text: s} }
	call := func(id, name, args string) translate.Part {
		return translate.Part{Type: translate.PartToolCall, ID: id, Name: name, Args: args}
	}
	result := func(id, out string) translate.Part {
		return translate.Part{Type: translate.PartToolResult, ID: id, Content: []translate.Part{text(out)}}
	}
	user := func(p ...translate.Part) translate.Message {
		return translate.Message{Role: translate.RoleUser, Parts: p}
	}
	asst := func(p ...translate.Part) translate.Message {
		return translate.Message{Role: translate.RoleAssistant, Parts: p}
	}
	tools := []translate.Tool{{Name: "get", Description: "Gets", Schema: `{"type":"object","properties":{"k":{"type":"string"}}}`}, {Name: "none"}}
	for _, c := range []struct {
		name string
		r    translate.Request
		want string
	}{
		{"defaults", translate.Request{Messages: []translate.Message{user(text("hi"))}},
			`{"model":"up","max_tokens":8192,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`},
		{"everything", translate.Request{
			System:   []translate.Part{text("S1"), text("")},
			Messages: []translate.Message{user(text("hi"), translate.Part{Type: translate.PartImage, MediaType: "image/png", Data: "AAA"}, translate.Part{Type: translate.PartImage, URL: "https://x/a.png"}, translate.Part{Type: translate.PartImage, URL: "data:image/gif;base64,R0lG"})},
			Tools:    tools, ToolChoice: translate.ToolChoice{Mode: translate.ToolNamed, Name: "get"}, ParallelToolCalls: ptr(false),
			MaxTokens: 100, Temperature: ptr(0.2), TopP: ptr(0.8), TopK: ptr(int64(5)), Stop: []string{"END"}, Stream: true, User: "u1",
			ResponseFormat: &translate.ResponseFormat{Type: "json_schema", Name: "x", Schema: `{"type":"object"}`},
		}, `{"model":"up","max_tokens":100,"system":[{"type":"text","text":"S1"}],
			"messages":[{"role":"user","content":[{"type":"text","text":"hi"},
				{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAA"}},
				{"type":"image","source":{"type":"url","url":"https://x/a.png"}},
				{"type":"image","source":{"type":"base64","media_type":"image/gif","data":"R0lG"}}]}],
			"tools":[{"name":"get","description":"Gets","input_schema":{"type":"object","properties":{"k":{"type":"string"}}}},
				{"name":"none","input_schema":{"type":"object","properties":{}}}],
			"tool_choice":{"type":"tool","name":"get","disable_parallel_tool_use":true},
			"temperature":0.2,"top_p":0.8,"top_k":5,"stop_sequences":["END"],"stream":true,"metadata":{"user_id":"u1"},
			"output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}}}`},
		{"tool choice without tools is left out", translate.Request{Messages: []translate.Message{user(text("hi"))}, ToolChoice: translate.ToolChoice{Mode: translate.ToolRequired}},
			`{"model":"up","max_tokens":8192,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`},
		{"parallel off alone", translate.Request{Messages: []translate.Message{user(text("hi"))}, Tools: tools[1:], ParallelToolCalls: ptr(false)},
			`{"model":"up","max_tokens":8192,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],
			"tools":[{"name":"none","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"auto","disable_parallel_tool_use":true}}`},
		{"tool choice none", translate.Request{Messages: []translate.Message{user(text("hi"))}, Tools: tools[1:], ToolChoice: translate.ToolChoice{Mode: translate.ToolNone}, ParallelToolCalls: ptr(false)},
			`{"model":"up","max_tokens":8192,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],
			"tools":[{"name":"none","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"none"}}`},
		{"system messages fold, turns merge, empty and foreign thinking go", translate.Request{
			System: []translate.Part{text("S")},
			Messages: []translate.Message{
				user(text("a")),
				{Role: translate.RoleSystem, Parts: []translate.Part{text("mid")}},
				user(text("b"), text("")),
				asst(translate.Part{Type: translate.PartThinking, Text: "t", Signature: "enc", Origin: "responses"}),
				asst(translate.Part{Type: translate.PartThinking, Text: "u"}, text("c")),
				asst(translate.Part{Type: translate.PartThinking, Text: "v", Signature: "sig", Origin: "anthropic"},
					translate.Part{Type: translate.PartRedactedThinking, Signature: "red", Origin: "anthropic"}),
				user(text("d")),
			}},
			`{"model":"up","max_tokens":8192,"system":[{"type":"text","text":"S"},{"type":"text","text":"mid"}],"messages":[
				{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
				{"role":"assistant","content":[{"type":"text","text":"c"},{"type":"thinking","thinking":"v","signature":"sig"},{"type":"redacted_thinking","data":"red"}]},
				{"role":"user","content":[{"type":"text","text":"d"}]}]}`},
		{"tool results first, error flag, images, ids made valid", translate.Request{Messages: []translate.Message{
			user(text("go")),
			asst(call("functions.get:0", "get", `{"k":"v"}`), call("c2", "none", "")),
			user(text("and then?")),
			user(translate.Part{Type: translate.PartToolResult, ID: "c2", IsError: true, Content: []translate.Part{text("boom")}}),
			user(translate.Part{Type: translate.PartToolResult, ID: "functions.get:0", Content: []translate.Part{text("one"), {Type: translate.PartImage, MediaType: "image/png", Data: "AA"}}}),
		}},
			`{"model":"up","max_tokens":8192,"messages":[
				{"role":"user","content":[{"type":"text","text":"go"}]},
				{"role":"assistant","content":[{"type":"tool_use","id":"functions_get_0","name":"get","input":{"k":"v"}},{"type":"tool_use","id":"c2","name":"none","input":{}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"c2","content":"boom","is_error":true},
					{"type":"tool_result","tool_use_id":"functions_get_0","content":[{"type":"text","text":"one"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA"}}]},
					{"type":"text","text":"and then?"}]}]}`},
		{"a late result moves to the turn after its call", translate.Request{Messages: []translate.Message{
			user(text("go")),
			asst(call("c1", "get", `{}`)),
			user(text("wait")),
			asst(text("ok")),
			user(result("c1", "r")),
			asst(text("done")),
		}},
			`{"model":"up","max_tokens":8192,"messages":[
				{"role":"user","content":[{"type":"text","text":"go"}]},
				{"role":"assistant","content":[{"type":"tool_use","id":"c1","name":"get","input":{}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"c1","content":"r"},{"type":"text","text":"wait"}]},
				{"role":"assistant","content":[{"type":"text","text":"ok"},{"type":"text","text":"done"}]}]}`},
		{"a conversation opening with the assistant gets a user turn first", translate.Request{Messages: []translate.Message{asst(text("Hello! How can I help?")), user(text("hi"))}},
			`{"model":"up","max_tokens":8192,"messages":[{"role":"user","content":[{"type":"text","text":"."}]},
				{"role":"assistant","content":[{"type":"text","text":"Hello! How can I help?"}]},{"role":"user","content":[{"type":"text","text":"hi"}]}]}`},
		{"effort becomes a budget", translate.Request{Messages: []translate.Message{user(text("hi"))}, Reasoning: &translate.Reasoning{Effort: "high"}, Temperature: ptr(0.3), TopK: ptr(int64(3)), TopP: ptr(0.5)},
			`{"model":"up","max_tokens":24576,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"thinking":{"type":"enabled","budget_tokens":16384}}`},
		{"a budget under max_tokens keeps it", translate.Request{Messages: []translate.Message{user(text("hi"))}, MaxTokens: 20000, Reasoning: &translate.Reasoning{BudgetTokens: 500, Effort: "high"}},
			`{"model":"up","max_tokens":20000,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"thinking":{"type":"enabled","budget_tokens":1024}}`},
		{"a small max_tokens grows by the budget", translate.Request{Messages: []translate.Message{user(text("hi"))}, MaxTokens: 1000, Reasoning: &translate.Reasoning{Effort: "minimal"}},
			`{"model":"up","max_tokens":2024,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"thinking":{"type":"enabled","budget_tokens":1024}}`},
		{"disabled", translate.Request{Messages: []translate.Message{user(text("hi"))}, Reasoning: &translate.Reasoning{Disabled: true}, Temperature: ptr(0.0), TopP: ptr(1.0)},
			`{"model":"up","max_tokens":8192,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"thinking":{"type":"disabled"},"temperature":0}`},
		{"a forced tool turns thinking off", translate.Request{Messages: []translate.Message{user(text("hi"))}, Tools: tools[1:], ToolChoice: translate.ToolChoice{Mode: translate.ToolRequired}, Reasoning: &translate.Reasoning{Effort: "low"}},
			`{"model":"up","max_tokens":8192,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"tools":[{"name":"none","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"any"}}`},
		{"a tool loop without signed thinking goes without thinking", translate.Request{Messages: []translate.Message{
			user(text("go")), asst(translate.Part{Type: translate.PartThinking, Text: "x", Signature: "s", Origin: "gemini"}, call("c1", "get", `{}`)), user(result("c1", "r")),
		}, Reasoning: &translate.Reasoning{Effort: "low"}},
			`{"model":"up","max_tokens":8192,"messages":[{"role":"user","content":[{"type":"text","text":"go"}]},
				{"role":"assistant","content":[{"type":"tool_use","id":"c1","name":"get","input":{}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"c1","content":"r"}]}]}`},
		{"a tool loop with signed thinking keeps thinking", translate.Request{Messages: []translate.Message{
			user(text("go")), asst(translate.Part{Type: translate.PartThinking, Text: "x", Signature: "s", Origin: "anthropic"}, call("c1", "get", `{}`)), user(result("c1", "r")),
		}, Reasoning: &translate.Reasoning{Effort: "low"}},
			`{"model":"up","max_tokens":8192,"messages":[{"role":"user","content":[{"type":"text","text":"go"}]},
				{"role":"assistant","content":[{"type":"thinking","thinking":"x","signature":"s"},{"type":"tool_use","id":"c1","name":"get","input":{}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"c1","content":"r"}]}],"thinking":{"type":"enabled","budget_tokens":2048}}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Codec.EncodeRequest([]byte("prefix:"), &c.r, "up")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(got), "prefix:") {
				t.Fatalf("dst not appended to: %s", got)
			}
			jsonEqual(t, got[len("prefix:"):], c.want)
		})
	}
}

func TestEncodeRequestErrors(t *testing.T) {
	text := translate.Part{Type: translate.PartText, Text: "x"}
	call := translate.Part{Type: translate.PartToolCall, ID: "c1", Name: "f", Args: `{}`}
	res := func(id string) translate.Part { return translate.Part{Type: translate.PartToolResult, ID: id} }
	for _, c := range []struct {
		name  string
		r     translate.Request
		param string
		msg   string
	}{
		{"result without call", translate.Request{Messages: []translate.Message{{Role: translate.RoleUser, Parts: []translate.Part{res("nope")}}}},
			"messages", `tool result "nope" answers no tool call of an earlier assistant message`},
		{"result before its call", translate.Request{Messages: []translate.Message{
			{Role: translate.RoleUser, Parts: []translate.Part{res("c1")}}, {Role: translate.RoleAssistant, Parts: []translate.Part{call}}}},
			"messages", `tool result "c1" answers no tool call`},
		{"call without result", translate.Request{Messages: []translate.Message{{Role: translate.RoleUser, Parts: []translate.Part{text}}, {Role: translate.RoleAssistant, Parts: []translate.Part{call}}}},
			"messages", `tool call "c1" (f) has no tool result in the next user message`},
		{"answered twice", translate.Request{Messages: []translate.Message{
			{Role: translate.RoleAssistant, Parts: []translate.Part{call}}, {Role: translate.RoleUser, Parts: []translate.Part{res("c1"), res("c1")}}}},
			"messages", `tool call "c1" is answered twice`},
		{"id used twice", translate.Request{Messages: []translate.Message{
			{Role: translate.RoleAssistant, Parts: []translate.Part{call, call}}}},
			"messages", `tool call id "c1" is used twice`},
		{"args not an object", translate.Request{Messages: []translate.Message{
			{Role: translate.RoleAssistant, Parts: []translate.Part{{Type: translate.PartToolCall, ID: "c1", Name: "f", Args: `[1]`}}},
			{Role: translate.RoleUser, Parts: []translate.Part{res("c1")}}}},
			"messages", `the arguments of tool call "c1" (f) are not a JSON object`},
		{"args cut off", translate.Request{Messages: []translate.Message{
			{Role: translate.RoleAssistant, Parts: []translate.Part{{Type: translate.PartToolCall, ID: "c1", Name: "f", Args: `{"a":`}}},
			{Role: translate.RoleUser, Parts: []translate.Part{res("c1")}}}},
			"messages", `are not a JSON object`},
		{"call without id", translate.Request{Messages: []translate.Message{{Role: translate.RoleAssistant, Parts: []translate.Part{{Type: translate.PartToolCall, Name: "f"}}}}},
			"messages", `tool call "f" has no id`},
		{"json object mode", translate.Request{Messages: []translate.Message{{Role: translate.RoleUser, Parts: []translate.Part{text}}}, ResponseFormat: &translate.ResponseFormat{Type: "json_object"}},
			"response_format json_object", "response_format json_object is not supported when the model is served in the anthropic format"},
		{"temperature out of range", translate.Request{Messages: []translate.Message{{Role: translate.RoleUser, Parts: []translate.Part{text}}}, Temperature: ptr(1.5)},
			"temperature", "temperature 1.5 is out of range"},
		{"unknown effort", translate.Request{Messages: []translate.Message{{Role: translate.RoleUser, Parts: []translate.Part{text}}}, Reasoning: &translate.Reasoning{Effort: "extreme"}},
			"reasoning.effort", `reasoning effort "extreme"`},
		{"nothing to say", translate.Request{System: []translate.Part{text}, Messages: []translate.Message{{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartText}}}}},
			"messages", "at least one user or assistant message with content is required"},
		{"image in system", translate.Request{System: []translate.Part{{Type: translate.PartImage, URL: "u"}}},
			"system (a part that is not text)", "is not supported"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Codec.EncodeRequest(nil, &c.r, "up")
			e := translate.AsError(err)
			if err == nil || e.Status != 400 || e.Param != c.param || !strings.Contains(e.Message, c.msg) {
				t.Errorf("got %#v, want param %q with %q", e, c.param, c.msg)
			}
		})
	}
}

// TestRequestRoundTrip: what a Claude client sends, decoded and encoded
// again for an Anthropic upstream, says the same.
func TestRequestRoundTrip(t *testing.T) {
	r, err := Codec.DecodeRequest([]byte(claudeCodeRequest))
	if err != nil {
		t.Fatal(err)
	}
	r.Messages[3].Parts = r.Messages[3].Parts[:1]
	got, err := Codec.EncodeRequest(nil, r, "claude-up")
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, `{"model":"claude-up","max_tokens":64000,"stream":true,
		"system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.197"},{"type":"text","text":"You are Claude Code."},{"type":"text","text":"Be brief."}],
		"messages":[
			{"role":"user","content":[{"type":"text","text":"<system-reminder>ctx</system-reminder>"},{"type":"text","text":"what is in a.txt?"},
				{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
				{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}]},
			{"role":"assistant","content":[{"type":"thinking","thinking":"I should read it.","signature":"sig-1"},{"type":"redacted_thinking","data":"opaque"},
				{"type":"text","text":"Reading."},{"type":"tool_use","id":"toolu_01","name":"Read","input":{"path":"a.txt","limit":10}}]},
			{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":[{"type":"text","text":"hello"},{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/"}}]}]}],
		"tools":[{"name":"Read","description":"Reads a file","input_schema":{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}},
			{"name":"Bash","input_schema":{"type":"object"}}],
		"tool_choice":{"type":"auto","disable_parallel_tool_use":true},
		"thinking":{"type":"enabled","budget_tokens":16384},
		"stop_sequences":["STOP"],"metadata":{"user_id":"{\"device_id\":\"d1\"}"}}`)
}

// TestEncodeRequestManyCalls: past indexFrom calls the index is a map; the
// pairing is the same.
func TestEncodeRequestManyCalls(t *testing.T) {
	var calls, results []translate.Part
	want := `{"model":"up","max_tokens":8192,"messages":[{"role":"user","content":[{"type":"text","text":"go"}]},{"role":"assistant","content":[`
	wantResults := ""
	for i := range 2 * indexFrom {
		id := "c" + strconv.Itoa(i)
		calls = append(calls, translate.Part{Type: translate.PartToolCall, ID: id, Name: "f", Args: `{}`})
		results = append([]translate.Part{{Type: translate.PartToolResult, ID: id}}, results...)
		if i > 0 {
			want += ","
			wantResults = "," + wantResults
		}
		want += `{"type":"tool_use","id":"` + id + `","name":"f","input":{}}`
		wantResults = `{"type":"tool_result","tool_use_id":"` + id + `"}` + wantResults
	}
	want += `]},{"role":"user","content":[` + wantResults + `]}]}`
	r := translate.Request{Messages: []translate.Message{
		{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartText, Text: "go"}}},
		{Role: translate.RoleAssistant, Parts: calls},
		{Role: translate.RoleUser, Parts: results},
	}}
	got, err := Codec.EncodeRequest(nil, &r, "up")
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, want)
	r.Messages[1].Parts = append(r.Messages[1].Parts, calls[indexFrom+1])
	if _, err := Codec.EncodeRequest(nil, &r, "up"); err == nil || !strings.Contains(err.Error(), `tool call id "c17" is used twice`) {
		t.Errorf("a repeated id: got %v", err)
	}
}
