package chat

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"zenmux/translate"
)

// serve starts a loopback server answering every request with status and
// body, and a client of the official SDK pointed at it.
func serve(t *testing.T, status int, contentType string, body []byte) openai.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("sk-test"), option.WithMaxRetries(0),
		option.WithRequestTimeout(5*time.Second))
}

var sdkParams = openai.ChatCompletionNewParams{Model: "zenmux/gpt", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}

// TestSDKReadsAnswer: openai-go reads EncodeResponse's answer whole.
func TestSDKReadsAnswer(t *testing.T) {
	r := &translate.Response{ID: "msg_01",
		Content: []translate.Part{
			{Type: translate.PartText, Text: "Let me check."},
			{Type: translate.PartToolCall, ID: "toolu_1", Name: "get_weather", Args: `{"city":"Paris"}`},
		},
		Stop: translate.StopToolUse, HasUsage: true,
		Usage: translate.Usage{Input: 30, Output: 30, CacheRead: 60, CacheWrite: 10, Reasoning: 12}}
	client := serve(t, 200, "application/json", Codec.EncodeResponse(nil, r, opts))
	c, err := client.Chat.Completions.New(context.Background(), sdkParams)
	if err != nil {
		t.Fatal(err)
	}
	m := c.Choices[0].Message
	if c.ID != "msg_01" || c.Model != "zenmux/gpt" || c.Created != 1700000000 || m.Content != "Let me check." ||
		c.Choices[0].FinishReason != "tool_calls" || len(m.ToolCalls) != 1 ||
		m.ToolCalls[0].ID != "toolu_1" || m.ToolCalls[0].Function.Name != "get_weather" || m.ToolCalls[0].Function.Arguments != `{"city":"Paris"}` {
		t.Fatalf("SDK read %+v", c)
	}
	u := c.Usage
	if u.PromptTokens != 100 || u.CompletionTokens != 30 || u.TotalTokens != 130 || u.PromptTokensDetails.CachedTokens != 60 ||
		u.CompletionTokensDetails.ReasoningTokens != 12 {
		t.Fatalf("SDK read usage %+v", u)
	}
}

// TestSDKReadsError: openai-go reads EncodeError's body as its Error.
func TestSDKReadsError(t *testing.T) {
	e := &translate.Error{Status: 429, Kind: translate.ErrRateLimit, Message: "slow down"}
	client := serve(t, 429, "application/json", Codec.EncodeError(nil, e))
	_, err := client.Chat.Completions.New(context.Background(), sdkParams)
	var ae *openai.Error
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v", err)
	}
	if ae.StatusCode != 429 || ae.Message != "slow down" || ae.Type != "requests" || ae.Code != "rate_limit_exceeded" {
		t.Fatalf("SDK read %+v", ae)
	}
}
