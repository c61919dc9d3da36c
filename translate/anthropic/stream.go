package anthropic

import (
	"errors"
	"fmt"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// ErrBadEvent is a stream event that is not the API's JSON.
var ErrBadEvent = errors.New("anthropic: bad stream event")

// maxIndexGap bounds how far ahead of the blocks seen a block index may
// jump, so that a corrupt index cannot make a decoder or an encoder
// allocate without bound.
const maxIndexGap = 64

// streamDecoder reads an anthropic-kind upstream's SSE events.
type streamDecoder struct {
	p fastjson.Parser
	// index maps the upstream's block index to the neutral one, -1 for a
	// block left out (server-tool blocks).
	index []int
	// open are the neutral blocks started and not yet stopped.
	open    []int
	next    int
	usage   usageFields
	stopped bool
	ended   bool
}

// Decode turns one upstream event into neutral events.
func (d *streamDecoder) Decode(evs []translate.Event, name string, data []byte) ([]translate.Event, error) {
	if d.ended || len(trimSpace(data)) == 0 {
		return evs, nil
	}
	v, err := d.p.ParseBytes(data)
	if err != nil || v.Type() != fastjson.TypeObject {
		return evs, fmt.Errorf("%w: %s", ErrBadEvent, name)
	}
	typ := view(v.GetStringBytes("type"))
	if typ == "" {
		typ = name
	}
	switch typ {
	case "message_start":
		m := v.Get("message")
		if m == nil {
			return evs, nil
		}
		evs = append(evs, translate.Event{Type: translate.EvStart,
			ID: string(m.GetStringBytes("id")), Model: string(m.GetStringBytes("model"))})
		d.usage.read(m.Get("usage"))
		if d.usage.any {
			evs = append(evs, translate.Event{Type: translate.EvUsage, Usage: d.usage.u})
		}
	case "content_block_start":
		evs = d.blockStart(evs, v)
	case "content_block_delta":
		n := d.neutral(v)
		if n < 0 {
			return evs, nil
		}
		delta := v.Get("delta")
		if delta == nil {
			return evs, nil
		}
		var kind translate.DeltaType
		var b []byte
		switch string(delta.GetStringBytes("type")) {
		case "text_delta":
			kind, b = translate.DeltaText, delta.GetStringBytes("text")
		case "input_json_delta":
			kind, b = translate.DeltaArgs, delta.GetStringBytes("partial_json")
		case "thinking_delta":
			kind, b = translate.DeltaThinking, delta.GetStringBytes("thinking")
		case "signature_delta":
			kind, b = translate.DeltaSignature, delta.GetStringBytes("signature")
		}
		if kind != 0 && len(b) > 0 {
			evs = append(evs, translate.Event{Type: translate.EvDelta, Index: n, Delta: kind, Data: b})
		}
	case "content_block_stop":
		if n := d.neutral(v); n >= 0 && d.close(n) {
			evs = append(evs, translate.Event{Type: translate.EvBlockStop, Index: n})
		}
	case "message_delta":
		if sr := v.GetStringBytes("delta", "stop_reason"); len(sr) > 0 && !d.stopped {
			d.stopped = true
			evs = d.closeAll(evs)
			evs = append(evs, translate.Event{Type: translate.EvStop, Stop: stopReason(sr),
				StopSequence: string(v.GetStringBytes("delta", "stop_sequence"))})
		}
		d.usage.read(v.Get("usage"))
		if d.usage.any {
			evs = append(evs, translate.Event{Type: translate.EvUsage, Usage: d.usage.u})
		}
	case "message_stop":
		evs = d.closeAll(evs)
		d.ended = true
		evs = append(evs, translate.Event{Type: translate.EvEnd})
	case "error":
		e := decodeError(0, v)
		e.Status = statusOfKind(e.Kind)
		evs = append(evs, translate.Event{Type: translate.EvError, Err: e})
	}
	return evs, nil
}

// blockStart opens a neutral block for a text, thinking, redacted thinking
// or tool_use block, with a delta for any content the start already holds.
func (d *streamDecoder) blockStart(evs []translate.Event, v *fastjson.Value) []translate.Event {
	iv, cb := v.Get("index"), v.Get("content_block")
	if iv == nil || cb == nil {
		return evs
	}
	i, err := iv.Int()
	if err != nil || i < 0 || i > len(d.index)+maxIndexGap {
		return evs
	}
	for len(d.index) <= i {
		d.index = append(d.index, -1)
	}
	if d.index[i] >= 0 {
		return evs
	}
	var block translate.Part
	var kind translate.DeltaType
	var b []byte
	switch string(cb.GetStringBytes("type")) {
	case "text":
		block.Type = translate.PartText
		kind, b = translate.DeltaText, cb.GetStringBytes("text")
	case "thinking":
		block = translate.Part{Type: translate.PartThinking, Origin: Name}
		kind, b = translate.DeltaThinking, cb.GetStringBytes("thinking")
	case "redacted_thinking":
		block = translate.Part{Type: translate.PartRedactedThinking, Origin: Name}
		kind, b = translate.DeltaSignature, cb.GetStringBytes("data")
	case "tool_use":
		block = translate.Part{Type: translate.PartToolCall,
			ID: view(cb.GetStringBytes("id")), Name: view(cb.GetStringBytes("name"))}
		if in := cb.Get("input"); in != nil && in.Type() == fastjson.TypeObject && in.GetObject().Len() > 0 {
			kind, b = translate.DeltaArgs, in.MarshalTo(nil)
		}
	default:
		return evs
	}
	n := d.next
	d.next++
	d.index[i] = n
	d.open = append(d.open, n)
	evs = append(evs, translate.Event{Type: translate.EvBlockStart, Index: n, Block: block})
	if len(b) > 0 {
		evs = append(evs, translate.Event{Type: translate.EvDelta, Index: n, Delta: kind, Data: b})
	}
	if block.Type == translate.PartThinking {
		if sig := cb.GetStringBytes("signature"); len(sig) > 0 {
			evs = append(evs, translate.Event{Type: translate.EvDelta, Index: n, Delta: translate.DeltaSignature, Data: sig})
		}
	}
	return evs
}

// neutral is the open neutral block an event's index names, or -1.
func (d *streamDecoder) neutral(v *fastjson.Value) int {
	iv := v.Get("index")
	if iv == nil {
		return -1
	}
	i, err := iv.Int()
	if err != nil || i < 0 || i >= len(d.index) {
		return -1
	}
	n := d.index[i]
	for _, o := range d.open {
		if o == n {
			return n
		}
	}
	return -1
}

// closeAll stops the blocks the upstream left open: none may outlive the
// answer's stop.
func (d *streamDecoder) closeAll(evs []translate.Event) []translate.Event {
	for _, n := range d.open {
		evs = append(evs, translate.Event{Type: translate.EvBlockStop, Index: n})
	}
	d.open = d.open[:0]
	return evs
}

// close marks neutral block n stopped.
func (d *streamDecoder) close(n int) bool {
	for j, o := range d.open {
		if o == n {
			d.open = append(d.open[:j], d.open[j+1:]...)
			return true
		}
	}
	return false
}

// statusOfKind is the status the API sends an error kind with.
func statusOfKind(k translate.ErrorKind) int {
	switch k {
	case translate.ErrAuthentication:
		return 401
	case translate.ErrPermission:
		return 403
	case translate.ErrNotFound:
		return 404
	case translate.ErrTooLarge:
		return 413
	case translate.ErrRateLimit:
		return 429
	case translate.ErrServer:
		return 500
	case translate.ErrOverloaded:
		return 529
	}
	return 400
}
