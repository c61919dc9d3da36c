package proxy

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/openai/openai-go/v3"

	"zenmux/ledger"
)

// rule Q7, M2: embeddings are charged their prompt tokens as input, and the
// JS SDK's encoding_format passes through untouched (W2.5).
func TestMeterEmbeddings(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, key, _ := g.account("pro")
	g.OpenAI.Handle(jsonHandler(200, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":"up-gpt","usage":{"prompt_tokens":32830,"total_tokens":32830}}`))
	c := oaiClient(g, key, nil)
	res, err := c.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
		Model: modelGPT, Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("hi")},
		EncodingFormat: openai.EmbeddingNewParamsEncodingFormatBase64,
	})
	if err != nil || len(res.Data) != 1 {
		t.Fatalf("%v %+v", err, res)
	}
	var up map[string]any
	if err := json.Unmarshal(g.OpenAI.request(t, 0), &up); err != nil || len(up) != 3 ||
		up["encoding_format"] != "base64" || up["input"] != "hi" || up["model"] != "up-gpt" {
		t.Errorf("upstream body %s", g.OpenAI.request(t, 0))
	}
	usd, flows := priced(32830, 0, 0, 0) // $0.03283 = exactly 1 Flow
	g.oneCharge(t, acct, want{in: 32830, usd: usd, flows: flows, status: "ok"})
}

// rule M2: an image answer without token usage is charged per image at
// the model's image price (W2.6: DALL·E reports no usage).
func TestMeterImagesPerImage(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	m := testPrices
	m.ID, m.Provider, m.Upstream, m.Plans = "test/image", "oai", "up-image", []string{"free", "pro"}
	m.ImageMicroUSD = 40_000 // $0.04 per image
	g.apply(&ledger.PutModel{Model: m})
	acct, key, _ := g.account("pro")
	g.OpenAI.Handle(jsonHandler(200, `{"created":1,"data":[{"b64_json":"AA=="},{"b64_json":"AA=="}]}`))
	resp, body := rawPost(t, g.URL+"/v1/images/generations", key, `{"model":"test/image","prompt":"a cat","n":2}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	logs := g.waitLogs(acct, 1)
	// Two images at $0.04: 80,000 µUSD = 8e10 pico / 32,830 = 2,436,795.6 → 2.436796 Flows.
	if e := logs[0]; e.Images != 2 || e.USDValue != 80_000 || e.Flows != 2_436_796 || e.Estimated {
		t.Fatalf("%+v", e)
	}
}
