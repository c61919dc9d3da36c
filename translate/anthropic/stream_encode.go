package anthropic

import (
	"strings"

	"zenmux/translate"
)

// encBlock is what the encoder knows of one neutral block.
type encBlock struct {
	typ translate.PartType
	// known: the block was started and is not left out.
	known bool
	// client is the block's index in the client's stream.
	client int
	open   bool
	// signed: a thinking block whose signature a Claude client may send
	// back (an Anthropic one).
	signed bool
	// redacted holds a redacted thinking block's data: the API sends it
	// whole in content_block_start, so the block is written (and takes its
	// client index) at its stop.
	redacted []byte
}

// streamEncoder writes a Claude client's SSE stream.
type streamEncoder struct {
	opts translate.EncoderOptions
	id   string
	// model is the upstream's name, used only when the options name none.
	model      string
	usage      translate.Usage
	stop       translate.StopReason
	stopSeq    string
	blocks     []encBlock
	next       int
	calledTool bool
	started    bool
	ended      bool
}

// Encode writes ev as the client's SSE events. message_start waits for
// the first block (or the end), so that it carries the input counts a
// decoder reports right after its start; Claude Code reads them there.
func (e *streamEncoder) Encode(dst []byte, ev *translate.Event) []byte {
	if e.ended {
		return dst
	}
	switch ev.Type {
	case translate.EvStart:
		if !e.started && e.id == "" {
			// The event's strings may live in the decoder's buffers.
			e.id, e.model = strings.Clone(ev.ID), strings.Clone(ev.Model)
		}
	case translate.EvUsage:
		e.usage = ev.Usage
	case translate.EvBlockStart:
		return e.blockStart(dst, ev)
	case translate.EvDelta:
		return e.delta(dst, ev)
	case translate.EvBlockStop:
		b := e.block(ev.Index)
		if b == nil || !b.open {
			return dst
		}
		return e.blockStop(dst, b)
	case translate.EvStop:
		e.stop, e.stopSeq = ev.Stop, strings.Clone(ev.StopSequence)
	case translate.EvEnd:
		dst = e.start(dst)
		for i := range e.blocks {
			if b := &e.blocks[i]; b.open {
				dst = e.blockStop(dst, b)
			}
		}
		e.ended = true
		dst = append(dst, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\""...)
		dst = append(dst, stopWord(e.stop, e.calledTool)...)
		dst = append(dst, `","stop_sequence":`...)
		dst = appendStopSequence(dst, e.stop, e.stopSeq)
		dst = append(dst, `},"usage":`...)
		dst = appendUsage(dst, &e.usage)
		dst = append(dst, "}\n\n"...)
		return append(dst, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"...)
	case translate.EvError:
		if ev.Err == nil {
			return dst
		}
		dst = append(dst, "event: error\ndata: "...)
		dst = Codec.EncodeError(dst, ev.Err)
		return append(dst, "\n\n"...)
	}
	return dst
}

// start writes message_start once.
func (e *streamEncoder) start(dst []byte) []byte {
	if e.started {
		return dst
	}
	e.started = true
	dst = append(dst, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":"...)
	dst = appendMessageID(dst, e.id, e.opts.ID)
	dst = append(dst, `,"type":"message","role":"assistant","model":`...)
	dst = translate.AppendString(dst, modelName(e.opts, e.model))
	dst = append(dst, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":`...)
	dst = appendUsage(dst, &e.usage)
	return append(dst, "}}\n\n"...)
}

func (e *streamEncoder) block(i int) *encBlock {
	if i < 0 || i >= len(e.blocks) || !e.blocks[i].known {
		return nil
	}
	return &e.blocks[i]
}

func (e *streamEncoder) blockStart(dst []byte, ev *translate.Event) []byte {
	if ev.Index < 0 || ev.Index > len(e.blocks)+maxIndexGap {
		return dst
	}
	for len(e.blocks) <= ev.Index {
		e.blocks = append(e.blocks, encBlock{})
	}
	b := &e.blocks[ev.Index]
	if b.known {
		return dst
	}
	p := &ev.Block
	switch p.Type {
	case translate.PartText, translate.PartThinking, translate.PartToolCall:
	case translate.PartRedactedThinking:
		if p.Origin != Name {
			// Only Anthropic can read its redacted thinking back.
			return dst
		}
	default:
		return dst
	}
	dst = e.start(dst)
	*b = encBlock{typ: p.Type, known: true, open: true, signed: p.Origin == Name}
	if p.Type == translate.PartRedactedThinking {
		b.redacted = []byte{}
		return dst
	}
	b.client = e.next
	e.next++
	switch p.Type {
	case translate.PartText:
		dst = e.event(dst, "content_block_start", b.client)
		dst = append(dst, `"content_block":{"type":"text","text":""}}`...)
	case translate.PartThinking:
		dst = e.event(dst, "content_block_start", b.client)
		dst = append(dst, `"content_block":{"type":"thinking","thinking":"","signature":""}}`...)
	case translate.PartToolCall:
		e.calledTool = true
		dst = e.event(dst, "content_block_start", b.client)
		dst = append(dst, `"content_block":{"type":"tool_use","id":`...)
		dst = appendToolUseID(dst, p.ID, e.opts.ID, b.client)
		dst = append(dst, `,"name":`...)
		dst = translate.AppendString(dst, p.Name)
		dst = append(dst, `,"input":{}}}`...)
	}
	return append(dst, "\n\n"...)
}

// event writes an event's head up to its index, leaving the data object
// open for the rest.
func (e *streamEncoder) event(dst []byte, name string, index int) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	dst = append(dst, "\ndata: {\"type\":\""...)
	dst = append(dst, name...)
	dst = append(dst, `","index":`...)
	dst = translate.AppendInt(dst, int64(index))
	return append(dst, ',')
}

func (e *streamEncoder) delta(dst []byte, ev *translate.Event) []byte {
	b := e.block(ev.Index)
	if b == nil || !b.open || len(ev.Data) == 0 {
		return dst
	}
	var head string
	switch {
	case b.typ == translate.PartText && ev.Delta == translate.DeltaText:
		head = `"delta":{"type":"text_delta","text":`
	case b.typ == translate.PartThinking && ev.Delta == translate.DeltaThinking:
		head = `"delta":{"type":"thinking_delta","thinking":`
	case b.typ == translate.PartThinking && ev.Delta == translate.DeltaSignature && b.signed:
		head = `"delta":{"type":"signature_delta","signature":`
	case b.typ == translate.PartToolCall && ev.Delta == translate.DeltaArgs:
		head = `"delta":{"type":"input_json_delta","partial_json":`
	case b.typ == translate.PartRedactedThinking && ev.Delta == translate.DeltaSignature:
		b.redacted = append(b.redacted, ev.Data...)
		return dst
	default:
		return dst
	}
	dst = e.event(dst, "content_block_delta", b.client)
	dst = append(dst, head...)
	dst = translate.AppendBytes(dst, ev.Data)
	return append(dst, "}}\n\n"...)
}

func (e *streamEncoder) blockStop(dst []byte, b *encBlock) []byte {
	b.open = false
	if b.typ == translate.PartRedactedThinking {
		b.client = e.next
		e.next++
		dst = e.event(dst, "content_block_start", b.client)
		dst = append(dst, `"content_block":{"type":"redacted_thinking","data":`...)
		dst = translate.AppendBytes(dst, b.redacted)
		dst = append(dst, "}}\n\n"...)
		b.redacted = nil
	}
	dst = e.event(dst, "content_block_stop", b.client)
	dst[len(dst)-1] = '}'
	return append(dst, "\n\n"...)
}
