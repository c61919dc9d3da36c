package responses

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"zenmux/translate"
)

// jsonEqual compares two JSON texts as parsed values.
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
		gi, _ := json.MarshalIndent(g, "", " ")
		wi, _ := json.MarshalIndent(w, "", " ")
		t.Fatalf("JSON differs\ngot:  %s\nwant: %s", gi, wi)
	}
}

func ptr[T any](v T) *T { return &v }

// codexRequest is a Codex-like request: instructions, leading developer
// messages, a reasoning item, a tool round trip and an image.
const codexRequest = `{
 "model": "zen-claude",
 "instructions": "You are a coding agent.",
 "input": [
  {"type":"message","role":"developer","content":[{"type":"input_text","text":"sandbox: read-only"}]},
  {"role":"user","content":"<env>cwd=/w</env>"},
  {"type":"message","role":"user","content":[{"type":"input_text","text":"list files"},{"type":"input_image","image_url":"data:image/png;base64,iVBORw0K","detail":"low"},{"type":"input_image","image_url":"https://x.test/a.jpg","detail":"auto"}]},
  {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"Plan"},{"type":"summary_text","text":"Run ls"}],"encrypted_content":"gAAAA=="},
  {"type":"message","role":"assistant","id":"msg_1","status":"completed","content":[{"type":"output_text","text":"Listing.","annotations":[]}]},
  {"type":"function_call","id":"fc_1","call_id":"call_1","name":"exec_command","arguments":"{\"cmd\":\"ls\"}"},
  {"type":"function_call","call_id":"call_2","name":"view_image","arguments":""},
  {"type":"function_call_output","call_id":"call_1","output":"a.go\nb.go"},
  {"type":"function_call_output","call_id":"call_2","output":[{"type":"input_text","text":"img:"},{"type":"input_image","image_url":"data:image/jpeg;base64,/9j/"}]},
  {"role":"user","content":"thanks"},
  {"role":"system","content":"be brief"},
  {"type":"reasoning","summary":[],"encrypted_content":"zmx1:t:anthropic:sigA"},
  {"type":"reasoning","summary":[],"encrypted_content":"zmx1:r:anthropic:dataB"}
 ],
 "tools": [{"type":"function","name":"exec_command","description":"Run a command","parameters":{"type":"object","properties":{"cmd":{"type":"string"}},"required":["cmd"]},"strict":false},
           {"type":"function","name":"view_image","parameters":null,"strict":true}],
 "tool_choice": "auto",
 "parallel_tool_calls": true,
 "reasoning": {"effort":"high","summary":"auto"},
 "text": {"format":{"type":"json_schema","name":"out","schema":{"type":"object"},"strict":true},"verbosity":"low"},
 "max_output_tokens": 4096,
 "temperature": 0.5,
 "top_p": 1,
 "stream": true,
 "store": false,
 "include": ["reasoning.encrypted_content"],
 "prompt_cache_key": "k",
 "client_metadata": {"a":"b"},
 "metadata": {"x":"y"},
 "service_tier": "auto",
 "stream_options": {"include_obfuscation": false},
 "user": "old-user",
 "safety_identifier": "user-1"
}`

func TestDecodeRequest(t *testing.T) {
	got, err := Codec.DecodeRequest([]byte(codexRequest))
	if err != nil {
		t.Fatal(err)
	}
	text := func(s string) translate.Part { return translate.Part{Type: translate.PartText, Text: s} }
	want := &translate.Request{
		Model:  "zen-claude",
		System: []translate.Part{text("You are a coding agent."), text("sandbox: read-only")},
		Messages: []translate.Message{
			{Role: translate.RoleUser, Parts: []translate.Part{
				text("<env>cwd=/w</env>"), text("list files"),
				{Type: translate.PartImage, MediaType: "image/png", Data: "iVBORw0K"},
				{Type: translate.PartImage, URL: "https://x.test/a.jpg"},
			}},
			{Role: translate.RoleAssistant, Parts: []translate.Part{
				{Type: translate.PartThinking, Text: "Plan\n\nRun ls", Signature: "gAAAA==", Origin: "responses"},
				text("Listing."),
				{Type: translate.PartToolCall, ID: "call_1", Name: "exec_command", Args: `{"cmd":"ls"}`},
				{Type: translate.PartToolCall, ID: "call_2", Name: "view_image", Args: `{}`},
			}},
			{Role: translate.RoleUser, Parts: []translate.Part{
				{Type: translate.PartToolResult, ID: "call_1", Name: "exec_command", Content: []translate.Part{text("a.go\nb.go")}},
				{Type: translate.PartToolResult, ID: "call_2", Name: "view_image", Content: []translate.Part{
					text("img:"), {Type: translate.PartImage, MediaType: "image/jpeg", Data: "/9j/"}}},
			}},
			{Role: translate.RoleUser, Parts: []translate.Part{text("thanks")}},
			{Role: translate.RoleSystem, Parts: []translate.Part{text("be brief")}},
			{Role: translate.RoleAssistant, Parts: []translate.Part{
				{Type: translate.PartThinking, Signature: "sigA", Origin: "anthropic"},
				{Type: translate.PartRedactedThinking, Signature: "dataB", Origin: "anthropic"},
			}},
		},
		Tools: []translate.Tool{
			{Name: "exec_command", Description: "Run a command", Schema: `{"type":"object","properties":{"cmd":{"type":"string"}},"required":["cmd"]}`},
			{Name: "view_image"},
		},
		ToolChoice:        translate.ToolChoice{Mode: translate.ToolAuto},
		ParallelToolCalls: ptr(true),
		MaxTokens:         4096,
		Temperature:       ptr(0.5),
		TopP:              ptr(1.0),
		Stream:            true,
		Reasoning:         &translate.Reasoning{Effort: "high", Summary: "auto"},
		ResponseFormat:    &translate.ResponseFormat{Type: "json_schema", Name: "out", Schema: `{"type":"object"}`, Strict: true},
		User:              "user-1",
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("got  %s\nwant %s", g, w)
	}
}

func TestDecodeRequestSmall(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       *translate.Request
	}{
		{"string input", `{"model":"m","input":"hi"}`, &translate.Request{Model: "m",
			Messages: []translate.Message{{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartText, Text: "hi"}}}}}},
		{"effort none, named tool, json_object, user", `{"model":"m","input":"hi","reasoning":{"effort":"none"},"tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"function","name":"f"},"text":{"format":{"type":"json_object"}},"user":"u","truncation":"disabled","background":false,"previous_response_id":null,"max_tool_calls":3}`,
			&translate.Request{Model: "m", Messages: []translate.Message{{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartText, Text: "hi"}}}},
				Tools: []translate.Tool{{Name: "f"}}, ToolChoice: translate.ToolChoice{Mode: translate.ToolNamed, Name: "f"},
				Reasoning: &translate.Reasoning{Disabled: true}, ResponseFormat: &translate.ResponseFormat{Type: "json_object"}, User: "u"}},
		{"required, summary only, text format", `{"model":"m","input":[],"tool_choice":"required","reasoning":{"summary":"detailed"},"text":{"format":{"type":"text"}}}`,
			&translate.Request{Model: "m", Messages: []translate.Message{}, ToolChoice: translate.ToolChoice{Mode: translate.ToolRequired},
				Reasoning: &translate.Reasoning{Summary: "detailed"}}},
		{"refusal in history", `{"model":"m","input":[{"role":"assistant","content":[{"type":"refusal","refusal":"no"}]}]}`,
			&translate.Request{Model: "m", Messages: []translate.Message{{Role: translate.RoleAssistant, Parts: []translate.Part{{Type: translate.PartText, Text: "no"}}}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Codec.DecodeRequest([]byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	for _, c := range []struct{ body, param, msg string }{
		{`nope`, "", "not valid JSON"},
		{`[1]`, "", "JSON object"},
		{`{"input":"hi"}`, "model", "model is required"},
		{`{"model":"m"}`, "input", "input is required"},
		{`{"model":"m","input":"x","previous_response_id":"resp_1"}`, "previous_response_id", "not supported"},
		{`{"model":"m","input":"x","conversation":"conv_1"}`, "conversation", "not supported"},
		{`{"model":"m","input":"x","prompt":{"id":"p"}}`, "prompt", "not supported"},
		{`{"model":"m","input":"x","background":true}`, "background", "not supported"},
		{`{"model":"m","input":"x","truncation":"auto"}`, "truncation", "not supported"},
		{`{"model":"m","input":"x","top_logprobs":2}`, "top_logprobs", "not supported"},
		{`{"model":"m","input":"x","include":["message.output_text.logprobs"]}`, "include", "not supported"},
		{`{"model":"m","input":"x","frobnicate":1}`, "frobnicate", "unknown parameter"},
		{`{"model":"m","input":"x","tools":[{"type":"function","name":"f"},{"type":"web_search","external_web_access":false}]}`, "tools[1].type", `"web_search" tools`},
		{`{"model":"m","input":"x","tools":[{"type":"namespace","name":"ns","tools":[{"type":"custom","name":"g"}]}]}`, "tools[0].tools[0].type", `"custom" tools`},
		{`{"model":"m","input":"x","tools":[{"type":"function"}]}`, "tools[0].name", "required"},
		{`{"model":"m","input":"x","tool_choice":{"type":"allowed_tools","tools":[]}}`, "tool_choice.type", "not supported"},
		{`{"model":"m","input":"x","tool_choice":{"type":"web_search_preview"}}`, "tool_choice.type", "not supported"},
		{`{"model":"m","input":"x","tool_choice":"sometimes"}`, "tool_choice", "must be"},
		{`{"model":"m","input":[{"type":"item_reference","id":"msg_1"}]}`, "input[0].type", "not supported"},
		{`{"model":"m","input":[{"type":"web_search_call","id":"ws_1"}]}`, "input[0].type", "not supported"},
		{`{"model":"m","input":[{"role":"tool","content":"x"}]}`, "input[0].role", "must be"},
		{`{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"file-1"}]}]}`, "input[0].content[0].file_id", "not supported"},
		{`{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_data":"x"}]}]}`, "input[0].content[0].type", "not supported"},
		{`{"model":"m","input":[{"role":"user","content":[{"type":"input_image","image_url":"data:image/png,abc"}]}]}`, "input[0].content[0].image_url", "base64"},
		{`{"model":"m","input":[{"role":"assistant","content":[{"type":"input_image","image_url":"https://x"}]}]}`, "input[0].content[0].type", "only a user message"},
		{`{"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]}`, "input[0].call_id", "required"},
		{`{"model":"m","input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{}","namespace":""}]}`, "input[0].namespace", "non-empty"},
		{`{"model":"m","input":[{"type":"function_call_output","call_id":"c"}]}`, "input[0].output", "required"},
		{`{"model":"m","input":[{"type":"reasoning","summary":[{"type":"x"}]}]}`, "input[0].summary[0]", "summary_text"},
		{`{"model":"m","input":"x","max_output_tokens":0}`, "max_output_tokens", "positive integer"},
		{`{"model":"m","input":"x","temperature":3}`, "temperature", "from 0 to 2"},
		{`{"model":"m","input":"x","reasoning":{"effort":"huge"}}`, "reasoning.effort", "must be"},
		{`{"model":"m","input":"x","text":{"format":{"type":"json_schema","schema":{}}}}`, "text.format.name", "required"},
		{`{"model":"m","input":"x","text":{"verbosity":"loud"}}`, "text.verbosity", "must be"},
	} {
		_, err := Codec.DecodeRequest([]byte(c.body))
		e, ok := err.(*translate.Error)
		if !ok {
			t.Errorf("%s: error %v, want *translate.Error", c.body, err)
			continue
		}
		if e.Status != 400 || e.Kind != translate.ErrInvalidRequest || e.Param != c.param || !strings.Contains(e.Message, c.msg) {
			t.Errorf("%s: got %d %q %q, want 400 %q containing %q", c.body, e.Status, e.Param, e.Message, c.param, c.msg)
		}
	}
}

func TestEncodeRequest(t *testing.T) {
	req, err := Codec.DecodeRequest([]byte(codexRequest))
	if err != nil {
		t.Fatal(err)
	}
	req.Messages[0].Parts = append(req.Messages[0].Parts, translate.Part{Type: translate.PartToolResult, ID: "c9", IsError: true,
		Content: []translate.Part{{Type: translate.PartText, Text: "boom"}}})
	req.Messages[5].Parts = append(req.Messages[5].Parts, translate.Part{Type: translate.PartThinking, Text: "gemini thought", Signature: "g", Origin: "gemini"})
	got, err := Codec.EncodeRequest(nil, req, "gpt-5")
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, `{
 "model":"gpt-5",
 "instructions":"You are a coding agent.\n\nsandbox: read-only",
 "input":[
  {"type":"message","role":"user","content":[{"type":"input_text","text":"<env>cwd=/w</env>"},{"type":"input_text","text":"list files"},
    {"type":"input_image","image_url":"data:image/png;base64,iVBORw0K","detail":"auto"},{"type":"input_image","image_url":"https://x.test/a.jpg","detail":"auto"}]},
  {"type":"function_call_output","call_id":"c9","output":"Error: boom"},
  {"type":"reasoning","summary":[{"type":"summary_text","text":"Plan\n\nRun ls"}],"encrypted_content":"gAAAA=="},
  {"type":"message","role":"assistant","content":"Listing."},
  {"type":"function_call","call_id":"call_1","name":"exec_command","arguments":"{\"cmd\":\"ls\"}"},
  {"type":"function_call","call_id":"call_2","name":"view_image","arguments":"{}"},
  {"type":"function_call_output","call_id":"call_1","output":"a.go\nb.go"},
  {"type":"function_call_output","call_id":"call_2","output":[{"type":"input_text","text":"img:"},{"type":"input_image","image_url":"data:image/jpeg;base64,/9j/","detail":"auto"}]},
  {"type":"message","role":"user","content":[{"type":"input_text","text":"thanks"}]},
  {"type":"message","role":"developer","content":[{"type":"input_text","text":"be brief"}]}
 ],
 "tools":[{"type":"function","name":"exec_command","description":"Run a command","parameters":{"type":"object","properties":{"cmd":{"type":"string"}},"required":["cmd"]},"strict":false},
          {"type":"function","name":"view_image","parameters":{"type":"object","properties":{}},"strict":false}],
 "tool_choice":"auto",
 "parallel_tool_calls":true,
 "max_output_tokens":4096,
 "temperature":0.5,
 "top_p":1,
 "reasoning":{"effort":"high","summary":"auto"},
 "text":{"format":{"type":"json_schema","name":"out","schema":{"type":"object"},"strict":true}},
 "safety_identifier":"user-1",
 "stream":true,
 "store":false,
 "include":["reasoning.encrypted_content"]
}`)
}

func TestEncodeRequestSmall(t *testing.T) {
	long := strings.Repeat("u", 100)
	for _, c := range []struct {
		name string
		req  translate.Request
		want string
	}{
		{"no tools drops tool_choice; budget to effort; clamp; hashed user; error result with image",
			translate.Request{
				System: []translate.Part{{Type: translate.PartText, Text: "sys"}},
				Messages: []translate.Message{{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartToolResult, ID: "t", IsError: true,
					Content: []translate.Part{{Type: translate.PartImage, URL: "https://i"}}}}}},
				ToolChoice: translate.ToolChoice{Mode: translate.ToolRequired}, ParallelToolCalls: ptr(false),
				MaxTokens: 1, Reasoning: &translate.Reasoning{BudgetTokens: 10000}, User: long,
			},
			`{"model":"up","instructions":"sys","input":[{"type":"function_call_output","call_id":"t","output":[{"type":"input_text","text":"Error: "},{"type":"input_image","image_url":"https://i","detail":"auto"}]}],
			  "max_output_tokens":16,"reasoning":{"effort":"medium"},"safety_identifier":"` + safetyID(long) + `","store":false,"include":["reasoning.encrypted_content"]}`},
		{"disabled reasoning, named tool, json_object, redacted and foreign thinking dropped",
			translate.Request{
				Messages: []translate.Message{{Role: translate.RoleAssistant, Parts: []translate.Part{
					{Type: translate.PartRedactedThinking, Signature: "x", Origin: "anthropic"},
					{Type: translate.PartThinking, Text: "t", Signature: "s", Origin: "anthropic"},
					{Type: translate.PartThinking, Text: "no sig", Origin: "responses"},
					{Type: translate.PartText, Text: "hi"}}}},
				Tools:      []translate.Tool{{Name: "f", Schema: `{"type":"object"}`}},
				ToolChoice: translate.ToolChoice{Mode: translate.ToolNamed, Name: "f"},
				Reasoning:  &translate.Reasoning{Disabled: true}, ResponseFormat: &translate.ResponseFormat{Type: "json_object"},
			},
			`{"model":"up","input":[{"type":"message","role":"assistant","content":"hi"}],"tools":[{"type":"function","name":"f","parameters":{"type":"object"},"strict":false}],
			  "tool_choice":{"type":"function","name":"f"},"text":{"format":{"type":"json_object"}},"store":false}`},
		{"schema without a name", translate.Request{ResponseFormat: &translate.ResponseFormat{Type: "json_schema", Schema: `{"type":"object"}`}},
			`{"model":"up","input":[],"text":{"format":{"type":"json_schema","name":"response","schema":{"type":"object"},"strict":false}},"store":false}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Codec.EncodeRequest(nil, &c.req, "up")
			if err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, got, c.want)
		})
	}
}

func TestEncodeRequestUnsupported(t *testing.T) {
	for _, c := range []struct {
		req   translate.Request
		param string
	}{
		{translate.Request{Stop: []string{"END"}}, "stop"},
		{translate.Request{TopK: ptr(int64(5))}, "top_k"},
		{translate.Request{Messages: []translate.Message{{Role: translate.RoleAssistant, Parts: []translate.Part{{Type: translate.PartImage, URL: "u"}}}}}, "messages[0].content[0]"},
		{translate.Request{Messages: []translate.Message{{Role: translate.RoleSystem, Parts: []translate.Part{{Type: translate.PartImage, URL: "u"}}}}}, "messages[0].content[0]"},
		{translate.Request{Messages: []translate.Message{{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartText}, {Type: translate.PartToolCall}}}}}, "messages[0].content[1]"},
		{translate.Request{ResponseFormat: &translate.ResponseFormat{Type: "yaml"}}, "response_format.type"},
		{translate.Request{Temperature: ptr(math.NaN())}, "temperature"},
		{translate.Request{TopP: ptr(math.Inf(1))}, "top_p"},
	} {
		_, err := Codec.EncodeRequest(nil, &c.req, "up")
		e, ok := err.(*translate.Error)
		if !ok || e.Status != 400 || e.Param != c.param {
			t.Errorf("%+v: got %v, want a 400 naming %s", c.req, err, c.param)
		}
	}
}

// Codex's namespace tools (multi_agent_v1) reach any upstream as function
// tools named namespace__name; a call of one, in the history or in the
// answer, is written back under its namespace.
func TestNamespaceToolsFlattened(t *testing.T) {
	body := `{"model":"m","input":[{"role":"user","content":"go"},{"type":"function_call","call_id":"c1","name":"spawn_agent","namespace":"multi_agent_v1","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":"ok"}],` +
		`"tools":[{"type":"function","name":"exec_command","parameters":{"type":"object"}},{"type":"namespace","name":"multi_agent_v1","description":"agents","tools":[{"type":"function","name":"spawn_agent","description":"spawn","parameters":{"type":"object","properties":{}}}]}]}`
	r, err := Codec.DecodeRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Tools) != 2 || r.Tools[1].Name != "multi_agent_v1__spawn_agent" || r.Tools[1].Description != "spawn" || len(r.Namespaces) != 1 || r.Namespaces[0] != "multi_agent_v1" {
		t.Fatalf("tools %+v namespaces %v", r.Tools, r.Namespaces)
	}
	if call := r.Messages[1].Parts[0]; call.Name != "multi_agent_v1__spawn_agent" {
		t.Fatalf("history call %+v", call)
	}
	resp := &translate.Response{ID: "r", Content: []translate.Part{{Type: translate.PartToolCall, ID: "c2", Name: "multi_agent_v1__spawn_agent", Args: `{"task":"x"}`}, {Type: translate.PartToolCall, ID: "c3", Name: "exec_command", Args: "{}"}}, Stop: translate.StopToolUse}
	out := Codec.EncodeResponse(nil, resp, translate.EncoderOptions{Model: "m", ID: "r", Namespaces: r.Namespaces})
	var got struct {
		Output []struct{ Name, Namespace string } `json:"output"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Output) != 2 || got.Output[0].Name != "spawn_agent" || got.Output[0].Namespace != "multi_agent_v1" || got.Output[1].Name != "exec_command" || got.Output[1].Namespace != "" {
		t.Fatalf("answer %s", out)
	}
	enc := Codec.NewEncoder(translate.EncoderOptions{Model: "m", ID: "r", Namespaces: r.Namespaces})
	var sse []byte
	for _, ev := range []translate.Event{
		{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartToolCall, ID: "c2", Name: "multi_agent_v1__spawn_agent"}},
		{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaArgs, Data: []byte(`{}`)},
		{Type: translate.EvBlockStop, Index: 0},
		{Type: translate.EvStop, Stop: translate.StopToolUse},
		{Type: translate.EvEnd},
	} {
		sse = enc.Encode(sse, &ev)
	}
	if n := strings.Count(string(sse), `"name":"spawn_agent","namespace":"multi_agent_v1"`); n != 3 || strings.Contains(string(sse), "multi_agent_v1__") {
		t.Fatalf("stream names the call %d times with its namespace:\n%s", n, sse)
	}
}
