package proxy

import (
	"fmt"
	"strings"

	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fasthttp"

	"zenmux/ledger"
	"zenmux/translate"
)

// codecs are the wire formats' codecs (package translate), by the format
// a client or an upstream speaks.
var codecs = map[Format]translate.Codec{}

// generationFormats are the formats a generation call can be translated
// between, in the order an upstream's format is picked when it does not
// speak the client's: Chat Completions is the one most upstreams speak.
var generationFormats = [...]Format{FormatChat, FormatResponses, FormatMessages, FormatGemini}

// candidate is a provider that can take a model's call on this node.
type candidate struct {
	route Route
	p     Provider
	// up is the format the call goes upstream in: the client's when the
	// provider speaks it (the bytes pass through), else the one it is
	// translated to; 0 for a count the provider cannot make (estimated).
	up Format
}

// routes are the model's routes: its own provider when it names one (a
// config or admin model), else Options.Routes (the catalog's). own is
// the caller's room for the single route, so a request allocates none.
func (s *Server) routes(m *ledger.Model, own *[1]Route) []Route {
	if m.Provider != "" || s.o.Routes == nil {
		own[0] = Route{Provider: m.Provider, Upstream: m.Upstream}
		return own[:]
	}
	return s.o.Routes(m.ID)
}

// candidates appends to dst the providers on the model's route that this
// node has, each with the format it is called in. None is 503
// model_unavailable naming why each route cannot serve; providers that
// exist but cannot take this endpoint at all (an embedding on an
// Anthropic upstream) are a 400.
func (s *Server) candidates(dst []candidate, f Format, m *ledger.Model) ([]candidate, *apiError) {
	var own [1]Route
	routes := s.routes(m, &own)
	unfit := ""
	for _, r := range routes {
		p := s.o.Providers[r.Provider]
		if p == nil {
			continue
		}
		up := upstreamFormat(f, p)
		if up == 0 {
			unfit = r.Provider
			continue
		}
		dst = append(dst, candidate{route: r, p: p, up: up})
	}
	if len(dst) > 0 {
		return dst, nil
	}
	if unfit != "" && (f == FormatCountTokens || f == FormatGeminiCount) {
		return append(dst, candidate{}), nil // no provider counts: estimated
	}
	if unfit != "" {
		return nil, newAPIError(400, "invalid_request", fmt.Sprintf("model %s is served by provider %q, which does not speak this endpoint's format", m.ID, unfit))
	}
	switch len(routes) {
	case 0:
		return nil, newAPIError(503, "model_unavailable", fmt.Sprintf("model %q is unavailable: no provider that serves it is configured on this node", m.ID))
	case 1:
		return nil, modelUnavailable(m.ID, routes[0].Provider, s.o.ProviderProblems[routes[0].Provider])
	}
	why := make([]string, 0, len(routes))
	for _, r := range routes {
		why = append(why, fmt.Sprintf("%q %s", r.Provider, orDefault(s.o.ProviderProblems[r.Provider], "is not configured on this node")))
	}
	return nil, newAPIError(503, "model_unavailable", fmt.Sprintf("model %q is unavailable: no provider on its route can serve it (%s)", m.ID, strings.Join(why, "; ")))
}

// upstreamFormat is the format a provider takes a call of format f in: f
// itself when it speaks it; for a generation call, the first of
// generationFormats it speaks (translated); else 0.
func upstreamFormat(f Format, p Provider) Format {
	if p.Speaks(f) {
		return f
	}
	if f != FormatChat && f != FormatResponses && f != FormatMessages && f != FormatGemini {
		return 0
	}
	for _, g := range generationFormats {
		if p.Speaks(g) && codecs[g] != nil && codecs[f] != nil {
			return g
		}
	}
	return 0
}

// translation is a call carried from the client's format to another.
type translation struct {
	client, up translate.Codec
	opts       translate.EncoderOptions
	body       []byte // the upstream's request body, in buf
	buf        *bytebufferpool.ByteBuffer
}

// sent returns the request body's buffer to the pool: the upstream has
// been sent the request (or could not be).
func (x *translation) sent() {
	if x != nil && x.buf != nil {
		x.buf.B = x.body[:0]
		bodyPool.Put(x.buf)
		x.buf, x.body = nil, nil
	}
}

// translation decodes the client's body (once: *req keeps it for the
// next route) and encodes it for an upstream of format up. A field one
// side cannot carry is the codec's 400 naming it.
func (s *Server) translation(f, up Format, body []byte, req **translate.Request, model string, stream bool, upstream, id string, now int64) (*translation, *translate.Error) {
	x := &translation{client: codecs[f], up: codecs[up]}
	if *req == nil {
		r, err := x.client.DecodeRequest(body)
		if err != nil {
			return nil, translate.AsError(err)
		}
		if f == FormatGemini {
			r.Model, r.Stream = model, stream
		}
		*req = r
	}
	x.buf = bodyPool.Get()
	b, err := x.up.EncodeRequest(x.buf.B[:0], *req, upstream)
	if err != nil {
		bodyPool.Put(x.buf)
		return nil, translate.AsError(err)
	}
	x.body = b
	x.opts = translate.EncoderOptions{Model: model, ID: id, IncludeUsage: (*req).IncludeUsage, Created: now / 1_000_000_000, Namespaces: (*req).Namespaces}
	return x, nil
}

// writeTranslateError answers a codec's refusal in the client's format.
func writeTranslateError(ctx *fasthttp.RequestCtx, f Format, e *translate.Error) {
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("application/json")
	ctx.SetBody(codecs[f].EncodeError(nil, e))
}

// countEstimate answers a count of tokens whose upstream cannot count:
// the request's bytes at four a token (Q7's estimate), marked estimated
// in the body and in x-zenmux-estimated.
func countEstimate(ctx *fasthttp.RequestCtx, f Format, body []byte) {
	n := estimateTokens(int64(len(body)))
	ctx.Response.Header.Set("x-zenmux-estimated", "true")
	ctx.SetContentType("application/json")
	if f == FormatGeminiCount {
		ctx.SetBodyString(fmt.Sprintf(`{"totalTokens":%d,"estimated":true}`, n))
		return
	}
	ctx.SetBodyString(fmt.Sprintf(`{"input_tokens":%d,"estimated":true}`, n))
}

// relayError passes an upstream refusal to the client. A 4xx about the
// request itself keeps its status, relayed as is when the client speaks
// the upstream's format and translated into the client's otherwise; a
// 401/403 means the operator's provider key is wrong, and any 5xx is the
// provider failing: both become 502 upstream_error. Nothing is charged.
func (s *Server) relayError(ctx *fasthttp.RequestCtx, in *inflight, resp *Response) {
	data, _ := readAllLimited(resp.Body, 1<<20)
	resp.Body.Close()
	if resp.Status >= 400 && resp.Status < 500 && resp.Status != 401 && resp.Status != 403 {
		if in.x != nil {
			e := in.x.up.DecodeError(resp.Status, data)
			e.Status = resp.Status
			writeTranslateError(ctx, in.format, e)
			return
		}
		ctx.SetStatusCode(resp.Status)
		ctx.SetContentType(orDefault(resp.ContentType, "application/json"))
		ctx.SetBody(data)
		return
	}
	writeError(ctx, in.format.shape(), newAPIError(502, "upstream_error", fmt.Sprintf("the provider answered %d", resp.Status)))
}
