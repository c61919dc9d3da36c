package catalog

import (
	"fmt"
	"strings"
	"time"
)

// priceColumns is the header of prices.tsv.
var priceColumns = []string{
	"slug", "input_usd_per_mtok", "output_usd_per_mtok", "cache_read_usd_per_mtok", "cache_write_usd_per_mtok",
	"image_usd", "video_usd_per_second", "source", "checked",
}

// amount is one price cell: set is false for an empty cell (the model is
// not sold that way).
type amount struct {
	v   int64 // micro-USD
	set bool
}

// price is one prices.tsv row, amounts in micro-USD (per million tokens,
// per image, per second of video).
type price struct {
	input, output, cacheRead, cacheWrite amount
	image, videoPerSecond                amount
	source, checked                      string
}

// chargeable reports whether the row gives a price the ledger can charge
// (M2): per token or per image. A price per second of video alone is not
// one, as the gateway does not meter seconds of video.
func (p *price) chargeable() bool {
	return p.input.set || p.output.set || p.cacheRead.set || p.cacheWrite.set || p.image.set
}

// any reports whether the row gives any price at all.
func (p *price) any() bool { return p.chargeable() || p.videoPerSecond.set }

// maxMicroUSD bounds a price cell at $1,000,000 — far above any list
// price, and far below overflow in the ledger's arithmetic.
const maxMicroUSD = 1_000_000_000_000

// parsePrice reads the price cells of a prices.tsv row. A row with a
// price names a URL as its source and a date (YYYY-MM-DD) it was
// checked; a row without one says "not found: " and why.
func parsePrice(r row) (price, error) {
	var p price
	for i, dst := range []*amount{&p.input, &p.output, &p.cacheRead, &p.cacheWrite, &p.image, &p.videoPerSecond} {
		cell := r.cells[1+i]
		if cell == "" {
			continue
		}
		v, err := parseMicroUSD(cell)
		if err != nil {
			return price{}, r.errorf(1+i, "%v", err)
		}
		*dst = amount{v: v, set: true}
	}
	p.source, p.checked = r.cells[7], r.cells[8]
	if p.any() {
		if !strings.HasPrefix(p.source, "https://") && !strings.HasPrefix(p.source, "http://") {
			return price{}, r.errorf(7, "a priced row's source must start with its URL, not %q", p.source)
		}
		if _, err := time.Parse(time.DateOnly, p.checked); err != nil {
			return price{}, r.errorf(8, "a priced row's checked must be a date (YYYY-MM-DD), not %q", p.checked)
		}
	} else if !strings.HasPrefix(p.source, "not found: ") {
		return price{}, r.errorf(7, "a row without a price must say \"not found: \" and why, not %q", p.source)
	}
	return p, nil
}

// parseMicroUSD reads a decimal number of dollars ("3", "0.075",
// "18.75") as micro-USD, exactly: digits, at most one '.', at most six
// decimals, no sign, exponent or spaces, at most maxMicroUSD.
func parseMicroUSD(s string) (int64, error) {
	whole, frac, dot := strings.Cut(s, ".")
	switch {
	case whole == "":
		return 0, fmt.Errorf("%q is not a decimal number of dollars (digits before the point)", s)
	case dot && frac == "":
		return 0, fmt.Errorf("%q is not a decimal number of dollars (digits after the point)", s)
	case len(frac) > 6:
		return 0, fmt.Errorf("%q has more than 6 decimals (prices are exact to the micro-dollar)", s)
	case len(whole) > 7:
		return 0, fmt.Errorf("%q is above $1,000,000", s)
	}
	var v int64
	for _, c := range whole + frac + strings.Repeat("0", 6-len(frac)) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a decimal number of dollars (only digits and one '.')", s)
		}
		v = v*10 + int64(c-'0')
	}
	if v > maxMicroUSD {
		return 0, fmt.Errorf("%q is above $1,000,000", s)
	}
	return v, nil
}
