package responses

import (
	"strings"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// summarySep separates a reasoning item's summary parts in one thinking
// block, as the whole answer joins them.
var summarySep = []byte("\n\n")

// decoder reads an upstream's Responses stream. Items and their content
// parts become neutral blocks in order of opening; one block is open at a
// time (OpenAI streams items one after another), so a block left open by
// the upstream is closed when the next opens.
type decoder struct {
	p fastjson.Parser
	// blocks are all blocks opened, by neutral index.
	blocks []dblock
	// cur is the open block's index, -1 when none.
	cur            int
	started, ended bool
	tools, refused bool
}

// dblock is a block's place upstream: its output_index and content_index
// (-1 for a block that is a whole item: a function call or reasoning).
type dblock struct {
	out, content int
	typ          translate.PartType
	// sent says the block got a delta, so a done event's whole text is
	// not sent again.
	sent bool
}

func (d *decoder) Decode(evs []translate.Event, name string, data []byte) ([]translate.Event, error) {
	// Some OpenAI-compatible servers end with a [DONE] chat-style, or send
	// an empty keep-alive: neither says anything.
	if d.ended || len(data) == 0 || string(data) == "[DONE]" {
		return evs, nil
	}
	v, err := d.p.ParseBytes(data)
	if err != nil || v.Type() != fastjson.TypeObject {
		return evs, &translate.Error{Status: 502, Kind: translate.ErrServer, Message: "the upstream sent a stream event that is not a JSON object"}
	}
	typ := name
	if t := peek(v.Get("type")); t != "" {
		typ = t
	}
	oi := v.GetInt("output_index")
	switch typ {
	case "response.created", "response.in_progress", "response.queued":
		if !d.started {
			d.started = true
			evs = append(evs, translate.Event{Type: translate.EvStart,
				ID: string(v.GetStringBytes("response", "id")), Model: string(v.GetStringBytes("response", "model"))})
		}
	case "response.output_item.added":
		item := v.Get("item")
		switch peek(item.Get("type")) {
		case "function_call":
			evs = d.openCall(evs, oi, item)
			if args := item.GetStringBytes("arguments"); len(args) > 0 {
				evs = d.delta(evs, translate.DeltaArgs, args)
			}
		case "reasoning":
			evs = d.open(evs, oi, -1, translate.Part{Type: translate.PartThinking, Origin: Format})
		}
	case "response.content_part.added":
		part := v.Get("part")
		pt := peek(part.Get("type"))
		if pt != "output_text" && pt != "refusal" {
			break
		}
		d.refused = d.refused || pt == "refusal"
		evs = d.open(evs, oi, v.GetInt("content_index"), translate.Part{Type: translate.PartText})
		evs = d.delta(evs, translate.DeltaText, partText(part))
	case "response.output_text.delta", "response.refusal.delta":
		d.refused = d.refused || typ == "response.refusal.delta"
		evs = d.ensure(evs, oi, v.GetInt("content_index"), translate.PartText)
		evs = d.delta(evs, translate.DeltaText, v.GetStringBytes("delta"))
	case "response.content_part.done":
		ci := v.GetInt("content_index")
		if d.isCur(oi, ci, translate.PartText) {
			evs = d.fill(evs, translate.DeltaText, partText(v.Get("part")))
			evs = d.close(evs)
		}
	case "response.function_call_arguments.delta":
		if d.isCur(oi, -1, translate.PartToolCall) {
			evs = d.delta(evs, translate.DeltaArgs, v.GetStringBytes("delta"))
		}
	case "response.function_call_arguments.done":
		if d.isCur(oi, -1, translate.PartToolCall) {
			evs = d.fill(evs, translate.DeltaArgs, v.GetStringBytes("arguments"))
		}
	case "response.reasoning_summary_part.added":
		if d.isCur(oi, -1, translate.PartThinking) && d.blocks[d.cur].sent {
			evs = d.delta(evs, translate.DeltaThinking, summarySep)
		}
	case "response.reasoning_summary_text.delta", "response.reasoning_text.delta":
		evs = d.ensure(evs, oi, -1, translate.PartThinking)
		evs = d.delta(evs, translate.DeltaThinking, v.GetStringBytes("delta"))
	case "response.output_item.done":
		evs = d.itemDone(evs, oi, v.Get("item"))
	case "response.completed", "response.incomplete", "response.failed":
		evs = d.finish(evs, typ, v.Get("response"))
	case "error":
		e := v
		if ev := v.Get("error"); ev != nil && ev.Type() == fastjson.TypeObject {
			e = ev
		}
		evs = append(evs, translate.Event{Type: translate.EvError, Err: failure(e)})
	}
	return evs, nil
}

// partText is the text of an output_text or refusal content part.
func partText(part *fastjson.Value) []byte {
	if peek(part.Get("type")) == "refusal" {
		return part.GetStringBytes("refusal")
	}
	return part.GetStringBytes("text")
}

// open closes the open block, if any, and opens b at (out, content).
func (d *decoder) open(evs []translate.Event, out, content int, b translate.Part) []translate.Event {
	evs = d.close(evs)
	d.cur = len(d.blocks)
	d.blocks = append(d.blocks, dblock{out: out, content: content, typ: b.Type})
	return append(evs, translate.Event{Type: translate.EvBlockStart, Index: d.cur, Block: b})
}

// openCall opens a function call's block from its item.
func (d *decoder) openCall(evs []translate.Event, out int, item *fastjson.Value) []translate.Event {
	d.tools = true
	return d.open(evs, out, -1, translate.Part{Type: translate.PartToolCall,
		ID: string(item.GetStringBytes("call_id")), Name: string(item.GetStringBytes("name"))})
}

// ensure opens a text or thinking block whose opening event the upstream
// left out.
func (d *decoder) ensure(evs []translate.Event, out, content int, typ translate.PartType) []translate.Event {
	if d.isCur(out, content, typ) {
		return evs
	}
	b := translate.Part{Type: typ}
	if typ == translate.PartThinking {
		b.Origin = Format
	}
	return d.open(evs, out, content, b)
}

// isCur says whether the open block is the one of type typ at (out,
// content).
func (d *decoder) isCur(out, content int, typ translate.PartType) bool {
	if d.cur < 0 {
		return false
	}
	b := &d.blocks[d.cur]
	return b.out == out && b.content == content && b.typ == typ
}

// known says whether a block was ever opened at (out, content).
func (d *decoder) known(out, content int) bool {
	for i := range d.blocks {
		if d.blocks[i].out == out && d.blocks[i].content == content {
			return true
		}
	}
	return false
}

func (d *decoder) delta(evs []translate.Event, t translate.DeltaType, data []byte) []translate.Event {
	if d.cur < 0 || len(data) == 0 {
		return evs
	}
	d.blocks[d.cur].sent = true
	return append(evs, translate.Event{Type: translate.EvDelta, Index: d.cur, Delta: t, Data: data})
}

// fill sends a done event's whole text when no delta carried it.
func (d *decoder) fill(evs []translate.Event, t translate.DeltaType, data []byte) []translate.Event {
	if d.cur < 0 || d.blocks[d.cur].sent {
		return evs
	}
	return d.delta(evs, t, data)
}

func (d *decoder) close(evs []translate.Event) []translate.Event {
	if d.cur < 0 {
		return evs
	}
	evs = append(evs, translate.Event{Type: translate.EvBlockStop, Index: d.cur})
	d.cur = -1
	return evs
}

// itemDone closes an item's block, first sending what only the done item
// carries: reasoning's encrypted_content, and the whole item when the
// upstream streamed none of it.
func (d *decoder) itemDone(evs []translate.Event, out int, item *fastjson.Value) []translate.Event {
	switch peek(item.Get("type")) {
	case "message":
		for ci, c := range item.GetArray("content") {
			if d.isCur(out, ci, translate.PartText) {
				evs = d.close(evs)
				continue
			}
			if d.known(out, ci) {
				continue
			}
			pt := peek(c.Get("type"))
			if pt != "output_text" && pt != "refusal" {
				continue
			}
			d.refused = d.refused || pt == "refusal"
			evs = d.open(evs, out, ci, translate.Part{Type: translate.PartText})
			evs = d.delta(evs, translate.DeltaText, partText(c))
			evs = d.close(evs)
		}
	case "function_call":
		if !d.isCur(out, -1, translate.PartToolCall) {
			if d.known(out, -1) {
				return evs
			}
			evs = d.openCall(evs, out, item)
		}
		evs = d.fill(evs, translate.DeltaArgs, item.GetStringBytes("arguments"))
		evs = d.close(evs)
	case "reasoning":
		if !d.isCur(out, -1, translate.PartThinking) {
			if d.known(out, -1) {
				return evs
			}
			evs = d.open(evs, out, -1, translate.Part{Type: translate.PartThinking, Origin: Format})
		}
		if !d.blocks[d.cur].sent {
			for i, s := range item.GetArray("summary") {
				if i > 0 {
					evs = d.delta(evs, translate.DeltaThinking, summarySep)
				}
				evs = d.delta(evs, translate.DeltaThinking, s.GetStringBytes("text"))
			}
		}
		if enc := item.GetStringBytes("encrypted_content"); len(enc) > 0 {
			evs = append(evs, translate.Event{Type: translate.EvDelta, Index: d.cur, Delta: translate.DeltaSignature, Data: enc})
		}
		evs = d.close(evs)
	}
	return evs
}

// finish ends the stream at its terminal event: usage, then the stop
// reason, or the error of a failed response, then the end.
func (d *decoder) finish(evs []translate.Event, typ string, resp *fastjson.Value) []translate.Event {
	d.ended = true
	evs = d.close(evs)
	if u := resp.Get("usage"); u != nil && u.Type() == fastjson.TypeObject {
		evs = append(evs, translate.Event{Type: translate.EvUsage, Usage: usageOf(u)})
	}
	if typ == "response.failed" {
		evs = append(evs, translate.Event{Type: translate.EvError, Err: failure(resp.Get("error"))})
	} else {
		status := "completed"
		if typ == "response.incomplete" {
			status = "incomplete"
		}
		reason := peek(resp.Get("incomplete_details", "reason"))
		evs = append(evs, translate.Event{Type: translate.EvStop, Stop: stopOf(status, reason, d.tools, d.refused)})
	}
	return append(evs, translate.Event{Type: translate.EvEnd})
}

// encoder writes a Responses stream for a client. It keeps what the
// closing events repeat: the open items' text and arguments, and the
// finished items' JSON for response.completed.
type encoder struct {
	o   translate.EncoderOptions
	seq int64
	// id is the response's id; items is the base of its items' ids.
	id, items      string
	started, ended bool
	open           []*eblock
	n              int    // output items opened
	output         []byte // finished items, comma-separated
	usage          translate.Usage
	hasUsage       bool
	stop           translate.StopReason
	fail           *translate.Error
}

// eblock is an open block: its output item and what its done events need.
type eblock struct {
	index, out   int
	typ          translate.PartType
	origin       string
	callID, name string
	text, sig    []byte
	summary      bool // a summary part was announced
}

func (e *encoder) Encode(dst []byte, ev *translate.Event) []byte {
	if e.ended {
		return dst
	}
	if !e.started {
		dst = e.start(dst, ev)
	}
	switch ev.Type {
	case translate.EvBlockStart:
		dst = e.blockStart(dst, ev)
	case translate.EvDelta:
		dst = e.delta(dst, ev)
	case translate.EvBlockStop:
		for i, b := range e.open {
			if b.index == ev.Index {
				dst = e.blockStop(dst, b)
				e.open = append(e.open[:i], e.open[i+1:]...)
				break
			}
		}
	case translate.EvUsage:
		e.usage, e.hasUsage = ev.Usage, true
	case translate.EvStop:
		e.stop = ev.Stop
	case translate.EvError:
		if ev.Err != nil {
			e.fail = ev.Err
			dst = e.head(dst, "error")
			dst = append(dst, `,"code":`...)
			dst = translate.AppendString(dst, errorCode(ev.Err))
			dst = append(dst, `,"message":`...)
			dst = translate.AppendString(dst, ev.Err.Message)
			dst = append(dst, `,"param":`...)
			dst = appendOptString(dst, ev.Err.Param)
			dst = tail(dst)
			// An error ends the answer: the client gets its terminal
			// event now, whether or not an EvEnd follows.
			dst = e.end(dst)
		}
	case translate.EvEnd:
		dst = e.end(dst)
	}
	return dst
}

// head starts an SSE event of type typ, up to its sequence_number.
func (e *encoder) head(dst []byte, typ string) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, typ...)
	dst = append(dst, "\ndata: {\"type\":\""...)
	dst = append(dst, typ...)
	dst = append(dst, `","sequence_number":`...)
	dst = translate.AppendInt(dst, e.seq)
	e.seq++
	return dst
}

// tail ends an SSE event.
func tail(dst []byte) []byte { return append(dst, "}\n\n"...) }

// itemHead starts an event about the item of b: item_id and
// output_index.
func (e *encoder) itemHead(dst []byte, typ string, b *eblock) []byte {
	dst = e.head(dst, typ)
	dst = append(dst, `,"item_id":`...)
	dst = itemID(dst, kindOf(b.typ), e.items, b.out)
	dst = append(dst, `,"output_index":`...)
	return translate.AppendInt(dst, int64(b.out))
}

// kindOf is the id prefix of a block's item.
func kindOf(t translate.PartType) string {
	switch t {
	case translate.PartText:
		return "msg"
	case translate.PartToolCall:
		return "fc"
	}
	return "rs"
}

// start writes response.created and response.in_progress, taking the id
// from the first event when it is EvStart.
func (e *encoder) start(dst []byte, ev *translate.Event) []byte {
	e.started = true
	e.id = e.o.ID
	if ev.Type == translate.EvStart && ev.ID != "" {
		e.id = strings.Clone(ev.ID)
	}
	e.items = e.o.ID
	if e.items == "" {
		e.items = e.id
	}
	h := head{id: e.id, model: e.o.Model, created: e.o.Created, status: statusInProgress}
	for _, typ := range [...]string{"response.created", "response.in_progress"} {
		dst = e.head(dst, typ)
		dst = append(dst, `,"response":`...)
		dst = appendResponse(dst, &h, nil, nil)
		dst = tail(dst)
	}
	return dst
}

func (e *encoder) blockStart(dst []byte, ev *translate.Event) []byte {
	b := &eblock{index: ev.Index, out: e.n, typ: ev.Block.Type, origin: strings.Clone(ev.Block.Origin)}
	switch b.typ {
	case translate.PartText, translate.PartThinking, translate.PartRedactedThinking:
	case translate.PartToolCall:
		b.callID, b.name = strings.Clone(ev.Block.ID), strings.Clone(ev.Block.Name)
	default:
		return dst
	}
	e.n++
	e.open = append(e.open, b)
	dst = e.head(dst, "response.output_item.added")
	dst = append(dst, `,"output_index":`...)
	dst = translate.AppendInt(dst, int64(b.out))
	dst = append(dst, `,"item":`...)
	switch b.typ {
	case translate.PartText:
		dst = appendMessageItem(dst, e.items, b.out, statusInProgress, "", false)
		dst = tail(dst)
		dst = e.itemHead(dst, "response.content_part.added", b)
		dst = append(dst, `,"content_index":0,"part":`...)
		dst = appendTextPart(dst, "")
	case translate.PartToolCall:
		dst = appendCallItem(dst, e.items, b.out, statusInProgress, b.callID, b.name, "", e.o.Namespaces)
	default:
		dst = appendReasoningItem(dst, e.items, b.out, "", "", false)
	}
	return tail(dst)
}

func (e *encoder) find(index int) *eblock {
	for _, b := range e.open {
		if b.index == index {
			return b
		}
	}
	return nil
}

func (e *encoder) delta(dst []byte, ev *translate.Event) []byte {
	b := e.find(ev.Index)
	if b == nil || len(ev.Data) == 0 {
		return dst
	}
	switch {
	case ev.Delta == translate.DeltaSignature:
		b.sig = append(b.sig, ev.Data...)
		return dst
	case b.typ == translate.PartText && ev.Delta == translate.DeltaText:
		dst = e.itemHead(dst, "response.output_text.delta", b)
		dst = append(dst, `,"content_index":0,"delta":`...)
		dst = translate.AppendBytes(dst, ev.Data)
		dst = append(dst, `,"logprobs":[]`...)
	case b.typ == translate.PartToolCall && ev.Delta == translate.DeltaArgs:
		dst = e.itemHead(dst, "response.function_call_arguments.delta", b)
		dst = append(dst, `,"delta":`...)
		dst = translate.AppendBytes(dst, ev.Data)
	case b.typ == translate.PartThinking && ev.Delta == translate.DeltaThinking:
		if !b.summary {
			b.summary = true
			dst = e.itemHead(dst, "response.reasoning_summary_part.added", b)
			dst = append(dst, `,"summary_index":0,"part":{"type":"summary_text","text":""}`...)
			dst = tail(dst)
		}
		dst = e.itemHead(dst, "response.reasoning_summary_text.delta", b)
		dst = append(dst, `,"summary_index":0,"delta":`...)
		dst = translate.AppendBytes(dst, ev.Data)
	default:
		return dst
	}
	b.text = append(b.text, ev.Data...)
	return tail(dst)
}

// blockStop writes a block's done events and keeps its finished item for
// the terminal response.
func (e *encoder) blockStop(dst []byte, b *eblock) []byte {
	text := string(b.text)
	switch b.typ {
	case translate.PartText:
		dst = e.itemHead(dst, "response.output_text.done", b)
		dst = append(dst, `,"content_index":0,"text":`...)
		dst = translate.AppendString(dst, text)
		dst = append(dst, `,"logprobs":[]`...)
		dst = tail(dst)
		dst = e.itemHead(dst, "response.content_part.done", b)
		dst = append(dst, `,"content_index":0,"part":`...)
		dst = appendTextPart(dst, text)
		dst = tail(dst)
	case translate.PartToolCall:
		dst = e.itemHead(dst, "response.function_call_arguments.done", b)
		dst = append(dst, `,"name":`...)
		_, fn := translate.SplitNamespace(e.o.Namespaces, b.name)
		dst = translate.AppendString(dst, fn)
		dst = append(dst, `,"arguments":`...)
		dst = translate.AppendString(dst, text)
		dst = tail(dst)
	default:
		if b.summary {
			dst = e.itemHead(dst, "response.reasoning_summary_text.done", b)
			dst = append(dst, `,"summary_index":0,"text":`...)
			dst = translate.AppendString(dst, text)
			dst = tail(dst)
			dst = e.itemHead(dst, "response.reasoning_summary_part.done", b)
			dst = append(dst, `,"summary_index":0,"part":{"type":"summary_text","text":`...)
			dst = translate.AppendString(dst, text)
			dst = append(dst, '}')
			dst = tail(dst)
		}
	}
	if len(e.output) > 0 {
		e.output = append(e.output, ',')
	}
	start := len(e.output)
	switch b.typ {
	case translate.PartText:
		e.output = appendMessageItem(e.output, e.items, b.out, statusCompleted, text, true)
	case translate.PartToolCall:
		e.output = appendCallItem(e.output, e.items, b.out, statusCompleted, b.callID, b.name, text, e.o.Namespaces)
	default:
		e.output = appendReasoningItem(e.output, e.items, b.out, text, carriedSignature(b.typ, b.origin, string(b.sig)), true)
	}
	dst = e.head(dst, "response.output_item.done")
	dst = append(dst, `,"output_index":`...)
	dst = translate.AppendInt(dst, int64(b.out))
	dst = append(dst, `,"item":`...)
	dst = append(dst, e.output[start:]...)
	return tail(dst)
}

// end closes what is still open and writes the terminal event with the
// whole response.
func (e *encoder) end(dst []byte) []byte {
	e.ended = true
	for _, b := range e.open {
		dst = e.blockStop(dst, b)
	}
	e.open = nil
	h := headOf(e.id, e.o.Model, e.o.Created, e.stop, e.fail)
	var u *translate.Usage
	if e.hasUsage {
		u = &e.usage
	}
	dst = e.head(dst, "response."+h.status)
	dst = append(dst, `,"response":`...)
	dst = appendResponse(dst, &h, e.output, u)
	return tail(dst)
}
