package anthropic

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"zenmux/translate"
)

// sdkServer serves the codec's output to the official SDK, after checking
// that what the SDK sent decodes.
func sdkServer(t *testing.T, answer func(w http.ResponseWriter, r *translate.Request)) anthropic.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, hr *http.Request) {
		body, _ := io.ReadAll(hr.Body)
		r, err := Codec.DecodeRequest(body)
		if err != nil {
			w.WriteHeader(400)
			w.Write(Codec.EncodeError(nil, translate.AsError(err)))
			return
		}
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return anthropic.NewClient(option.WithoutEnvironmentDefaults(), option.WithBaseURL(srv.URL),
		option.WithAPIKey("sk-test"), option.WithMaxRetries(0), option.WithRequestTimeout(10*time.Second))
}

func sdkParams() anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     "my/claude",
		MaxTokens: 1024,
		System:    []anthropic.TextBlockParam{{Text: "Be brief."}},
		Messages: []anthropic.MessageParam{
			anthropic.NewUserMessage(anthropic.NewTextBlock("Weather in Paris?"), anthropic.NewImageBlockBase64("image/png", "iVBORw0KGgo=")),
			anthropic.NewAssistantMessage(anthropic.NewThinkingBlock("sig", "think"), anthropic.NewToolUseBlock("toolu_0", map[string]any{"q": 1}, "get_weather")),
			anthropic.NewUserMessage(anthropic.NewToolResultBlock("toolu_0", "sunny", false)),
		},
		Tools: []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{Name: "get_weather", Description: anthropic.String("Gets the weather"),
			InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"location": map[string]any{"type": "string"}}, Required: []string{"location"}}}}},
		Thinking: anthropic.ThinkingConfigParamUnion{OfEnabled: &anthropic.ThinkingConfigEnabledParam{BudgetTokens: 2048}},
	}
}

func checkSDKRequest(t *testing.T, r *translate.Request) {
	t.Helper()
	if r.Model != "my/claude" || r.MaxTokens != 1024 || len(r.Messages) != 3 || len(r.Tools) != 1 ||
		r.Reasoning == nil || r.Reasoning.BudgetTokens != 2048 || r.Messages[2].Parts[0].Name != "get_weather" ||
		r.Messages[1].Parts[1].Args != `{"q":1}` || r.System[0].Text != "Be brief." {
		t.Errorf("the SDK's request decoded as %+v", r)
	}
}

func TestSDKReadsAnswer(t *testing.T) {
	client := sdkServer(t, func(w http.ResponseWriter, r *translate.Request) {
		checkSDKRequest(t, r)
		up, err := Codec.DecodeResponse([]byte(upstreamAnswer))
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("content-type", "application/json")
		w.Write(Codec.EncodeResponse(nil, up, translate.EncoderOptions{Model: "my/claude", ID: "req_1"}))
	})
	m, err := client.Messages.New(context.Background(), sdkParams())
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "msg_01XF" || m.Model != "my/claude" || m.StopReason != anthropic.StopReasonToolUse || len(m.Content) != 4 {
		t.Fatalf("got %+v", m)
	}
	if c := m.Content[0]; c.Type != "thinking" || c.Thinking != "Let me look." || c.Signature != "EqQBCkYI" {
		t.Errorf("thinking: %+v", c)
	}
	if c := m.Content[1]; c.Type != "redacted_thinking" || c.Data != "EmwKAhgB" {
		t.Errorf("redacted: %+v", c)
	}
	if c := m.Content[2]; c.Type != "text" || c.Text != "I'll check the weather." {
		t.Errorf("text: %+v", c)
	}
	if c := m.Content[3]; c.Type != "tool_use" || c.ID != "toolu_01A" || c.Name != "get_weather" || string(c.Input) != `{"location":"Paris, FR","unit":"c"}` {
		t.Errorf("tool_use: %+v input %s", c, c.Input)
	}
	u := m.Usage
	if u.InputTokens != 11 || u.CacheCreationInputTokens != 3 || u.CacheReadInputTokens != 5 || u.OutputTokens != 70 || u.OutputTokensDetails.ThinkingTokens != 40 {
		t.Errorf("usage: %+v", u)
	}
}

func TestSDKReadsStream(t *testing.T) {
	client := sdkServer(t, func(w http.ResponseWriter, r *translate.Request) {
		checkSDKRequest(t, r)
		if !r.Stream {
			t.Error("stream not asked for")
		}
		w.Header().Set("content-type", "text/event-stream")
		e := Codec.NewEncoder(translate.EncoderOptions{Model: "my/claude", ID: "req_1"})
		// A decoder that reports usage only at the end (as a Chat
		// Completions upstream does) and sends no start.
		for i := range streamEvents {
			ev := streamEvents[i]
			if ev.Type == translate.EvStart || ev.Type == translate.EvUsage && i < 3 {
				continue
			}
			w.Write(e.Encode(nil, &ev))
			w.(http.Flusher).Flush()
		}
	})
	stream := client.Messages.NewStreaming(context.Background(), sdkParams())
	var m anthropic.Message
	n := 0
	for stream.Next() && n < 100 {
		n++
		if err := m.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if m.ID != "msg_req_1" || m.Model != "my/claude" || m.StopReason != anthropic.StopReasonToolUse || len(m.Content) != 3 {
		t.Fatalf("got %+v", m)
	}
	if c := m.Content[0]; c.Type != "thinking" || c.Thinking != "Let me think." || c.Signature != "EqQBCkYI" {
		t.Errorf("thinking: %+v", c)
	}
	if c := m.Content[1]; c.Type != "text" || c.Text != `Checking "Paris".` {
		t.Errorf("text: %+v", c)
	}
	if c := m.Content[2]; c.Type != "tool_use" || c.ID != "toolu_01A" || c.Name != "get_weather" || string(c.Input) != `{"location": "Paris"}` {
		t.Errorf("tool_use: %+v input %s", c, c.Input)
	}
	u := m.Usage
	if u.InputTokens != 12 || u.CacheCreationInputTokens != 3 || u.CacheReadInputTokens != 5 || u.OutputTokens != 89 || u.OutputTokensDetails.ThinkingTokens != 30 {
		t.Errorf("usage: %+v", u)
	}
}

func TestSDKReadsStreamError(t *testing.T) {
	client := sdkServer(t, func(w http.ResponseWriter, r *translate.Request) {
		w.Header().Set("content-type", "text/event-stream")
		e := Codec.NewEncoder(translate.EncoderOptions{Model: "my/claude", ID: "req_1"})
		for _, ev := range []translate.Event{
			{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartText}},
			{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaText, Data: []byte("Hi")},
			{Type: translate.EvError, Err: &translate.Error{Status: 529, Kind: translate.ErrOverloaded, Message: "Overloaded"}},
		} {
			w.Write(e.Encode(nil, &ev))
		}
	})
	stream := client.Messages.NewStreaming(context.Background(), sdkParams())
	for n := 0; stream.Next() && n < 10; n++ {
	}
	var apiErr *anthropic.Error
	if err := stream.Err(); !errors.As(err, &apiErr) || apiErr.Type() != "overloaded_error" || apiErr.Message != "Overloaded" {
		t.Errorf("got %v", err)
	}
}

func TestSDKReadsError(t *testing.T) {
	client := sdkServer(t, func(w http.ResponseWriter, r *translate.Request) {
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(429)
		w.Write(Codec.EncodeError(nil, &translate.Error{Status: 429, Kind: translate.ErrRateLimit, Message: "slow down"}))
	})
	_, err := client.Messages.New(context.Background(), sdkParams())
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Type() != "rate_limit_error" || apiErr.Message != "slow down" {
		t.Errorf("got %v", err)
	}
}
