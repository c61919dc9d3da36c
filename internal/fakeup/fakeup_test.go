package fakeup

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"google.golang.org/genai"
)

// onePixelPNG is a valid 1x1 PNG.
const onePixelPNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="

func post(t *testing.T, url string, hdr map[string]string, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer is not JSON: %s", b)
	}
	return resp.StatusCode, m
}

type refusalCase struct {
	name   string
	path   string
	hdr    map[string]string // nil: the right auth
	body   string
	status int
	want   string // the exact error body (Anthropic's request_id aside)
}

func runRefusals(t *testing.T, u *Upstream, auth map[string]string, cases []refusalCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := c.hdr
			if hdr == nil {
				hdr = auth
			}
			status, got := post(t, u.URL+c.path, hdr, c.body)
			if u.Kind == Anthropic {
				if id, _ := got["request_id"].(string); !strings.HasPrefix(id, "req_") {
					t.Errorf("request_id %v", got["request_id"])
				}
				delete(got, "request_id")
			}
			var want map[string]any
			if err := json.Unmarshal([]byte(c.want), &want); err != nil {
				t.Fatal(err)
			}
			if status != c.status || !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				t.Errorf("got %d %s\nwant %d %s", status, g, c.status, c.want)
			}
			reqs := u.Requests()
			u.mu.Lock()
			scripted := u.script == Fail
			u.mu.Unlock()
			if last := reqs[len(reqs)-1]; last.Status != c.status || (last.Refusal == "") != scripted {
				t.Errorf("recorded %d %q", last.Status, last.Refusal)
			}
		})
	}
}

func oaiErr(msg, typ, param, code string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nullable(param), "code": nullable(code)}})
	return string(b)
}

func anthErr(typ, msg string) string {
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
	return string(b)
}

func gemErr(code int, status, msg string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": msg, "status": status}})
	return string(b)
}

const weatherTool = `{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}`

func TestChatRefusals(t *testing.T) {
	u := Start(t, Chat, "k-chat", "up-chat")
	auth := map[string]string{"Authorization": "Bearer k-chat", "Content-Type": "application/json"}
	inv := func(msg, param, code string) string { return oaiErr(msg, "invalid_request_error", param, code) }
	runRefusals(t, u, auth, []refusalCase{
		{"no key", "/v1/chat/completions", map[string]string{}, `{}`, 401, inv("You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", "", "")},
		{"wrong key", "/v1/chat/completions", map[string]string{"Authorization": "Bearer nope"}, `{}`, 401, inv("Incorrect API key provided.", "", "invalid_api_key")},
		{"not json", "/v1/chat/completions", nil, `{"model":`, 400, inv("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)", "", "")},
		{"unknown argument", "/v1/chat/completions", nil, `{"model":"up-chat","messages":[{"role":"user","content":"hi"}],"max_output_tokens":5}`, 400, inv("Unrecognized request argument supplied: max_output_tokens", "", "")},
		{"no model", "/v1/chat/completions", nil, `{"messages":[{"role":"user","content":"hi"}]}`, 400, inv("you must provide a model parameter", "", "")},
		{"other model", "/v1/chat/completions", nil, `{"model":"gpt-x","messages":[{"role":"user","content":"hi"}]}`, 404, inv("The model `gpt-x` does not exist or you do not have access to it.", "", "model_not_found")},
		{"no messages", "/v1/chat/completions", nil, `{"model":"up-chat"}`, 400, inv("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")},
		{"unknown role", "/v1/chat/completions", nil, `{"model":"up-chat","messages":[{"role":"model","content":"hi"}]}`, 400, inv("Invalid value: 'model'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.", "messages[0].role", "invalid_value")},
		{"unknown part", "/v1/chat/completions", nil, `{"model":"up-chat","messages":[{"role":"user","content":[{"type":"image","image":"x"}]}]}`, 400, inv("Invalid value: 'image'. Supported values are: 'text', 'image_url', 'input_audio', 'file'.", "messages[0].content[0].type", "invalid_value")},
		{"extra message member", "/v1/chat/completions", nil, `{"model":"up-chat","messages":[{"role":"user","content":"hi","tool_call_id":"x"}]}`, 400, inv("Additional properties are not allowed ('tool_call_id' was unexpected) - 'messages.0'", "", "")},
		{"tool without tool_calls", "/v1/chat/completions", nil, `{"model":"up-chat","messages":[{"role":"user","content":"hi"},{"role":"tool","tool_call_id":"call_1","content":"sunny"}]}`, 400, inv("Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.", "messages.[1].role", "")},
		{"tool_calls unanswered", "/v1/chat/completions", nil, `{"model":"up-chat","messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}},{"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"sunny"},{"role":"user","content":"and?"}]}`, 400, inv("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: call_2", "messages.[1].role", "")},
		{"tool_calls last", "/v1/chat/completions", nil, `{"model":"up-chat","messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]}]}`, 400, inv("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: call_1", "messages.[1].role", "")},
		{"tool result of another id", "/v1/chat/completions", nil, `{"model":"up-chat","messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_9","content":"sunny"}]}`, 400, inv("Invalid parameter: 'tool_call_id' of 'call_9' not found in 'tool_calls' of previous message.", "messages.[2].tool_call_id", "")},
		{"arguments not json", "/v1/chat/completions", nil, `{"model":"up-chat","messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{city"}}]},{"role":"tool","tool_call_id":"call_1","content":"sunny"}]}`, 400, inv("Invalid 'messages[1].tool_calls[0].function.arguments': not valid JSON.", "messages[1].tool_calls[0].function.arguments", "invalid_value")},
		{"tool_choice without tools", "/v1/chat/completions", nil, `{"model":"up-chat","messages":[{"role":"user","content":"hi"}],"tool_choice":"auto"}`, 400, inv("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice", "")},
		{"parallel_tool_calls without tools", "/v1/chat/completions", nil, `{"model":"up-chat","messages":[{"role":"user","content":"hi"}],"parallel_tool_calls":true}`, 400, inv("Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified.", "parallel_tool_calls", "")},
		{"schema not object", "/v1/chat/completions", nil, `{"model":"up-chat","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"string"}}}]}`, 400, inv("Invalid schema for function 'f': schema must be a JSON Schema of 'type: \"object\"'.", "tools[0].function.parameters", "invalid_function_parameters")},
		{"stream_options without stream", "/v1/chat/completions", nil, `{"model":"up-chat","messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}`, 400, inv("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options", "")},
		{"bad data url", "/v1/chat/completions", nil, `{"model":"up-chat","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"iVBORw0KGgo="}}]}]}`, 400, inv("Invalid 'messages[0].content[0].image_url.url'. Expected a base64-encoded data URL with an image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got a value without the 'data:' prefix.", "messages[0].content[0].image_url.url", "invalid_value")},
		{"not the png said", "/v1/chat/completions", nil, `{"model":"up-chat","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,aGVsbG8="}}]}]}`, 400, inv("You uploaded an unsupported image. Please make sure your image is below 20 MB in size and is of one the following formats: ['png', 'jpeg', 'gif', 'webp'].", "messages[0].content[0].image_url.url", "invalid_image_format")},
	})
}

func TestResponsesRefusals(t *testing.T) {
	u := Start(t, Responses, "k-resp", "up-resp")
	auth := map[string]string{"Authorization": "Bearer k-resp"}
	inv := func(msg, param, code string) string { return oaiErr(msg, "invalid_request_error", param, code) }
	runRefusals(t, u, auth, []refusalCase{
		{"missing model", "/v1/responses", nil, `{"input":"hi"}`, 400, inv("Missing required parameter: 'model'.", "model", "missing_required_parameter")},
		{"other model", "/v1/responses", nil, `{"model":"o9","input":"hi"}`, 400, inv("The requested model 'o9' does not exist.", "model", "model_not_found")},
		{"unknown parameter", "/v1/responses", nil, `{"model":"up-resp","input":"hi","messages":[]}`, 400, inv("Unknown parameter: 'messages'.", "messages", "unknown_parameter")},
		{"unknown item type", "/v1/responses", nil, `{"model":"up-resp","input":[{"type":"tool_result","call_id":"c"}]}`, 400, inv("Invalid value: 'tool_result'. Supported values are: '"+strings.Join(responsesItems, "', '")+"'.", "input[0].type", "invalid_value")},
		{"output without call", "/v1/responses", nil, `{"model":"up-resp","input":[{"role":"user","content":"hi"},{"type":"function_call_output","call_id":"call_1","output":"sunny"}]}`, 400, inv("No tool call found for function call output with call_id call_1.", "input", "")},
		{"call without output", "/v1/responses", nil, `{"model":"up-resp","input":[{"role":"user","content":"hi"},{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{}"}]}`, 400, inv("No tool output found for function call call_1.", "input", "")},
		{"call id not fc", "/v1/responses", nil, `{"model":"up-resp","input":[{"type":"function_call","id":"call_1","call_id":"call_1","name":"get_weather","arguments":"{}"}]}`, 400, inv("Invalid 'input[0].id': 'call_1'. Expected an ID that begins with 'fc'.", "input[0].id", "invalid_value")},
		{"input_text from assistant", "/v1/responses", nil, `{"model":"up-resp","input":[{"role":"assistant","content":[{"type":"input_text","text":"hi"}]}]}`, 400, inv("Invalid value: 'input_text'. Supported values are: 'output_text', 'refusal'.", "input[0].content[0].type", "invalid_value")},
		{"max_output_tokens below 16", "/v1/responses", nil, `{"model":"up-resp","input":"hi","max_output_tokens":10}`, 400, inv("Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got 10 instead.", "max_output_tokens", "integer_below_min_value")},
		{"previous_response_id", "/v1/responses", nil, `{"model":"up-resp","input":"hi","previous_response_id":"resp_1"}`, 400, inv("Previous response with id 'resp_1' not found.", "previous_response_id", "previous_response_not_found")},
		{"tool_choice without tools", "/v1/responses", nil, `{"model":"up-resp","input":"hi","tool_choice":"required"}`, 400, inv("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice", "")},
	})
}

func TestAnthropicRefusals(t *testing.T) {
	u := Start(t, Anthropic, "k-anth", "up-claude")
	auth := map[string]string{"x-api-key": "k-anth", "anthropic-version": "2023-06-01"}
	inv := func(msg string) string { return anthErr("invalid_request_error", msg) }
	use := `{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]}`
	runRefusals(t, u, auth, []refusalCase{
		{"wrong key", "/v1/messages", map[string]string{"x-api-key": "nope", "anthropic-version": "2023-06-01"}, `{}`, 401, anthErr("authentication_error", "invalid x-api-key")},
		{"no key", "/v1/messages", map[string]string{"anthropic-version": "2023-06-01"}, `{}`, 401, anthErr("authentication_error", "x-api-key header is required")},
		{"wrong bearer", "/v1/messages", map[string]string{"Authorization": "Bearer nope", "anthropic-version": "2023-06-01"}, `{}`, 401, anthErr("authentication_error", "invalid x-api-key")},
		{"no version", "/v1/messages", map[string]string{"x-api-key": "k-anth"}, `{}`, 400, inv("anthropic-version: header is required")},
		{"no max_tokens", "/v1/messages", nil, `{"model":"up-claude","messages":[{"role":"user","content":"hi"}]}`, 400, inv("max_tokens: Field required")},
		{"other model", "/v1/messages", nil, `{"model":"claude-x","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, 404, anthErr("not_found_error", "model: claude-x")},
		{"extra input", "/v1/messages", nil, `{"model":"up-claude","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"stream_options":{}}`, 400, inv("stream_options: Extra inputs are not permitted")},
		{"system role", "/v1/messages", nil, `{"model":"up-claude","max_tokens":10,"messages":[{"role":"system","content":"hi"}]}`, 400, inv("messages.0.role: Input should be 'user' or 'assistant'")},
		{"unknown block", "/v1/messages", nil, `{"model":"up-claude","max_tokens":10,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, inv("messages.0.content.0: Input tag 'image_url' found using 'type' does not match any of the expected tags: '" + strings.Join(anthropicBlocks, "', '") + "'")},
		{"empty text", "/v1/messages", nil, `{"model":"up-claude","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":""}]}]}`, 400, inv("messages: text content blocks must be non-empty")},
		{"tool_result without tool_use", "/v1/messages", nil, `{"model":"up-claude","max_tokens":10,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"ok"},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"}]}]}`, 400, inv("messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_1. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")},
		{"tool_use without tool_result", "/v1/messages", nil, `{"model":"up-claude","max_tokens":10,"messages":[{"role":"user","content":"hi"},` + use + `,{"role":"user","content":"and?"}]}`, 400, inv("messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1. Each `tool_use` block must have a corresponding `tool_result` block in the next message.")},
		{"tool_result not first", "/v1/messages", nil, `{"model":"up-claude","max_tokens":10,"messages":[{"role":"user","content":"hi"},` + use + `,{"role":"user","content":[{"type":"text","text":"here"},{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"}]}]}`, 400, inv("messages.2: `tool_result` blocks must come first in the user message content, before any other content")},
		{"input not an object", "/v1/messages", nil, `{"model":"up-claude","max_tokens":10,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":"{\"city\":\"Paris\"}"}]}]}`, 400, inv("messages.1.content.0.tool_use.input: Input should be a valid dictionary")},
		{"thinking without signature", "/v1/messages", nil, `{"model":"up-claude","max_tokens":10,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"hmm"}]}]}`, 400, inv("messages.1.content.0.thinking.signature: Field required")},
		{"tool_choice without tools", "/v1/messages", nil, `{"model":"up-claude","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tool_choice":{"type":"auto"}}`, 400, inv("tool_choice may only be specified while providing tools.")},
		{"tool without input_schema", "/v1/messages", nil, `{"model":"up-claude","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"get_weather"}]}`, 400, inv("tools.0.custom.input_schema: Field required")},
		{"budget over max_tokens", "/v1/messages", nil, `{"model":"up-claude","max_tokens":1024,"messages":[{"role":"user","content":"hi"}],"thinking":{"type":"enabled","budget_tokens":2048}}`, 400, inv("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size")},
		{"image of another type", "/v1/messages", nil, `{"model":"up-claude","max_tokens":10,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"` + onePixelPNG + `"}}]}]}`, 400, inv("messages.0.content.0.image.source.base64.data: The image was specified using the image/jpeg media type, but the image appears to be a different format or the data is not valid base64.")},
	})
}

func TestGeminiRefusals(t *testing.T) {
	u := Start(t, Gemini, "k-gem", "gemini-up")
	auth := map[string]string{"x-goog-api-key": "k-gem"}
	inv := func(msg string) string { return gemErr(400, "INVALID_ARGUMENT", msg) }
	gen := "/v1beta/models/gemini-up:generateContent"
	call := `{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}]}`
	runRefusals(t, u, auth, []refusalCase{
		{"no key", gen, map[string]string{}, `{}`, 403, gemErr(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.")},
		{"wrong key", gen + "?key=nope", map[string]string{}, `{}`, 400, inv("API key not valid. Please pass a valid API key.")},
		{"other model", "/v1beta/models/gemini-x:generateContent", nil, `{}`, 404, gemErr(404, "NOT_FOUND", "models/gemini-x is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.")},
		{"missing contents", gen, nil, `{}`, 400, inv("* GenerateContentRequest.contents: contents is not specified\n")},
		{"unknown field", gen, nil, `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"messages":[]}`, 400, inv(`Invalid JSON payload received. Unknown name "messages": Cannot find field.`)},
		{"bad role", gen, nil, `{"contents":[{"role":"assistant","parts":[{"text":"hi"}]}]}`, 400, inv("Please use a valid role: user, model.")},
		{"empty parts", gen, nil, `{"contents":[{"role":"user","parts":[]}]}`, 400, inv("* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n")},
		{"functionResponse without name", gen, nil, `{"contents":[{"role":"user","parts":[{"text":"hi"}]},` + call + `,{"role":"user","parts":[{"functionResponse":{"response":{"result":"sunny"}}}]}]}`, 400, inv("* GenerateContentRequest.contents[2].parts[0].function_response.name: Name cannot be empty.\n")},
		{"response without call", gen, nil, `{"contents":[{"role":"user","parts":[{"text":"hi"}]},{"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"result":"sunny"}}}]}]}`, 400, inv("Please ensure that function response turn comes immediately after a function call turn.")},
		{"call after model text", gen, nil, `{"contents":[{"role":"user","parts":[{"text":"hi"}]},{"role":"model","parts":[{"text":"ok"}]},` + call + `]}`, 400, inv("Please ensure that function call turn comes immediately after a user turn or after a function response turn.")},
		{"response count", gen, nil, `{"contents":[{"role":"user","parts":[{"text":"hi"}]},` + call + `,{"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"result":"sunny"}}},{"functionResponse":{"name":"get_weather","response":{"result":"rain"}}}]}]}`, 400, inv("Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.")},
		{"additionalProperties in parameters", gen, nil, `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"tools":[{"functionDeclarations":[{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"additionalProperties":false}}]}]}`, 400, inv(`Invalid JSON payload received. Unknown name "additionalProperties" at 'tools[0].function_declarations[0].parameters': Cannot find field.`)},
		{"two data fields", gen, nil, `{"contents":[{"role":"user","parts":[{"text":"hi","inlineData":{"mimeType":"image/png","data":"` + onePixelPNG + `"}}]}]}`, 400, inv("* GenerateContentRequest.contents[0].parts[0].data: required oneof field 'data' must have one initialized field\n")},
	})
}

func TestScriptedFailures(t *testing.T) {
	for _, c := range []struct {
		kind   Kind
		status int
		want   string
	}{
		{Chat, 400, oaiErr("Invalid 'messages': scripted refusal.", "invalid_request_error", "messages", "invalid_value")},
		{Chat, 429, oaiErr("Rate limit reached for m on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.", "requests", "", "rate_limit_exceeded")},
		{Responses, 500, oaiErr("The server had an error while processing your request. Sorry about that!", "server_error", "", "")},
		{Anthropic, 429, anthErr("rate_limit_error", "This request would exceed the rate limit for your organization of 50 requests per minute.")},
		{Anthropic, 500, anthErr("api_error", "Internal server error")},
		{Anthropic, 529, anthErr("overloaded_error", "Overloaded")},
		{Gemini, 429, gemErr(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).")},
		{Gemini, 500, gemErr(500, "INTERNAL", "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting")},
	} {
		u := Start(t, c.kind, "k", "m")
		u.Set(Fail, c.status)
		path, body, hdr := map[Kind]string{Chat: "/v1/chat/completions", Responses: "/v1/responses", Anthropic: "/v1/messages", Gemini: "/v1beta/models/m:generateContent"}[c.kind],
			map[Kind]string{Chat: `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, Responses: `{"model":"m","input":"hi"}`,
				Anthropic: `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, Gemini: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`}[c.kind],
			map[string]string{"Authorization": "Bearer k", "x-api-key": "k", "anthropic-version": "2023-06-01", "x-goog-api-key": "k"}
		runRefusals(t, u, hdr, []refusalCase{{name: string(c.kind) + "-" + http.StatusText(c.status), path: path, body: body, status: c.status, want: c.want}})
	}
}

// The SDKs read every answer, whole and streamed, of each script: the
// fakes frame them as the real APIs do.

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestChatWithSDK(t *testing.T) {
	u := Start(t, Chat, "k", "up-chat")
	cl := openai.NewClient(option.WithBaseURL(u.URL+"/v1/"), option.WithAPIKey("k"), option.WithMaxRetries(0))
	u.Set(ToolCall, 0)
	tool := openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: ToolName, Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}})
	params := openai.ChatCompletionNewParams{Model: "up-chat", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("weather?")},
		Tools: []openai.ChatCompletionToolUnionParam{tool}, StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}}
	s := cl.Chat.Completions.NewStreaming(ctx(t), params)
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	calls := acc.Choices[0].Message.ToolCalls
	if len(calls) != 1 || calls[0].Function.Name != ToolName || calls[0].Function.Arguments != ToolArgs || acc.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("tool call %+v", acc.Choices[0])
	}
	if acc.Usage.PromptTokens != 1300 || acc.Usage.PromptTokensDetails.CachedTokens != 300 || acc.Usage.CompletionTokens != 50 {
		t.Errorf("usage %+v", acc.Usage)
	}
	if r := u.Requests(); !r[0].IncludeUsage {
		t.Error("include_usage not recorded")
	}
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{}
	params.Messages = append(params.Messages, acc.Choices[0].Message.ToParam(), openai.ToolMessage("sunny, 18 C", calls[0].ID))
	resp, err := cl.Chat.Completions.New(ctx(t), params)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Message.Content != ToolResultPrefix+"sunny, 18 C" {
		t.Errorf("final %q", resp.Choices[0].Message.Content)
	}
	u.Set(Image, 0)
	resp, err = cl.Chat.Completions.New(ctx(t), openai.ChatCompletionNewParams{Model: "up-chat", Messages: []openai.ChatCompletionMessageParamUnion{
		openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "data:image/png;base64," + onePixelPNG})})}})
	if err != nil || resp.Choices[0].Message.Content != "I see a PNG image of 1x1 pixels" {
		t.Errorf("image: %v %+v", err, resp)
	}
	u.Set(Fail, 429)
	_, err = cl.Chat.Completions.New(ctx(t), params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" {
		t.Errorf("429: %v", err)
	}
}

func TestResponsesWithSDK(t *testing.T) {
	u := Start(t, Responses, "k", "up-resp")
	cl := openai.NewClient(option.WithBaseURL(u.URL+"/v1/"), option.WithAPIKey("k"), option.WithMaxRetries(0))
	u.Set(ToolCall, 0)
	params := responses.ResponseNewParams{Model: "up-resp", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("weather?")},
		Tools: []responses.ToolUnionParam{{OfFunction: &responses.FunctionToolParam{Name: ToolName, Parameters: map[string]any{"type": "object"}}}}}
	s := cl.Responses.NewStreaming(ctx(t), params)
	var done responses.Response
	var deltas strings.Builder
	seq := int64(0)
	for s.Next() {
		ev := s.Current()
		if ev.SequenceNumber != seq {
			t.Errorf("sequence_number %d, want %d", ev.SequenceNumber, seq)
		}
		seq++
		if ev.Type == "response.function_call_arguments.delta" {
			deltas.WriteString(ev.Delta)
		}
		if ev.Type == "response.completed" {
			done = ev.Response
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if deltas.String() != ToolArgs || len(done.Output) != 1 || done.Output[0].Type != "function_call" || done.Usage.InputTokensDetails.CachedTokens != 300 {
		t.Fatalf("stream: args %q, %+v", deltas.String(), done)
	}
	fc := done.Output[0]
	params.Input = responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
		responses.ResponseInputItemParamOfMessage("weather?", responses.EasyInputMessageRoleUser),
		responses.ResponseInputItemParamOfFunctionCall(fc.Arguments.OfString, fc.CallID, fc.Name),
		functionOutput(fc.CallID, "sunny, 18 C")}}
	resp, err := cl.Responses.New(ctx(t), params)
	if err != nil {
		t.Fatal(err)
	}
	if resp.OutputText() != ToolResultPrefix+"sunny, 18 C" || resp.Usage.InputTokens != 1300 {
		t.Errorf("final %q %+v", resp.OutputText(), resp.Usage)
	}
}

func functionOutput(callID, out string) responses.ResponseInputItemUnionParam {
	item := responses.ResponseInputItemParamOfFunctionCallOutput(out)
	item.OfFunctionCallOutput.CallID = openai.String(callID)
	return item
}

func TestAnthropicWithSDK(t *testing.T) {
	u := Start(t, Anthropic, "k", "up-claude")
	cl := anthropic.NewClient(aoption.WithBaseURL(u.URL), aoption.WithAPIKey("k"), aoption.WithMaxRetries(0))
	u.Set(ToolCall, 0)
	params := anthropic.MessageNewParams{Model: "up-claude", MaxTokens: 100,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("weather?"))},
		Tools:    []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{Name: ToolName, InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}}}}}}
	s := cl.Messages.NewStreaming(ctx(t), params)
	var msg anthropic.Message
	for s.Next() {
		if err := msg.Accumulate(s.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) != 2 || msg.Content[1].Type != "tool_use" || string(msg.Content[1].Input) != ToolArgs || msg.StopReason != "tool_use" {
		t.Fatalf("streamed %+v", msg)
	}
	if msg.Usage.InputTokens != 1000 || msg.Usage.CacheReadInputTokens != 300 || msg.Usage.CacheCreationInputTokens != 200 || msg.Usage.OutputTokens != 50 {
		t.Errorf("usage %+v", msg.Usage)
	}
	params.Messages = append(params.Messages, msg.ToParam(), anthropic.NewUserMessage(anthropic.NewToolResultBlock(msg.Content[1].ID, "sunny, 18 C", false)))
	resp, err := cl.Messages.New(ctx(t), params)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content[0].Text != ToolResultPrefix+"sunny, 18 C" {
		t.Errorf("final %+v", resp.Content)
	}
	n, err := cl.Messages.CountTokens(ctx(t), anthropic.MessageCountTokensParams{Model: "up-claude", Messages: params.Messages[:1]})
	if err != nil || n.InputTokens != CountedTokens {
		t.Errorf("count: %v %+v", err, n)
	}
}

func TestGeminiWithSDK(t *testing.T) {
	u := Start(t, Gemini, "k", "gemini-up")
	for _, version := range []string{"v1beta", ""} { // "" is the SDK's default (v1)
		cl, err := genai.NewClient(ctx(t), &genai.ClientConfig{APIKey: "k", Backend: genai.BackendGeminiAPI, HTTPOptions: genai.HTTPOptions{BaseURL: u.URL, APIVersion: version}})
		if err != nil {
			t.Fatal(err)
		}
		u.Set(ToolCall, 0)
		cfg := &genai.GenerateContentConfig{Tools: []*genai.Tool{{FunctionDeclarations: []*genai.FunctionDeclaration{{Name: ToolName, Parameters: &genai.Schema{Type: genai.TypeObject, Properties: map[string]*genai.Schema{"city": {Type: genai.TypeString}}}}}}}}
		contents := []*genai.Content{genai.NewContentFromText("weather?", genai.RoleUser)}
		var call *genai.FunctionCall
		var last *genai.GenerateContentResponse
		for r, err := range cl.Models.GenerateContentStream(ctx(t), "gemini-up", contents, cfg) {
			if err != nil {
				t.Fatal(err)
			}
			last = r
			if fc := r.FunctionCalls(); len(fc) > 0 {
				call = fc[0]
			}
		}
		if call == nil || call.Name != ToolName || call.Args["city"] != "Paris" || last.UsageMetadata.CachedContentTokenCount != 300 || last.UsageMetadata.ThoughtsTokenCount != 7 {
			t.Fatalf("stream: %+v %+v", call, last)
		}
		contents = append(contents, last.Candidates[0].Content, genai.NewContentFromFunctionResponse(ToolName, map[string]any{"result": "sunny, 18 C"}, genai.RoleUser))
		resp, err := cl.Models.GenerateContent(ctx(t), "gemini-up", contents, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Text() != ToolResultPrefix+"sunny, 18 C" {
			t.Errorf("final %q", resp.Text())
		}
		u.Set(Image, 0)
		png, _ := base64.StdEncoding.DecodeString(onePixelPNG)
		resp, err = cl.Models.GenerateContent(ctx(t), "gemini-up", []*genai.Content{{Role: genai.RoleUser, Parts: []*genai.Part{genai.NewPartFromBytes(png, "image/png")}}}, nil)
		if err != nil || resp.Text() != "I see a PNG image of 1x1 pixels" {
			t.Errorf("image: %v %v", err, resp)
		}
		u.Set(Fail, 429)
		_, err = cl.Models.GenerateContent(ctx(t), "gemini-up", contents, cfg)
		var apiErr genai.APIError
		if !errors.As(err, &apiErr) || apiErr.Code != 429 || apiErr.Status != "RESOURCE_EXHAUSTED" {
			t.Errorf("429: %v", err)
		}
		n, err := cl.Models.CountTokens(ctx(t), "gemini-up", contents[:1], nil)
		if err != nil || n.TotalTokens != CountedTokens {
			t.Errorf("count: %v %+v", err, n)
		}
	}
	for _, r := range u.Requests() {
		if r.Header.Get("x-goog-api-key") != "k" {
			t.Errorf("key header %q", r.Header.Get("x-goog-api-key"))
		}
	}
}

// A stream without alt=sse is one JSON array, as Gemini sends it.
func TestGeminiStreamWithoutSSE(t *testing.T) {
	u := Start(t, Gemini, "k", "g")
	req, _ := http.NewRequest("POST", u.URL+"/v1beta/models/g:streamGenerateContent?key=k", strings.NewReader(`{"contents":[{"parts":[{"text":"hi"}]}]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var chunks []map[string]any
	if err := json.Unmarshal(b, &chunks); err != nil || len(chunks) != 3 || !bytes.HasPrefix(b, []byte("[{")) {
		t.Fatalf("%v %s", err, b)
	}
}
