package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"zenmux/ledger"
)

// Money and Flow amounts are integers of a fixed unit, written in TOML as
// plain decimal numbers of whole USD or Flows: price_usd = 19.99 is
// 19_990000 micro-USD, usd_per_flow = 0.03283 is 32_830000 nano-USD.

// Micros is an amount in millionths: micro-USD or micro-Flows.
type Micros int64

// Nanos is an amount in billionths: nano-USD (the price of a Flow).
type Nanos int64

// Decimals the units carry.
const (
	microScale = 6
	nanoScale  = 9
)

// UnmarshalTOML reads a TOML number of whole units into millionths.
func (m *Micros) UnmarshalTOML(v any) error {
	n, err := readAmount(v, microScale)
	*m = Micros(n)
	return err
}

// MarshalTOML writes the amount as the number UnmarshalTOML reads.
func (m Micros) MarshalTOML() ([]byte, error) { return []byte(m.String()), nil }

// String writes the amount in whole units with up to 6 decimals ("19.99").
func (m Micros) String() string { return amountText(int64(m), microScale) }

// UnmarshalTOML reads a TOML number of whole units into billionths.
func (n *Nanos) UnmarshalTOML(v any) error {
	u, err := readAmount(v, nanoScale)
	*n = Nanos(u)
	return err
}

// MarshalTOML writes the amount as the number UnmarshalTOML reads.
func (n Nanos) MarshalTOML() ([]byte, error) { return []byte(n.String()), nil }

// String writes the amount in whole units with up to 9 decimals
// ("0.03283").
func (n Nanos) String() string { return amountText(int64(n), nanoScale) }

// readAmount reads a TOML integer or float as an exact count of 10^-scale
// units, from its decimal digits, never by multiplying a float.
//
// The TOML decoder hands an Unmarshaler a float as a float64, not as the
// literal's text (and an encoding.TextUnmarshaler gets it printed with
// "%f", six decimals, which would hide a seventh). So a float is read from
// the shortest decimal that parses back to the same float64 (strconv 'f',
// -1): for every literal of at most 15 significant digits that is the
// literal itself, as float64 tells all of those apart, and every amount
// within Validate's limits has at most 15. A literal of more digits than
// a float64 holds reads as the float64 it was rounded to.
func readAmount(v any, scale int) (int64, error) {
	var text string
	switch v := v.(type) {
	case int64:
		text = strconv.FormatInt(v, 10)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("%v is not a finite number", v)
		}
		text = strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return 0, errors.New("must be a number")
	}
	if _, frac, _ := strings.Cut(text, "."); len(frac) > scale {
		return 0, fmt.Errorf("%s has %d decimals; at most %d", text, len(frac), scale)
	}
	n, err := ledger.ParseDecimal(text, scale, math.MaxInt64)
	if err != nil {
		return 0, fmt.Errorf("%s is out of range", text)
	}
	return n, nil
}

// amountText is ledger.Decimal, which has no text for math.MinInt64: no
// file reads as that (readAmount stops at ±math.MaxInt64), so only a
// Config built in code can hold it, and it is shown one unit up.
func amountText(v int64, scale int) string {
	return ledger.Decimal(max(v, -math.MaxInt64), scale)
}
