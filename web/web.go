// Package web holds the subscriber's pages (/pricing, /sign-in, /console,
// /studio) and their assets, embedded in the binary so a node serves them
// with no outside network. It knows nothing of HTTP servers: the package
// that serves the pages (selfservice) asks Asset for a path's bytes and
// content type and adds the headers (the Content-Security-Policy among
// them). Every page is static HTML that loads its CSS and JS modules from
// /assets/; nothing is inline, so the policy needs no 'unsafe-inline'.
package web

import (
	"embed"
	"io/fs"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// pages maps each page path to its HTML file under static/.
var pages = map[string]string{
	"/pricing": "static/pricing.html",
	"/sign-in": "static/sign-in.html",
	"/console": "static/console.html",
	"/studio":  "static/studio.html",
}

// contentTypes names the type of every file extension the assets use; a
// file with another extension is served as plain text (LICENSE, VERSION),
// never sniffed.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".json": "application/json",
}

// Pages lists the page paths, for a server deciding which paths it owns.
func Pages() []string {
	return []string{"/pricing", "/sign-in", "/console", "/studio"}
}

// Asset answers the body and content type of a page ("/console") or of an
// asset ("/assets/app.css"), and false for any other path, a directory, or
// a path that is not clean ("/assets/../x", "/assets//x").
func Asset(p string) (body []byte, contentType string, ok bool) {
	name, found := pages[p]
	if !found {
		rest, isAsset := strings.CutPrefix(p, "/assets/")
		if !isAsset || rest == "" || path.Clean(p) != p {
			return nil, "", false
		}
		name = "static/assets/" + rest
	}
	b, err := fs.ReadFile(static, name)
	if err != nil {
		return nil, "", false
	}
	ct, known := contentTypes[path.Ext(name)]
	if !known {
		ct = "text/plain; charset=utf-8"
	}
	return b, ct, true
}

// FS is the embedded tree (static/…), for tests that walk every file.
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic("web: embedded tree has no static directory")
	}
	return sub
}
