package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fasthttp"
)

// Format is the wire format of a client's call, and so of the answer the
// gateway must relay and meter.
type Format uint8

// Formats the gateway serves.
const (
	FormatChat Format = iota + 1
	FormatResponses
	FormatEmbeddings
	FormatImages
	FormatMessages
	FormatCountTokens
	// FormatGemini is Gemini's generateContent and, when the call streams,
	// streamGenerateContent (the path, not the body, says which).
	FormatGemini
	// FormatGeminiCount is Gemini's countTokens.
	FormatGeminiCount
)

// Anthropic reports whether errors on this format use Anthropic's shape.
func (f Format) Anthropic() bool { return f == FormatMessages || f == FormatCountTokens }

// shape is the error shape of the format.
func (f Format) shape() errShape {
	switch f {
	case FormatMessages, FormatCountTokens:
		return shapeAnthropic
	case FormatGemini, FormatGeminiCount:
		return shapeGemini
	}
	return shapeOpenAI
}

// Call is one upstream request, after admission. Body is the client's
// body with the model already rewritten to the provider's name. A later
// translation layer sits here: a Provider that receives a Call in one
// format, speaks another upstream and answers in the Call's format, so
// admission and metering never change.
type Call struct {
	Format Format
	Body   []byte
	Stream bool
	// Model is the model's name upstream: Gemini takes it in the path.
	Model string
	// RequestID is zenmuxd's id of the request, sent upstream as
	// x-zenmux-request-id so a provider's logs can be matched to charges.
	RequestID string
	// Forwarded headers: Anthropic's version and beta flags, unchanged.
	AnthropicVersion []byte
	AnthropicBeta    []byte
}

// Response is an upstream answer in the Call's format. Body streams; the
// caller must Close it.
type Response struct {
	Status      int
	ContentType string
	Body        io.ReadCloser
}

// Provider sends calls to one upstream.
type Provider interface {
	Do(call *Call) (*Response, error)
	// Speaks reports whether the upstream takes calls in format f as
	// they are; the gateway translates the others (a generation call) or
	// refuses them.
	Speaks(f Format) bool
}

// Route is one way to serve a model: a provider, by its configured name,
// and the model's name there.
type Route struct {
	Provider string
	Upstream string
}

// Upstream failures, before any answer: not charged (Q7).
var (
	ErrUpstreamUnreachable = errors.New("upstream_error")
	ErrUpstreamTimeout     = errors.New("upstream_timeout")
	ErrUpstreamBusy        = errors.New("upstream_busy")
	ErrFormatUnsupported   = errors.New("format_unsupported")
)

// HTTPOptions configure an HTTP provider.
type HTTPOptions struct {
	Kind    string // openai | anthropic | gemini
	BaseURL string
	APIKey  string
	// NoResponses: an openai upstream that serves Chat Completions only
	// (most OpenAI-compatible vendors); Responses calls are translated.
	NoResponses bool
	// ResponsesOnly: an openai upstream that serves Responses only (as
	// OpenAI's codex models); Chat Completions calls are translated.
	ResponsesOnly bool
	// DropBetas: an anthropic-kind upstream that is not Anthropic and
	// refuses Anthropic's beta flags; anthropic-beta is not forwarded.
	DropBetas        bool
	MaxConcurrent    int
	ConnectTimeout   time.Duration
	FirstByteTimeout time.Duration
	IdleTimeout      time.Duration
}

// httpProvider speaks to an OpenAI-compatible or Anthropic upstream over a
// pooled fasthttp client with keep-alive connections. Concurrency is
// bounded by a semaphore (and the pool's size); a call that cannot get a
// slot within the first-byte timeout fails as busy.
type httpProvider struct {
	o      HTTPOptions
	client *fasthttp.Client
	slots  chan struct{}
	auth   []byte // pre-rendered auth header value
}

// NewHTTPProvider returns a provider for kind "openai", "anthropic" or
// "gemini".
func NewHTTPProvider(o HTTPOptions) (Provider, error) {
	if o.Kind != "openai" && o.Kind != "anthropic" && o.Kind != "gemini" {
		return nil, fmt.Errorf("provider kind %q is not an HTTP kind", o.Kind)
	}
	if o.NoResponses && o.ResponsesOnly {
		return nil, fmt.Errorf("an openai provider cannot be both Chat-only and Responses-only")
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	p := &httpProvider{o: o, slots: make(chan struct{}, o.MaxConcurrent)}
	if o.Kind == "openai" {
		p.auth = []byte("Bearer " + o.APIKey)
	} else {
		p.auth = []byte(o.APIKey)
	}
	p.client = &fasthttp.Client{
		Name:                     "zenmuxd",
		NoDefaultUserAgentHeader: true,
		MaxConnsPerHost:          o.MaxConcurrent,
		MaxIdleConnDuration:      90 * time.Second,
		StreamResponseBody:       true,
		MaxResponseBodySize:      0,
		ReadBufferSize:           16 << 10,
		Dial: func(addr string) (net.Conn, error) {
			c, err := fasthttp.DialTimeout(addr, o.ConnectTimeout)
			if err != nil {
				return nil, err
			}
			return &deadlineConn{Conn: c, idle: o.IdleTimeout}, nil
		},
		DisablePathNormalizing: true,
	}
	return p, nil
}

// Speaks reports the formats of the provider's kind.
func (p *httpProvider) Speaks(f Format) bool {
	switch p.o.Kind {
	case "openai":
		return f == FormatChat && !p.o.ResponsesOnly || f == FormatResponses && !p.o.NoResponses || f == FormatEmbeddings || f == FormatImages
	case "anthropic":
		return f == FormatMessages || f == FormatCountTokens
	}
	return f == FormatGemini || f == FormatGeminiCount
}

func (p *httpProvider) url(call *Call) (string, error) {
	f := call.Format
	if !p.Speaks(f) {
		return "", ErrFormatUnsupported
	}
	switch {
	case f == FormatGemini && call.Stream:
		return p.o.BaseURL + "/v1beta/models/" + call.Model + ":streamGenerateContent?alt=sse", nil
	case f == FormatGemini:
		return p.o.BaseURL + "/v1beta/models/" + call.Model + ":generateContent", nil
	case f == FormatGeminiCount:
		return p.o.BaseURL + "/v1beta/models/" + call.Model + ":countTokens", nil
	case p.o.Kind == "openai" && f == FormatChat:
		return p.o.BaseURL + "/chat/completions", nil
	case p.o.Kind == "openai" && f == FormatResponses:
		return p.o.BaseURL + "/responses", nil
	case p.o.Kind == "openai" && f == FormatEmbeddings:
		return p.o.BaseURL + "/embeddings", nil
	case p.o.Kind == "openai" && f == FormatImages:
		return p.o.BaseURL + "/images/generations", nil
	case p.o.Kind == "anthropic" && f == FormatMessages:
		return p.o.BaseURL + "/v1/messages", nil
	case p.o.Kind == "anthropic" && f == FormatCountTokens:
		return p.o.BaseURL + "/v1/messages/count_tokens", nil
	}
	return "", ErrFormatUnsupported
}

// Do sends the call and returns once the answer's headers have arrived;
// the body streams from the connection.
func (p *httpProvider) Do(call *Call) (*Response, error) {
	url, err := p.url(call)
	if err != nil {
		return nil, err
	}
	select {
	case p.slots <- struct{}{}:
	default:
		t := time.NewTimer(p.o.FirstByteTimeout)
		select {
		case p.slots <- struct{}{}:
			t.Stop()
		case <-t.C:
			return nil, ErrUpstreamBusy
		}
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	req.SetRequestURI(url)
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/json")
	if call.Stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	switch p.o.Kind {
	case "openai":
		req.Header.SetBytesV("Authorization", p.auth)
	case "gemini":
		req.Header.SetBytesV("x-goog-api-key", p.auth)
	default:
		req.Header.SetBytesV("x-api-key", p.auth)
		if len(call.AnthropicVersion) > 0 {
			req.Header.SetBytesV("anthropic-version", call.AnthropicVersion)
		} else {
			req.Header.Set("anthropic-version", "2023-06-01")
		}
		if len(call.AnthropicBeta) > 0 && !p.o.DropBetas {
			req.Header.SetBytesV("anthropic-beta", call.AnthropicBeta)
		}
	}
	if call.RequestID != "" {
		req.Header.Set("x-zenmux-request-id", call.RequestID)
	}
	req.SetBodyRaw(call.Body)
	// The deadline fasthttp sets from this timeout is taken by deadlineConn
	// as the first-byte deadline; later reads get the idle timeout.
	req.SetTimeout(p.o.FirstByteTimeout)
	err = p.client.Do(req, resp)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		<-p.slots
		if errors.Is(err, fasthttp.ErrTimeout) || isTimeout(err) {
			return nil, fmt.Errorf("%w: %v", ErrUpstreamTimeout, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrUpstreamUnreachable, err)
	}
	out := &Response{Status: resp.StatusCode(), ContentType: string(resp.Header.ContentType())}
	out.Body = &streamBody{resp: resp, r: resp.BodyStream(), release: func() { <-p.slots }}
	return out, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// streamBody closes a fasthttp streamed response exactly once.
type streamBody struct {
	resp    *fasthttp.Response
	r       io.Reader
	once    sync.Once
	release func()
}

func (s *streamBody) Read(b []byte) (int, error) {
	if s.r == nil {
		return 0, io.EOF
	}
	n, err := s.r.Read(b)
	if err != nil && err != io.EOF && isTimeout(err) {
		err = fmt.Errorf("%w: %v", ErrUpstreamTimeout, err)
	}
	return n, err
}

func (s *streamBody) Close() error {
	s.once.Do(func() {
		_ = s.resp.CloseBodyStream()
		fasthttp.ReleaseResponse(s.resp)
		s.release()
	})
	return nil
}

// deadlineConn turns fasthttp's absolute read deadline into two timeouts:
// fasthttp sets it once before reading each response, and it becomes the
// deadline for the first byte; every later read of the same response gets
// a fresh idle deadline, so a long stream lives as long as bytes keep
// coming.
type deadlineConn struct {
	net.Conn
	idle       time.Duration
	firstByte  time.Time
	awaitFirst bool
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.firstByte, c.awaitFirst = t, true
	return c.Conn.SetReadDeadline(t)
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	if !c.awaitFirst {
		if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.awaitFirst = false
	}
	return n, err
}

var bodyPool bytebufferpool.Pool

// readInto reads all of r into buf, refusing more than limit bytes.
func readInto(buf *bytebufferpool.ByteBuffer, r io.Reader, limit int64) ([]byte, error) {
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("upstream answer over %d bytes", limit)
	}
	return buf.B, nil
}

// readAllLimited reads at most limit bytes of r.
func readAllLimited(r io.Reader, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("upstream answer over %d bytes", limit)
	}
	return buf.Bytes(), nil
}
