package gemini

import (
	"encoding/json"
	"reflect"
	"testing"

	"zenmux/translate"
)

// jsonEqual fails t unless got and want are the same JSON value, member
// order aside.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v\n%s", err, want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("JSON differs\n got: %s\nwant: %s", got, want)
	}
}

func ptr[T any](v T) *T { return &v }

// fullRequest is a Gemini client's body using every mapped field.
const fullRequest = `{
 "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use tools."}]},
 "contents": [
  {"role": "user", "parts": [
   {"text": "What is in this picture, and the weather in Paris and Rome?"},
   {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
   {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}}]},
  {"role": "model", "parts": [
   {"text": "Let me think.", "thought": true},
   {"text": "A cat. Checking the weather.", "thoughtSignature": "c2lnLXRleHQ="},
   {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLWNhbGw="},
   {"functionCall": {"name": "weather", "args": {"city": "Rome"}}},
   {"functionCall": {"id": "fc-9", "name": "clock", "args": {}}}]},
  {"role": "user", "parts": [
   {"functionResponse": {"name": "weather", "response": {"temp": 21}}},
   {"functionResponse": {"name": "weather", "response": {"error": "no station"}}},
   {"functionResponse": {"id": "fc-9", "name": "clock", "response": {"result": "noon"}}}]},
  {"role": "model", "parts": [{"text": "Paris is 21°C.", "thoughtSignature": "c2lnLWVuZA=="}]}
 ],
 "tools": [{"functionDeclarations": [
  {"name": "weather", "description": "Weather by city",
   "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING", "nullable": true, "example": "Paris"}, "days": {"type": "ARRAY", "items": {"type": "INTEGER"}, "maxItems": "7"}}, "required": ["city"], "propertyOrdering": ["city", "days"]}},
  {"name": "clock", "parametersJsonSchema": {"type": "object", "properties": {}}}]}],
 "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}},
 "generationConfig": {"maxOutputTokens": 1024, "temperature": 0.5, "topP": 0.9, "topK": 40, "stopSequences": ["END"],
  "candidateCount": 1, "responseMimeType": "application/json", "responseJsonSchema": {"type": "object"},
  "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": true}},
 "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
 "labels": {"team": "a"}
}`

func fullNeutral() *translate.Request {
	text := func(s string) translate.Part { return translate.Part{Type: translate.PartText, Text: s} }
	return &translate.Request{
		System: []translate.Part{text("Be brief."), text("Use tools.")},
		Messages: []translate.Message{
			{Role: translate.RoleUser, Parts: []translate.Part{
				text("What is in this picture, and the weather in Paris and Rome?"),
				{Type: translate.PartImage, MediaType: "image/png", Data: "iVBORw0KGgo="},
				{Type: translate.PartImage, MediaType: "image/jpeg", URL: "https://example.com/cat.jpg"}}},
			{Role: translate.RoleAssistant, Parts: []translate.Part{
				{Type: translate.PartThinking, Text: "Let me think.", Origin: "gemini"},
				{Type: translate.PartThinking, Signature: "c2lnLXRleHQ=", Origin: "gemini"},
				text("A cat. Checking the weather."),
				{Type: translate.PartThinking, Signature: "c2lnLWNhbGw=", Origin: "gemini"},
				{Type: translate.PartToolCall, ID: "gemini_call_1", Name: "weather", Args: `{"city":"Paris"}`},
				{Type: translate.PartToolCall, ID: "gemini_call_2", Name: "weather", Args: `{"city":"Rome"}`},
				{Type: translate.PartToolCall, ID: "fc-9", Name: "clock", Args: `{}`}}},
			{Role: translate.RoleUser, Parts: []translate.Part{
				{Type: translate.PartToolResult, ID: "gemini_call_1", Name: "weather", Content: []translate.Part{text(`{"temp":21}`)}},
				{Type: translate.PartToolResult, ID: "gemini_call_2", Name: "weather", IsError: true, Content: []translate.Part{text(`{"error":"no station"}`)}},
				{Type: translate.PartToolResult, ID: "fc-9", Name: "clock", Content: []translate.Part{text(`{"result":"noon"}`)}}}},
			{Role: translate.RoleAssistant, Parts: []translate.Part{
				{Type: translate.PartThinking, Signature: "c2lnLWVuZA==", Origin: "gemini"},
				text("Paris is 21°C.")}},
		},
		Tools: []translate.Tool{
			{Name: "weather", Description: "Weather by city",
				Schema: `{"type":"object","properties":{"city":{"type":["string","null"],"examples":["Paris"]},"days":{"type":"array","items":{"type":"integer"},"maxItems":7}},"required":["city"]}`},
			{Name: "clock", Schema: `{"type":"object","properties":{}}`},
		},
		ToolChoice:     translate.ToolChoice{Mode: translate.ToolNamed, Name: "weather"},
		MaxTokens:      1024,
		Temperature:    ptr(0.5),
		TopP:           ptr(0.9),
		TopK:           ptr(int64(40)),
		Stop:           []string{"END"},
		Reasoning:      &translate.Reasoning{BudgetTokens: 2048},
		ResponseFormat: &translate.ResponseFormat{Type: "json_schema", Name: "response", Schema: `{"type":"object"}`},
	}
}

func TestDecodeRequest(t *testing.T) {
	got, err := Codec.DecodeRequest([]byte(fullRequest))
	if err != nil {
		t.Fatal(err)
	}
	want := fullNeutral()
	for i := range max(len(got.Messages), len(want.Messages)) {
		if i >= len(got.Messages) || i >= len(want.Messages) || !reflect.DeepEqual(got.Messages[i], want.Messages[i]) {
			t.Fatalf("message %d:\n got %+v\nwant %+v", i, got.Messages[i:], want.Messages[i:])
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestDecodeRequestSnakeCase(t *testing.T) {
	body := `{"system_instruction":{"parts":[{"text":"sys"}]},
	 "contents":[{"parts":[{"text":"hi"},{"inline_data":{"mime_type":"image/webp","data":"UklGRg=="}},{"file_data":{"mime_type":"image/png","file_uri":"http://x/y.png"}}]},
	  {"role":"model","parts":[{"function_call":{"name":"f","args":{"a":1}},"thought_signature":"cw=="}]},
	  {"role":"user","parts":[{"function_response":{"name":"f","response":{"ok":true}}}]}],
	 "tools":[{"function_declarations":[{"name":"f","parameters_json_schema":{"type":"object"}}]}],
	 "tool_config":{"function_calling_config":{"mode":"NONE"}},
	 "generation_config":{"max_output_tokens":"64","top_k":3.0,"stop_sequences":["x"],"response_mime_type":"application/json",
	  "thinking_config":{"thinking_level":"LOW"}}}`
	got, err := Codec.DecodeRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := &translate.Request{
		System: []translate.Part{{Type: translate.PartText, Text: "sys"}},
		Messages: []translate.Message{
			{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartText, Text: "hi"},
				{Type: translate.PartImage, MediaType: "image/webp", Data: "UklGRg=="}, {Type: translate.PartImage, MediaType: "image/png", URL: "http://x/y.png"}}},
			{Role: translate.RoleAssistant, Parts: []translate.Part{{Type: translate.PartThinking, Signature: "cw==", Origin: "gemini"},
				{Type: translate.PartToolCall, ID: "gemini_call_1", Name: "f", Args: `{"a":1}`}}},
			{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartToolResult, ID: "gemini_call_1", Name: "f",
				Content: []translate.Part{{Type: translate.PartText, Text: `{"ok":true}`}}}}}},
		Tools:          []translate.Tool{{Name: "f", Schema: `{"type":"object"}`}},
		ToolChoice:     translate.ToolChoice{Mode: translate.ToolNone},
		MaxTokens:      64,
		TopK:           ptr(int64(3)),
		Stop:           []string{"x"},
		Reasoning:      &translate.Reasoning{Effort: "low"},
		ResponseFormat: &translate.ResponseFormat{Type: "json_object"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestDecodeRequestThinkingAndChoice(t *testing.T) {
	for _, c := range []struct {
		gen, tool string
		reasoning *translate.Reasoning
		choice    translate.ToolChoice
	}{
		{`{"thinkingConfig":{"thinkingBudget":0}}`, `{"mode":"AUTO"}`, &translate.Reasoning{Disabled: true}, translate.ToolChoice{Mode: translate.ToolAuto}},
		{`{"thinkingConfig":{"thinkingBudget":-1}}`, `{"mode":"ANY"}`, &translate.Reasoning{Effort: "medium"}, translate.ToolChoice{Mode: translate.ToolRequired}},
		{`{"thinkingConfig":{"thinkingLevel":"high","includeThoughts":false}}`, `{"mode":"VALIDATED"}`, &translate.Reasoning{Effort: "high"}, translate.ToolChoice{Mode: translate.ToolAuto}},
		{`{"thinkingConfig":{"includeThoughts":true}}`, `{}`, nil, translate.ToolChoice{}},
	} {
		body := `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":` + c.gen + `,"toolConfig":{"functionCallingConfig":` + c.tool + `}}`
		got, err := Codec.DecodeRequest([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if !reflect.DeepEqual(got.Reasoning, c.reasoning) || got.ToolChoice != c.choice {
			t.Errorf("%s: reasoning %+v choice %+v, want %+v %+v", body, got.Reasoning, got.ToolChoice, c.reasoning, c.choice)
		}
	}
}

func TestDecodeRequestRefusals(t *testing.T) {
	user := func(parts string) string { return `{"contents":[{"role":"user","parts":[` + parts + `]}]}` }
	with := func(field string) string {
		return `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],` + field + `}`
	}
	for _, c := range []struct{ body, param string }{
		{`[]`, ""},
		{`{`, ""},
		{`{}`, "contents"},
		{`{"contents":{}}`, "contents"},
		{`{"contents":[{"role":"system","parts":[{"text":"x"}]}]}`, "contents[0].role"},
		{`{"contents":[{"role":"user"}]}`, "contents[0].parts"},
		{user(`{"text":5}`), "contents[0].parts[0].text"},
		{user(`{"inlineData":{"mimeType":"application/pdf","data":"JVBE"}}`), "contents[0].parts[0].inlineData (application/pdf)"},
		{user(`{"inlineData":{"mimeType":"image/png"}}`), "contents[0].parts[0].inlineData.data"},
		{user(`{"fileData":{"mimeType":"video/mp4","fileUri":"https://youtu.be/x"}}`), "contents[0].parts[0].fileData (video/mp4 https://youtu.be/x)"},
		{user(`{"fileData":{"mimeType":"image/png","fileUri":"https://generativelanguage.googleapis.com/v1beta/files/abc"}}`), "contents[0].parts[0].fileData (image/png https://generativelanguage.googleapis.com/v1beta/files/abc)"},
		{user(`{"executableCode":{"language":"PYTHON","code":"1"}}`), "contents[0].parts[0].executableCode"},
		{user(`{"codeExecutionResult":{"outcome":"OUTCOME_OK"}}`), "contents[0].parts[0].codeExecutionResult"},
		{user(`{"videoMetadata":{}}`), "contents[0].parts[0].videoMetadata"},
		{user(`{"text":"a","thought":true}`), "contents[0].parts[0].thought"},
		{user(`{"functionCall":{"name":"f"}}`), "contents[0].parts[0].functionCall"},
		{user(`{"functionResponse":{"name":"f","response":{}}}`), "contents[0].parts[0].functionResponse"},
		{user(`{"text":"a","inlineData":{"mimeType":"image/png","data":"x"}}`), "contents[0].parts[0]"},
		{`{"contents":[{"role":"model","parts":[{"functionCall":{"args":{}}}]}]}`, "contents[0].parts[0].functionCall.name"},
		{`{"contents":[{"role":"model","parts":[{"functionCall":{"name":"f","args":[1]}}]}]}`, "contents[0].parts[0].functionCall.args"},
		{`{"contents":[{"role":"model","parts":[{"functionCall":{"name":"f","partialArgs":[]}}]}]}`, "contents[0].parts[0].functionCall.partialArgs"},
		{`{"contents":[{"role":"model","parts":[{"functionCall":{"name":"f"}}]},{"role":"user","parts":[{"functionResponse":{"name":"g","response":{}}}]}]}`, "contents[1].parts[0].functionResponse"},
		{`{"contents":[{"role":"model","parts":[{"functionCall":{"name":"f"}}]},{"role":"user","parts":[{"functionResponse":{"name":"f","response":[]}}]}]}`, "contents[1].parts[0].functionResponse.response"},
		{with(`"systemInstruction":{"parts":[{"inlineData":{"mimeType":"image/png","data":"x"}}]}`), "systemInstruction.parts[0] (not text)"},
		{with(`"tools":[{"googleSearch":{}}]`), "tools[0].googleSearch"},
		{with(`"tools":[{"codeExecution":{}}]`), "tools[0].codeExecution"},
		{with(`"tools":[{"urlContext":{}}]`), "tools[0].urlContext"},
		{with(`"tools":[{"functionDeclarations":[{"description":"x"}]}]`), "tools[0].functionDeclarations[0].name"},
		{with(`"tools":[{"functionDeclarations":[{"name":"f","parameters":{},"parametersJsonSchema":{}}]}]`), "tools[0].functionDeclarations[0].parameters"},
		{with(`"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["a","b"]}}`), "toolConfig.functionCallingConfig.allowedFunctionNames (more than one)"},
		{with(`"toolConfig":{"functionCallingConfig":{"mode":"AUTO","allowedFunctionNames":["a"]}}`), "toolConfig.functionCallingConfig.allowedFunctionNames (without mode ANY)"},
		{with(`"toolConfig":{"functionCallingConfig":{"mode":"SOMETIMES"}}`), "toolConfig.functionCallingConfig.mode"},
		{with(`"generationConfig":{"candidateCount":2}`), "generationConfig.candidateCount above 1"},
		{with(`"generationConfig":{"maxOutputTokens":"many"}`), "generationConfig.maxOutputTokens"},
		{with(`"generationConfig":{"temperature":"hot"}`), "generationConfig.temperature"},
		{with(`"generationConfig":{"presencePenalty":0.5}`), "generationConfig.presencePenalty"},
		{with(`"generationConfig":{"seed":7}`), "generationConfig.seed"},
		{with(`"generationConfig":{"responseLogprobs":true}`), "generationConfig.responseLogprobs"},
		{with(`"generationConfig":{"responseMimeType":"text/x.enum"}`), "generationConfig.responseMimeType text/x.enum"},
		{with(`"generationConfig":{"responseSchema":{"type":"OBJECT"}}`), "generationConfig.responseSchema"},
		{with(`"generationConfig":{"responseModalities":["IMAGE"]}`), `generationConfig.responseModalities "IMAGE"`},
		{with(`"generationConfig":{"speechConfig":{}}`), "generationConfig.speechConfig"},
		{with(`"generationConfig":{"thinkingConfig":{"thinkingBudget":100,"thinkingLevel":"LOW"}}`), "generationConfig.thinkingConfig"},
		{with(`"generationConfig":{"thinkingConfig":{"thinkingLevel":"XHIGH"}}`), "generationConfig.thinkingConfig.thinkingLevel XHIGH"},
		{with(`"cachedContent":"cachedContents/abc"`), "cachedContent"},
		{with(`"unknownField":1`), "unknownField"},
	} {
		_, err := Codec.DecodeRequest([]byte(c.body))
		e, ok := err.(*translate.Error)
		if !ok || e.Status != 400 || e.Kind != translate.ErrInvalidRequest || e.Param != c.param {
			t.Errorf("%s: got %#v, want a 400 naming %q", c.body, err, c.param)
		}
	}
}

// TestEncodeRequest checks every field of a neutral request as a gemini
// upstream receives it. The model turn holding only another format's
// thinking is dropped, and the user turns around it become one content.
func TestEncodeRequest(t *testing.T) {
	text := func(s string) translate.Part { return translate.Part{Type: translate.PartText, Text: s} }
	r := &translate.Request{
		Model:  "ignored",
		System: []translate.Part{text("Be brief.")},
		Messages: []translate.Message{
			{Role: translate.RoleUser, Parts: []translate.Part{text("Look"),
				{Type: translate.PartImage, URL: "data:image/png;base64,iVBORw0KGgo="},
				{Type: translate.PartImage, Data: "/9j/4AAQ"},
				{Type: translate.PartImage, URL: "https://example.com/a.webp?x=1"}}},
			{Role: translate.RoleSystem, Parts: []translate.Part{text("Later rule.")}},
			{Role: translate.RoleAssistant, Parts: []translate.Part{
				{Type: translate.PartThinking, Text: "hidden", Signature: "anthropic-sig", Origin: "anthropic"},
				{Type: translate.PartRedactedThinking, Signature: "xx"},
				text("Calling."),
				{Type: translate.PartToolCall, ID: "toolu_1", Name: "weather", Args: `{"city":"Paris"}`},
				{Type: translate.PartToolCall, ID: "toolu_2", Name: "clock", Args: ``}}},
			{Role: translate.RoleUser, Parts: []translate.Part{
				{Type: translate.PartToolResult, ID: "toolu_1", Content: []translate.Part{text(`{"temp":21}`)}},
				{Type: translate.PartToolResult, ID: "toolu_2", Name: "clock", IsError: true, Content: []translate.Part{text("no clock"),
					{Type: translate.PartImage, MediaType: "image/png", Data: "iVBORw0KGgo="}}},
				text("Thanks")}},
			{Role: translate.RoleAssistant, Parts: []translate.Part{{Type: translate.PartThinking, Text: "only thought", Origin: "responses"}}},
			{Role: translate.RoleUser, Parts: []translate.Part{
				{Type: translate.PartToolResult, ID: "toolu_1", Name: "weather", Content: []translate.Part{text(`[1,2]`)}},
				{Type: translate.PartToolResult, ID: "toolu_1", Name: "weather", IsError: true, Content: []translate.Part{text(`{"error":"x"}`)}},
				{Type: translate.PartToolResult, ID: "toolu_1", Name: "weather", IsError: true, Content: []translate.Part{text(`{"code":3}`)}}}},
		},
		Tools: []translate.Tool{
			{Name: "weather", Description: "Weather", Schema: `{"type":"object","properties":{"city":{"type":"string"}}}`},
			{Name: "clock"},
		},
		ToolChoice:        translate.ToolChoice{Mode: translate.ToolNamed, Name: "weather"},
		ParallelToolCalls: ptr(false),
		MaxTokens:         512,
		Temperature:       ptr(0.2),
		TopP:              ptr(1.0),
		TopK:              ptr(int64(5)),
		Stop:              []string{"a", "b"},
		Stream:            true,
		Reasoning:         &translate.Reasoning{Effort: "high", Summary: "auto"},
		ResponseFormat:    &translate.ResponseFormat{Type: "json_schema", Name: "x", Schema: `{"type":"object"}`, Strict: true},
		User:              "u1",
	}
	got, err := Codec.EncodeRequest(nil, r, "gemini-2.5-flash")
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, `{
	 "contents":[
	  {"role":"user","parts":[{"text":"Look"},
	   {"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}},
	   {"inlineData":{"mimeType":"image/jpeg","data":"/9j/4AAQ"}},
	   {"fileData":{"mimeType":"image/webp","fileUri":"https://example.com/a.webp?x=1"}}]},
	  {"role":"model","parts":[{"text":"Calling."},
	   {"functionCall":{"id":"toolu_1","name":"weather","args":{"city":"Paris"}},"thoughtSignature":"skip_thought_signature_validator"},
	   {"functionCall":{"id":"toolu_2","name":"clock","args":{}}}]},
	  {"role":"user","parts":[
	   {"functionResponse":{"id":"toolu_1","name":"weather","response":{"temp":21}}},
	   {"functionResponse":{"id":"toolu_2","name":"clock","response":{"error":"no clock"},"parts":[{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}}]}},
	   {"text":"Thanks"},
	   {"functionResponse":{"id":"toolu_1","name":"weather","response":{"result":[1,2]}}},
	   {"functionResponse":{"id":"toolu_1","name":"weather","response":{"error":"x"}}},
	   {"functionResponse":{"id":"toolu_1","name":"weather","response":{"error":{"code":3}}}}]}],
	 "systemInstruction":{"parts":[{"text":"Be brief."},{"text":"Later rule."}]},
	 "tools":[{"functionDeclarations":[
	  {"name":"weather","description":"Weather","parametersJsonSchema":{"type":"object","properties":{"city":{"type":"string"}}}},
	  {"name":"clock"}]}],
	 "toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["weather"]}},
	 "generationConfig":{"maxOutputTokens":512,"temperature":0.2,"topP":1,"topK":5,"stopSequences":["a","b"],
	  "responseMimeType":"application/json","responseJsonSchema":{"type":"object"},
	  "thinkingConfig":{"thinkingBudget":24576,"includeThoughts":true}}}`)
}

func TestEncodeRequestMinimal(t *testing.T) {
	r := &translate.Request{
		Messages:   []translate.Message{{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartText, Text: "hi"}}}},
		ToolChoice: translate.ToolChoice{Mode: translate.ToolRequired},
	}
	got, err := Codec.EncodeRequest(nil, r, "m")
	if err != nil {
		t.Fatal(err)
	}
	// No tools: no toolConfig, which an upstream refuses without them.
	jsonEqual(t, got, `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`)
}

func TestEncodeRequestReasoning(t *testing.T) {
	for _, c := range []struct {
		r    translate.Reasoning
		want string
	}{
		{translate.Reasoning{Disabled: true}, `{"thinkingBudget":0}`},
		{translate.Reasoning{Effort: "none"}, `{"thinkingBudget":0}`},
		{translate.Reasoning{Effort: "minimal"}, `{"thinkingBudget":512,"includeThoughts":true}`},
		{translate.Reasoning{Effort: "low"}, `{"thinkingBudget":1024,"includeThoughts":true}`},
		{translate.Reasoning{Effort: "medium"}, `{"thinkingBudget":8192,"includeThoughts":true}`},
		{translate.Reasoning{}, `{"thinkingBudget":8192,"includeThoughts":true}`},
		{translate.Reasoning{BudgetTokens: 100}, `{"thinkingBudget":512,"includeThoughts":true}`},
		{translate.Reasoning{BudgetTokens: 4000}, `{"thinkingBudget":4000,"includeThoughts":true}`},
		{translate.Reasoning{BudgetTokens: 64000}, `{"thinkingBudget":24576,"includeThoughts":true}`},
	} {
		r := &translate.Request{Messages: []translate.Message{{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartText, Text: "hi"}}}}, Reasoning: &c.r}
		got, err := Codec.EncodeRequest(nil, r, "m")
		if err != nil {
			t.Fatal(err)
		}
		jsonEqual(t, got, `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"thinkingConfig":`+c.want+`}}`)
	}
}

func TestEncodeRequestRefusals(t *testing.T) {
	msg := func(role translate.Role, ps ...translate.Part) translate.Message {
		return translate.Message{Role: role, Parts: ps}
	}
	for _, c := range []struct {
		name  string
		r     translate.Request
		param string
	}{
		{"result without call", translate.Request{Messages: []translate.Message{msg(translate.RoleUser,
			translate.Part{Type: translate.PartToolResult, ID: "nope", Content: []translate.Part{{Type: translate.PartText, Text: "x"}}})}}, "tool_result"},
		{"args not an object", translate.Request{Messages: []translate.Message{msg(translate.RoleAssistant,
			translate.Part{Type: translate.PartToolCall, ID: "c", Name: "f", Args: `[1]`})}}, "tool_calls"},
		{"ftp image", translate.Request{Messages: []translate.Message{msg(translate.RoleUser,
			translate.Part{Type: translate.PartImage, URL: "ftp://x/y.png"})}}, "contents.parts URL ftp://x/y.png"},
		{"unknown effort", translate.Request{Messages: []translate.Message{msg(translate.RoleUser, translate.Part{Type: translate.PartText, Text: "x"})},
			Reasoning: &translate.Reasoning{Effort: "extreme"}}, "reasoning effort extreme"},
		{"bad tool schema", translate.Request{Messages: []translate.Message{msg(translate.RoleUser, translate.Part{Type: translate.PartText, Text: "x"})},
			Tools: []translate.Tool{{Name: "f", Schema: "[]"}}}, "tools"},
	} {
		_, err := Codec.EncodeRequest(nil, &c.r, "m")
		e, ok := err.(*translate.Error)
		if !ok || e.Status != 400 || e.Param != c.param {
			t.Errorf("%s: got %#v, want a 400 naming %q", c.name, err, c.param)
		}
	}
}

// TestRequestRoundTrip: a Gemini body decoded and encoded again is the
// same body, thought signatures on the parts that carried them.
func TestRequestRoundTrip(t *testing.T) {
	body := `{"contents":[
	 {"role":"user","parts":[{"text":"hi"}]},
	 {"role":"model","parts":[{"text":"plan","thought":true,"thoughtSignature":"dGhvdWdodA=="},{"text":"ok","thoughtSignature":"dGV4dA=="},
	  {"functionCall":{"name":"f","args":{"a":1}},"thoughtSignature":"Y2FsbA=="},{"functionCall":{"id":"x1","name":"g","args":{}}},{"text":"","thoughtSignature":"ZW5k"}]},
	 {"role":"user","parts":[{"functionResponse":{"name":"f","response":{"output":"done"}}},{"functionResponse":{"id":"x1","name":"g","response":{"error":{"message":"bad"}}}}]}],
	 "systemInstruction":{"parts":[{"text":"sys"}]},
	 "tools":[{"functionDeclarations":[{"name":"f","parametersJsonSchema":{"type":"object"}},{"name":"g"}]}],
	 "toolConfig":{"functionCallingConfig":{"mode":"AUTO"}},
	 "generationConfig":{"maxOutputTokens":10,"thinkingConfig":{"thinkingBudget":1024,"includeThoughts":true}}}`
	r, err := Codec.DecodeRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Codec.EncodeRequest(nil, r, "m")
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, body)
}

// TestEncodeRequestJoinsTurns: tool results in separate user messages (as
// Chat's tool messages decode) become one content after the calls' turn,
// as Gemini requires.
func TestEncodeRequestJoinsTurns(t *testing.T) {
	result := func(id string) translate.Message {
		return translate.Message{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartToolResult, ID: id, Content: []translate.Part{{Type: translate.PartText, Text: "ok"}}}}}
	}
	r := &translate.Request{Messages: []translate.Message{
		{Role: translate.RoleUser, Parts: []translate.Part{{Type: translate.PartText, Text: "go"}}},
		{Role: translate.RoleAssistant, Parts: []translate.Part{{Type: translate.PartText, Text: "calling"}}},
		{Role: translate.RoleAssistant, Parts: []translate.Part{
			{Type: translate.PartToolCall, ID: "a", Name: "f", Args: `{}`}, {Type: translate.PartToolCall, ID: "b", Name: "g", Args: `{}`}}},
		result("a"),
		{Role: translate.RoleSystem, Parts: []translate.Part{{Type: translate.PartText, Text: "be careful"}}},
		result("b"),
	}}
	got, err := Codec.EncodeRequest(nil, r, "m")
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, `{"contents":[{"role":"user","parts":[{"text":"go"}]},
	 {"role":"model","parts":[{"text":"calling"},{"functionCall":{"id":"a","name":"f","args":{}},"thoughtSignature":"skip_thought_signature_validator"},{"functionCall":{"id":"b","name":"g","args":{}}}]},
	 {"role":"user","parts":[{"functionResponse":{"id":"a","name":"f","response":{"result":"ok"}}},{"functionResponse":{"id":"b","name":"g","response":{"result":"ok"}}}]}],
	 "systemInstruction":{"parts":[{"text":"be careful"}]}}`)
}
