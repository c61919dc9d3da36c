package proxy

// Conformance matrix (#12): every client surface × every upstream kind.
//
// What it proves. Each client is an official SDK — openai-go/v3 Chat
// Completions, openai-go/v3 Responses, anthropic-sdk-go/v2 Messages,
// google.golang.org/genai — pointed at the gateway with a sk-ss-v1 key.
// Each upstream is a strict fake (internal/fakeup) of one kind — OpenAI
// chat (a provider with NoResponses), OpenAI responses (ResponsesOnly),
// Anthropic, Gemini — that refuses, with the real status and error body,
// whatever the real API refuses, and records what it received. A cell is
// one client on one upstream; its subtests are a plain answer, a stream, a
// streamed tool-call round trip (the model calls get_weather, the client
// sends the result, the model's answer quotes it), an image given as
// base64 and as a URL (an upstream that cannot take a URL must give the
// client a 400 naming the field), and an upstream 400 / 429 / 500 that the
// client's SDK reports as its own typed error with the gateway's status
// (4xx relayed, 5xx → 502). A subtest passes only if the SDK read the
// answer, every upstream request was accepted by the fake (so the
// translated request is one the real API takes), and the account was
// charged exactly the price of the fake's usage — input without cache,
// cache reads, cache writes, output — once per upstream answer, in µFlows
// (priced, metering_test.go). Where client and upstream share a format
// the bytes pass through; elsewhere package translate's codecs carry them.
//
// Adding a cell. A new client surface is a confClient: five functions
// that drive its SDK (plain, stream, tool, image, and the error status it
// saw). A new upstream kind is a fakeup kind and a confUpstreams entry
// (its provider options and catalog model). A new subtest is a case in
// runCell, with the fake's script and the number of upstream answers it
// charges. A cell that cannot pass yet goes in confSkips with the exact
// reason, and leaves it when it passes.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"google.golang.org/genai"

	"zenmux/internal/fakeup"
	"zenmux/ledger"
)

// confPNG is a valid 1×1 PNG; the fakes describe it as "a PNG image of
// 1x1 pixels".
const (
	confPNG      = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
	confImageURL = "https://example.com/cat.png"
	confWeather  = "sunny, 18 C"
)

// confUpstream is one column: an upstream kind and the catalog model it
// serves.
type confUpstream struct {
	name  string
	kind  fakeup.Kind
	model string // catalog id
	fake  *fakeup.Upstream
}

// confEnv is the gateway with the four fakes.
type confEnv struct {
	g   *gateway
	ups []*confUpstream
}

func newConfEnv(t *testing.T) *confEnv {
	t.Helper()
	cols := []struct {
		name     string
		kind     fakeup.Kind
		provider string
		o        HTTPOptions
		path     string
	}{
		{"chat", fakeup.Chat, "conf-chat", HTTPOptions{Kind: "openai", NoResponses: true}, "/v1"},
		{"responses", fakeup.Responses, "conf-resp", HTTPOptions{Kind: "openai", ResponsesOnly: true}, "/v1"},
		{"anthropic", fakeup.Anthropic, "conf-anth", HTTPOptions{Kind: "anthropic"}, ""},
		{"gemini", fakeup.Gemini, "conf-gem", HTTPOptions{Kind: "gemini"}, ""},
	}
	e := &confEnv{}
	providers := map[string]Provider{}
	var models []ledger.Model
	for _, c := range cols {
		key, upstreamModel := "secret-"+c.provider, "up-"+c.provider
		f := fakeup.Start(t, c.kind, key, upstreamModel)
		o := c.o
		o.BaseURL, o.APIKey = f.URL+c.path, key
		o.MaxConcurrent, o.ConnectTimeout, o.FirstByteTimeout, o.IdleTimeout = 16, time.Second, 5*time.Second, 2*time.Second
		p, err := NewHTTPProvider(o)
		if err != nil {
			t.Fatal(err)
		}
		providers[c.provider] = p
		m := testPrices
		m.ID, m.Provider, m.Upstream, m.Plans = "test/"+c.provider, c.provider, upstreamModel, []string{"free", "pro", "max", "ultra"}
		models = append(models, m)
		e.ups = append(e.ups, &confUpstream{name: c.name, kind: c.kind, model: m.ID, fake: f})
	}
	e.g = newGateway(t, gatewayOptions{providers: providers, models: models})
	return e
}

// confCall is what a subtest gives a client: where, who, which model.
type confCall struct {
	t     *testing.T
	ctx   context.Context
	url   string
	key   string
	model string
}

// confClient drives one SDK. Each function returns the answer's text (for
// tool, the final answer after the round trip) or the SDK's error.
type confClient struct {
	name   string
	plain  func(c confCall) (string, error)
	stream func(c confCall) (string, error)
	tool   func(c confCall) (string, error)
	image  func(c confCall, url bool) (string, error)
	// status reads the HTTP status from the SDK's typed error (0 if the
	// error is not the SDK's API error).
	status func(err error) int
	// message is the error's text as the SDK shows it to its user.
	message func(err error) string
}

var confClients = []confClient{confChatClient(), confResponsesClient(), confAnthropicClient(), confGeminiClient()}

// confSkips holds cells (client/upstream/subtest) that cannot pass yet,
// with the reason.
var confSkips = map[string]string{}

func TestConformance(t *testing.T) {
	e := newConfEnv(t)
	for _, cl := range confClients {
		for _, up := range e.ups {
			t.Run(cl.name+"/"+up.name, func(t *testing.T) { runCell(t, e, cl, up) })
		}
	}
}

func runCell(t *testing.T, e *confEnv, cl confClient, up *confUpstream) {
	g := e.g
	us := fakeup.UsageOf(up.kind)
	_, perAnswer := priced(us.Input, us.Output, us.CacheRead, us.CacheWrite)
	call := func(t *testing.T) (confCall, string) {
		acct, key, _ := g.account("")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		return confCall{t: t, ctx: ctx, url: g.URL, key: key, model: up.model}, acct
	}
	// success runs f with the fake on script s and checks the answer, the
	// upstream's acceptance and the charge of answers upstream answers.
	success := func(name string, s fakeup.Script, answers int, want func(string) bool, f func(confCall) (string, error)) {
		t.Run(name, func(t *testing.T) {
			if why, ok := confSkips[cl.name+"/"+up.name+"/"+name]; ok {
				t.Skip(why)
			}
			up.fake.Reset()
			up.fake.Set(s, 0)
			c, acct := call(t)
			text, err := f(c)
			reqs := up.fake.Requests()
			for _, r := range reqs {
				if r.Status != 200 {
					t.Errorf("the %s upstream refused %s %s: %d %s\nbody: %s", up.name, r.Method, r.Path, r.Status, r.Refusal, r.Body)
				}
				if up.kind == fakeup.Chat && strings.Contains(string(r.Body), `"stream":true`) && !r.IncludeUsage {
					t.Errorf("a streamed chat request without stream_options.include_usage: %s", r.Body)
				}
			}
			if err != nil {
				t.Fatalf("%s: %v", cl.name, err)
			}
			if !want(text) {
				t.Fatalf("answer %q", text)
			}
			if len(reqs) != answers {
				t.Errorf("the upstream received %d requests, want %d", len(reqs), answers)
			}
			logs := g.waitLogs(acct, answers)
			for _, l := range logs {
				if l.InputTokens != us.Input || l.OutputTokens != us.Output || l.CacheReadTokens != us.CacheRead || l.CacheWriteTokens != us.CacheWrite || l.Estimated {
					t.Errorf("charged usage in %d out %d cache read %d write %d (estimated %v), want %+v", l.InputTokens, l.OutputTokens, l.CacheReadTokens, l.CacheWriteTokens, l.Estimated, us)
				}
			}
			if got, want := g.usedFlows(acct), int64(answers)*perAnswer; got != want || len(logs) != answers {
				t.Errorf("charged %d µFlows in %d requests, want %d in %d", got, len(logs), want, answers)
			}
		})
	}
	is := func(s string) func(string) bool { return func(got string) bool { return got == s } }
	success("plain", fakeup.Text, 1, is(fakeup.AnswerText), cl.plain)
	success("stream", fakeup.Text, 1, is(fakeup.AnswerText), cl.stream)
	// A Gemini client's function response is an object ({"result": …}); an
	// upstream whose tool results are text may get it as its JSON.
	quotes := func(got string) bool {
		return strings.HasPrefix(got, fakeup.ToolResultPrefix) && strings.Contains(got, confWeather)
	}
	success("tool", fakeup.ToolCall, 2, quotes, cl.tool)
	success("image-base64", fakeup.Image, 1, is(fakeup.ImagePrefix+"a PNG image of 1x1 pixels"), func(c confCall) (string, error) { return cl.image(c, false) })
	t.Run("image-url", func(t *testing.T) {
		if why, ok := confSkips[cl.name+"/"+up.name+"/image-url"]; ok {
			t.Skip(why)
		}
		up.fake.Reset()
		up.fake.Set(fakeup.Image, 0)
		c, acct := call(t)
		text, err := cl.image(c, true)
		if err != nil {
			// An upstream that cannot take a URL: a 400 naming the field.
			if st := cl.status(err); st != 400 || !strings.Contains(strings.ToLower(err.Error()), "url") {
				t.Fatalf("want the answer or a 400 naming the URL field, got %v", err)
			}
			if n := len(up.fake.Requests()); n != 0 {
				t.Errorf("refused, yet the upstream received %d requests", n)
			}
			return
		}
		if text != fakeup.ImagePrefix+"the image at "+confImageURL {
			t.Fatalf("answer %q", text)
		}
		if got, want := g.usedFlows(acct), perAnswer; len(g.waitLogs(acct, 1)) != 1 || got != want {
			t.Errorf("charged %d µFlows, want %d", got, want)
		}
	})
	for _, st := range []struct{ upstream, client int }{{400, 400}, {429, 429}, {500, 502}} {
		name := fmt.Sprintf("error-%d", st.upstream)
		t.Run(name, func(t *testing.T) {
			if why, ok := confSkips[cl.name+"/"+up.name+"/"+name]; ok {
				t.Skip(why)
			}
			up.fake.Reset()
			up.fake.Set(fakeup.Fail, st.upstream)
			c, acct := call(t)
			_, err := cl.plain(c)
			if err == nil {
				t.Fatal("no error")
			}
			if got := cl.status(err); got != st.client {
				t.Fatalf("the SDK's error has status %d, want %d: %v", got, st.client, err)
			}
			if n := len(up.fake.Requests()); n != 1 {
				t.Errorf("the upstream received %d requests, want 1", n)
			}
			// A refusal about the request reaches the client with the
			// provider's words, in the client's format.
			if msg := fakeup.FailureMessage(up.kind, up.fake.Model, st.upstream); st.upstream < 500 && !strings.Contains(cl.message(err), msg) {
				t.Errorf("the SDK's error does not carry the upstream's message %q: %v", msg, err)
			}
			if logs := g.requests(acct); len(logs) != 0 || g.usedFlows(acct) != 0 {
				t.Errorf("an error was charged: %+v", logs)
			}
		})
	}
}

// ---- openai-go/v3 Chat Completions -------------------------------------------

func confOpenAI(c confCall) *openai.Client {
	cl := openai.NewClient(option.WithBaseURL(c.url+"/v1/"), option.WithAPIKey(c.key), option.WithMaxRetries(0), option.WithRequestTimeout(10*time.Second))
	return &cl
}

// confSchema is get_weather's parameters as strict-mode OpenAI clients
// write them (additionalProperties included: Gemini's Schema has no such
// field).
func confSchema() map[string]any {
	return map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string", "description": "the city"}},
		"required": []string{"city"}, "additionalProperties": false}
}

func openaiMessage(err error) string {
	var e *openai.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

func openaiStatus(err error) int {
	var e *openai.Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

func confChatClient() confClient {
	chatStream := func(c confCall, p openai.ChatCompletionNewParams) (openai.ChatCompletionMessage, error) {
		s := confOpenAI(c).Chat.Completions.NewStreaming(c.ctx, p)
		var acc openai.ChatCompletionAccumulator
		for i := 0; s.Next(); i++ {
			if i > 1000 {
				return openai.ChatCompletionMessage{}, errors.New("stream too long")
			}
			acc.AddChunk(s.Current())
			if m := acc.Model; m != c.model {
				return openai.ChatCompletionMessage{}, fmt.Errorf("chunk names model %q, want %q", m, c.model)
			}
		}
		if err := s.Err(); err != nil {
			return openai.ChatCompletionMessage{}, err
		}
		if len(acc.Choices) != 1 {
			return openai.ChatCompletionMessage{}, fmt.Errorf("stream with %d choices", len(acc.Choices))
		}
		return acc.Choices[0].Message, nil
	}
	tool := openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: fakeup.ToolName, Description: openai.String("Weather in a city"), Parameters: confSchema()})
	return confClient{
		name:    "chat",
		status:  openaiStatus,
		message: openaiMessage,
		plain: func(c confCall) (string, error) {
			r, err := confOpenAI(c).Chat.Completions.New(c.ctx, openai.ChatCompletionNewParams{Model: c.model,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("Say hello")}})
			if err != nil {
				return "", err
			}
			if r.Model != c.model || len(r.Choices) != 1 || r.Choices[0].FinishReason != "stop" {
				return "", fmt.Errorf("answer %+v", r)
			}
			return r.Choices[0].Message.Content, nil
		},
		stream: func(c confCall) (string, error) {
			m, err := chatStream(c, openai.ChatCompletionNewParams{Model: c.model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello")}})
			return m.Content, err
		},
		tool: func(c confCall) (string, error) {
			p := openai.ChatCompletionNewParams{Model: c.model, Tools: []openai.ChatCompletionToolUnionParam{tool},
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Paris?")}}
			m, err := chatStream(c, p)
			if err != nil {
				return "", err
			}
			if len(m.ToolCalls) != 1 || m.ToolCalls[0].Function.Name != fakeup.ToolName || m.ToolCalls[0].Function.Arguments != fakeup.ToolArgs || m.ToolCalls[0].ID == "" {
				return "", fmt.Errorf("tool call %+v", m)
			}
			p.Messages = append(p.Messages, m.ToParam(), openai.ToolMessage(confWeather, m.ToolCalls[0].ID))
			m, err = chatStream(c, p)
			return m.Content, err
		},
		image: func(c confCall, url bool) (string, error) {
			u := "data:image/png;base64," + confPNG
			if url {
				u = confImageURL
			}
			r, err := confOpenAI(c).Chat.Completions.New(c.ctx, openai.ChatCompletionNewParams{Model: c.model, Messages: []openai.ChatCompletionMessageParamUnion{
				openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{openai.TextContentPart("What is this?"),
					openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: u})})}})
			if err != nil {
				return "", err
			}
			return r.Choices[0].Message.Content, nil
		},
	}
}

// ---- openai-go/v3 Responses --------------------------------------------------

func confResponsesClient() confClient {
	stream := func(c confCall, p responses.ResponseNewParams) (responses.Response, string, error) {
		s := confOpenAI(c).Responses.NewStreaming(c.ctx, p)
		var done responses.Response
		var text strings.Builder
		for i := 0; s.Next(); i++ {
			if i > 1000 {
				return done, "", errors.New("stream too long")
			}
			ev := s.Current()
			switch ev.Type {
			case "response.output_text.delta":
				text.WriteString(ev.Delta)
			case "response.completed":
				done = ev.Response
			}
		}
		if err := s.Err(); err != nil {
			return done, "", err
		}
		if done.Status != "completed" || done.Model != c.model {
			return done, "", fmt.Errorf("no response.completed naming %s: %+v", c.model, done)
		}
		if text.String() != done.OutputText() {
			return done, "", fmt.Errorf("deltas %q, completed %q", text.String(), done.OutputText())
		}
		return done, text.String(), nil
	}
	user := func(s string) responses.ResponseInputItemUnionParam {
		return responses.ResponseInputItemParamOfMessage(s, responses.EasyInputMessageRoleUser)
	}
	return confClient{
		name:    "responses",
		status:  openaiStatus,
		message: openaiMessage,
		plain: func(c confCall) (string, error) {
			r, err := confOpenAI(c).Responses.New(c.ctx, responses.ResponseNewParams{Model: c.model, Instructions: openai.String("Be brief."),
				Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Say hello")}})
			if err != nil {
				return "", err
			}
			if r.Model != c.model || r.Status != "completed" {
				return "", fmt.Errorf("answer %+v", r)
			}
			return r.OutputText(), nil
		},
		stream: func(c confCall) (string, error) {
			_, text, err := stream(c, responses.ResponseNewParams{Model: c.model, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Say hello")}})
			return text, err
		},
		tool: func(c confCall) (string, error) {
			p := responses.ResponseNewParams{Model: c.model,
				Tools: []responses.ToolUnionParam{{OfFunction: &responses.FunctionToolParam{Name: fakeup.ToolName, Description: openai.String("Weather in a city"),
					Parameters: confSchema(), Strict: openai.Bool(true)}}},
				Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{user("Weather in Paris?")}}}
			r, _, err := stream(c, p)
			if err != nil {
				return "", err
			}
			var fc *responses.ResponseOutputItemUnion
			for i := range r.Output {
				if r.Output[i].Type == "function_call" {
					fc = &r.Output[i]
				}
			}
			if fc == nil || fc.Name != fakeup.ToolName || fc.Arguments.OfString != fakeup.ToolArgs || fc.CallID == "" {
				return "", fmt.Errorf("no get_weather call in %+v", r.Output)
			}
			out := responses.ResponseInputItemParamOfFunctionCallOutput(confWeather)
			out.OfFunctionCallOutput.CallID = openai.String(fc.CallID)
			p.Input.OfInputItemList = append(p.Input.OfInputItemList, responses.ResponseInputItemParamOfFunctionCall(fc.Arguments.OfString, fc.CallID, fc.Name), out)
			_, text, err := stream(c, p)
			return text, err
		},
		image: func(c confCall, url bool) (string, error) {
			u := "data:image/png;base64," + confPNG
			if url {
				u = confImageURL
			}
			content := responses.ResponseInputMessageContentListParam{
				{OfInputText: &responses.ResponseInputTextParam{Text: "What is this?"}},
				{OfInputImage: &responses.ResponseInputImageParam{ImageURL: openai.String(u), Detail: responses.ResponseInputImageDetailAuto}}}
			r, err := confOpenAI(c).Responses.New(c.ctx, responses.ResponseNewParams{Model: c.model, Input: responses.ResponseNewParamsInputUnion{
				OfInputItemList: responses.ResponseInputParam{responses.ResponseInputItemParamOfMessage(content, responses.EasyInputMessageRoleUser)}}})
			if err != nil {
				return "", err
			}
			return r.OutputText(), nil
		},
	}
}

// ---- anthropic-sdk-go/v2 Messages --------------------------------------------

func confAnthropic(c confCall) *anthropic.Client {
	cl := anthropic.NewClient(aoption.WithBaseURL(c.url), aoption.WithAPIKey(c.key), aoption.WithMaxRetries(0), aoption.WithRequestTimeout(10*time.Second))
	return &cl
}

func anthropicText(m *anthropic.Message) string {
	var b strings.Builder
	for _, blk := range m.Content {
		if blk.Type == "text" {
			b.WriteString(blk.Text)
		}
	}
	return b.String()
}

func confAnthropicClient() confClient {
	stream := func(c confCall, p anthropic.MessageNewParams) (anthropic.Message, error) {
		s := confAnthropic(c).Messages.NewStreaming(c.ctx, p)
		var m anthropic.Message
		for i := 0; s.Next(); i++ {
			if i > 1000 {
				return m, errors.New("stream too long")
			}
			if err := m.Accumulate(s.Current()); err != nil {
				return m, err
			}
		}
		if err := s.Err(); err != nil {
			return m, err
		}
		if m.Model != anthropic.Model(c.model) || m.StopReason == "" {
			return m, fmt.Errorf("streamed message %+v", m)
		}
		return m, nil
	}
	return confClient{
		name: "anthropic",
		status: func(err error) int {
			var e *anthropic.Error
			if errors.As(err, &e) {
				return e.StatusCode
			}
			return 0
		},
		message: func(err error) string { return err.Error() },
		plain: func(c confCall) (string, error) {
			m, err := confAnthropic(c).Messages.New(c.ctx, anthropic.MessageNewParams{Model: anthropic.Model(c.model), MaxTokens: 256,
				System:   []anthropic.TextBlockParam{{Text: "Be brief."}},
				Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hello"))}})
			if err != nil {
				return "", err
			}
			if m.Model != anthropic.Model(c.model) || m.StopReason != "end_turn" {
				return "", fmt.Errorf("answer %+v", m)
			}
			return anthropicText(m), nil
		},
		stream: func(c confCall) (string, error) {
			m, err := stream(c, anthropic.MessageNewParams{Model: anthropic.Model(c.model), MaxTokens: 256,
				Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hello"))}})
			return anthropicText(&m), err
		},
		tool: func(c confCall) (string, error) {
			p := anthropic.MessageNewParams{Model: anthropic.Model(c.model), MaxTokens: 256,
				Tools: []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{Name: fakeup.ToolName, Description: anthropic.String("Weather in a city"),
					InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}, Required: []string{"city"}}}}},
				Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Weather in Paris?"))}}
			m, err := stream(c, p)
			if err != nil {
				return "", err
			}
			var use *anthropic.ContentBlockUnion
			for i := range m.Content {
				if m.Content[i].Type == "tool_use" {
					use = &m.Content[i]
				}
			}
			if use == nil || use.Name != fakeup.ToolName || string(use.Input) != fakeup.ToolArgs || m.StopReason != "tool_use" {
				return "", fmt.Errorf("no get_weather call in %+v", m)
			}
			p.Messages = append(p.Messages, m.ToParam(), anthropic.NewUserMessage(anthropic.NewToolResultBlock(use.ID, confWeather, false)))
			m, err = stream(c, p)
			return anthropicText(&m), err
		},
		image: func(c confCall, url bool) (string, error) {
			img := anthropic.NewImageBlockBase64("image/png", confPNG)
			if url {
				img = anthropic.NewImageBlock(anthropic.URLImageSourceParam{URL: confImageURL})
			}
			m, err := confAnthropic(c).Messages.New(c.ctx, anthropic.MessageNewParams{Model: anthropic.Model(c.model), MaxTokens: 256,
				Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What is this?"), img)}})
			if err != nil {
				return "", err
			}
			return anthropicText(m), nil
		},
	}
}

// ---- google.golang.org/genai -------------------------------------------------

// confGenai is a Gemini client at the gateway; version "" is the SDK's
// default (v1).
func confGenai(c confCall, version string) (*genai.Client, error) {
	return genai.NewClient(c.ctx, &genai.ClientConfig{APIKey: c.key, Backend: genai.BackendGeminiAPI,
		HTTPOptions: genai.HTTPOptions{BaseURL: c.url, APIVersion: version}})
}

func confGeminiClient() confClient {
	stream := func(c confCall, contents []*genai.Content, cfg *genai.GenerateContentConfig) (string, *genai.Content, error) {
		cl, err := confGenai(c, "")
		if err != nil {
			return "", nil, err
		}
		var text strings.Builder
		model := &genai.Content{Role: genai.RoleModel}
		var last *genai.GenerateContentResponse
		n := 0
		for r, err := range cl.Models.GenerateContentStream(c.ctx, c.model, contents, cfg) {
			if err != nil {
				return "", nil, err
			}
			if n++; n > 1000 {
				return "", nil, errors.New("stream too long")
			}
			last = r
			text.WriteString(r.Text())
			if len(r.Candidates) > 0 && r.Candidates[0].Content != nil {
				model.Parts = append(model.Parts, r.Candidates[0].Content.Parts...)
			}
		}
		if last == nil || len(last.Candidates) == 0 || last.Candidates[0].FinishReason == "" || last.UsageMetadata == nil {
			return "", nil, fmt.Errorf("the stream ended without a finish reason and usage: %+v", last)
		}
		return text.String(), model, nil
	}
	user := func(s string) []*genai.Content { return []*genai.Content{genai.NewContentFromText(s, genai.RoleUser)} }
	return confClient{
		name: "gemini",
		status: func(err error) int {
			var e genai.APIError
			if errors.As(err, &e) {
				return e.Code
			}
			return 0
		},
		message: func(err error) string {
			var e genai.APIError
			if errors.As(err, &e) {
				return e.Message
			}
			return err.Error()
		},
		plain: func(c confCall) (string, error) {
			cl, err := confGenai(c, "v1beta")
			if err != nil {
				return "", err
			}
			r, err := cl.Models.GenerateContent(c.ctx, c.model, user("Say hello"),
				&genai.GenerateContentConfig{SystemInstruction: genai.NewContentFromText("Be brief.", genai.RoleUser)})
			if err != nil {
				return "", err
			}
			if len(r.Candidates) != 1 || r.Candidates[0].FinishReason != genai.FinishReasonStop || r.UsageMetadata == nil {
				return "", fmt.Errorf("answer %+v", r)
			}
			return r.Text(), nil
		},
		stream: func(c confCall) (string, error) {
			text, _, err := stream(c, user("Say hello"), nil)
			return text, err
		},
		tool: func(c confCall) (string, error) {
			cfg := &genai.GenerateContentConfig{Tools: []*genai.Tool{{FunctionDeclarations: []*genai.FunctionDeclaration{{Name: fakeup.ToolName,
				Description: "Weather in a city", Parameters: &genai.Schema{Type: genai.TypeObject,
					Properties: map[string]*genai.Schema{"city": {Type: genai.TypeString}}, Required: []string{"city"}}}}}}}
			contents := user("Weather in Paris?")
			_, model, err := stream(c, contents, cfg)
			if err != nil {
				return "", err
			}
			var call *genai.FunctionCall
			for _, p := range model.Parts {
				if p.FunctionCall != nil {
					call = p.FunctionCall
				}
			}
			if call == nil || call.Name != fakeup.ToolName || call.Args["city"] != "Paris" || len(call.Args) != 1 {
				b, _ := json.Marshal(model.Parts)
				return "", fmt.Errorf("no get_weather call in %s", b)
			}
			resp := genai.NewPartFromFunctionResponse(fakeup.ToolName, map[string]any{"result": confWeather})
			resp.FunctionResponse.ID = call.ID
			contents = append(contents, model, genai.NewContentFromParts([]*genai.Part{resp}, genai.RoleUser))
			text, _, err := stream(c, contents, cfg)
			return text, err
		},
		image: func(c confCall, url bool) (string, error) {
			cl, err := confGenai(c, "")
			if err != nil {
				return "", err
			}
			png, _ := base64.StdEncoding.DecodeString(confPNG)
			img := genai.NewPartFromBytes(png, "image/png")
			if url {
				img = genai.NewPartFromURI(confImageURL, "image/png")
			}
			r, err := cl.Models.GenerateContent(c.ctx, c.model, []*genai.Content{genai.NewContentFromParts([]*genai.Part{genai.NewPartFromText("What is this?"), img}, genai.RoleUser)}, nil)
			if err != nil {
				return "", err
			}
			return r.Text(), nil
		},
	}
}
