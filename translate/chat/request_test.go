package chat

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"zenmux/translate"
)

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
		gi, _ := json.MarshalIndent(g, "", " ")
		wi, _ := json.MarshalIndent(w, "", " ")
		t.Fatalf("JSON differs\n got: %s\nwant: %s", gi, wi)
	}
}

func ptr[T any](v T) *T { return &v }

const fullRequest = `{
 "model": "gpt-x",
 "messages": [
  {"role": "system", "content": "Be brief."},
  {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
  {"role": "user", "content": [
    {"type": "text", "text": "What is in this image, and the weather?", "cache_control": {"type": "ephemeral"}},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
  ]},
  {"role": "assistant", "content": null, "reasoning_content": "Need weather.", "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
    {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
  ]},
  {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
  {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12:00"}]},
  {"role": "system", "content": "Answer in French."},
  {"role": "assistant", "content": "Il fait 18C.", "name": null},
  {"role": "user", "content": "Merci"}
 ],
 "tools": [
  {"type": "function", "function": {"name": "get_weather", "description": "Weather by city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, "strict": true}},
  {"type": "function", "function": {"name": "get_time"}}
 ],
 "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
 "parallel_tool_calls": false,
 "max_tokens": 100,
 "max_completion_tokens": 200,
 "temperature": 0.5,
 "top_p": 0.9,
 "stop": ["END", "STOP"],
 "stream": true,
 "stream_options": {"include_usage": true, "include_obfuscation": false},
 "reasoning_effort": "high",
 "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}},
 "user": "u-1",
 "safety_identifier": "safe-1",
 "n": 1, "logprobs": false, "frequency_penalty": 0, "presence_penalty": 0, "seed": 7,
 "metadata": {"a": "b"}, "store": false, "prompt_cache_key": "k", "service_tier": "auto", "modalities": ["text"], "logit_bias": {}
}`

func TestDecodeRequest(t *testing.T) {
	r, err := Codec.DecodeRequest([]byte(fullRequest))
	if err != nil {
		t.Fatal(err)
	}
	want := &translate.Request{
		Model: "gpt-x",
		System: []translate.Part{
			{Type: translate.PartText, Text: "Be brief."},
			{Type: translate.PartText, Text: "Use tools."},
		},
		Messages: []translate.Message{
			{Role: translate.RoleUser, Parts: []translate.Part{
				{Type: translate.PartText, Text: "What is in this image, and the weather?"},
				{Type: translate.PartImage, MediaType: "image/png", Data: "iVBORw0KGgo="},
				{Type: translate.PartImage, URL: "https://example.com/cat.jpg"},
			}},
			{Role: translate.RoleAssistant, Parts: []translate.Part{
				{Type: translate.PartThinking, Text: "Need weather.", Origin: "chat"},
				{Type: translate.PartToolCall, ID: "call_1", Name: "get_weather", Args: `{"city":"Paris"}`},
				{Type: translate.PartToolCall, ID: "call_2", Name: "get_time", Args: `{}`},
			}},
			{Role: translate.RoleUser, Parts: []translate.Part{
				{Type: translate.PartToolResult, ID: "call_1", Name: "get_weather", Content: []translate.Part{{Type: translate.PartText, Text: "18C"}}},
				{Type: translate.PartToolResult, ID: "call_2", Name: "get_time", Content: []translate.Part{{Type: translate.PartText, Text: "12:00"}}},
			}},
			{Role: translate.RoleSystem, Parts: []translate.Part{{Type: translate.PartText, Text: "Answer in French."}}},
			{Role: translate.RoleAssistant, Parts: []translate.Part{{Type: translate.PartText, Text: "Il fait 18C."}}},
			{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartText, Text: "Merci"}}},
		},
		Tools: []translate.Tool{
			{Name: "get_weather", Description: "Weather by city", Schema: `{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`},
			{Name: "get_time"},
		},
		ToolChoice:        translate.ToolChoice{Mode: translate.ToolNamed, Name: "get_weather"},
		ParallelToolCalls: ptr(false),
		MaxTokens:         200,
		Temperature:       ptr(0.5),
		TopP:              ptr(0.9),
		Stop:              []string{"END", "STOP"},
		Stream:            true,
		IncludeUsage:      true,
		Reasoning:         &translate.Reasoning{Effort: "high"},
		ResponseFormat:    &translate.ResponseFormat{Type: "json_schema", Name: "answer", Schema: `{"type":"object"}`, Strict: true},
		User:              "safe-1",
	}
	if !reflect.DeepEqual(r, want) {
		g, _ := json.MarshalIndent(r, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("got %s\nwant %s", g, w)
	}
}

func TestDecodeRequestVariants(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		check      func(*translate.Request) bool
	}{
		{"stop string", `{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":"X"}`,
			func(r *translate.Request) bool { return reflect.DeepEqual(r.Stop, []string{"X"}) }},
		{"effort none disables", `{"model":"m","messages":[{"role":"user","content":"hi"}],"reasoning_effort":"none"}`,
			func(r *translate.Request) bool { return *r.Reasoning == translate.Reasoning{Disabled: true} }},
		{"thinking budget", `{"model":"m","messages":[{"role":"user","content":"hi"}],"thinking":{"type":"enabled","budget_tokens":2048}}`,
			func(r *translate.Request) bool { return *r.Reasoning == translate.Reasoning{BudgetTokens: 2048} }},
		{"tool choice required", `{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"required"}`,
			func(r *translate.Request) bool { return r.ToolChoice.Mode == translate.ToolRequired }},
		{"json object", `{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}`,
			func(r *translate.Request) bool {
				return *r.ResponseFormat == translate.ResponseFormat{Type: "json_object"}
			}},
		{"max_tokens as float", `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":1024.0,"top_k":40}`,
			func(r *translate.Request) bool { return r.MaxTokens == 1024 && *r.TopK == 40 }},
		{"user only", `{"model":"m","messages":[{"role":"user","content":"hi"}],"user":"u"}`,
			func(r *translate.Request) bool { return r.User == "u" }},
		{"refusal in history", `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null,"refusal":"No."}]}`,
			func(r *translate.Request) bool {
				return reflect.DeepEqual(r.Messages[1].Parts, []translate.Part{{Type: translate.PartText, Text: "No."}})
			}},
		{"tool then user stay apart", `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"a","content":"ok"},{"role":"user","content":"next"}]}`,
			func(r *translate.Request) bool {
				return len(r.Messages) == 4 && r.Messages[2].Parts[0].Type == translate.PartToolResult
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Codec.DecodeRequest([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(r) {
				t.Fatalf("unexpected request %+v", r)
			}
		})
	}
}

func TestDecodeRequestRefusals(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	for _, tc := range []struct {
		body, param, message string
	}{
		{`[1]`, "", "the body must be a JSON object"},
		{`{` + msgs + `}`, "model", "model is required"},
		{`{"model":"m"}`, "messages", "messages is required"},
		{`{"model":"m","messages":[]}`, "messages", "messages must not be empty"},
		{`{"model":"m","model":"n",` + msgs + `}`, "model", "model appears twice in the body"},
		{`{"model":"m",` + msgs + `,"n":2}`, "n", "n is not supported for this model: its provider speaks another wire format"},
		{`{"model":"m",` + msgs + `,"logprobs":true}`, "logprobs", "logprobs is not supported for this model: its provider speaks another wire format"},
		{`{"model":"m",` + msgs + `,"frequency_penalty":0.5}`, "frequency_penalty", "frequency_penalty is not supported for this model: its provider speaks another wire format"},
		{`{"model":"m",` + msgs + `,"logit_bias":{"1":2}}`, "logit_bias", "logit_bias is not supported for this model: its provider speaks another wire format"},
		{`{"model":"m",` + msgs + `,"audio":{"voice":"x"}}`, "audio", "audio is not supported for this model: its provider speaks another wire format"},
		{`{"model":"m",` + msgs + `,"modalities":["text","audio"]}`, "modalities", "modalities is not supported for this model: its provider speaks another wire format"},
		{`{"model":"m",` + msgs + `,"web_search_options":{}}`, "web_search_options", "web_search_options is not supported for this model: its provider speaks another wire format"},
		{`{"model":"m",` + msgs + `,"functions":[{"name":"f"}]}`, "functions", "functions is not supported for this model: its provider speaks another wire format"},
		{`{"model":"m",` + msgs + `,"bogus":1}`, "bogus", "bogus is not supported for this model: its provider speaks another wire format"},
		{`{"model":"m",` + msgs + `,"temperature":"hot"}`, "temperature", "temperature must be a number"},
		{`{"model":"m",` + msgs + `,"max_tokens":0}`, "max_tokens", "max_tokens must be at least 1"},
		{`{"model":"m",` + msgs + `,"max_tokens":1.5}`, "max_tokens", "max_tokens must be an integer"},
		{`{"model":"m",` + msgs + `,"tools":[{"type":"custom","custom":{"name":"x"}}]}`, `tools[0].type "custom"`, `tools[0].type "custom" is not supported for this model: its provider speaks another wire format`},
		{`{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{}}]}`, "tools[0].function.name", "tools[0].function.name is required"},
		{`{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1e}}}]}`, "tools[0].function.parameters", "tools[0].function.parameters is not valid JSON"},
		{`{"model":"m",` + msgs + `,"tool_choice":{"type":"allowed_tools"}}`, `tool_choice.type "allowed_tools"`, `tool_choice.type "allowed_tools" is not supported for this model: its provider speaks another wire format`},
		{`{"model":"m",` + msgs + `,"response_format":{"type":"json_schema","json_schema":{"name":"a","description":"d","schema":{}}}}`, "response_format.json_schema.description", "response_format.json_schema.description is not supported for this model: its provider speaks another wire format"},
		{`{"model":"m",` + msgs + `,"stream_options":{"x":1}}`, "stream_options.x", "stream_options.x is not supported for this model: its provider speaks another wire format"},
		{`{"model":"m","messages":[{"role":"user","content":"hi","name":"bob"}]}`, "messages[0].name", "messages[0].name is not supported for this model: its provider speaks another wire format"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]}]}`, "messages[0].content[0] (input_audio)", "messages[0].content[0] (input_audio) is not supported for this model: its provider speaks another wire format"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"f"}}]}]}`, "messages[0].content[0] (file)", "messages[0].content[0] (file) is not supported for this model: its provider speaks another wire format"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}`, "messages[0].content[0].image_url.url", "messages[0].content[0].image_url.url must be an http(s) URL or a data:<media type>;base64, URL"},
		{`{"model":"m","messages":[{"role":"user","content":null}]}`, "messages[0].content", "messages[0].content must be a string or an array of text parts"},
		{`{"model":"m","messages":[{"role":"robot","content":"x"}]}`, "messages[0].role", "messages[0].role must be system, developer, user, assistant or tool"},
		{`{"model":"m","messages":[{"role":"function","name":"f","content":"x"}]}`, "messages[0].name", "messages[0].name is not supported for this model: its provider speaks another wire format"},
		{`{"model":"m","messages":[{"role":"tool","tool_call_id":"c","content":"x"}]}`, "messages[0].tool_call_id", `messages[0] with role tool must answer a tool call of an earlier assistant message; no call has id "c"`},
		{`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"custom","custom":{"name":"x","input":""}}]}]}`, "messages[0].tool_calls[0].type", "messages[0].tool_calls[0].type is not supported for this model: its provider speaks another wire format"},
		{`{"model":"m","messages":[{"role":"assistant","content":"x","audio":{"id":"a"}}]}`, "messages[0].audio", "messages[0].audio is not supported for this model: its provider speaks another wire format"},
	} {
		_, err := Codec.DecodeRequest([]byte(tc.body))
		var e *translate.Error
		if !errors.As(err, &e) {
			t.Errorf("%s: err = %v, want a *translate.Error", tc.body, err)
			continue
		}
		if e.Status != 400 || e.Kind != translate.ErrInvalidRequest || e.Param != tc.param || e.Message != tc.message {
			t.Errorf("%s:\n got %d %q %q\nwant 400 %q %q", tc.body, e.Status, e.Param, e.Message, tc.param, tc.message)
		}
	}
}

// TestEncodeRequest: the decoded full request, sent to a DeepSeek-style
// upstream and to OpenAI itself.
func TestEncodeRequest(t *testing.T) {
	r, err := Codec.DecodeRequest([]byte(fullRequest))
	if err != nil {
		t.Fatal(err)
	}
	const messages = `[
  {"role":"system","content":"Be brief.\n\nUse tools."},
  {"role":"user","content":[
    {"type":"text","text":"What is in this image, and the weather?"},
    {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
    {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]},
  {"role":"assistant","content":null,%s"tool_calls":[
    {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
    {"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
  {"role":"tool","tool_call_id":"call_1","content":"18C"},
  {"role":"tool","tool_call_id":"call_2","content":"12:00"},
  {"role":"system","content":"Answer in French."},
  {"role":"assistant","content":"Il fait 18C."},
  {"role":"user","content":"Merci"}]`
	const rest = `"tools":[
  {"type":"function","function":{"name":"get_weather","description":"Weather by city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}},
  {"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}}],
 "tool_choice":{"type":"function","function":{"name":"get_weather"}},
 "parallel_tool_calls":false,
 "temperature":0.5,"top_p":0.9,"stop":["END","STOP"],"reasoning_effort":"high",
 "response_format":{"type":"json_schema","json_schema":{"name":"answer","schema":{"type":"object"},"strict":true}},
 "user":"safe-1","stream":true,"stream_options":{"include_usage":true}`
	got, err := Codec.EncodeRequest(nil, r, "deepseek-v4-pro")
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, `{"model":"deepseek-v4-pro","messages":`+fmt.Sprintf(messages, `"reasoning_content":"Need weather.",`)+`,`+rest+`,"max_tokens":200}`)
	got, err = Codec.EncodeRequest(nil, r, "gpt-5.5")
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, `{"model":"gpt-5.5","messages":`+fmt.Sprintf(messages, "")+`,`+rest+`,"max_completion_tokens":200}`)
}

// TestEncodeRequestPlacesToolResults: results of another format's request
// go after the call they answer, whatever their place, images in a user
// message after them; thinking of another origin loses its signature.
func TestEncodeRequestPlacesToolResults(t *testing.T) {
	img := translate.Part{Type: translate.PartImage, MediaType: "image/jpeg", Data: "/9j/"}
	r := &translate.Request{
		Messages: []translate.Message{
			{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartText, Text: "look"}}},
			{Role: translate.RoleAssistant, Parts: []translate.Part{
				{Type: translate.PartThinking, Text: "I should look.", Signature: "sig", Origin: "anthropic"},
				{Type: translate.PartRedactedThinking, Signature: "opaque"},
				{Type: translate.PartText, Text: "Looking."},
				{Type: translate.PartToolCall, ID: "a", Name: "screenshot", Args: ""},
				{Type: translate.PartToolCall, ID: "b", Name: "ls", Args: `{"dir":"."}`},
			}},
			{Role: translate.RoleUser, Parts: []translate.Part{
				{Type: translate.PartToolResult, ID: "b", Content: []translate.Part{{Type: translate.PartText, Text: "no such dir"}}, IsError: true},
				{Type: translate.PartToolResult, ID: "a", Content: []translate.Part{img}},
				{Type: translate.PartText, Text: "and?"},
			}},
		},
		Tools:      nil,
		ToolChoice: translate.ToolChoice{Mode: translate.ToolRequired},
		Reasoning:  &translate.Reasoning{BudgetTokens: 10000},
	}
	got, err := Codec.EncodeRequest(nil, r, "kimi-k2")
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, `{"model":"kimi-k2","messages":[
  {"role":"user","content":"look"},
  {"role":"assistant","content":"Looking.","reasoning_content":"I should look.","tool_calls":[
    {"id":"a","type":"function","function":{"name":"screenshot","arguments":"{}"}},
    {"id":"b","type":"function","function":{"name":"ls","arguments":"{\"dir\":\".\"}"}}]},
  {"role":"tool","tool_call_id":"a","content":"(the image result follows in the next message)"},
  {"role":"tool","tool_call_id":"b","content":"Error: no such dir"},
  {"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/"}}]},
  {"role":"user","content":"and?"}],
 "reasoning_effort":"medium"}`)
}

func TestEffortTable(t *testing.T) {
	for _, tc := range []struct {
		r    *translate.Reasoning
		want string
	}{
		{nil, ""},
		{&translate.Reasoning{Disabled: true, Effort: "high"}, ""},
		{&translate.Reasoning{Effort: "minimal", BudgetTokens: 50000}, "minimal"},
		{&translate.Reasoning{BudgetTokens: 1024}, "low"},
		{&translate.Reasoning{BudgetTokens: 4096}, "low"},
		{&translate.Reasoning{BudgetTokens: 4097}, "medium"},
		{&translate.Reasoning{BudgetTokens: 16384}, "medium"},
		{&translate.Reasoning{BudgetTokens: 31999}, "high"},
	} {
		if got := effortOf(tc.r); got != tc.want {
			t.Errorf("effortOf(%+v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestEncodeRequestRefusals(t *testing.T) {
	user := translate.Message{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartText, Text: "hi"}}}
	call := translate.Message{Role: translate.RoleAssistant, Parts: []translate.Part{{Type: translate.PartToolCall, ID: "a", Name: "f"}}}
	for _, tc := range []struct {
		name    string
		r       translate.Request
		param   string
		message string
	}{
		{"top_k", translate.Request{Messages: []translate.Message{user}, TopK: ptr(int64(5))},
			"top_k", "top_k is not supported when the model is served in the OpenAI Chat Completions format"},
		{"call without result", translate.Request{Messages: []translate.Message{user, call}},
			"messages", `the tool call "a" (f) in messages[1] has no result; the upstream requires one`},
		{"result without call", translate.Request{Messages: []translate.Message{{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartToolResult, ID: "z"}}}}},
			"messages", `the tool result in messages[0] answers no earlier tool call (id "z")`},
		{"image from the assistant", translate.Request{Messages: []translate.Message{user, {Role: translate.RoleAssistant, Parts: []translate.Part{{Type: translate.PartImage, URL: "u"}}}}},
			"messages[1] (an assistant part that is not text, thinking or a tool call)", "messages[1] (an assistant part that is not text, thinking or a tool call) is not supported when the model is served in the OpenAI Chat Completions format"},
	} {
		_, err := Codec.EncodeRequest(nil, &tc.r, "m")
		var e *translate.Error
		if !errors.As(err, &e) || e.Status != 400 || e.Param != tc.param || e.Message != tc.message {
			t.Errorf("%s: got %v (%+v), want %q %q", tc.name, err, e, tc.param, tc.message)
		}
	}
}

// TestToolChoiceOnlyWithTools: an upstream refuses tool_choice and
// parallel_tool_calls without tools.
func TestToolChoiceOnlyWithTools(t *testing.T) {
	r := &translate.Request{Messages: []translate.Message{{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartText, Text: "hi"}}}},
		ToolChoice: translate.ToolChoice{Mode: translate.ToolAuto}, ParallelToolCalls: ptr(true), MaxTokens: 5, Stream: true}
	got, err := Codec.EncodeRequest(nil, r, "o3")
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, `{"model":"o3","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":5,"stream":true,"stream_options":{"include_usage":true}}`)
}

// OpenAI refuses a user id over 64 characters; Claude Code's
// metadata.user_id is longer, so it travels as its SHA-256 in hex.
func TestEncodeLongUserHashed(t *testing.T) {
	long := strings.Repeat("u", 150)
	for _, tc := range []struct{ user, want string }{
		{"ada", `"ada"`},
		{strings.Repeat("x", 64), `"` + strings.Repeat("x", 64) + `"`},
		{long, `"` + fmt.Sprintf("%x", sha256.Sum256([]byte(long))) + `"`},
	} {
		b, err := Codec.EncodeRequest(nil, &translate.Request{User: tc.user, Messages: []translate.Message{{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartText, Text: "hi"}}}}}, "gpt-x")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"user":`+tc.want) {
			t.Errorf("user %q: body %s", tc.user, b)
		}
	}
}
