package selfservice

import (
	"fmt"
	"path"

	"github.com/valyala/fasthttp"

	"zenmux/internal/apierr"
)

// page serves a page or an asset. /console and /studio need a session:
// without one they redirect to /sign-in, which comes back to them.
func (s *Server) page(ctx *fasthttp.RequestCtx, p string) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		writeError(ctx, fmt.Errorf("%w: %s answers GET, HEAD", apierr.ErrMethod, p))
		return
	}
	if (p == "/console" || p == "/studio") && !s.pageSession(ctx) {
		ctx.Response.Header.Set("Cache-Control", "no-store")
		redirect(ctx, "/sign-in?next="+p) // back to the page asked for, after signing in
		return
	}
	var body []byte
	var ctype string
	ok := false
	if s.pages != nil && path.Clean(p) == p {
		body, ctype, ok = s.pages(p)
	}
	if !ok {
		writeError(ctx, fmt.Errorf("%w: no such page: %s", apierr.ErrRoute, p))
		return
	}
	// Pages are small and change with the binary: revalidated each time.
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetContentType(ctype)
	ctx.SetBody(body)
}

// redirect answers 302 to a path of this origin, as a relative Location
// (fasthttp's Redirect would make it absolute from the Host header).
func redirect(ctx *fasthttp.RequestCtx, to string) {
	ctx.Response.Header.Set("Location", to)
	ctx.SetStatusCode(fasthttp.StatusFound)
}
