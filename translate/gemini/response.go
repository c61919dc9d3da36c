package gemini

import (
	"errors"
	"fmt"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// ErrAnswer is an upstream answer this codec cannot read.
var ErrAnswer = errors.New("gemini: unreadable answer")

// DecodeResponse reads a gemini upstream's generateContent answer: its
// first candidate (candidateCount above 1 is never asked for).
func (codec) DecodeResponse(body []byte) (*translate.Response, error) {
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAnswer, err)
	}
	if v.Type() != fastjson.TypeObject {
		return nil, fmt.Errorf("%w: not a JSON object", ErrAnswer)
	}
	if v.Get("error") != nil {
		return nil, fmt.Errorf("%w: an error in a 200 answer", ErrAnswer)
	}
	a := arena{b: make([]byte, 0, len(body))}
	r := &translate.Response{ID: a.str(v.Get("responseId")), Model: a.str(v.Get("modelVersion"))}
	if u := v.Get("usageMetadata"); u != nil {
		r.Usage, r.HasUsage = usage(u), true
	}
	cands := v.GetArray("candidates")
	if len(cands) == 0 {
		r.Stop = translate.StopEnd
		if v.Get("promptFeedback", "blockReason") != nil {
			r.Stop = translate.StopRefusal
		}
		return r, nil
	}
	c := cands[0]
	parts := c.GetArray("content", "parts")
	n := len(parts)
	for _, pv := range parts {
		if pv.Get("thoughtSignature") != nil {
			n++
		}
	}
	r.Content = make([]translate.Part, 0, n)
	calls := 0
	for _, pv := range parts {
		r.Content = a.answerPart(r.Content, pv, r.ID, &calls)
	}
	r.Stop = stopReason(peek(c.Get("finishReason")), calls > 0)
	return r, nil
}

// answerPart appends the neutral parts of one part of an answer; calls
// counts the function calls so far, to number the ids it makes up.
func (a *arena) answerPart(ps []translate.Part, pv *fastjson.Value, rid string, calls *int) []translate.Part {
	sig := a.str(pv.Get("thoughtSignature"))
	text := pv.Get("text")
	if pv.GetBool("thought") {
		return append(ps, translate.Part{Type: translate.PartThinking, Text: a.str(text), Signature: sig, Origin: Format})
	}
	if sig != "" {
		ps = append(ps, translate.Part{Type: translate.PartThinking, Signature: sig, Origin: Format})
	}
	if fc := pv.Get("functionCall"); fc != nil {
		*calls++
		id := a.str(fc.Get("id"))
		if id == "" {
			id = synthID(rid, *calls)
		}
		args := "{}"
		if av := fc.Get("args"); av != nil && av.Type() == fastjson.TypeObject {
			args = a.raw(av)
		}
		return append(ps, translate.Part{Type: translate.PartToolCall, ID: id, Name: a.str(fc.Get("name")), Args: args})
	}
	if t := a.str(text); t != "" {
		ps = append(ps, translate.Part{Type: translate.PartText, Text: t})
	}
	// Other parts (inline images, executable code) answer requests this
	// codec never makes.
	return ps
}

// stopReason maps finishReason. Gemini says STOP after function calls and
// after a stop sequence, without saying which one matched.
func stopReason(reason string, calls bool) translate.StopReason {
	switch reason {
	case "MAX_TOKENS":
		return translate.StopMaxTokens
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR":
		return translate.StopRefusal
	}
	if calls {
		return translate.StopToolUse
	}
	return translate.StopEnd
}

func finishReason(s translate.StopReason) string {
	switch s {
	case translate.StopMaxTokens:
		return "MAX_TOKENS"
	case translate.StopRefusal:
		return "SAFETY"
	}
	return "STOP"
}

// usage maps usageMetadata (W5): promptTokenCount includes the cached
// tokens; thoughts are output, outside candidatesTokenCount.
func usage(u *fastjson.Value) translate.Usage {
	prompt, cached := count(u.Get("promptTokenCount")), count(u.Get("cachedContentTokenCount"))
	thoughts := count(u.Get("thoughtsTokenCount"))
	return translate.Usage{
		Input:     max(prompt-cached, 0) + count(u.Get("toolUsePromptTokenCount")),
		CacheRead: cached,
		Output:    count(u.Get("candidatesTokenCount")) + thoughts,
		Reasoning: thoughts,
	}
}

func appendUsage(dst []byte, u *translate.Usage) []byte {
	prompt := u.Input + u.CacheRead + u.CacheWrite
	cand := max(u.Output-u.Reasoning, 0)
	dst = append(dst, `"usageMetadata":{"promptTokenCount":`...)
	dst = translate.AppendInt(dst, prompt)
	dst = append(dst, `,"candidatesTokenCount":`...)
	dst = translate.AppendInt(dst, cand)
	if u.CacheRead > 0 {
		dst = append(dst, `,"cachedContentTokenCount":`...)
		dst = translate.AppendInt(dst, u.CacheRead)
	}
	if u.Reasoning > 0 {
		dst = append(dst, `,"thoughtsTokenCount":`...)
		dst = translate.AppendInt(dst, u.Reasoning)
	}
	dst = append(dst, `,"totalTokenCount":`...)
	dst = translate.AppendInt(dst, prompt+cand+u.Reasoning)
	return append(dst, '}')
}

// EncodeResponse writes a generateContent answer for a Gemini client.
func (codec) EncodeResponse(dst []byte, r *translate.Response, o translate.EncoderOptions) []byte {
	dst = append(dst, `{"candidates":[{"content":{"role":"model","parts":[`...)
	dst, _ = appendParts(dst, nil, r.Content, true, &turn{})
	dst = append(dst, `]},"finishReason":"`...)
	dst = append(dst, finishReason(r.Stop)...)
	dst = append(dst, `","index":0}],`...)
	if r.HasUsage {
		dst = appendUsage(dst, &r.Usage)
		dst = append(dst, ',')
	}
	return appendTrailer(dst, o, r.ID)
}

// appendTrailer writes modelVersion and responseId and closes the answer.
func appendTrailer(dst []byte, o translate.EncoderOptions, id string) []byte {
	if id == "" {
		id = o.ID
	}
	dst = append(dst, `"modelVersion":`...)
	dst = translate.AppendString(dst, o.Model)
	dst = append(dst, `,"responseId":`...)
	dst = translate.AppendString(dst, id)
	return append(dst, '}')
}

// CountTokensResponse writes a countTokens answer, {"totalTokens": n}:
// the gateway answers :countTokens with it.
func CountTokensResponse(dst []byte, total int64) []byte {
	dst = append(dst, `{"totalTokens":`...)
	dst = translate.AppendInt(dst, total)
	return append(dst, '}')
}
