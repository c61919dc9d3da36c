// Package catalog is zenmuxd's built-in model catalog and its provider
// presets, as data compiled into the binary (DESIGN.md): every model's
// display name, plans, modality and aliases (models.tsv), its list prices
// with their source and date (prices.tsv), and the vendor's own name for
// it on the vendor's API (routes.tsv). It depends on nothing but the
// standard library and the ledger's types.
package catalog

import (
	"embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"zenmux/ledger"
)

//go:embed models.tsv prices.tsv routes.tsv
var files embed.FS

// ErrData is a malformed data file; its message names the file, line and
// column.
var ErrData = errors.New("catalog: bad data")

// entry is one model of the catalog with what the files say about it.
type entry struct {
	model   ledger.Model
	aliases []string
	price   price
	route   *RouteEntry // the vendor's own API, when a preset serves it
}

// data is the parsed catalog, in models.tsv order.
type data struct {
	entries []entry
	bySlug  map[string]int
}

// loaded parses the embedded files once. They are fixed at build time
// and the package's tests parse them, so an error here is a build that
// skipped its tests: a panic, not a condition to handle.
var loaded = sync.OnceValue(func() *data {
	d, err := load(files)
	if err != nil {
		panic(err)
	}
	return d
})

// Models returns every catalog model as the ledger holds it, in catalog
// order: id, display name, modality, plans and prices, Unpriced when the
// price list gives none the ledger can charge (M5). Provider and Upstream
// are empty: the node's routes say who serves a model (Route).
func Models() []ledger.Model {
	d := loaded()
	out := make([]ledger.Model, len(d.entries))
	for i := range d.entries {
		out[i] = cloneModel(&d.entries[i].model)
	}
	return out
}

// Model returns the catalog model of an id, or false when the catalog has
// none by that id (aliases are the ledger's to resolve).
func Model(id string) (ledger.Model, bool) {
	d := loaded()
	i, ok := d.bySlug[id]
	if !ok {
		return ledger.Model{}, false
	}
	return cloneModel(&d.entries[i].model), true
}

// Aliases returns the other ids the catalog gives a model (Doubao models
// answer under bytedance/ and volcengine/ alike, P3).
func Aliases(id string) []string {
	d := loaded()
	if i, ok := d.bySlug[id]; ok {
		return slices.Clone(d.entries[i].aliases)
	}
	return nil
}

func cloneModel(m *ledger.Model) ledger.Model {
	c := *m
	c.Plans = slices.Clone(m.Plans)
	return c
}

// modalities are the values models.tsv may give.
var modalities = []string{"text", "image", "video", "embedding"}

// load parses the three files of fsys.
func load(fsys embed.FS) (*data, error) {
	d := &data{bySlug: map[string]int{}}
	models, err := readTSV(fsys, "models.tsv", []string{"slug", "name", "plans", "modality", "aliases"})
	if err != nil {
		return nil, err
	}
	for _, r := range models {
		slug, name, plans, modality, aliases := r.cells[0], r.cells[1], r.cells[2], r.cells[3], r.cells[4]
		_, dup := d.bySlug[slug]
		switch {
		case !validSlug(slug):
			return nil, r.errorf(0, "%q is not a vendor/name slug", slug)
		case dup:
			return nil, r.errorf(0, "%q is listed twice", slug)
		case name == "":
			return nil, r.errorf(1, "empty")
		case plans == "":
			return nil, r.errorf(2, "empty")
		case !slices.Contains(modalities, modality):
			return nil, r.errorf(3, "%q is not one of %s", modality, strings.Join(modalities, ", "))
		}
		e := entry{model: ledger.Model{ID: slug, Name: name, Modality: modality, Plans: strings.Split(plans, ","), Unpriced: true}}
		if aliases != "" {
			e.aliases = strings.Split(aliases, ",")
			for _, a := range e.aliases {
				if !validSlug(a) {
					return nil, r.errorf(4, "%q is not a vendor/name slug", a)
				}
			}
		}
		d.bySlug[slug] = len(d.entries)
		d.entries = append(d.entries, e)
	}
	if err := d.loadPrices(fsys); err != nil {
		return nil, err
	}
	if err := d.loadRoutes(fsys); err != nil {
		return nil, err
	}
	return d, nil
}

// loadPrices lays prices.tsv over the models. A model without a row, or
// whose row gives no price the ledger can charge, stays Unpriced.
func (d *data) loadPrices(fsys embed.FS) error {
	rows, err := readTSV(fsys, "prices.tsv", priceColumns)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, r := range rows {
		i, ok := d.bySlug[r.cells[0]]
		switch {
		case !ok:
			return r.errorf(0, "%q is not in models.tsv", r.cells[0])
		case seen[r.cells[0]]:
			return r.errorf(0, "%q is listed twice", r.cells[0])
		}
		seen[r.cells[0]] = true
		p, err := parsePrice(r)
		if err != nil {
			return err
		}
		e := &d.entries[i]
		e.price = p
		m := &e.model
		m.InputMicroUSDPerMTok, m.OutputMicroUSDPerMTok = p.input.v, p.output.v
		m.CacheReadMicroUSDPerM, m.CacheWriteMicroUSDPerM = p.cacheRead.v, p.cacheWrite.v
		m.ImageMicroUSD = p.image.v
		m.Unpriced = !p.chargeable()
	}
	return nil
}

// loadRoutes reads each model's name on its vendor's preset.
func (d *data) loadRoutes(fsys embed.FS) error {
	rows, err := readTSV(fsys, "routes.tsv", []string{"slug", "preset", "upstream"})
	if err != nil {
		return err
	}
	for _, r := range rows {
		i, ok := d.bySlug[r.cells[0]]
		switch {
		case !ok:
			return r.errorf(0, "%q is not in models.tsv", r.cells[0])
		case d.entries[i].route != nil:
			return r.errorf(0, "%q is listed twice", r.cells[0])
		}
		if p, ok := PresetByName(r.cells[1]); !ok || p.Name == OpenRouter {
			return r.errorf(1, "%q is not a vendor preset", r.cells[1])
		}
		if r.cells[2] == "" {
			return r.errorf(2, "empty")
		}
		d.entries[i].route = &RouteEntry{Preset: r.cells[1], Upstream: r.cells[2]}
	}
	return nil
}

// row is one data line of a TSV file.
type row struct {
	file    string
	line    int // 1-based, the header being line 1
	columns []string
	cells   []string
}

func (r row) errorf(col int, format string, args ...any) error {
	return fmt.Errorf("%w: %s line %d column %d (%s): %s", ErrData, r.file, r.line, col+1, r.columns[col], fmt.Sprintf(format, args...))
}

// readTSV reads a tab-separated file whose first line is exactly columns,
// and returns its other lines, each with exactly that many cells.
func readTSV(fsys embed.FS, name string, columns []string) ([]row, error) {
	b, err := fsys.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrData, err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if lines[0] != strings.Join(columns, "\t") {
		return nil, fmt.Errorf("%w: %s line 1: header must be %q", ErrData, name, strings.Join(columns, "\t"))
	}
	out := make([]row, 0, len(lines)-1)
	for n, l := range lines[1:] {
		cells := strings.Split(strings.TrimSuffix(l, "\r"), "\t")
		if len(cells) != len(columns) {
			return nil, fmt.Errorf("%w: %s line %d: %d cells, want %d", ErrData, name, n+2, len(cells), len(columns))
		}
		out = append(out, row{file: name, line: n + 2, columns: columns, cells: cells})
	}
	return out, nil
}

// validSlug reports whether s is vendor/name, each part non-empty and
// made of lower-case letters, digits, '.', '_', '-' or ':'.
func validSlug(s string) bool {
	vendor, name, ok := strings.Cut(s, "/")
	if !ok || vendor == "" || name == "" || strings.Contains(name, "/") {
		return false
	}
	for _, r := range vendor + name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' || r == ':') {
			return false
		}
	}
	return true
}
