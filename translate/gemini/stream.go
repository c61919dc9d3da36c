package gemini

import (
	"fmt"
	"strings"
	"unsafe"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// NewDecoder reads a gemini upstream's streamGenerateContent?alt=sse
// stream: each event's data is a whole GenerateContentResponse; the one
// carrying finishReason is the last (there is no terminal marker).
func (codec) NewDecoder() translate.StreamDecoder { return &decoder{open: -1} }

type decoder struct {
	p        fastjson.Parser
	started  bool
	ended    bool
	open     int // index of the open block, or -1
	openType translate.PartType
	next     int // index of the next block
	calls    int
	rid      string
	usage    translate.Usage
	hasUsage bool
}

// view is b as a string without a copy: valid while b is, which for the
// parser's bytes is until the next Decode, as Event's contract allows.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (d *decoder) Decode(evs []translate.Event, _ string, data []byte) ([]translate.Event, error) {
	if d.ended {
		return evs, nil
	}
	v, err := d.p.ParseBytes(data)
	if err != nil {
		return evs, fmt.Errorf("%w: %v", ErrAnswer, err)
	}
	if ev := v.Get("error"); ev != nil {
		d.ended = true
		e := Codec.DecodeError(0, data)
		if e.Status == 502 && count(ev.Get("code")) == 0 {
			e.Status, e.Kind = 500, translate.ErrServer
		}
		return append(evs, translate.Event{Type: translate.EvError, Err: e}), nil
	}
	if !d.started {
		d.started = true
		d.rid = str(v.Get("responseId"))
		evs = append(evs, translate.Event{Type: translate.EvStart, ID: d.rid, Model: view(v.GetStringBytes("modelVersion"))})
	}
	cands := v.GetArray("candidates")
	var c *fastjson.Value
	if len(cands) > 0 {
		c = cands[0]
	}
	for _, pv := range c.GetArray("content", "parts") {
		evs = d.part(evs, pv)
	}
	if u := v.Get("usageMetadata"); u != nil {
		d.usage, d.hasUsage = usage(u), true
	}
	reason := peek(c.Get("finishReason"))
	blocked := c == nil && v.Get("promptFeedback", "blockReason") != nil
	if reason == "" && !blocked {
		return evs, nil
	}
	evs = d.close(evs)
	if d.hasUsage {
		evs = append(evs, translate.Event{Type: translate.EvUsage, Usage: d.usage})
	}
	stop := stopReason(reason, d.calls > 0)
	if blocked {
		stop = translate.StopRefusal
	}
	d.ended = true
	return append(evs, translate.Event{Type: translate.EvStop, Stop: stop}, translate.Event{Type: translate.EvEnd}), nil
}

func (d *decoder) part(evs []translate.Event, pv *fastjson.Value) []translate.Event {
	text := pv.GetStringBytes("text")
	sig := pv.GetStringBytes("thoughtSignature")
	if pv.GetBool("thought") {
		if d.openType != translate.PartThinking {
			evs = d.start(evs, translate.Part{Type: translate.PartThinking, Origin: Format})
		}
		if len(text) > 0 {
			evs = append(evs, translate.Event{Type: translate.EvDelta, Index: d.open, Delta: translate.DeltaThinking, Data: text})
		}
		if len(sig) > 0 {
			// A signature ends its thinking.
			evs = append(evs, translate.Event{Type: translate.EvDelta, Index: d.open, Delta: translate.DeltaSignature, Data: sig})
			evs = d.close(evs)
		}
		return evs
	}
	if len(sig) > 0 {
		evs = d.start(evs, translate.Part{Type: translate.PartThinking, Origin: Format})
		evs = append(evs, translate.Event{Type: translate.EvDelta, Index: d.open, Delta: translate.DeltaSignature, Data: sig})
		evs = d.close(evs)
	}
	if fc := pv.Get("functionCall"); fc != nil {
		d.calls++
		id := view(fc.GetStringBytes("id"))
		if id == "" {
			id = synthID(d.rid, d.calls)
		}
		evs = d.start(evs, translate.Part{Type: translate.PartToolCall, ID: id, Name: view(fc.GetStringBytes("name"))})
		a := []byte("{}")
		if av := fc.Get("args"); av != nil && av.Type() == fastjson.TypeObject {
			a = av.MarshalTo(nil)
		}
		evs = append(evs, translate.Event{Type: translate.EvDelta, Index: d.open, Delta: translate.DeltaArgs, Data: a})
		return d.close(evs)
	}
	if len(text) > 0 {
		if d.openType != translate.PartText {
			evs = d.start(evs, translate.Part{Type: translate.PartText})
		}
		evs = append(evs, translate.Event{Type: translate.EvDelta, Index: d.open, Delta: translate.DeltaText, Data: text})
	}
	return evs
}

// start closes the open block and opens b.
func (d *decoder) start(evs []translate.Event, b translate.Part) []translate.Event {
	evs = d.close(evs)
	d.open, d.openType = d.next, b.Type
	d.next++
	return append(evs, translate.Event{Type: translate.EvBlockStart, Index: d.open, Block: b})
}

func (d *decoder) close(evs []translate.Event) []translate.Event {
	if d.open < 0 {
		return evs
	}
	evs = append(evs, translate.Event{Type: translate.EvBlockStop, Index: d.open})
	d.open, d.openType = -1, 0
	return evs
}

// NewEncoder writes a Gemini client's stream: one chunk per text or
// thinking delta, one per whole function call, and a last chunk with
// finishReason and usageMetadata.
func (codec) NewEncoder(o translate.EncoderOptions) translate.StreamEncoder {
	return &encoder{o: o}
}

type encoder struct {
	o    translate.EncoderOptions
	id   string
	done bool
	// blocks are the open blocks' kinds, by index.
	blocks []block
	// scratch stands for a block never announced.
	scratch block
	// tool is the call being accumulated: Gemini sends it whole.
	toolID, toolName string
	args             []byte
	// pending is a signature waiting for the next part (it belonged to
	// a text or call part, or to thinking already sent).
	pending  string
	usage    translate.Usage
	hasUsage bool
	stop     translate.StopReason
}

type block struct {
	typ translate.PartType
	// gemini: a thinking block whose signature a Gemini client can send
	// back; others' signatures are dropped.
	gemini, text bool
}

const (
	chunkHead = `data: {"candidates":[{"content":{"role":"model","parts":[`
	// sseEnd ends an event as Google's servers do; genai's reader also
	// takes "\n\n".
	sseEnd = "\r\n\r\n"
)

func (e *encoder) Encode(dst []byte, ev *translate.Event) []byte {
	if e.done {
		return dst
	}
	switch ev.Type {
	case translate.EvStart:
		if ev.ID != "" {
			// Event strings may point into the decoder's buffer: copy.
			e.id = strings.Clone(ev.ID)
		}
	case translate.EvBlockStart:
		for len(e.blocks) <= ev.Index && len(e.blocks) < maxBlocks {
			e.blocks = append(e.blocks, block{})
		}
		if ev.Index < len(e.blocks) {
			e.blocks[ev.Index] = block{typ: ev.Block.Type, gemini: ev.Block.Origin == Format}
		}
		if ev.Block.Type == translate.PartToolCall {
			// Written at BlockStop, after the decoder has reused the
			// buffer these point into: copy.
			e.toolID, e.toolName, e.args = strings.Clone(ev.Block.ID), strings.Clone(ev.Block.Name), e.args[:0]
		}
	case translate.EvDelta:
		b := e.block(ev.Index)
		switch ev.Delta {
		case translate.DeltaText:
			dst = append(dst, chunkHead...)
			dst = append(dst, `{"text":`...)
			dst = translate.AppendBytes(dst, ev.Data)
			dst = e.sig(dst)
			dst = e.chunkTail(dst)
		case translate.DeltaThinking:
			b.text = true
			dst = append(dst, chunkHead...)
			dst = append(dst, `{"text":`...)
			dst = translate.AppendBytes(dst, ev.Data)
			dst = append(dst, `,"thought":true`...)
			dst = e.sig(dst)
			dst = e.chunkTail(dst)
		case translate.DeltaArgs:
			e.args = append(e.args, ev.Data...)
		case translate.DeltaSignature:
			if !b.gemini || len(ev.Data) == 0 {
				break
			}
			if e.pending != "" {
				dst = e.flush(dst)
			}
			e.pending = string(ev.Data)
			if b.text {
				dst = append(dst, chunkHead...)
				dst = append(dst, `{"text":"","thought":true`...)
				dst = e.sig(dst)
				dst = e.chunkTail(dst)
			}
		}
	case translate.EvBlockStop:
		if e.block(ev.Index).typ != translate.PartToolCall {
			break
		}
		dst = append(dst, chunkHead...)
		dst = append(dst, `{"functionCall":{`...)
		if id := realID(e.toolID); id != "" {
			dst = append(dst, `"id":`...)
			dst = translate.AppendString(dst, id)
			dst = append(dst, ',')
		}
		dst = append(dst, `"name":`...)
		dst = translate.AppendString(dst, e.toolName)
		dst = append(dst, `,"args":`...)
		if validObject(view(e.args)) {
			dst = append(dst, e.args...)
		} else {
			dst = append(dst, "{}"...)
		}
		dst = append(dst, '}')
		dst = e.sig(dst)
		dst = e.chunkTail(dst)
	case translate.EvUsage:
		e.usage, e.hasUsage = ev.Usage, true
	case translate.EvStop:
		e.stop = ev.Stop
	case translate.EvEnd:
		e.done = true
		dst = append(dst, chunkHead...)
		dst = append(dst, `{"text":""`...)
		dst = e.sig(dst)
		dst = append(dst, `]},"finishReason":"`...)
		dst = append(dst, finishReason(e.stop)...)
		dst = append(dst, `","index":0}],`...)
		if e.hasUsage {
			dst = appendUsage(dst, &e.usage)
			dst = append(dst, ',')
		}
		dst = appendTrailer(dst, e.o, e.id)
		dst = append(dst, sseEnd...)
	case translate.EvError:
		e.done = true
		if ev.Err == nil {
			break
		}
		dst = append(dst, "data: "...)
		dst = Codec.EncodeError(dst, ev.Err)
		dst = append(dst, sseEnd...)
	}
	return dst
}

// maxBlocks bounds the blocks an encoder tracks.
const maxBlocks = 1 << 16

func (e *encoder) block(i int) *block {
	if i < 0 || i >= len(e.blocks) {
		e.scratch = block{}
		return &e.scratch
	}
	return &e.blocks[i]
}

// sig writes the pending signature into the part being written, and
// closes the part.
func (e *encoder) sig(dst []byte) []byte {
	if e.pending != "" {
		dst = append(dst, `,"thoughtSignature":`...)
		dst = translate.AppendString(dst, e.pending)
		e.pending = ""
	}
	return append(dst, '}')
}

// flush sends the pending signature on an empty text part of its own.
func (e *encoder) flush(dst []byte) []byte {
	dst = append(dst, chunkHead...)
	dst = append(dst, `{"text":""`...)
	dst = e.sig(dst)
	return e.chunkTail(dst)
}

func (e *encoder) chunkTail(dst []byte) []byte {
	dst = append(dst, `]},"index":0}],`...)
	dst = appendTrailer(dst, e.o, e.id)
	return append(dst, sseEnd...)
}
