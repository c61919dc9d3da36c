package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Fake upstreams that speak each provider's wire format as docs/wire.md records
// it: Chat Completions chunks as bare `data:` lines ending in
// `data: [DONE]` (§2.3), Responses and Anthropic Messages events with an
// `event:` line before each `data:` (§2.4, §3.4). Streams flush once per
// event.

// chatChunk is one Chat Completions chunk carrying a content delta.
func chatChunk(content string) string {
	c, _ := json.Marshal(content)
	return `data: {"id":"chatcmpl-stub","object":"chat.completion.chunk","created":1767225600,"model":"up-gpt","choices":[{"index":0,"delta":{"content":` + string(c) + `},"finish_reason":null}],"usage":null}` + "\n\n"
}

// chatRoleChunk opens a chat stream (role, empty content).
func chatRoleChunk() string {
	return `data: {"id":"chatcmpl-stub","object":"chat.completion.chunk","created":1767225600,"model":"up-gpt","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}` + "\n\n"
}

// chatFinishChunk carries finish_reason and an empty delta.
func chatFinishChunk() string {
	return `data: {"id":"chatcmpl-stub","object":"chat.completion.chunk","created":1767225600,"model":"up-gpt","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}` + "\n\n"
}

// chatUsageChunk is the usage-only chunk (`"choices":[]`) that
// include_usage adds before [DONE].
func chatUsageChunk(usage string) string {
	return `data: {"id":"chatcmpl-stub","object":"chat.completion.chunk","created":1767225600,"model":"up-gpt","choices":[],"usage":` + usage + `}` + "\n\n"
}

const chatDone = "data: [DONE]\n\n"

// chatStream is a whole chat stream: role chunk, one chunk per text piece,
// finish chunk, then the usage chunk when usage != "", then [DONE].
func chatStream(pieces []string, usage string) []string {
	ev := []string{chatRoleChunk()}
	for _, p := range pieces {
		ev = append(ev, chatChunk(p))
	}
	ev = append(ev, chatFinishChunk())
	if usage != "" {
		ev = append(ev, chatUsageChunk(usage))
	}
	return append(ev, chatDone)
}

// chatCompletion is a non-streamed chat answer.
func chatCompletion(text, usage string) string {
	c, _ := json.Marshal(text)
	return `{"id":"chatcmpl-stub","object":"chat.completion","created":1767225600,"model":"up-gpt","choices":[{"index":0,"message":{"role":"assistant","content":` + string(c) + `,"refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":` + usage + `}`
}

// sse renders one named event.
func sse(name, data string) string { return "event: " + name + "\ndata: " + data + "\n\n" }

// anthStart is message_start with its usage object.
func anthStart(usage string) string {
	return sse("message_start", `{"type":"message_start","message":{"id":"msg_stub","type":"message","role":"assistant","model":"up-claude","content":[],"stop_reason":null,"stop_sequence":null,"usage":`+usage+`}}`)
}

func anthBlockStart(i int) string {
	return sse("content_block_start", fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":"text","text":""}}`, i))
}

func anthTextDelta(i int, text string) string {
	c, _ := json.Marshal(text)
	return sse("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"text_delta","text":%s}}`, i, c))
}

func anthBlockStop(i int) string {
	return sse("content_block_stop", fmt.Sprintf(`{"type":"content_block_stop","index":%d}`, i))
}

func anthPing() string { return sse("ping", `{"type":"ping"}`) }

// anthDelta is a message_delta with (cumulative) usage; stop is the raw
// JSON of stop_reason (`null` or `"end_turn"`).
func anthDelta(stop, usage string) string {
	return sse("message_delta", `{"type":"message_delta","delta":{"stop_reason":`+stop+`,"stop_sequence":null},"usage":`+usage+`}`)
}

func anthStop() string { return sse("message_stop", `{"type":"message_stop"}`) }

// anthError is a mid-stream error event.
func anthError(typ, msg string) string {
	return sse("error", `{"type":"error","error":{"type":"`+typ+`","message":"`+msg+`"}}`)
}

// anthMessage is a non-streamed Messages answer.
func anthMessage(text, usage string) string {
	c, _ := json.Marshal(text)
	return `{"id":"msg_stub","type":"message","role":"assistant","model":"up-claude","content":[{"type":"text","text":` + string(c) + `}],"stop_reason":"end_turn","stop_sequence":null,"usage":` + usage + `}`
}

// respObject is a Responses `response` object.
func respObject(status, text, usage string) string {
	output := `[]`
	if text != "" {
		c, _ := json.Marshal(text)
		output = `[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":` + string(c) + `,"annotations":[]}]}]`
	}
	extra := ""
	if status == "incomplete" {
		extra = `,"incomplete_details":{"reason":"max_output_tokens"}`
	}
	if usage == "" {
		usage = "null"
	}
	return `{"id":"resp_stub","object":"response","created_at":1767225600,"status":"` + status + `","model":"up-gpt","output":` + output + extra + `,"usage":` + usage + `}`
}

// respStream is the minimal Responses event sequence of W2.4,
// ending in response.<final> ("completed", "incomplete" or "failed")
// whose response carries usage.
func respStream(pieces []string, final, usage string) []string {
	seq := 0
	ev := func(name, body string) string {
		s := sse(name, fmt.Sprintf(`{"type":"%s","sequence_number":%d,%s}`, name, seq, body))
		seq++
		return s
	}
	full := strings.Join(pieces, "")
	out := []string{
		ev("response.created", `"response":`+respObject("in_progress", "", "")),
		ev("response.in_progress", `"response":`+respObject("in_progress", "", "")),
		ev("response.output_item.added", `"output_index":0,"item":{"type":"message","id":"msg_1","status":"in_progress","role":"assistant","content":[]}`),
		ev("response.content_part.added", `"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}`),
	}
	for _, p := range pieces {
		c, _ := json.Marshal(p)
		out = append(out, ev("response.output_text.delta", `"item_id":"msg_1","output_index":0,"content_index":0,"delta":`+string(c)+`,"logprobs":[]`))
	}
	c, _ := json.Marshal(full)
	out = append(out,
		ev("response.output_text.done", `"item_id":"msg_1","output_index":0,"content_index":0,"text":`+string(c)+`,"logprobs":[]`),
		ev("response.content_part.done", `"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":`+string(c)+`,"annotations":[]}`),
		ev("response.output_item.done", `"output_index":0,"item":{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":`+string(c)+`,"annotations":[]}]}`),
		ev("response."+final, `"response":`+respObject(final, full, usage)),
	)
	return out
}

// sseScript plays events to one request, flushing after each.
type sseScript struct {
	events []string
	pace   time.Duration // pause before each event after the first
	// cut resets the TCP connection after the events, with no terminating
	// chunk: the stream breaks midway.
	cut bool

	sent     atomic.Int32 // events flushed successfully
	writeErr atomic.Bool  // a flush failed: the gateway went away
	finished chan struct{}
}

func newScript(events []string) *sseScript {
	return &sseScript{events: events, finished: make(chan struct{})}
}

func (s *sseScript) handler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if s.cut {
			// Take the raw connection, so that the events are on the wire
			// before it closes: a chunked 200, the events one chunk each,
			// then a close with no terminating chunk.
			ctx.HijackSetNoResponse(true)
			ctx.Hijack(func(c net.Conn) {
				defer close(s.finished)
				if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"); err != nil {
					s.writeErr.Store(true)
					return
				}
				for i, ev := range s.events {
					if i > 0 && s.pace > 0 {
						time.Sleep(s.pace)
					}
					if _, err := fmt.Fprintf(c, "%x\r\n%s\r\n", len(ev), ev); err != nil {
						s.writeErr.Store(true)
						return
					}
					s.sent.Add(1)
				}
				time.Sleep(20 * time.Millisecond) // let the gateway read them before the close
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // a hard reset, not a clean end
				}
			})
			return
		}
		ctx.SetContentType("text/event-stream")
		ctx.Response.Header.Set("Cache-Control", "no-cache")
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			defer close(s.finished)
			for i, ev := range s.events {
				if i > 0 && s.pace > 0 {
					time.Sleep(s.pace)
				}
				if _, err := w.WriteString(ev); err != nil {
					s.writeErr.Store(true)
					return
				}
				if err := w.Flush(); err != nil {
					s.writeErr.Store(true)
					return
				}
				s.sent.Add(1)
			}
		})
	}
}

// jsonHandler answers every request with status and body.
func jsonHandler(status int, body string) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(status)
		ctx.SetContentType("application/json")
		ctx.SetBodyString(body)
	}
}
