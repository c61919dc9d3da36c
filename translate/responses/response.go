package responses

import (
	"math"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

func (codec) DecodeResponse(body []byte) (*translate.Response, error) {
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil || v.Type() != fastjson.TypeObject {
		return nil, &translate.Error{Status: 502, Kind: translate.ErrServer, Message: "the upstream's answer is not a JSON object"}
	}
	if peek(v.Get("status")) == "failed" {
		return nil, failure(v.Get("error"))
	}
	r := &translate.Response{}
	r.ID, _ = str(v.Get("id"))
	r.Model, _ = str(v.Get("model"))
	var tools, refused bool
	for _, it := range v.GetArray("output") {
		typ := peek(it.Get("type"))
		switch typ {
		case "reasoning":
			r.Content = append(r.Content, reasoningPart(it))
		case "message":
			for _, c := range it.GetArray("content") {
				switch peek(c.Get("type")) {
				case "output_text":
					s, _ := str(c.Get("text"))
					r.Content = append(r.Content, translate.Part{Type: translate.PartText, Text: s})
				case "refusal":
					s, _ := str(c.Get("refusal"))
					r.Content = append(r.Content, translate.Part{Type: translate.PartText, Text: s})
					refused = true
				}
			}
		case "function_call":
			tools = true
			p := translate.Part{Type: translate.PartToolCall}
			p.ID, _ = str(it.Get("call_id"))
			p.Name, _ = str(it.Get("name"))
			p.Args, _ = str(it.Get("arguments"))
			if p.Args == "" {
				p.Args = "{}"
			}
			r.Content = append(r.Content, p)
		}
	}
	status := peek(v.Get("status"))
	reason := peek(v.Get("incomplete_details", "reason"))
	r.Stop = stopOf(status, reason, tools, refused)
	if u := v.Get("usage"); u != nil && u.Type() == fastjson.TypeObject {
		r.Usage, r.HasUsage = usageOf(u), true
	}
	return r, nil
}

// reasoningPart reads a reasoning output item: summaries joined by a blank
// line (or the reasoning text a model shows instead) and the
// encrypted_content as its signature.
func reasoningPart(it *fastjson.Value) translate.Part {
	p := translate.Part{Type: translate.PartThinking, Origin: Format}
	for _, k := range [...]string{"summary", "content"} {
		for _, s := range it.GetArray(k) {
			t, _ := str(s.Get("text"))
			if p.Text != "" {
				p.Text += "\n\n"
			}
			p.Text += t
		}
		if p.Text != "" {
			break
		}
	}
	p.Signature, _ = str(it.Get("encrypted_content"))
	return p
}

// stopOf maps a status and incomplete reason to a stop reason.
func stopOf(status, reason string, tools, refused bool) translate.StopReason {
	if status == "incomplete" {
		if reason == "content_filter" {
			return translate.StopRefusal
		}
		return translate.StopMaxTokens
	}
	switch {
	case tools:
		return translate.StopToolUse
	case refused:
		return translate.StopRefusal
	}
	return translate.StopEnd
}

// usageOf reads a usage object; Input leaves out the cached and
// cache-written tokens OpenAI counts inside input_tokens (W5).
func usageOf(u *fastjson.Value) translate.Usage {
	in := count(u.Get("input_tokens"))
	read := count(u.Get("input_tokens_details", "cached_tokens"))
	write := count(u.Get("input_tokens_details", "cache_write_tokens"))
	return translate.Usage{
		Input:      max(in-read-write, 0),
		CacheRead:  read,
		CacheWrite: write,
		Output:     count(u.Get("output_tokens")),
		Reasoning:  count(u.Get("output_tokens_details", "reasoning_tokens")),
	}
}

// maxCount bounds a token count read from an upstream (W5).
const maxCount = 1 << 40

// count reads a token count as the gateway meters it (W5): a number, even
// one written as a float (11.0, 1e3), within [0, maxCount]; anything else
// is 0.
func count(v *fastjson.Value) int64 {
	if v == nil || v.Type() != fastjson.TypeNumber {
		return 0
	}
	if n, err := v.Int64(); err == nil {
		return min(max(n, 0), maxCount)
	}
	f, err := v.Float64()
	if err != nil || math.IsNaN(f) || f <= 0 {
		return 0
	}
	return int64(min(f, maxCount))
}

// failure is the error of a failed response (or a stream's error).
func failure(e *fastjson.Value) *translate.Error {
	err := &translate.Error{Status: 500, Kind: translate.ErrServer, Message: "the upstream failed to answer"}
	if e == nil || e.Type() != fastjson.TypeObject {
		return err
	}
	if m, _ := str(e.Get("message")); m != "" {
		err.Message = m
	}
	err.Code = code(e.Get("code"))
	err.Param, _ = str(e.Get("param"))
	err.Status, err.Kind = statusOfCode(err.Code)
	return err
}

// code reads an error code written as a string or a number.
func code(v *fastjson.Value) string {
	if v == nil {
		return ""
	}
	switch v.Type() {
	case fastjson.TypeString:
		s, _ := str(v)
		return s
	case fastjson.TypeNumber:
		return string(v.MarshalTo(nil))
	}
	return ""
}

// statusOfCode is the status an error reported inside a response (after
// the 200 was sent) would have had on its own.
func statusOfCode(code string) (int, translate.ErrorKind) {
	switch code {
	case "rate_limit_exceeded", "insufficient_quota":
		return 429, translate.ErrRateLimit
	case "server_is_overloaded", "slow_down":
		return 503, translate.ErrOverloaded
	case "invalid_prompt", "context_length_exceeded", "invalid_request_error", "invalid_image",
		"invalid_image_format", "invalid_base64_image", "invalid_image_url", "image_too_large",
		"image_too_small", "image_parse_error", "image_content_policy_violation", "invalid_image_mode",
		"image_file_too_large", "unsupported_image_media_type", "empty_image_file", "failed_to_download_image",
		"image_file_not_found":
		return 400, translate.ErrInvalidRequest
	}
	return 500, translate.ErrServer
}

func (codec) EncodeResponse(dst []byte, r *translate.Response, o translate.EncoderOptions) []byte {
	id := r.ID
	if id == "" {
		id = o.ID
	}
	items := o.ID
	if items == "" {
		items = id
	}
	var out []byte
	n := 0 // output items written
	for i := range r.Content {
		p := &r.Content[i]
		switch p.Type {
		case translate.PartText, translate.PartThinking, translate.PartRedactedThinking, translate.PartToolCall:
		default:
			continue // no output item for another part
		}
		if n > 0 {
			out = append(out, ',')
		}
		switch p.Type {
		case translate.PartText:
			out = appendMessageItem(out, items, n, statusCompleted, p.Text, true)
		case translate.PartToolCall:
			out = appendCallItem(out, items, n, statusCompleted, p.ID, p.Name, p.Args, o.Namespaces)
		default:
			out = appendReasoningItem(out, items, n, p.Text, carriedSignature(p.Type, p.Origin, p.Signature), true)
		}
		n++
	}
	var u *translate.Usage
	if r.HasUsage {
		u = &r.Usage
	}
	h := headOf(id, o.Model, o.Created, r.Stop, nil)
	return appendResponse(dst, &h, out, u)
}

// Response statuses.
const (
	statusInProgress = "in_progress"
	statusCompleted  = "completed"
	statusIncomplete = "incomplete"
	statusFailed     = "failed"
)

// itemID is an output item's id: kind, the answer's id and the output
// index.
func itemID(dst []byte, kind, id string, n int) []byte {
	dst = append(dst, '"')
	dst = append(dst, kind...)
	dst = append(dst, '_')
	dst = appendInner(dst, id)
	dst = append(dst, '_')
	dst = translate.AppendInt(dst, int64(n))
	return append(dst, '"')
}

// appendTextPart writes an output_text content part.
func appendTextPart(dst []byte, text string) []byte {
	dst = append(dst, `{"type":"output_text","annotations":[],"logprobs":[],"text":`...)
	dst = translate.AppendString(dst, text)
	return append(dst, '}')
}

func appendMessageItem(dst []byte, id string, n int, status, text string, withText bool) []byte {
	dst = append(dst, `{"id":`...)
	dst = itemID(dst, "msg", id, n)
	dst = append(dst, `,"type":"message","status":"`...)
	dst = append(dst, status...)
	dst = append(dst, `","role":"assistant","content":[`...)
	if withText {
		dst = appendTextPart(dst, text)
	}
	return append(dst, "]}"...)
}

func appendReasoningItem(dst []byte, id string, n int, text, enc string, done bool) []byte {
	dst = append(dst, `{"id":`...)
	dst = itemID(dst, "rs", id, n)
	dst = append(dst, `,"type":"reasoning","summary":[`...)
	if text != "" {
		dst = append(dst, `{"type":"summary_text","text":`...)
		dst = translate.AppendString(dst, text)
		dst = append(dst, '}')
	}
	dst = append(dst, ']')
	if enc != "" {
		dst = append(dst, `,"encrypted_content":`...)
		dst = translate.AppendString(dst, enc)
	}
	if done {
		return append(dst, `,"status":"completed"}`...)
	}
	return append(dst, `,"status":"in_progress"}`...)
}

// appendCallItem writes a function_call item; a name that carries one of
// the request's namespaces (translate.SplitNamespace) is written as the
// function's own name with its namespace.
func appendCallItem(dst []byte, id string, n int, status, callID, name, args string, namespaces []string) []byte {
	ns, name := translate.SplitNamespace(namespaces, name)
	dst = append(dst, `{"id":`...)
	dst = itemID(dst, "fc", id, n)
	dst = append(dst, `,"type":"function_call","status":"`...)
	dst = append(dst, status...)
	dst = append(dst, `","arguments":`...)
	dst = translate.AppendString(dst, args)
	dst = append(dst, `,"call_id":`...)
	dst = translate.AppendString(dst, callID)
	dst = append(dst, `,"name":`...)
	dst = translate.AppendString(dst, name)
	if ns != "" {
		dst = append(dst, `,"namespace":`...)
		dst = translate.AppendString(dst, ns)
	}
	return append(dst, '}')
}

// head is what a response object says besides its output and usage.
type head struct {
	id, model string
	created   int64
	status    string
	// reason is incomplete_details.reason, for an incomplete response.
	reason string
	// fail is the error of a failed response.
	fail *translate.Error
}

// headOf is the head of a finished answer.
func headOf(id, model string, created int64, stop translate.StopReason, fail *translate.Error) head {
	h := head{id: id, model: model, created: created, status: statusCompleted, fail: fail}
	switch {
	case fail != nil:
		h.status = statusFailed
	case stop == translate.StopMaxTokens:
		h.status, h.reason = statusIncomplete, "max_output_tokens"
	case stop == translate.StopRefusal:
		h.status, h.reason = statusIncomplete, "content_filter"
	}
	return h
}

// appendResponse writes the response object: output is its items' JSON,
// comma-separated; usage is nil when unknown. The fields a Response echoes
// from its request are their defaults, since the answer is encoded without
// the request.
func appendResponse(dst []byte, h *head, output []byte, u *translate.Usage) []byte {
	dst = append(dst, `{"id":`...)
	dst = translate.AppendString(dst, h.id)
	dst = append(dst, `,"object":"response","created_at":`...)
	dst = translate.AppendInt(dst, h.created)
	dst = append(dst, `,"status":"`...)
	dst = append(dst, h.status...)
	dst = append(dst, `","background":false,"error":`...)
	if h.fail != nil {
		dst = append(dst, `{"code":`...)
		dst = translate.AppendString(dst, errorCode(h.fail))
		dst = append(dst, `,"message":`...)
		dst = translate.AppendString(dst, h.fail.Message)
		dst = append(dst, '}')
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"incomplete_details":`...)
	if h.reason != "" {
		dst = append(dst, `{"reason":"`...)
		dst = append(dst, h.reason...)
		dst = append(dst, `"}`...)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"instructions":null,"max_output_tokens":null,"metadata":{},"model":`...)
	dst = translate.AppendString(dst, h.model)
	dst = append(dst, `,"output":[`...)
	dst = append(dst, output...)
	dst = append(dst, `],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":false,"temperature":1,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1,"truncation":"disabled","usage":`...)
	if u == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendUsage(dst, u)
	}
	return append(dst, `,"user":null}`...)
}

// appendUsage writes a usage object: OpenAI's input_tokens include the
// cached and cache-written tokens, its output_tokens the reasoning.
func appendUsage(dst []byte, u *translate.Usage) []byte {
	in := u.Input + u.CacheRead + u.CacheWrite
	dst = append(dst, `{"input_tokens":`...)
	dst = translate.AppendInt(dst, in)
	dst = append(dst, `,"input_tokens_details":{"cached_tokens":`...)
	dst = translate.AppendInt(dst, u.CacheRead)
	dst = append(dst, `,"cache_write_tokens":`...)
	dst = translate.AppendInt(dst, u.CacheWrite)
	dst = append(dst, `},"output_tokens":`...)
	dst = translate.AppendInt(dst, u.Output)
	dst = append(dst, `,"output_tokens_details":{"reasoning_tokens":`...)
	dst = translate.AppendInt(dst, u.Reasoning)
	dst = append(dst, `},"total_tokens":`...)
	dst = translate.AppendInt(dst, in+u.Output)
	return append(dst, '}')
}
