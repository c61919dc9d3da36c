package gemini

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"google.golang.org/genai"

	"zenmux/translate"
)

// seen is what the fake Gemini server received.
type seen struct {
	path, query, key string
	req              *translate.Request
	err              error
}

// sdkClient is a genai client (Gemini API backend, default API version)
// whose calls go to a loopback server answering with answer.
func sdkClient(t *testing.T, status int, answer []byte, got *seen) *genai.Client {
	t.Helper()
	for _, k := range []string{"GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_API_VERSION", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GEMINI_BASE_URL"} {
		t.Setenv(k, "")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got.path, got.query, got.key = r.URL.Path, r.URL.RawQuery, r.Header.Get("x-goog-api-key")
		got.req, got.err = Codec.DecodeRequest(body)
		if r.URL.Query().Get("alt") == "sse" {
			w.Header().Set("Content-Type", "text/event-stream")
		} else {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = w.Write(answer)
	}))
	t.Cleanup(srv.Close)
	c, err := genai.NewClient(context.Background(), &genai.ClientConfig{
		APIKey: "test-key", Backend: genai.BackendGeminiAPI,
		HTTPOptions: genai.HTTPOptions{BaseURL: srv.URL + "/"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sdkConfig() *genai.GenerateContentConfig {
	return &genai.GenerateContentConfig{
		SystemInstruction: genai.NewContentFromText("Be brief.", genai.RoleUser),
		MaxOutputTokens:   256,
		ThinkingConfig:    &genai.ThinkingConfig{IncludeThoughts: true, ThinkingBudget: genai.Ptr[int32](1024)},
		Tools: []*genai.Tool{{FunctionDeclarations: []*genai.FunctionDeclaration{{
			Name: "weather", Description: "Weather by city",
			ParametersJsonSchema: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
		}}}},
	}
}

// checkRequest asserts the SDK's body decoded to the neutral request it
// means.
func checkRequest(t *testing.T, got *seen) {
	t.Helper()
	if got.err != nil {
		t.Fatalf("the SDK's request did not decode: %v", got.err)
	}
	r := got.req
	if len(r.System) != 1 || r.System[0].Text != "Be brief." || len(r.Messages) != 1 || r.Messages[0].Parts[0].Text != "Weather in Paris?" ||
		r.MaxTokens != 256 || r.Reasoning == nil || r.Reasoning.BudgetTokens != 1024 ||
		len(r.Tools) != 1 || r.Tools[0].Schema != `{"properties":{"city":{"type":"string"}},"type":"object"}` {
		t.Fatalf("decoded request %+v", r)
	}
	if got.key != "test-key" {
		t.Fatalf("api key header %q", got.key)
	}
}

func TestSDKGenerateContent(t *testing.T) {
	answer := Codec.EncodeResponse(nil, &translate.Response{
		ID: "msg_1",
		Content: []translate.Part{
			{Type: translate.PartThinking, Text: "Need the weather.", Signature: "sig", Origin: "anthropic"},
			{Type: translate.PartText, Text: "Checking."},
			{Type: translate.PartToolCall, ID: "toolu_1", Name: "weather", Args: `{"city":"Paris","days":[1,2]}`},
		},
		Stop:     translate.StopToolUse,
		Usage:    translate.Usage{Input: 20, CacheRead: 100, CacheWrite: 30, Output: 45, Reasoning: 12},
		HasUsage: true,
	}, translate.EncoderOptions{Model: "my-model", ID: "req-1"})
	var got seen
	c := sdkClient(t, 200, answer, &got)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Models.GenerateContent(ctx, "my-model", genai.Text("Weather in Paris?"), sdkConfig())
	if err != nil {
		t.Fatal(err)
	}
	// The Go SDK's default path: version v1, not v1beta.
	if got.path != "/v1/models/my-model:generateContent" || got.query != "" {
		t.Fatalf("path %s?%s", got.path, got.query)
	}
	checkRequest(t, &got)
	if resp.ResponseID != "msg_1" || resp.ModelVersion != "my-model" || len(resp.Candidates) != 1 {
		t.Fatalf("response %+v", resp)
	}
	cand := resp.Candidates[0]
	parts := cand.Content.Parts
	if cand.FinishReason != genai.FinishReasonStop || cand.Content.Role != "model" || len(parts) != 3 {
		t.Fatalf("candidate %+v", cand)
	}
	if !parts[0].Thought || parts[0].Text != "Need the weather." || parts[1].Thought || parts[1].Text != "Checking." {
		t.Fatalf("parts %+v %+v", parts[0], parts[1])
	}
	if resp.Text() != "Checking." {
		t.Fatalf("Text() = %q", resp.Text())
	}
	fc := resp.FunctionCalls()
	if len(fc) != 1 || fc[0].ID != "toolu_1" || fc[0].Name != "weather" ||
		!reflect.DeepEqual(fc[0].Args, map[string]any{"city": "Paris", "days": []any{1.0, 2.0}}) {
		t.Fatalf("function calls %+v", fc)
	}
	u := resp.UsageMetadata
	if u.PromptTokenCount != 150 || u.CachedContentTokenCount != 100 || u.CandidatesTokenCount != 33 || u.ThoughtsTokenCount != 12 || u.TotalTokenCount != 195 {
		t.Fatalf("usage %+v", u)
	}
}

func TestSDKGenerateContentStream(t *testing.T) {
	enc := Codec.NewEncoder(translate.EncoderOptions{Model: "my-model", ID: "req-1"})
	var sse []byte
	evs := clientEvents()
	for i := range evs {
		sse = enc.Encode(sse, &evs[i])
	}
	var got seen
	c := sdkClient(t, 200, sse, &got)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var text, thoughts string
	var calls []*genai.FunctionCall
	var last *genai.GenerateContentResponse
	n := 0
	for resp, err := range c.Models.GenerateContentStream(ctx, "my-model", genai.Text("Weather in Paris?"), sdkConfig()) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n > 10 {
			t.Fatal("more chunks than sent")
		}
		if resp.ResponseID != "req-1" || resp.ModelVersion != "my-model" {
			t.Fatalf("chunk %d: %+v", n, resp)
		}
		for _, p := range resp.Candidates[0].Content.Parts {
			if p.Thought {
				thoughts += p.Text
			} else {
				text += p.Text
			}
		}
		calls = append(calls, resp.FunctionCalls()...)
		last = resp
	}
	if got.path != "/v1/models/my-model:streamGenerateContent" || got.query != "alt=sse" {
		t.Fatalf("path %s?%s", got.path, got.query)
	}
	checkRequest(t, &got)
	if n != 5 || text != "Checking now." || thoughts != "Need weather." {
		t.Fatalf("%d chunks, text %q, thoughts %q", n, text, thoughts)
	}
	if len(calls) != 1 || calls[0].ID != "toolu_01" || calls[0].Name != "weather" ||
		!reflect.DeepEqual(calls[0].Args, map[string]any{"city": "Paris", "days": []any{1.0, 2.0}}) {
		t.Fatalf("calls %+v", calls)
	}
	u := last.UsageMetadata
	if last.Candidates[0].FinishReason != genai.FinishReasonStop || u == nil ||
		u.PromptTokenCount != 150 || u.CachedContentTokenCount != 100 || u.CandidatesTokenCount != 33 || u.ThoughtsTokenCount != 12 || u.TotalTokenCount != 195 {
		t.Fatalf("last chunk %+v usage %+v", last.Candidates[0], u)
	}
}

func TestSDKError(t *testing.T) {
	body := Codec.EncodeError(nil, &translate.Error{Status: 429, Kind: translate.ErrRateLimit, Message: "quota exceeded", Param: "model"})
	var got seen
	c := sdkClient(t, 429, body, &got)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Models.GenerateContent(ctx, "my-model", genai.Text("Weather in Paris?"), nil)
	var apiErr genai.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 429 || apiErr.Status != "RESOURCE_EXHAUSTED" || apiErr.Message != "quota exceeded" || len(apiErr.Details) != 1 {
		t.Fatalf("error %#v", err)
	}
	// And mid-stream, as a data: event.
	enc := Codec.NewEncoder(translate.EncoderOptions{Model: "m", ID: "r"})
	sse := enc.Encode(nil, &translate.Event{Type: translate.EvBlockStart, Index: 0, Block: translate.Part{Type: translate.PartText}})
	sse = enc.Encode(sse, &translate.Event{Type: translate.EvDelta, Index: 0, Delta: translate.DeltaText, Data: []byte("Hi")})
	sse = enc.Encode(sse, &translate.Event{Type: translate.EvError, Err: &translate.Error{Status: 503, Kind: translate.ErrOverloaded, Message: "overloaded"}})
	c = sdkClient(t, 200, sse, &got)
	var text string
	err = nil
	for resp, e := range c.Models.GenerateContentStream(ctx, "my-model", genai.Text("Hi"), nil) {
		if e != nil {
			err = e
			break
		}
		text += resp.Text()
	}
	if !errors.As(err, &apiErr) || apiErr.Code != 503 || apiErr.Status != "UNAVAILABLE" || text != "Hi" {
		t.Fatalf("text %q, error %#v", text, err)
	}
}
