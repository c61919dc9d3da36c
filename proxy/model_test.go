package proxy

import (
	"strings"
	"testing"
)

func TestMemberValue(t *testing.T) {
	for _, c := range []struct {
		body string
		path []string
		want string // "" → not found
	}{
		{`{"id":"x","model":"up-gpt","choices":[]}`, modelPath, `"up-gpt"`},
		{` { "model" : "a\"b" } `, modelPath, `"a\"b"`},
		{`{"choices":[{"model":"inner"}],"model":"outer"}`, modelPath, `"outer"`},
		{`{"type":"message_start","message":{"id":"m","model":"up-claude"}}`, messageModelPath, `"up-claude"`},
		{`{"type":"content_block_delta","index":0,"delta":{"text":"\"model\":\"x\""}}`, messageModelPath, ``},
		{`{"type":"response.created","response":{"model":"up-gpt"}}`, responseModelPath, `"up-gpt"`},
		{`{"response":"not an object"}`, responseModelPath, ``},
		{`{"model":null}`, modelPath, `null`},
		{`{"id":1}`, modelPath, ``},
		{`{"id":`, modelPath, ``},
		{`[{"model":"x"}]`, modelPath, ``},
		{``, modelPath, ``},
	} {
		s, ok := memberValue([]byte(c.body), c.path...)
		got := ""
		if ok {
			got = c.body[s.start:s.end]
		}
		if got != c.want {
			t.Errorf("%s %v: %q, want %q", c.body, c.path, got, c.want)
		}
	}
	for _, b := range []string{`{"model":null,"x":1}`, `{"model":"test/gpt"}`} {
		if _, ok := modelSpan([]byte(b), []byte(`"test/gpt"`), modelPath); ok {
			t.Errorf("%s: a model that is not a string, or already the client's, is to be replaced", b)
		}
	}
	for _, c := range []struct {
		f    Format
		name string
		want []string
	}{
		{FormatChat, "", modelPath}, {FormatResponses, "response.created", responseModelPath}, {FormatResponses, "response.completed", responseModelPath},
		{FormatResponses, "response.output_text.delta", nil}, {FormatMessages, "message_start", messageModelPath}, {FormatMessages, "content_block_delta", nil},
	} {
		if got := eventModelPath(c.f, c.name); strings.Join(got, ".") != strings.Join(c.want, ".") {
			t.Errorf("%d %q: path %v, want %v", c.f, c.name, got, c.want)
		}
	}
}

// The answer names the model as the client asked for it (its catalog id),
// not the upstream's name for it, in every surface, whole and streamed;
// every other byte of the upstream's answer reaches the client as it was,
// and the charge is the same (Q7).
func TestAnswerNamesClientsModel(t *testing.T) {
	chatUsage := `{"prompt_tokens":32830,"completion_tokens":16415,"total_tokens":49245}`
	respUsage := `{"input_tokens":32830,"output_tokens":16415,"total_tokens":49245}`
	anthUsage := `{"input_tokens":32830,"output_tokens":16415}`
	for _, c := range []struct {
		name, path, model, body string
		anthropic               bool
		upstream                []string // the answer, or the stream's events
		stream                  bool
	}{
		{name: "chat", path: "/v1/chat/completions", model: modelGPT, body: `{"model":"test/gpt","messages":[{"role":"user","content":"hi"}]}`,
			upstream: []string{chatCompletion("Hello", chatUsage)}},
		{name: "chat stream", path: "/v1/chat/completions", model: modelGPT, stream: true,
			body:     `{"model":"test/gpt","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`,
			upstream: chatStream([]string{"Hel", "lo"}, chatUsage)},
		{name: "responses", path: "/v1/responses", model: modelGPT, body: `{"model":"test/gpt","input":"hi"}`,
			upstream: []string{respObject("completed", "Hello", respUsage)}},
		{name: "responses stream", path: "/v1/responses", model: modelGPT, stream: true, body: `{"model":"test/gpt","stream":true,"input":"hi"}`,
			upstream: respStream([]string{"Hel", "lo"}, "completed", respUsage)},
		{name: "messages", path: "/v1/messages", model: modelClaude, anthropic: true, body: `{"model":"test/claude","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}`,
			upstream: []string{anthMessage("Hello", anthUsage)}},
		{name: "messages stream", path: "/v1/messages", model: modelClaude, anthropic: true, stream: true,
			body: `{"model":"test/claude","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			upstream: []string{anthStart(`{"input_tokens":32830,"output_tokens":1}`), anthBlockStart(0), anthTextDelta(0, "Hello"), anthBlockStop(0),
				anthDelta(`"end_turn"`, `{"output_tokens":16415}`), anthStop()}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newGateway(t, gatewayOptions{})
			acct, key, _ := g.account("pro")
			up := g.OpenAI
			if c.anthropic {
				up = g.Anth
			}
			if c.stream {
				up.Handle(newScript(c.upstream).handler())
			} else {
				up.Handle(jsonHandler(200, c.upstream[0]))
			}
			hdr := []string{}
			if c.anthropic {
				hdr = []string{"anthropic-version", "2023-06-01"}
			}
			resp, b := rawPost(t, g.URL+c.path, key, c.body, hdr...)
			upName := map[string]string{modelGPT: `"up-gpt"`, modelClaude: `"up-claude"`}[c.model]
			// The client asked for usage on the chat stream, so every
			// upstream event reaches it.
			wantBody := strings.ReplaceAll(strings.Join(c.upstream, ""), upName, `"`+c.model+`"`)
			if resp.StatusCode != 200 || string(b) != wantBody {
				t.Fatalf("%d\n got: %s\nwant: %s", resp.StatusCode, b, wantBody)
			}
			// 1 Flow in + 2 Flows out, as without the renaming.
			g.oneCharge(t, acct, want{in: 32830, out: 16415, flows: 3_000_000, usd: 98_490, status: "ok"})
		})
	}
}
