package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// stub is the upstream: an OpenAI Chat Completions endpoint that answers
// at once with a fixed body, or streams N chunks, flushing each, with a
// pause between two chunks if one is set.
type stub struct {
	key   []byte // the Authorization header value it requires
	shape atomic.Pointer[streamShape]
	srv   *fasthttp.Server
	ln    net.Listener

	unary, streams, refused atomic.Int64
}

// stubAnswer is the non-streamed answer: ~300 bytes with a usage object.
var stubAnswer = []byte(`{"id":"chatcmpl-bench0000000001","object":"chat.completion","created":1767225600,"model":"stub-model",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the zenmuxd bench stub."},"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":14,"completion_tokens":9,"total_tokens":23}}`)

// stubChunks renders a streamed answer: n content chunks (the first
// carries the role, the last the finish reason), the usage chunk with an
// empty choices list, and [DONE].
func stubChunks(n int) [][]byte {
	const head = `data: {"id":"chatcmpl-bench0000000001","object":"chat.completion.chunk","created":1767225600,"model":"stub-model",`
	out := make([][]byte, 0, n+2)
	for i := range n {
		delta := `{"content":"tok` + fmt.Sprint(i) + ` "}`
		if i == 0 {
			delta = `{"role":"assistant","content":"tok0 "}`
		}
		finish := "null"
		if i == n-1 {
			finish = `"stop"`
		}
		out = append(out, []byte(head+`"choices":[{"index":0,"delta":`+delta+`,"finish_reason":`+finish+`}]}`+"\n\n"))
	}
	out = append(out, []byte(head+`"choices":[],"usage":{"prompt_tokens":14,"completion_tokens":`+fmt.Sprint(n)+`,"total_tokens":`+fmt.Sprint(14+n)+`}}`+"\n\n"))
	out = append(out, []byte("data: [DONE]\n\n"))
	return out
}

// streamShape is what a streamed answer is: its events and the pause
// between two of them.
type streamShape struct {
	chunks [][]byte
	delay  time.Duration
}

// setStream sets the streamed answers from now on: chunks content chunks,
// delay apart (streams already started keep their shape).
func (s *stub) setStream(chunks int, delay time.Duration) {
	s.shape.Store(&streamShape{chunks: stubChunks(chunks), delay: delay})
}

func startStub(key string, chunks int, chunkDelay time.Duration) (*stub, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &stub{key: []byte("Bearer " + key), ln: ln}
	s.setStream(chunks, chunkDelay)
	s.srv = &fasthttp.Server{Handler: s.handle, Name: "bench-stub", NoDefaultServerHeader: true, NoDefaultDate: true,
		ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *stub) addr() string { return s.ln.Addr().String() }

func (s *stub) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = s.srv.ShutdownWithContext(ctx)
}

var (
	streamTrue  = []byte(`"stream":true`)
	streamTrue2 = []byte(`"stream": true`)
)

func (s *stub) handle(ctx *fasthttp.RequestCtx) {
	if string(ctx.Path()) != "/v1/chat/completions" || !ctx.IsPost() {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"error":{"message":"bench stub: only POST /v1/chat/completions","type":"invalid_request_error","code":"not_found"}}`)
		return
	}
	if !bytes.Equal(ctx.Request.Header.Peek("Authorization"), s.key) {
		s.refused.Add(1)
		ctx.SetStatusCode(fasthttp.StatusUnauthorized)
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"error":{"message":"bench stub: wrong key","type":"invalid_request_error","code":"invalid_api_key"}}`)
		return
	}
	body := ctx.PostBody()
	if !bytes.Contains(body, streamTrue) && !bytes.Contains(body, streamTrue2) {
		s.unary.Add(1)
		ctx.SetContentType("application/json")
		ctx.SetBody(stubAnswer)
		return
	}
	s.streams.Add(1)
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	sh := s.shape.Load()
	chunks, delay := sh.chunks, sh.delay
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		for i, c := range chunks {
			if i > 0 && delay > 0 {
				time.Sleep(delay)
			}
			if _, err := w.Write(c); err != nil {
				return
			}
			if err := w.Flush(); err != nil {
				return
			}
		}
	})
}
