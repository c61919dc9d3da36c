// Command noproxy is the benchmark's yardstick: a reverse proxy that does
// nothing but forward. A fasthttp server hands each request to a fasthttp
// HostClient pointed at one upstream, copies the answer's status and
// headers back, and streams a body of unknown length through read by read,
// flushing each. What it costs is the physical limit of any proxy built on
// the same HTTP stack; zenmuxd's cost is measured against it.
package main

import (
	"bufio"
	"flag"
	"log"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	upstream := flag.String("upstream", "", "upstream host:port")
	flag.Parse()
	if *upstream == "" {
		log.Fatal("noproxy: -upstream is required")
	}
	hc := &fasthttp.HostClient{
		Addr:                     *upstream,
		MaxConns:                 4096,
		MaxIdleConnDuration:      90 * time.Second,
		StreamResponseBody:       true,
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
	}
	handler := func(ctx *fasthttp.RequestCtx) {
		req := fasthttp.AcquireRequest()
		ctx.Request.CopyTo(req)
		req.Header.Del("Connection")
		req.SetTimeout(2 * time.Minute)
		resp := fasthttp.AcquireResponse()
		err := hc.Do(req, resp)
		fasthttp.ReleaseRequest(req)
		if err != nil {
			fasthttp.ReleaseResponse(resp)
			ctx.Error("noproxy: upstream: "+err.Error(), fasthttp.StatusBadGateway)
			return
		}
		ctx.SetStatusCode(resp.StatusCode())
		for k, v := range resp.Header.All() {
			switch string(k) {
			case fasthttp.HeaderContentLength, fasthttp.HeaderConnection, fasthttp.HeaderTransferEncoding, fasthttp.HeaderServer:
				continue
			}
			ctx.Response.Header.SetBytesKV(k, v)
		}
		if resp.Header.ContentLength() >= 0 { // known length: copy it whole
			ctx.SetBody(resp.Body())
			fasthttp.ReleaseResponse(resp)
			return
		}
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) { // unknown length (SSE): stream through
			defer fasthttp.ReleaseResponse(resp)
			r := resp.BodyStream()
			if r == nil {
				_, _ = w.Write(resp.Body())
				return
			}
			buf := make([]byte, 32<<10)
			deadline := time.Now().Add(time.Hour)
			for i := 0; i < 100_000_000 && time.Now().Before(deadline); i++ { // bounded; ends at the upstream's EOF
				n, err := r.Read(buf)
				if n > 0 {
					if _, werr := w.Write(buf[:n]); werr != nil {
						break
					}
					if w.Flush() != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			_ = resp.CloseBodyStream()
		})
	}
	srv := &fasthttp.Server{Handler: handler, Name: "noproxy", NoDefaultServerHeader: true, NoDefaultDate: true}
	if err := srv.ListenAndServe(*listen); err != nil {
		log.Fatal(err)
	}
}
