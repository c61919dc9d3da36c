package chat

import (
	"bytes"
	"errors"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// Stream decoding errors.
var (
	// ErrBadChunk: a data line that is neither JSON nor [DONE].
	ErrBadChunk = errors.New("chat: a stream chunk is not a JSON object")
	// ErrToolCallInterleaved: arguments for a tool call after another
	// call began. No vendor streams so; neutral blocks follow each other,
	// so the call could only be cut in two.
	ErrToolCallInterleaved = errors.New("chat: a stream resumed a tool call after the next one began")
)

// NewDecoder reads an upstream's stream of chat.completion.chunk objects.
func (codec) NewDecoder() translate.StreamDecoder { return &decoder{open: -1} }

// decoder turns chunks into blocks that follow each other: a block stays
// open while its kind of delta continues and closes when another kind (or
// another tool call) begins, at finish_reason, or at [DONE].
type decoder struct {
	p        fastjson.Parser
	started  bool
	ended    bool
	next     int // index of the next block
	open     int // index of the open block, -1 when none
	openType translate.PartType
	toolIdx  int64  // the open tool call's upstream index (-1: none given)
	toolID   string // and its id, for vendors that give no index
	tools    []int64
	refused  bool
}

// Decode reads one chunk.
func (d *decoder) Decode(evs []translate.Event, name string, data []byte) ([]translate.Event, error) {
	if d.ended {
		return evs, nil
	}
	data = bytes.TrimSpace(data)
	if string(data) == "[DONE]" {
		evs = d.close(evs)
		d.ended = true
		return append(evs, translate.Event{Type: translate.EvEnd}), nil
	}
	v, err := d.p.ParseBytes(data)
	if err != nil || v.Type() != fastjson.TypeObject {
		return evs, ErrBadChunk
	}
	if e := v.Get("error"); name == "error" || e != nil && e.Type() != fastjson.TypeNull {
		d.ended = true
		return append(evs, translate.Event{Type: translate.EvError, Err: errorOf(0, v)}), nil
	}
	if !d.started {
		d.started = true
		evs = append(evs, translate.Event{Type: translate.EvStart,
			ID: string(v.GetStringBytes("id")), Model: string(v.GetStringBytes("model"))})
	}
	for _, c := range v.GetArray("choices") {
		if c.GetInt("index") != 0 {
			continue
		}
		if delta := c.Get("delta"); delta != nil {
			if evs, err = d.delta(evs, delta); err != nil {
				return evs, err
			}
		}
		if fr := c.GetStringBytes("finish_reason"); len(fr) > 0 {
			evs = d.close(evs)
			stop := stopOf(string(fr))
			if d.refused && stop == translate.StopEnd {
				stop = translate.StopRefusal
			}
			evs = append(evs, translate.Event{Type: translate.EvStop, Stop: stop})
		}
	}
	if u := v.Get("usage"); u != nil && u.Type() == fastjson.TypeObject {
		evs = append(evs, translate.Event{Type: translate.EvUsage, Usage: usageOf(u)})
	}
	return evs, nil
}

func (d *decoder) delta(evs []translate.Event, delta *fastjson.Value) ([]translate.Event, error) {
	if t := reasoningOf(delta); len(t) > 0 {
		evs = d.ensure(evs, translate.PartThinking)
		evs = append(evs, translate.Event{Type: translate.EvDelta, Index: d.open, Delta: translate.DeltaThinking, Data: t})
	}
	if t := delta.GetStringBytes("content"); len(t) > 0 {
		evs = d.ensure(evs, translate.PartText)
		evs = append(evs, translate.Event{Type: translate.EvDelta, Index: d.open, Delta: translate.DeltaText, Data: t})
	}
	if t := delta.GetStringBytes("refusal"); len(t) > 0 {
		d.refused = true
		evs = d.ensure(evs, translate.PartText)
		evs = append(evs, translate.Event{Type: translate.EvDelta, Index: d.open, Delta: translate.DeltaText, Data: t})
	}
	for _, tc := range delta.GetArray("tool_calls") {
		idx := int64(-1)
		if x := tc.Get("index"); x != nil && x.Type() == fastjson.TypeNumber {
			idx = tc.GetInt64("index")
		}
		id := tc.GetStringBytes("id")
		same := d.openType == translate.PartToolCall &&
			(idx >= 0 && idx == d.toolIdx || idx < 0 && (len(id) == 0 || string(id) == d.toolID))
		if !same {
			for _, t := range d.tools {
				if idx >= 0 && t == idx {
					return evs, ErrToolCallInterleaved
				}
			}
			evs = d.close(evs)
			d.open, d.openType, d.toolIdx = d.next, translate.PartToolCall, idx
			d.next++
			d.toolID = string(id)
			if d.toolID == "" {
				d.toolID = "call_" + itoa(d.open)
			}
			if idx >= 0 {
				d.tools = append(d.tools, idx)
			}
			evs = append(evs, translate.Event{Type: translate.EvBlockStart, Index: d.open,
				Block: translate.Part{Type: translate.PartToolCall, ID: d.toolID, Name: b2s(tc.GetStringBytes("function", "name"))}})
		}
		if args := tc.GetStringBytes("function", "arguments"); len(args) > 0 {
			evs = append(evs, translate.Event{Type: translate.EvDelta, Index: d.open, Delta: translate.DeltaArgs, Data: args})
		}
	}
	return evs, nil
}

func itoa(n int) string { return string(translate.AppendInt(nil, int64(n))) }

// ensure opens a block of type t unless one is open.
func (d *decoder) ensure(evs []translate.Event, t translate.PartType) []translate.Event {
	if d.open >= 0 && d.openType == t {
		return evs
	}
	evs = d.close(evs)
	d.open, d.openType = d.next, t
	d.next++
	return append(evs, translate.Event{Type: translate.EvBlockStart, Index: d.open, Block: translate.Part{Type: t}})
}

// close closes the open block, if any.
func (d *decoder) close(evs []translate.Event) []translate.Event {
	if d.open < 0 {
		return evs
	}
	evs = append(evs, translate.Event{Type: translate.EvBlockStop, Index: d.open})
	d.open, d.openType, d.toolIdx = -1, 0, -1
	return evs
}

// NewEncoder writes a client's stream of chat.completion.chunk objects.
func (codec) NewEncoder(o translate.EncoderOptions) translate.StreamEncoder {
	return &encoder{o: o}
}

// encoder writes each event as it comes. Only the usage waits: it goes in
// its own chunk at the end, as the API sends it.
type encoder struct {
	o       translate.EncoderOptions
	head    []byte // every chunk's opening, up to "choices":[
	started bool
	done    bool
	stopped bool
	called  bool
	// blocks holds, per block index, the tool call's position among the
	// answer's calls (tool_calls[].index), or -1 for text and thinking
	// blocks and -2 for the blocks that have no place (redacted thinking).
	blocks   []int
	kinds    []translate.PartType
	tools    int
	usage    translate.Usage
	hasUsage bool
}

// Encode writes one event.
func (e *encoder) Encode(dst []byte, ev *translate.Event) []byte {
	if e.done {
		return dst
	}
	switch ev.Type {
	case translate.EvStart:
		return e.start(dst, ev.ID)
	case translate.EvBlockStart:
		dst = e.start(dst, "")
		pos := -1
		if ev.Block.Type == translate.PartToolCall {
			pos = e.tools
			e.tools++
			e.called = true
		}
		for len(e.blocks) <= ev.Index {
			e.blocks = append(e.blocks, -2)
			e.kinds = append(e.kinds, 0)
		}
		e.blocks[ev.Index], e.kinds[ev.Index] = pos, ev.Block.Type
		if pos < 0 {
			return dst
		}
		dst = e.open(dst)
		dst = append(dst, `{"tool_calls":[{"index":`...)
		dst = translate.AppendInt(dst, int64(pos))
		dst = append(dst, `,"id":`...)
		dst = translate.AppendString(dst, ev.Block.ID)
		dst = append(dst, `,"type":"function","function":{"name":`...)
		dst = translate.AppendString(dst, ev.Block.Name)
		dst = append(dst, `,"arguments":""}}]}`...)
		return e.closeChunk(dst, "")
	case translate.EvDelta:
		if ev.Index < 0 || ev.Index >= len(e.blocks) || len(ev.Data) == 0 {
			return dst
		}
		dst = e.start(dst, "")
		switch {
		case ev.Delta == translate.DeltaText && e.kinds[ev.Index] == translate.PartText:
			dst = e.open(dst)
			dst = append(dst, `{"content":`...)
		case ev.Delta == translate.DeltaThinking && e.kinds[ev.Index] == translate.PartThinking:
			dst = e.open(dst)
			dst = append(dst, `{"reasoning_content":`...)
		case ev.Delta == translate.DeltaArgs && e.blocks[ev.Index] >= 0:
			dst = e.open(dst)
			dst = append(dst, `{"tool_calls":[{"index":`...)
			dst = translate.AppendInt(dst, int64(e.blocks[ev.Index]))
			dst = append(dst, `,"function":{"arguments":`...)
			dst = translate.AppendBytes(dst, ev.Data)
			dst = append(dst, "}}]}"...)
			return e.closeChunk(dst, "")
		default:
			// Signatures and redacted thinking have no place in chat.
			return dst
		}
		dst = translate.AppendBytes(dst, ev.Data)
		dst = append(dst, '}')
		return e.closeChunk(dst, "")
	case translate.EvUsage:
		e.usage, e.hasUsage = ev.Usage, true
	case translate.EvStop:
		dst = e.start(dst, "")
		return e.stop(dst, ev.Stop)
	case translate.EvEnd:
		dst = e.start(dst, "")
		if !e.stopped {
			dst = e.stop(dst, translate.StopEnd)
		}
		if e.o.IncludeUsage && e.hasUsage {
			dst = append(dst, "data: "...)
			dst = append(dst, e.head...)
			dst = append(dst, `],"usage":`...)
			dst = appendUsage(dst, &e.usage)
			dst = append(dst, "}\n\n"...)
		}
		e.done = true
		return append(dst, "data: [DONE]\n\n"...)
	case translate.EvError:
		e.done = true
		dst = append(dst, "data: "...)
		err := ev.Err
		if err == nil {
			err = &translate.Error{Status: 500, Kind: translate.ErrServer, Message: "the upstream stream failed"}
		}
		dst = Codec.EncodeError(dst, err)
		return append(dst, "\n\n"...)
	}
	return dst
}

// start writes the first chunk, the assistant's role, once.
func (e *encoder) start(dst []byte, id string) []byte {
	if e.started {
		return dst
	}
	e.started = true
	if id == "" {
		id = e.o.ID
	}
	h := make([]byte, 0, 96+len(id)+len(e.o.Model))
	h = append(h, `{"id":`...)
	h = translate.AppendString(h, id)
	h = append(h, `,"object":"chat.completion.chunk","created":`...)
	h = translate.AppendInt(h, e.o.Created)
	h = append(h, `,"model":`...)
	h = translate.AppendString(h, e.o.Model)
	e.head = append(h, `,"choices":[`...)
	dst = e.open(dst)
	dst = append(dst, `{"role":"assistant","content":""}`...)
	return e.closeChunk(dst, "")
}

// open writes a chunk's opening up to its delta.
func (e *encoder) open(dst []byte) []byte {
	dst = append(dst, "data: "...)
	dst = append(dst, e.head...)
	return append(dst, `{"index":0,"delta":`...)
}

// closeChunk ends a chunk after its delta, with a finish reason or null.
func (e *encoder) closeChunk(dst []byte, finish string) []byte {
	dst = append(dst, `,"logprobs":null,"finish_reason":`...)
	if finish == "" {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = append(dst, finish...)
		dst = append(dst, '"')
	}
	return append(dst, "}]}\n\n"...)
}

func (e *encoder) stop(dst []byte, s translate.StopReason) []byte {
	if e.stopped {
		return dst
	}
	e.stopped = true
	dst = e.open(dst)
	dst = append(dst, "{}"...)
	return e.closeChunk(dst, finishReason(s, e.called))
}
