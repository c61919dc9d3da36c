package web

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// The pages must work under the strict policy selfservice sends
// (script-src 'self'; style-src 'self'; no 'unsafe-inline'): every script
// and stylesheet is a file under /assets/ that exists, and no HTML carries
// inline script, inline style, a style attribute or an event-handler
// attribute.

var (
	tagRe       = regexp.MustCompile(`(?is)<([a-z][a-z0-9-]*)\b([^>]*)>`)
	attrRe      = regexp.MustCompile(`(?is)([a-z_:][-a-z0-9_:.]*)\s*(?:=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?`)
	scriptRe    = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`)
	importRe    = regexp.MustCompile(`(?m)^\s*import\s[^;]*?from\s+"([^"]+)"|^\s*import\s+"([^"]+)"`)
	cssURLRe    = regexp.MustCompile(`url\(\s*['"]?([^'")]+)['"]?\s*\)`)
	domHTMLSink = regexp.MustCompile(`\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write)\b`)
)

// sitePaths are the pages a page may link to.
var sitePaths = map[string]bool{"/pricing": true, "/sign-in": true, "/console": true, "/studio": true}

type attr struct{ name, value string }

func attrs(s string) []attr {
	var out []attr
	for _, m := range attrRe.FindAllStringSubmatch(s, -1) {
		v := m[2]
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') {
			v = v[1 : len(v)-1]
		}
		out = append(out, attr{strings.ToLower(m[1]), v})
	}
	return out
}

func mustAsset(t *testing.T, p string) []byte {
	t.Helper()
	b, _, ok := Asset(p)
	if !ok {
		t.Fatalf("Asset(%q) missing", p)
	}
	return b
}

func TestPagesReferenceOnlyExistingAssetsAndNothingInline(t *testing.T) {
	for _, page := range Pages() {
		html := string(mustAsset(t, page))
		if strings.Contains(strings.ToLower(html), "<style") {
			t.Errorf("%s: has a <style> element", page)
		}
		for _, m := range scriptRe.FindAllStringSubmatch(html, -1) {
			if strings.TrimSpace(m[2]) != "" {
				t.Errorf("%s: inline script %.40q", page, m[2])
			}
			if !strings.Contains(m[1], "src=") {
				t.Errorf("%s: script without src", page)
			}
		}
		refs := 0
		for _, m := range tagRe.FindAllStringSubmatch(html, -1) {
			for _, a := range attrs(m[2]) {
				switch {
				case a.name == "style":
					t.Errorf("%s: <%s> has a style attribute", page, m[1])
				case strings.HasPrefix(a.name, "on"):
					t.Errorf("%s: <%s> has an event handler attribute %s", page, m[1], a.name)
				case a.name == "src" || a.name == "href":
					if strings.HasPrefix(strings.ToLower(a.value), "javascript:") {
						t.Errorf("%s: javascript: URL", page)
					}
					if strings.HasPrefix(a.value, "//") || strings.Contains(a.value, "://") {
						t.Errorf("%s: outside reference %q", page, a.value)
					}
					if strings.HasPrefix(a.value, "/assets/") {
						refs++
						mustAsset(t, a.value)
					} else if strings.HasPrefix(a.value, "/") {
						path, _, _ := strings.Cut(a.value, "#")
						path, _, _ = strings.Cut(path, "?")
						if !sitePaths[path] {
							t.Errorf("%s: links to %q, which is not a page", page, a.value)
						}
					}
				}
			}
		}
		if refs < 3 {
			t.Errorf("%s: only %d asset references; the page cannot load its CSS and JS", page, refs)
		}
	}
}

func TestScriptsImportOnlyExistingModulesAndNeverWriteHTML(t *testing.T) {
	scripts := 0
	err := fs.WalkDir(FS(), "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch {
		case strings.HasPrefix(p, "assets/vendor/"):
			return nil
		case strings.HasSuffix(p, ".js"):
			scripts++
			src := string(mustAsset(t, "/"+p))
			for _, m := range importRe.FindAllStringSubmatch(src, -1) {
				spec := m[1] + m[2]
				if !strings.HasPrefix(spec, "/assets/") {
					t.Errorf("%s imports %q: modules must come from /assets/", p, spec)
					continue
				}
				mustAsset(t, spec)
			}
			// Server and user text goes in with textContent; an HTML sink
			// would let a key or model name holding <script> run.
			if m := domHTMLSink.FindString(src); m != "" {
				t.Errorf("%s uses %s", p, m)
			}
		case strings.HasSuffix(p, ".css"):
			for _, m := range cssURLRe.FindAllStringSubmatch(string(mustAsset(t, "/"+p)), -1) {
				if u := m[1]; !strings.HasPrefix(u, "data:") {
					mustAsset(t, u)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scripts < 5 {
		t.Fatalf("found %d page scripts, want at least 5", scripts)
	}
}

func TestAsset(t *testing.T) {
	cases := []struct {
		path, contentType string
		ok                bool
	}{
		{"/pricing", "text/html; charset=utf-8", true},
		{"/sign-in", "text/html; charset=utf-8", true},
		{"/console", "text/html; charset=utf-8", true},
		{"/studio", "text/html; charset=utf-8", true},
		{"/assets/app.css", "text/css; charset=utf-8", true},
		{"/assets/lib.js", "text/javascript; charset=utf-8", true},
		{"/assets/icon.svg", "image/svg+xml", true},
		{"/assets/vendor/uplot/LICENSE", "text/plain; charset=utf-8", true},
		{"/assets/vendor/uplot/VERSION", "text/plain; charset=utf-8", true},
		{"/assets/", "", false},
		{"/assets/vendor", "", false},
		{"/assets/../web.go", "", false},
		{"/assets//app.css", "", false},
		{"/assets/missing.js", "", false},
		{"/pricing.html", "", false},
		{"/console/", "", false},
		{"/", "", false},
	}
	for _, c := range cases {
		body, ct, ok := Asset(c.path)
		if ok != c.ok || ct != c.contentType || ok != (len(body) > 0) {
			t.Errorf("Asset(%q) = %d bytes, %q, %v; want %q, %v", c.path, len(body), ct, ok, c.contentType, c.ok)
		}
	}
}

func TestVendoredLibraryKeepsItsLicenceAndVersion(t *testing.T) {
	if lic := string(mustAsset(t, "/assets/vendor/uplot/LICENSE")); !strings.Contains(lic, "MIT License") {
		t.Errorf("uPlot LICENSE is not the MIT licence")
	}
	if v := string(mustAsset(t, "/assets/vendor/uplot/VERSION")); !strings.HasPrefix(v, "uplot 1.6.32\n") {
		t.Errorf("VERSION = %q", v)
	}
	if js := string(mustAsset(t, "/assets/vendor/uplot/uPlot.iife.min.js")); !strings.Contains(js, "(v1.6.32)") {
		t.Errorf("uPlot.iife.min.js is not version 1.6.32")
	}
}
